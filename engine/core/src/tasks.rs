//! The tasks of a query: each partition of its plan, with where it ran, its state, the rows
//! and bytes it produced and how long it took, for `system.runtime.tasks`.
//!
//! ```text
//!  physical plan (N partitions) ─▶ TrackedExec ─▶ partition i's stream counts into TaskSlot i
//!                                                     (started on first poll, ended at the end)
//! ```
//!
//! In hybrid mode every task runs on the coordinator; distributed mode adds the worker's node.

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::Result as DFResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, RecordBatchStream,
};
use futures::Stream;

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Planned,
    Running,
    Finished,
    Failed,
    Canceled,
}

impl TaskState {
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Planned => "PLANNED",
            TaskState::Running => "RUNNING",
            TaskState::Finished => "FINISHED",
            TaskState::Failed => "FAILED",
            TaskState::Canceled => "CANCELED",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => TaskState::Running,
            2 => TaskState::Finished,
            3 => TaskState::Failed,
            4 => TaskState::Canceled,
            _ => TaskState::Planned,
        }
    }
}

/// The live counters of one task.
#[derive(Debug)]
pub struct TaskSlot {
    /// 0 for the stage that runs here; distributed stages are numbered from 1.
    pub stage: usize,
    pub partition: usize,
    pub node_id: String,
    state: AtomicU8,
    rows: AtomicU64,
    bytes: AtomicU64,
    times: Mutex<(Option<Instant>, Option<Instant>)>,
}

/// A copy of a task for `system.runtime.tasks`.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub stage: usize,
    pub partition: usize,
    pub node_id: String,
    pub state: TaskState,
    pub rows: u64,
    pub bytes: u64,
    pub started: Option<SystemTime>,
    pub ended: Option<SystemTime>,
    pub elapsed: Duration,
}

impl TaskSlot {
    pub fn new(partition: usize, node_id: &str) -> Self {
        Self {
            stage: 0,
            partition,
            node_id: node_id.to_string(),
            state: AtomicU8::new(0),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            times: Mutex::new((None, None)),
        }
    }

    /// A task of distributed stage `stage` sent to a worker: running from now until [`end`].
    ///
    /// [`end`]: TaskSlot::end
    pub fn remote(stage: usize, task: usize, node_id: &str) -> Self {
        let slot = Self {
            stage,
            ..Self::new(task, node_id)
        };
        slot.set(TaskState::Running);
        slot
    }

    /// Ends a remote task (its worker's stream does not report here).
    pub fn end(&self, state: TaskState) {
        if self.state() == TaskState::Running {
            self.set(state);
        }
    }

    fn set(&self, state: TaskState) {
        let mut t = self.times.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match state {
            TaskState::Running => {
                t.0.get_or_insert(now);
            }
            TaskState::Finished | TaskState::Failed | TaskState::Canceled => {
                t.0.get_or_insert(now);
                t.1.get_or_insert(now);
            }
            TaskState::Planned => {}
        }
        self.state.store(state as u8, Ordering::Release);
    }

    pub fn state(&self) -> TaskState {
        TaskState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// `created` is when the query was registered, to turn instants into wall times.
    pub fn record(&self, created: (Instant, SystemTime)) -> TaskRecord {
        let (start, end) = *self.times.lock().unwrap_or_else(PoisonError::into_inner);
        let wall = |t: Instant| created.1 + t.saturating_duration_since(created.0);
        TaskRecord {
            stage: self.stage,
            partition: self.partition,
            node_id: self.node_id.clone(),
            state: self.state(),
            rows: self.rows.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            started: start.map(wall),
            ended: end.map(wall),
            elapsed: match (start, end) {
                (Some(s), Some(e)) => e - s,
                (Some(s), None) => s.elapsed(),
                _ => Duration::ZERO,
            },
        }
    }
}

/// Wraps a plan so each output partition reports into its [`TaskSlot`].
pub struct TrackedExec {
    input: Arc<dyn ExecutionPlan>,
    slots: Vec<Arc<TaskSlot>>,
}

impl TrackedExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, node_id: &str) -> Self {
        let n = input.properties().output_partitioning().partition_count();
        let slots = (0..n)
            .map(|p| Arc::new(TaskSlot::new(p, node_id)))
            .collect();
        Self { input, slots }
    }

    pub fn slots(&self) -> &[Arc<TaskSlot>] {
        &self.slots
    }
}

impl fmt::Debug for TrackedExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrackedExec({} tasks)", self.slots.len())
    }
}

impl DisplayAs for TrackedExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrackedExec: tasks={}", self.slots.len())
    }
}

impl ExecutionPlan for TrackedExec {
    fn name(&self) -> &str {
        "TrackedExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let input = children.swap_remove(0);
        Ok(Arc::new(TrackedExec {
            input,
            slots: self.slots.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let inner = self.input.execute(partition, context)?;
        let slot = match self.slots.get(partition) {
            Some(s) => Arc::clone(s),
            None => Arc::new(TaskSlot::new(partition, "")),
        };
        Ok(Box::pin(TrackedStream {
            inner,
            slot,
            done: false,
        }))
    }
}

struct TrackedStream {
    inner: SendableRecordBatchStream,
    slot: Arc<TaskSlot>,
    done: bool,
}

impl Stream for TrackedStream {
    type Item = DFResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.slot.state() == TaskState::Planned {
            self.slot.set(TaskState::Running);
        }
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(b))) => {
                self.slot
                    .rows
                    .fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                self.slot
                    .bytes
                    .fetch_add(b.get_array_memory_size() as u64, Ordering::Relaxed);
            }
            Poll::Ready(Some(Err(_))) => {
                self.done = true;
                self.slot.set(TaskState::Failed);
            }
            Poll::Ready(None) => {
                self.done = true;
                self.slot.set(TaskState::Finished);
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl RecordBatchStream for TrackedStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        if !self.done {
            self.slot.set(TaskState::Canceled);
        }
    }
}
