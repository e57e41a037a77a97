//! Prometheus metrics of the engine, served as text on `/metrics`.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    queries: Family<OutcomeLabels, Counter>,
    duration: Family<OutcomeLabels, Histogram>,
    active: Gauge,
    rows: Counter,
    bytes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sqe");
        let queries = Family::<OutcomeLabels, Counter>::default();
        let duration = Family::<OutcomeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 18))
        });
        let active = Gauge::default();
        let rows = Counter::default();
        let bytes = Counter::default();
        registry.register(
            "queries",
            "Statements run, by outcome (success, error, cancelled)",
            queries.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Time from receiving a statement to its last result batch",
            duration.clone(),
        );
        registry.register("active_queries", "Statements in flight", active.clone());
        registry.register("rows_returned", "Result rows sent to clients", rows.clone());
        registry.register(
            "bytes_returned",
            "Result bytes (Arrow in-memory size) sent to clients",
            bytes.clone(),
        );
        // every outcome exists from the start, so rates and alerts work from zero
        for outcome in ["success", "error", "cancelled"] {
            let labels = OutcomeLabels {
                outcome: outcome.to_string(),
            };
            let _ = queries.get_or_create(&labels);
            let _ = duration.get_or_create(&labels);
        }
        Self {
            registry: Mutex::new(registry),
            queries,
            duration,
            active,
            rows,
            bytes,
        }
    }

    pub fn query_started(&self) {
        self.active.inc();
    }

    pub fn query_finished(&self, outcome: &str, elapsed: Duration, rows: u64, bytes: u64) {
        let labels = OutcomeLabels {
            outcome: outcome.to_string(),
        };
        self.active.dec();
        self.queries.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.rows.inc_by(rows);
        self.bytes.inc_by(bytes);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }
}
