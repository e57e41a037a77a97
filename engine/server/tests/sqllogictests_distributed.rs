//! The SQL behaviour tests (`engine/core/tests/slt/*.slt`) in distributed mode: per file a
//! coordinator (its Flight SQL listener takes the workers' heartbeats) and two in-process
//! `sqe-worker`s on loopback, so scans, joins, aggregations and writes run as stages on the
//! workers and every answer must equal hybrid mode's. Records whose output is the plan itself
//! (`EXPLAIN`) say `skipif distributed`.

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_flight::flight_service_server::FlightServiceServer;
use sqe_config::{Mode, Secret, SqeConfig};
use sqe_flight_sql::SqeFlightService;
use tokio::sync::watch;

const WORKERS: usize = 2;
const TOKEN: &str = "slt-internal-token";

/// Stops the file's coordinator listener and workers when dropped.
struct Cluster {
    _stop: watch::Sender<bool>,
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn start(mut config: SqeConfig) -> Result<common::Built, String> {
    config.coordinator.mode = Mode::Distributed;
    config.worker.internal_token = Some(Secret::new(TOKEN));
    let distribution = sqe_server::server::distribution(&config).map_err(|e| e.to_string())?;
    let coordinator = sqe_core::bootstrap::build(config.clone(), distribution)
        .await
        .map_err(|e| format!("cannot start the coordinator: {e}"))?;
    let engine = Arc::clone(&coordinator.engine);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let service = SqeFlightService::new(Arc::clone(&engine), Arc::clone(&coordinator.auth))
        .map_err(|e| e.to_string())?;
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(FlightServiceServer::new(service))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                stopped(stop_rx.clone()),
            ),
    );

    for i in 0..WORKERS {
        let mut worker = config.clone();
        worker.worker.flight_addr = "127.0.0.1:0".into();
        worker.worker.coordinator_url = Some(format!("http://{addr}"));
        worker.worker.node_id = Some(format!("slt-worker-{i}"));
        worker.worker.heartbeat_interval_ms = 100;
        worker.worker.shutdown_timeout_secs = 5;
        worker.coordinator.health_addr = "127.0.0.1:0".into();
        let rx = stop_rx.clone();
        tokio::spawn(async move {
            if let Err(e) = sqe_worker::serve(worker, stopped(rx)).await {
                eprintln!("slt worker {i} failed: {e}");
            }
        });
    }

    let membership = engine
        .membership()
        .ok_or("a distributed coordinator without a registry")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while membership.schedulable().len() < WORKERS {
        if Instant::now() > deadline {
            return Err(format!(
                "{WORKERS} workers did not register within 30 s: {:?}",
                membership.workers()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let keep: Box<dyn std::any::Any> = Box::new(Cluster { _stop: stop });
    Ok((engine, keep))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the tests");
    let build: Box<common::Build> = Box::new(|config| Box::pin(start(config)));
    common::run_all(&runtime, &build, &["distributed"]);
    runtime.shutdown_background();
}
