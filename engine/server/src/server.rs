//! Wires a coordinator together and runs it until SIGTERM, then drains.
//!
//! ```text
//!  start: catalog ─▶ default schema (+ TPC-H sample, first start) ─▶ engine ─▶ listeners
//!  SIGTERM/SIGINT: /readyz → 503, new queries refused ─▶ wait for in-flight queries
//!                  (≤ shutdown_timeout_secs) ─▶ stop listeners ─▶ exit 0
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use sqe_config::{CatalogType, SqeConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::auth::Authenticator;
use crate::catalog::{SqeCatalog, connect, namespace};
use crate::engine::Engine;
use crate::error::{Result, SqeError};
use crate::flight::SqeFlightService;
use crate::metrics::Metrics;

const SAMPLE_SCHEMA: &str = "tpch";
const SAMPLE_MARKER: &str = ".tpch-sample-loaded";

/// Everything a running coordinator needs, built from the config.
pub struct Coordinator {
    pub engine: Arc<Engine>,
    pub auth: Arc<Authenticator>,
}

/// Opens the catalog, prepares the default schema and the sample, and builds the engine.
pub async fn build(config: SqeConfig) -> Result<Coordinator> {
    if config.coordinator.mode == sqe_config::Mode::Distributed {
        return Err(SqeError::External(
            "coordinator.mode = \"distributed\" needs sqe-worker processes, which this build does \
             not have yet; use mode = \"hybrid\""
                .into(),
        ));
    }
    let data_dir = PathBuf::from(&config.coordinator.data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|e| {
        SqeError::External(format!(
            "coordinator.data_dir {}: cannot create it: {e}",
            data_dir.display()
        ))
    })?;
    let auth = Arc::new(Authenticator::from_config(&config)?);
    let iceberg = connect(&config, &data_dir).await?;
    let catalog = Arc::new(SqeCatalog::new(
        config.catalog.name.clone(),
        iceberg,
        Duration::from_secs(config.catalog.metadata_cache_ttl_secs),
    ));
    if config.catalog.kind == CatalogType::Sql {
        prepare_embedded(&config, &catalog, &data_dir).await?;
    }
    catalog
        .refresh()
        .await
        .map_err(|e| match config.catalog.kind {
            CatalogType::Rest => SqeError::External(format!(
                "cannot use the Iceberg REST catalog at {} (check catalog.uri, catalog.credential, \
             catalog.scope, catalog.warehouse): {e}",
                config.catalog.uri.as_deref().unwrap_or_default()
            )),
            CatalogType::Sql => e,
        })?;
    let engine = Arc::new(Engine::new(config, catalog, Arc::new(Metrics::new()))?);
    Ok(Coordinator { engine, auth })
}

/// The embedded catalog gets its default schema, and on first start the TPC-H sample.
async fn prepare_embedded(config: &SqeConfig, catalog: &SqeCatalog, data_dir: &Path) -> Result<()> {
    let default = namespace(&config.coordinator.default_schema);
    if !catalog.iceberg().namespace_exists(&default).await? {
        catalog
            .iceberg()
            .create_namespace(&default, Default::default())
            .await?;
    }
    let marker = data_dir.join(SAMPLE_MARKER);
    if config.coordinator.sample_data && !marker.exists() {
        let sf = config.coordinator.sample_scale_factor;
        if catalog
            .iceberg()
            .namespace_exists(&namespace(SAMPLE_SCHEMA))
            .await?
        {
            info!("schema {SAMPLE_SCHEMA} exists already; not loading the TPC-H sample");
        } else {
            info!(
                scale_factor = sf,
                "loading the TPC-H sample into schema {SAMPLE_SCHEMA}"
            );
            let started = std::time::Instant::now();
            let rows = crate::tpch::load_into_catalog(catalog, SAMPLE_SCHEMA, sf).await?;
            info!(
                rows,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "TPC-H sample loaded"
            );
        }
        std::fs::write(&marker, format!("scale_factor = {sf}\n"))
            .map_err(|e| SqeError::External(format!("cannot write {}: {e}", marker.display())))?;
    }
    Ok(())
}

async fn bind(key: &str, addr: &str) -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| SqeError::External(format!("{key} = {addr}: cannot listen: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| SqeError::External(format!("{key}: {e}")))?;
    Ok((listener, local))
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

    let service = SqeFlightService::new(Arc::clone(&engine), auth)?;
    let flight = FlightServiceServer::new(service)
        .max_decoding_message_size(256 * 1024 * 1024)
        .max_encoding_message_size(256 * 1024 * 1024);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(flight_listener);
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(flight)
            .serve_with_incoming_shutdown(incoming, wait_stop(stop_rx.clone())),
    );

    info!(
        flight_sql = %flight_addr,
        health = %health_addr,
        metrics = %metrics_listener_addr(&config),
        catalog = %config.catalog.name,
        auth = ?config.auth.mode,
        "SQE {} is serving", env!("CARGO_PKG_VERSION")
    );
    println!(
        "SQE {} is ready. Connect with:\n  sqe-cli --host {} --port {}{}\n  (ADBC / JDBC: grpc://{flight_addr})",
        env!("CARGO_PKG_VERSION"),
        flight_addr.ip(),
        flight_addr.port(),
        if config.auth.mode == sqe_config::AuthMode::None {
            ""
        } else {
            " --user <name> --password <password>"
        }
    );

    shutdown_signal().await;
    let timeout = Duration::from_secs(config.coordinator.shutdown_timeout_secs);
    info!(
        active = engine.lifecycle.active(),
        timeout_secs = timeout.as_secs(),
        "shutting down: draining in-flight queries"
    );
    if engine.drain(timeout).await {
        info!("all queries finished");
    } else {
        warn!(
            active = engine.lifecycle.active(),
            "shutdown timeout reached with queries still running; stopping them"
        );
    }
    let _ = stop_tx.send(true);
    // the listeners stop accepting at once; give open streams a moment to close
    let grace = Duration::from_secs(5);
    let _ = tokio::time::timeout(grace, async {
        let _ = grpc.await;
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

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => info!("received SIGTERM"),
                    _ = int.recv() => info!("received SIGINT"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
