//! SQE's worker process: runs the plan fragments (tasks) the coordinator sends, streams their
//! output to the coordinator or to other workers, and heartbeats into the coordinator's
//! registry. Links neither client protocol.
//!
//! ```text
//!  start: config checks ─▶ memory pool (worker.memory_limit_mb) + spill dir ─▶ listener
//!         (worker.flight_addr, Guard: internal credential + protocol) ─▶ heartbeat loop
//!  SIGTERM: heartbeat "draining" (no new tasks) ─▶ running tasks finish (≤ shutdown_timeout)
//!           ─▶ heartbeat "leaving" ─▶ listener stops ─▶ exit 0
//! ```

#![forbid(unsafe_code)]

pub mod cli;
pub mod control;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion_distributed::Worker;
use sqe_cluster::WorkerSessions;
use sqe_cluster::guard::Guard;
use sqe_config::SqeConfig;
use sqe_core::membership::{Heartbeat, oldest_accepted, protocol_version};
use sqe_core::memory::LimitedPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tracing::{info, warn};

use crate::control::Control;

/// A worker start-up problem, naming the config key.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a worker knows about itself while it runs.
pub struct WorkerState {
    pub node_id: String,
    pub url: String,
    pub protocol: u32,
    pub guard: Guard,
    pub runtime_env: Arc<RuntimeEnv>,
    pub memory_limit_bytes: u64,
    pub max_tasks: u32,
    pub interval: Duration,
    pub draining: AtomicBool,
    /// The coordinator answered the last heartbeat.
    pub registered: AtomicBool,
}

impl WorkerState {
    /// What the next heartbeat reports; `leaving` on the last one.
    pub fn beat(&self, leaving: bool) -> Heartbeat {
        Heartbeat {
            node_id: self.node_id.clone(),
            url: self.url.clone(),
            version: sqe_core::version().to_string(),
            protocol: self.protocol,
            oldest_protocol: oldest_accepted(self.protocol),
            draining: self.draining.load(Ordering::Relaxed),
            leaving,
            memory_used_bytes: self.runtime_env.memory_pool.reserved() as u64,
            memory_limit_bytes: self.memory_limit_bytes,
            running_tasks: self.guard.running(),
            max_tasks: self.max_tasks,
            interval_ms: self.interval.as_millis() as u64,
        }
    }
}

fn check(config: &SqeConfig) -> Result<(String, String, SocketAddr), StartError> {
    let w = &config.worker;
    let coordinator = w.coordinator_url.clone().ok_or_else(|| {
        StartError(
            "worker.coordinator_url: a worker needs the coordinator's Flight SQL URL to \
             register with, e.g. http://127.0.0.1:50051 (SQE_WORKER__COORDINATOR_URL)"
                .into(),
        )
    })?;
    let url = w
        .advertised()
        .map_err(|p| StartError(format!("{}: {}", p.key, p.message)))?;
    let addr: SocketAddr = w.flight_addr.parse().map_err(|_| {
        StartError(format!(
            "worker.flight_addr = {}: not ip:port",
            w.flight_addr
        ))
    })?;
    if w.internal_token.is_none() && !addr.ip().is_loopback() {
        return Err(StartError(format!(
            "worker.internal_token: a worker listening on {addr} must require the cluster's \
             internal credential; set SQE_WORKER__INTERNAL_TOKEN (the operator does), or bind \
             worker.flight_addr to 127.0.0.1"
        )));
    }
    Ok((coordinator, url, addr))
}

fn runtime_env(config: &SqeConfig) -> Result<(Arc<RuntimeEnv>, u64), StartError> {
    let w = &config.worker;
    let spill = w.spill_dir.clone().unwrap_or_else(|| {
        std::path::Path::new(&config.coordinator.data_dir)
            .join("spill")
            .display()
            .to_string()
    });
    std::fs::create_dir_all(&spill)
        .map_err(|e| StartError(format!("worker.spill_dir {spill}: cannot create it: {e}")))?;
    let mut builder = RuntimeEnvBuilder::new().with_temp_file_path(&spill);
    let limit = w.memory_limit_mb.saturating_mul(1024 * 1024);
    if let Some(pool) = LimitedPool::for_limit("worker.memory_limit_mb", w.memory_limit_mb) {
        builder = builder.with_memory_pool(pool);
    }
    let env = builder
        .build_arc()
        .map_err(|e| StartError(format!("worker runtime: {e}")))?;
    Ok((env, limit))
}

