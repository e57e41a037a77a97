//! Running a planned query to its client: its tasks in `system.runtime.tasks`, the tasks it
//! sends to workers, and in distributed mode whole-query retries when a worker is lost.
//!
//! ```text
//!  attempt: plan ─▶ TrackedExec (coordinator tasks) ─▶ task context reporting worker tasks
//!           ─▶ batches ─▶ held back (retryable: up to coordinator.retry_buffer_mb) ─▶ client
//!  failed, and the error says a worker was lost (Distributor::worker_lost),
//!  nothing released yet, retries left (coordinator.query_retries)
//!     ─▶ probe the workers the attempt used; unreachable ones leave the schedule
//!     ─▶ wait for a worker with room ─▶ plan the same statement again ─▶ next attempt
//! ```
//!
//! Only read-only statements are retried (a write may have written files already); held rows
//! are what makes a retry invisible: a client never gets a row twice.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arrow::array::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use futures::StreamExt;
use tokio::sync::mpsc::Sender;
use tracing::warn;

use crate::distribution::{Distribution, RemoteTask};
use crate::error::{ErrorKind, SqeError};
use crate::membership::{DispatchGuard, Membership};
use crate::metrics::Metrics;
use crate::registry::QueryEntry;
use crate::tasks::{TaskSlot, TaskState, TrackedExec};

/// How long the coordinator tries to reach a worker a failed query used.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often, and how far apart, it tries.
const PROBES: u32 = 3;
const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// Everything one query's run needs besides its plan.
pub(crate) struct QueryRun {
    pub node_id: String,
    pub entry: Option<Arc<QueryEntry>>,
    pub distribution: Option<Distribution>,
    pub metrics: Arc<Metrics>,
    /// The statement to plan again for a retry; `None`: not retryable.
    pub replan: Option<Box<DataFrame>>,
    pub retries: u32,
    pub hold_bytes: usize,
    /// How long a retry waits for a worker with room.
    pub wait: Duration,
}

/// How one attempt ended.
enum Ended {
    Finished,
    /// The client went away (dropped the stream).
    ClientGone,
    /// The error, and the workers the attempt had sent tasks to.
    Failed(DataFusionError, Vec<String>),
}

impl QueryRun {
    /// Runs the query, sending its batches (or its error) to `tx`.
    pub async fn drive(
        self,
        mut plan: Arc<dyn ExecutionPlan>,
        task_ctx: Arc<TaskContext>,
        tx: Sender<DFResult<RecordBatch>>,
    ) {
        let retryable = self.replan.is_some() && self.retries > 0;
        let mut held = Held::new(retryable, self.hold_bytes);
        let mut attempt = 0;
        loop {
            match self.attempt(plan, &task_ctx, &tx, &mut held).await {
                Ended::Finished => {
                    held.release(&tx).await;
                    return;
                }
                Ended::ClientGone => return,
                Ended::Failed(error, used) => {
                    let again = attempt < self.retries
                        && !held.released
                        && self
                            .distribution
                            .as_ref()
                            .is_some_and(|d| d.distributor.worker_lost(&error));
                    if !again {
                        let _ = tx.send(Err(error)).await;
                        return;
                    }
                    attempt += 1;
                    match self.prepare_retry(&error, &used, attempt).await {
                        Ok(next) => plan = next,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    }
                    held.clear();
                }
            }
        }
    }

