//! The ports of SQE's listeners: the engine's defaults (on 127.0.0.1) and what the operator
//! renders (on 0.0.0.0) and exposes on its Services, NetworkPolicies and probes. One place, so
//! the two halves cannot disagree.

/// Flight SQL, the coordinator's client port (`coordinator.flight_sql_addr`).
pub const FLIGHT_SQL: u16 = 50051;
/// The Trino HTTP client protocol (`coordinator.trino_http_addr`).
pub const TRINO_HTTP: u16 = 8080;
/// Prometheus metrics (`metrics.addr`).
pub const METRICS: u16 = 9090;
/// `/healthz` and `/readyz`, the probes (`coordinator.health_addr`).
pub const HEALTH: u16 = 9091;
/// A worker's Flight listener for plan fragments (`worker.flight_addr`).
pub const WORKER: u16 = 50052;

/// `127.0.0.1:<port>`: the engine's default listen address for `port`.
pub fn loopback(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// `0.0.0.0:<port>`: what the operator renders, so the pod's port is reachable.
pub fn any(port: u16) -> String {
    format!("0.0.0.0:{port}")
}
