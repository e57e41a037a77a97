//! Wires a coordinator together and runs it until SIGTERM, then drains.
//!
//! ```text
//!  start: catalog ─▶ default schema (+ TPC-H sample, first start) ─▶ engine ─▶ listeners
//!  SIGTERM/SIGINT: /readyz → 503, new queries refused ─▶ wait for in-flight queries
//!                  (≤ shutdown_timeout_secs) ─▶ stop listeners ─▶ exit 0
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use sqe_config::{Mode, SqeConfig};
use sqe_core::bootstrap::Coordinator;
use sqe_core::distribution::Distribution;
use sqe_core::error::{Result, SqeError};
use sqe_core::membership::protocol_version;
use sqe_flight_sql::SqeFlightService;
use sqe_trino::TrinoService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tracing::{info, warn};

async fn bind(key: &str, addr: &str) -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| SqeError::external(format!("{key} = {addr}: cannot listen: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| SqeError::external(format!("{key}: {e}")))?;
    Ok((listener, local))
}

/// Distributed mode's worker registry and planner; none in hybrid mode.
pub fn distribution(config: &SqeConfig) -> Result<Option<Distribution>> {
    if config.coordinator.mode != Mode::Distributed {
        return Ok(None);
    }
    let token = config.worker.internal_token.as_ref().map(|t| t.expose());
    if token.is_none() {
        let public = config
            .coordinator
            .flight_sql_addr
            .parse::<SocketAddr>()
            .map(|a| !a.ip().is_loopback())
            .unwrap_or(true);
        if public {
            return Err(SqeError::config(format!(
                "worker.internal_token: a distributed coordinator on {} must authenticate its \
                 workers; set SQE_WORKER__INTERNAL_TOKEN on the coordinator and the workers (the \
                 operator does), or bind coordinator.flight_sql_addr to 127.0.0.1",
                config.coordinator.flight_sql_addr
            )));
        }
    }
    let distribution = sqe_cluster::coordinator(
        token,
        protocol_version(),
        config.coordinator.worker_heartbeat_misses,
    )
    .map_err(|e| SqeError::config(format!("worker.internal_token: {e}")))?;
    Ok(Some(distribution))
}

/// Runs the coordinator until a shutdown signal, then drains and returns.
pub async fn run(coordinator: Coordinator) -> Result<()> {
    let Coordinator { engine, auth } = coordinator;
    let config = engine.config().clone();
    let (flight_listener, flight_addr) = bind(
        "coordinator.flight_sql_addr",
        &config.coordinator.flight_sql_addr,
    )
    .await?;
    let (trino_listener, trino_addr) = bind(
        "coordinator.trino_http_addr",
        &config.coordinator.trino_http_addr,
    )
    .await?;
    let (health_listener, health_addr) =
        bind("coordinator.health_addr", &config.coordinator.health_addr).await?;
    let metrics_listener = if config.metrics.enabled {
        Some(bind("metrics.addr", &config.metrics.addr).await?)
    } else {
        None
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let wait_stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let health = tokio::spawn(
        axum::serve(
            health_listener,
            crate::http::health_router(Arc::clone(&engine)),
        )
        .with_graceful_shutdown(wait_stop(stop_rx.clone()))
        .into_future(),
    );
    let metrics = metrics_listener.map(|(listener, _)| {
        tokio::spawn(
            axum::serve(listener, crate::http::metrics_router(Arc::clone(&engine)))
                .with_graceful_shutdown(wait_stop(stop_rx.clone()))
                .into_future(),
        )
    });

    let trino_service = TrinoService::new(Arc::clone(&engine), Arc::clone(&auth));
    let trino = tokio::spawn(
        axum::serve(trino_listener, trino_service.router())
            .with_graceful_shutdown(wait_stop(stop_rx.clone()))
            .into_future(),
    );
    let sweeper = {
        let service = Arc::clone(&trino_service);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                service.sweep();
            }
        })
    };

    let service = SqeFlightService::new(Arc::clone(&engine), auth)?;
    let flight = FlightServiceServer::new(service)
        .max_decoding_message_size(256 * 1024 * 1024)
        .max_encoding_message_size(256 * 1024 * 1024);
    // the builder's tcp_nodelay covers only listeners it binds itself: an accepted socket with
    // Nagle on costs every small reply a delayed ACK (~40 ms on loopback)
    let incoming = TcpIncoming::from(flight_listener).with_nodelay(Some(true));
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(flight)
            .serve_with_incoming_shutdown(incoming, wait_stop(stop_rx.clone())),
    );

    info!(
        flight_sql = %flight_addr,
        trino_http = %trino_addr,
        health = %health_addr,
        metrics = %metrics_listener_addr(&config),
        catalog = %config.catalog.name,
        auth = ?config.auth.mode,
        mode = ?config.coordinator.mode,
        "SQE {} is serving", sqe_core::version()
    );
    println!(
        "SQE {} is ready. Connect with:\n  sqe-cli --host {} --port {}{}\n  (ADBC / Flight SQL JDBC: grpc://{flight_addr})\n  (Trino clients: http://{trino_addr}, e.g. trino --server http://{trino_addr} --catalog {})",
        sqe_core::version(),
        flight_addr.ip(),
        flight_addr.port(),
        if config.auth.mode == sqe_config::AuthMode::None {
            ""
        } else {
            " --user <name> --password <password>"
        },
        config.catalog.name,
    );

    sqe_core::process::shutdown_signal().await;
    let timeout = Duration::from_secs(config.coordinator.shutdown_timeout_secs);
    info!(
        active = engine.registry.active(),
        timeout_secs = timeout.as_secs(),
        "shutting down: draining in-flight queries"
    );
    if engine.drain(timeout).await {
        info!("all queries finished");
    } else {
        warn!(
            active = engine.registry.active(),
            "shutdown timeout reached with queries still running; stopping them"
        );
    }
    let _ = stop_tx.send(true);
    // the listeners stop accepting at once; give open streams a moment to close
    let grace = Duration::from_secs(5);
    sweeper.abort();
    let _ = tokio::time::timeout(grace, async {
        let _ = grpc.await;
        let _ = trino.await;
        let _ = health.await;
        if let Some(m) = metrics {
            let _ = m.await;
        }
    })
    .await;
    info!("stopped");
    Ok(())
}

fn metrics_listener_addr(config: &SqeConfig) -> String {
    if config.metrics.enabled {
        config.metrics.addr.clone()
    } else {
        "disabled".into()
    }
}