    async fn attempt(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        task_ctx: &Arc<TaskContext>,
        tx: &Sender<DFResult<RecordBatch>>,
        held: &mut Held,
    ) -> Ended {
        let plan: Arc<dyn ExecutionPlan> = match &self.entry {
            Some(entry) => {
                let tracked = TrackedExec::new(plan, &self.node_id);
                entry.add_tasks(tracked.slots());
                Arc::new(tracked)
            }
            None => plan,
        };
        let (task_ctx, remote) = match &self.distribution {
            Some(d) => {
                let (ctx, remote) = RemoteTasks::observe(d, task_ctx, self.entry.clone());
                (ctx, Some(remote))
            }
            None => (Arc::clone(task_ctx), None),
        };
        let end = |state| remote.as_ref().map(|r| r.end(state)).unwrap_or_default();
        let mut stream = match execute_stream(plan, task_ctx) {
            Ok(s) => s,
            Err(e) => return Ended::Failed(e, end(TaskState::Failed)),
        };
        while let Some(item) = stream.next().await {
            match item {
                Ok(batch) => {
                    if !held.push(batch, tx).await {
                        end(TaskState::Canceled);
                        return Ended::ClientGone;
                    }
                }
                Err(e) => {
                    // stop every task of this attempt before another one starts
                    drop(stream);
                    return Ended::Failed(e, end(TaskState::Failed));
                }
            }
        }
        end(TaskState::Finished);
        Ended::Finished
    }

    /// Takes the lost workers out of the schedule, waits for one with room, plans again.
    async fn prepare_retry(
        &self,
        error: &DataFusionError,
        used: &[String],
        attempt: u32,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let (Some(d), Some(frame)) = (&self.distribution, &self.replan) else {
            return Err(DataFusionError::Internal("retry without a plan".into()));
        };
        let probes = used
            .iter()
            .map(|url| async move { (url, still_reachable(url).await) });
        let mut lost = Vec::new();
        for (url, reached) in futures::future::join_all(probes).await {
            if let Err(why) = reached {
                warn!(worker = %url, why = %why, "a worker the query used is unreachable: no tasks for it until it heartbeats again");
                d.membership.mark_unreachable(url, &why);
                lost.push(url.as_str());
            }
        }
        warn!(
            attempt,
            of = self.retries,
            used = ?used,
            unreachable = ?lost,
            error = %error,
            "a worker was lost; running the query again on the remaining workers"
        );
        self.metrics.query_retried();
        d.membership
            .wait_schedulable(self.wait)
            .await
            .map_err(|why| {
                DataFusionError::External(Box::new(SqeError::new(
                    ErrorKind::NoWorkers,
                    format!("the query lost a worker ({error}) and cannot run again: {why}"),
                )))
            })?;
        frame.as_ref().clone().create_physical_plan().await
    }
}

/// Whether the worker at `url` keeps accepting connections for a moment: a worker that was
/// killed can still accept one just after the coordinator saw its streams break (its process
/// is not gone yet), so one connect is not proof.
async fn still_reachable(url: &str) -> Result<(), String> {
    for _ in 1..PROBES {
        reachable(url).await?;
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    reachable(url).await
}

/// Whether the worker at `url` accepts a connection now.
async fn reachable(url: &str) -> Result<(), String> {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/');
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(authority)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} s",
            PROBE_TIMEOUT.as_secs_f32()
        )),
    }
}

/// The batches of a retryable query not yet sent to its client.
struct Held {
    batches: Vec<RecordBatch>,
    bytes: usize,
    limit: usize,
    /// Rows went out: the query can no longer run again unnoticed.
    released: bool,
}

impl Held {
    fn new(retryable: bool, limit: usize) -> Self {
        Self {
            batches: Vec::new(),
            bytes: 0,
            limit,
            released: !retryable,
        }
    }

    /// Holds or sends `batch`; false when the client is gone.
    async fn push(&mut self, batch: RecordBatch, tx: &Sender<DFResult<RecordBatch>>) -> bool {
        if self.released {
            return tx.send(Ok(batch)).await.is_ok();
        }
        self.bytes += batch.get_array_memory_size();
        self.batches.push(batch);
        if self.bytes > self.limit {
            return self.release(tx).await;
        }
        true
    }

    /// Sends everything held; false when the client is gone.
    async fn release(&mut self, tx: &Sender<DFResult<RecordBatch>>) -> bool {
        self.released = true;
        self.bytes = 0;
        for batch in std::mem::take(&mut self.batches) {
            if tx.send(Ok(batch)).await.is_err() {
                return false;
            }
        }
        true
    }

    fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }
}

/// The worker tasks of a running distributed query: counted against their workers (so the
/// registry sees them before the next heartbeat) and listed in `system.runtime.tasks`.
struct RemoteTasks {
    membership: Arc<Membership>,
    entry: Option<Arc<QueryEntry>>,
    sent: Mutex<Vec<(Arc<TaskSlot>, String, DispatchGuard)>>,
}

impl RemoteTasks {
    /// The query's task context, reporting each task it sends into a new `RemoteTasks`.
    fn observe(
        d: &Distribution,
        task_ctx: &TaskContext,
        entry: Option<Arc<QueryEntry>>,
    ) -> (Arc<TaskContext>, Arc<Self>) {
        let remote = Arc::new(Self {
            membership: Arc::clone(&d.membership),
            entry,
            sent: Default::default(),
        });
        let on_task = {
            let remote = Arc::clone(&remote);
            Arc::new(move |t: RemoteTask| remote.sent(t))
        };
        (Arc::new(d.distributor.observe(task_ctx, on_task)), remote)
    }

    fn sent(&self, task: RemoteTask) {
        // the planner's URLs are parsed, so `http://host:port` comes back as `http://host:port/`
        let url = task.url.trim_end_matches('/');
        let node = self
            .membership
            .workers()
            .into_iter()
            .find(|w| w.url == url)
            .map_or_else(|| url.to_string(), |w| w.node_id);
        let slot = Arc::new(TaskSlot::remote(task.stage, task.task, &node));
        if let Some(entry) = &self.entry {
            entry.add_tasks(std::slice::from_ref(&slot));
        }
        let guard = self.membership.dispatch(url, 1);
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((slot, url.to_string(), guard));
    }

    /// Ends every task sent so far in `state`; the workers they went to.
    fn end(&self, state: TaskState) -> Vec<String> {
        let sent = std::mem::take(&mut *self.sent.lock().unwrap_or_else(PoisonError::into_inner));
        let mut urls = Vec::new();
        for (slot, url, _guard) in sent {
            slot.end(state);
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        urls
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn batch(n: i64) -> RecordBatch {
        RecordBatch::try_from_iter([(
            "n",
            Arc::new(Int64Array::from(vec![n; 1024])) as arrow::array::ArrayRef,
        )])
        .unwrap()
    }

    #[tokio::test]
    async fn held_rows_go_out_at_the_limit_and_end_retries() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let size = batch(0).get_array_memory_size();
        let mut held = Held::new(true, size * 2);
        assert!(held.push(batch(1), &tx).await);
        assert!(held.push(batch(2), &tx).await);
        assert!(
            !held.released && rx.try_recv().is_err(),
            "under the limit: held"
        );
        held.clear();
        assert!(held.push(batch(3), &tx).await);
        assert!(held.push(batch(4), &tx).await);
        assert!(held.push(batch(5), &tx).await);
        assert!(held.released, "over the limit: released, no more retries");
        let first: Vec<i64> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|b| {
                let b = b.unwrap();
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .value(0)
            })
            .collect();
        assert_eq!(
            first,
            vec![3, 4, 5],
            "a cleared attempt's rows never go out"
        );

        let mut plain = Held::new(false, usize::MAX);
        assert!(plain.released);
        assert!(plain.push(batch(6), &tx).await);
        assert!(rx.try_recv().is_ok(), "not retryable: sent at once");
        drop(rx);
        assert!(!plain.push(batch(7), &tx).await, "the client is gone");
    }

    #[tokio::test]
    async fn probing_tells_a_listening_worker_from_a_dead_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live = format!("http://{}/", listener.local_addr().unwrap());
        assert_eq!(reachable(&live).await, Ok(()));
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let dead = reachable(&format!("http://127.0.0.1:{port}")).await;
        assert!(dead.is_err(), "{dead:?}");
    }
}
