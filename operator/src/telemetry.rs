//! Telemetry: Prometheus metrics, `/metrics` `/healthz` `/readyz`, and log set-up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub error: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabel {
    pub verb: String,
    pub kind: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ResultLabel, Counter>,
    pub reconcile_duration: Histogram,
    pub errors: Family<ErrorLabel, Counter>,
    pub clusters: Family<PhaseLabel, Gauge>,
    pub rollouts: Family<OutcomeLabel, Counter>,
    pub restarts: Family<ReasonLabel, Counter>,
    pub api_writes: Family<WriteLabel, Counter>,
    pub leader: Gauge,
    phases: Mutex<BTreeMap<String, String>>,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sqe_operator");
        let reconciles = Family::<ResultLabel, Counter>::default();
        let reconcile_duration = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        let errors = Family::<ErrorLabel, Counter>::default();
        let clusters = Family::<PhaseLabel, Gauge>::default();
        let rollouts = Family::<OutcomeLabel, Counter>::default();
        let restarts = Family::<ReasonLabel, Counter>::default();
        let api_writes = Family::<WriteLabel, Counter>::default();
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "Reconciles by result (ok, invalid, error)",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconcile errors by step",
            errors.clone(),
        );
        registry.register("clusters", "SqeClusters by phase", clusters.clone());
        registry.register(
            "rollouts",
            "Rollouts by outcome (started, completed, stalled)",
            rollouts.clone(),
        );
        registry.register(
            "restarts",
            "Pod restarts the operator started, by reason",
            restarts.clone(),
        );
        registry.register(
            "api_writes",
            "Write requests the operator sent to the API server, by verb and kind",
            api_writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            errors,
            clusters,
            rollouts,
            restarts,
            api_writes,
            leader,
            phases: Mutex::new(BTreeMap::new()),
            ready: AtomicBool::new(false),
        }
    }

    pub fn write(&self, verb: &str, kind: &str) {
        self.api_writes
            .get_or_create(&WriteLabel {
                verb: verb.into(),
                kind: kind.into(),
            })
            .inc();
    }

    /// Records a cluster's phase (`None` when it is gone) and recomputes the per-phase gauge.
    pub fn set_phase(&self, cluster: &str, phase: Option<&str>) {
        let Ok(mut phases) = self.phases.lock() else {
            return;
        };
        match phase {
            Some(p) => phases.insert(cluster.to_string(), p.to_string()),
            None => phases.remove(cluster),
        };
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for known in [
            "Creating",
            "Running",
            "Upgrading",
            "Degraded",
            "Paused",
            "Stopped",
            "Invalid",
        ] {
            counts.insert(known, 0);
        }
        for p in phases.values() {
            *counts.entry(p.as_str()).or_default() += 1;
        }
        for (phase, n) in counts {
            self.clusters
                .get_or_create(&PhaseLabel {
                    phase: phase.into(),
                })
                .set(n);
        }
    }

    /// Replaces the phases of every cluster in `namespace` (all when `None`) with `phases`
    /// (`namespace/name`, phase): clusters that are gone leave the gauge.
    pub fn replace_phases(&self, namespace: Option<&str>, phases: Vec<(String, String)>) {
        if let Ok(mut known) = self.phases.lock() {
            known.retain(|key, _| namespace.is_some_and(|ns| !key.starts_with(&format!("{ns}/"))));
        }
        for (key, phase) in phases {
            self.set_phase(&key, Some(&phase));
        }
        self.set_phase("", None);
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// `/metrics`, `/healthz`, `/readyz`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(serve_ready))
        .with_state(metrics)
}

async fn serve_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

async fn serve_ready(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    if metrics.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

/// Log set-up: `text` or `json` to stderr; `RUST_LOG` / `SQE_OPERATOR_LOG` sets the filter.
pub fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("SQE_OPERATOR_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info,kube=warn".to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}