async fn bind(key: &str, addr: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| StartError(format!("{key} = {addr}: cannot listen: {e}")))
}

/// Runs a worker until SIGTERM/SIGINT, then drains and returns.
pub async fn run(config: SqeConfig) -> Result<(), StartError> {
    serve(config, sqe_core::process::shutdown_signal()).await
}

/// Runs a worker until `shutdown` completes, then drains and returns (what `run` does on a
/// signal; tests start workers in-process with it).
pub async fn serve(
    config: SqeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let (coordinator_url, url, addr) = check(&config)?;
    let w = &config.worker;
    let listener = bind("worker.flight_addr", &w.flight_addr).await?;
    let health = bind("coordinator.health_addr", &config.coordinator.health_addr).await?;
    // `flight_addr = 127.0.0.1:0` picks a free port: advertise the one it got
    let (addr, url) = match (listener.local_addr(), &w.advertise_url) {
        (Ok(local), None) => (local, format!("http://{local}")),
        _ => (addr, url),
    };
    let token = w.internal_token.as_ref().map(|t| t.expose().to_string());
    let protocol = protocol_version();
    let (runtime_env, memory_limit_bytes) = runtime_env(&config)?;
    let node_id = w
        .node_id
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("sqe-worker-{}", addr.port()));
    let guard = Guard::new(token.as_deref(), (oldest_accepted(protocol), protocol));
    let state = Arc::new(WorkerState {
        node_id,
        url,
        protocol,
        guard: guard.clone(),
        runtime_env: Arc::clone(&runtime_env),
        memory_limit_bytes,
        max_tasks: w.max_tasks,
        interval: Duration::from_millis(w.heartbeat_interval_ms),
        draining: AtomicBool::new(false),
        registered: AtomicBool::new(false),
    });

    let sessions = WorkerSessions::new(token.as_deref(), protocol, config.coordinator.batch_size)
        .map_err(|e| StartError(format!("worker.internal_token: {e}")))?;
    let worker = Worker::from_session_builder(sessions)
        .with_runtime_env(runtime_env)
        .with_version(sqe_core::version());
    let (stop_tx, stop_rx) = watch::channel(false);
    let wait_stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(guard)
            .add_service(worker.into_worker_server())
            .serve_with_incoming_shutdown(
                // Nagle off on accepted sockets (the builder's tcp_nodelay does not reach them)
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                wait_stop(stop_rx.clone()),
            ),
    );
    let control = Control::start(&coordinator_url, token.as_deref(), Arc::clone(&state))
        .map_err(|e| StartError(format!("worker.coordinator_url = {coordinator_url}: {e}")))?;
    let health = health
        .into_std()
        .and_then(|l| {
            control
                .serve_health(
                    l,
                    health_router(Arc::clone(&state)),
                    wait_stop(stop_rx.clone()),
                )
                .map_err(std::io::Error::other)
        })
        .map_err(|e| StartError(format!("coordinator.health_addr: {e}")))?;
    info!(
        flight = %addr,
        url = %state.url,
        coordinator = %coordinator_url,
        protocol,
        memory_limit_mb = w.memory_limit_mb,
        max_tasks = w.max_tasks,
        "SQE worker {} is serving", sqe_core::version()
    );

    shutdown.await;
    state.draining.store(true, Ordering::Relaxed);
    control.send_now(state.beat(false)).await.ok();
    let timeout = Duration::from_secs(w.shutdown_timeout_secs);
    info!(
        running = state.guard.running(),
        timeout_secs = timeout.as_secs(),
        "draining: no new tasks, waiting for running ones"
    );
    let deadline = tokio::time::Instant::now() + timeout;
    while state.guard.running() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if state.guard.running() > 0 {
        warn!(
            running = state.guard.running(),
            "shutdown timeout reached with tasks still running"
        );
    }
    control.stop_beating();
    if let Err(e) = control.send_now(state.beat(true)).await {
        warn!(error = %e, "could not tell the coordinator this worker is leaving");
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = grpc.await;
        let _ = health.await;
    })
    .await;
    info!("stopped");
    Ok(())
}

fn health_router(state: Arc<WorkerState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<WorkerState>>) -> impl IntoResponse {
    if state.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if !state.registered.load(Ordering::Relaxed) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not registered with the coordinator\n",
        )
    } else {
        (StatusCode::OK, "ready\n")
    }
}
