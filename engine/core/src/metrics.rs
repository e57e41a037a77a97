//! Prometheus metrics of the engine, served as text on `/metrics`.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::session::Protocol;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    pub protocol: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabels {
    pub protocol: &'static str,
}

const PROTOCOLS: [Protocol; 2] = [Protocol::FlightSql, Protocol::Trino];

pub struct Metrics {
    registry: Mutex<Registry>,
    queries: Family<QueryLabels, Counter>,
    duration: Family<QueryLabels, Histogram>,
    active: Family<ProtocolLabels, Gauge>,
    rows: Family<ProtocolLabels, Counter>,
    bytes: Family<ProtocolLabels, Counter>,
    retries: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sqe");
        let queries = Family::<QueryLabels, Counter>::default();
        let duration = Family::<QueryLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 18))
        });
        let active = Family::<ProtocolLabels, Gauge>::default();
        let rows = Family::<ProtocolLabels, Counter>::default();
        let bytes = Family::<ProtocolLabels, Counter>::default();
        let retries = Counter::default();
        registry.register(
            "query_retries",
            "Distributed queries run again after they lost a worker",
            retries.clone(),
        );
        registry.register(
            "queries",
            "Statements run, by protocol and outcome (success, error, cancelled)",
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
        for protocol in PROTOCOLS.map(Protocol::label) {
            for outcome in ["success", "error", "cancelled"] {
                let labels = QueryLabels { protocol, outcome };
                let _ = queries.get_or_create(&labels);
                let _ = duration.get_or_create(&labels);
            }
            let labels = ProtocolLabels { protocol };
            let _ = active.get_or_create(&labels);
            let _ = rows.get_or_create(&labels);
            let _ = bytes.get_or_create(&labels);
        }
        Self {
            registry: Mutex::new(registry),
            queries,
            duration,
            active,
            rows,
            bytes,
            retries,
        }
    }

    /// A distributed query lost a worker and runs again.
    pub fn query_retried(&self) {
        self.retries.inc();
    }

    pub fn query_started(&self, protocol: Protocol) {
        let labels = ProtocolLabels {
            protocol: protocol.label(),
        };
        self.active.get_or_create(&labels).inc();
    }

    pub fn query_finished(
        &self,
        protocol: Protocol,
        outcome: &'static str,
        elapsed: Duration,
        rows: u64,
        bytes: u64,
    ) {
        let p = ProtocolLabels {
            protocol: protocol.label(),
        };
        let labels = QueryLabels {
            protocol: p.protocol,
            outcome,
        };
        self.active.get_or_create(&p).dec();
        self.queries.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.rows.get_or_create(&p).inc_by(rows);
        self.bytes.get_or_create(&p).inc_by(bytes);
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
