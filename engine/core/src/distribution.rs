//! What the engine needs from distributed execution, without knowing how it is done: the
//! server plugs in `sqe-cluster`'s implementation in distributed mode; hybrid mode has none.
//!
//! ```text
//!  Engine::new_context ── Distributor::extend ──▶ the session plans in stages across workers
//!  Engine::run         ── Membership::wait_schedulable (the queue: no worker with room, wait)
//!  stream start        ── Distributor::observe ──▶ each task sent to a worker (system.runtime
//!                                                  .tasks, the registry's in-flight counts)
//!  a query fails ─ Distributor::worker_lost? ─▶ the engine probes the workers it used, marks
//!                                               the unreachable ones and runs it again
//! ```

use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::execution::{SessionStateBuilder, TaskContext};

use crate::membership::Membership;

/// One task a started plan sent to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTask {
    pub stage: usize,
    pub task: usize,
    pub url: String,
}

/// Distributed execution as the engine uses it.
pub trait Distributor: Send + Sync {
    /// Adds the distributed planner (its rule, worker resolver, codecs) to a new session.
    fn extend(&self, builder: SessionStateBuilder) -> SessionStateBuilder;
    /// The task context a query runs with: each task it sends to a worker is reported to
    /// `on_task` as it is sent.
    fn observe(
        &self,
        task_ctx: &TaskContext,
        on_task: Arc<dyn Fn(RemoteTask) + Send + Sync>,
    ) -> TaskContext;
    /// Whether a query failed because a worker (or the way to it) went away, not because of
    /// the query itself: only then can running it again give another outcome.
    fn worker_lost(&self, error: &DataFusionError) -> bool;
}

/// Distributed mode's parts: the registry of workers and the planner that uses them.
#[derive(Clone)]
pub struct Distribution {
    pub membership: Arc<Membership>,
    pub distributor: Arc<dyn Distributor>,
}
