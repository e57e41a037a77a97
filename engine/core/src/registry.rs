//! Every query the coordinator runs, whichever protocol it came from: its id, user, SQL,
//! state, timings, output and error; cancel by id; drain on shutdown; a bounded history for
//! `system.runtime.queries`.
//!
//! ```text
//!  protocol ──begin(user, SQL, protocol)──▶ QueryHandle ──state / rows / bytes──▶ QueryEntry
//!     │                                         │ finish(result) or drop (= cancelled)
//!     └─ cancel(id, user) ─▶ CancelToken ─▶ the running stream ends      ▼
//!                                                           history (bounded) + metrics + log
//! ```
//!
//! Query ids have Trino's shape, `YYYYMMDD_HHMMSS_NNNNN_xxxxx` (UTC time, a counter, and a tag
//! of this coordinator process), so proxies that route Trino traffic by id work, and an id
//! means the same query in both protocols.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use tokio::sync::Notify;
use tracing::{error, info};

use crate::error::{ErrorKind, Result, SqeError};
use crate::metrics::Metrics;
use crate::session::Protocol;
use crate::tasks::{TaskRecord, TaskSlot};

/// How many finished queries `system.runtime.queries` remembers.
pub const HISTORY_LIMIT: usize = 1000;

/// Where a query is in its life, named as Trino names the states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryState {
    Queued,
    Planning,
    Running,
    Finishing,
    Finished,
    Failed,
}

impl QueryState {
    pub fn name(self) -> &'static str {
        match self {
            QueryState::Queued => "QUEUED",
            QueryState::Planning => "PLANNING",
            QueryState::Running => "RUNNING",
            QueryState::Finishing => "FINISHING",
            QueryState::Finished => "FINISHED",
            QueryState::Failed => "FAILED",
        }
    }

    pub fn is_done(self) -> bool {
        matches!(self, QueryState::Finished | QueryState::Failed)
    }
}

/// Cancellation shared by the registry and whoever runs the query.
#[derive(Debug, Default)]
pub struct CancelToken {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelToken {
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Completes once the query is cancelled (at once if it already is).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

#[derive(Debug, Clone)]
struct Progress {
    state: QueryState,
    /// When execution started (planning done).
    started: Option<Instant>,
    ended: Option<Instant>,
    error: Option<SqeError>,
}

/// A query the coordinator knows about (running, or recently finished).
#[derive(Debug)]
pub struct QueryEntry {
    pub id: String,
    pub user: String,
    pub source: Option<String>,
    pub sql: String,
    pub protocol: Protocol,
    pub created: SystemTime,
    created_at: Instant,
    progress: Mutex<Progress>,
    rows: AtomicU64,
    bytes: AtomicU64,
    pub cancel: CancelToken,
    tasks: Mutex<Vec<Arc<TaskSlot>>>,
}

/// A point-in-time copy of a query, as `system.runtime.queries` shows it.
#[derive(Debug, Clone)]
pub struct QueryRecord {
    pub id: String,
    pub state: QueryState,
    pub user: String,
    pub source: Option<String>,
    pub sql: String,
    pub protocol: Protocol,
    pub created: SystemTime,
    pub started: Option<SystemTime>,
    pub ended: Option<SystemTime>,
    pub elapsed: Duration,
    /// Time spent queued and planning.
    pub queued: Duration,
    pub rows: u64,
    pub bytes: u64,
    pub error: Option<SqeError>,
}

impl QueryEntry {
    pub fn state(&self) -> QueryState {
        lock(&self.progress).state
    }

    /// Attaches the tasks (plan partitions) that run this query.
    pub fn add_tasks(&self, slots: &[Arc<TaskSlot>]) {
        lock(&self.tasks).extend(slots.iter().cloned());
    }

    pub fn tasks(&self) -> Vec<TaskRecord> {
        lock(&self.tasks)
            .iter()
            .map(|t| t.record((self.created_at, self.created)))
            .collect()
    }

    pub fn error(&self) -> Option<SqeError> {
        lock(&self.progress).error.clone()
    }

    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Moves a running query on (finishing is [`QueryHandle::finish`]'s business).
    pub fn set_state(&self, state: QueryState) {
        let mut p = lock(&self.progress);
        if p.state.is_done() || state.is_done() {
            return;
        }
        if state == QueryState::Running && p.started.is_none() {
            p.started = Some(Instant::now());
        }
        p.state = state;
    }

    /// Counts result rows and bytes produced for the client.
    pub fn add_output(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Time between registration and the start of execution (or now).
    pub fn queued(&self) -> Duration {
        let p = lock(&self.progress);
        p.started.or(p.ended).unwrap_or_else(Instant::now) - self.created_at
    }

    pub fn elapsed(&self) -> Duration {
        let p = lock(&self.progress);
        p.ended.unwrap_or_else(Instant::now) - self.created_at
    }

    pub fn record(&self) -> QueryRecord {
        let p = lock(&self.progress).clone();
        let wall = |t: Instant| self.created + (t - self.created_at);
        let now = Instant::now();
        QueryRecord {
            id: self.id.clone(),
            state: p.state,
            user: self.user.clone(),
            source: self.source.clone(),
            sql: self.sql.clone(),
            protocol: self.protocol,
            created: self.created,
            started: p.started.map(wall),
            ended: p.ended.map(wall),
            elapsed: p.ended.unwrap_or(now) - self.created_at,
            queued: p.started.unwrap_or(p.ended.unwrap_or(now)) - self.created_at,
            rows: self.rows(),
            bytes: self.bytes(),
            error: p.error,
        }
    }
}

/// What [`QueryRegistry::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The query is being stopped.
    Cancelling,
    /// It had already finished.
    AlreadyDone,
    /// No such query (or it was forgotten).
    NotFound,
    /// The query belongs to another user.
    NotOwner,
}

#[derive(Default)]
struct Entries {
    active: HashMap<String, Arc<QueryEntry>>,
    history: VecDeque<Arc<QueryEntry>>,
}

pub struct QueryRegistry {
    entries: Mutex<Entries>,
    draining: AtomicBool,
    active: AtomicUsize,
    idle: Notify,
    counter: AtomicU64,
    /// Identifies this coordinator process in query ids.
    tag: String,
    metrics: Arc<Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A Trino-shaped query id for the given UTC time, counter and process tag.
pub fn format_query_id(now: chrono::DateTime<chrono::Utc>, counter: u64, tag: &str) -> String {
    format!(
        "{}_{:05}_{tag}",
        now.format("%Y%m%d_%H%M%S"),
        counter % 100_000
    )
}

impl QueryRegistry {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
        let mut rng = rand::rng();
        let tag = (0..5)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        Self {
            entries: Mutex::new(Entries::default()),
            draining: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            counter: AtomicU64::new(0),
            tag,
            metrics,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn next_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format_query_id(chrono::Utc::now(), n, &self.tag)
    }

    /// Registers a new query; refused while the server drains.
    pub fn begin(
        self: &Arc<Self>,
        user: &str,
        source: Option<&str>,
        sql: &str,
        protocol: Protocol,
    ) -> Result<QueryHandle> {
        if self.is_draining() {
            return Err(SqeError::shutting_down(
                "the server is shutting down and accepts no new queries; retry on another coordinator",
            ));
        }
        let entry = Arc::new(QueryEntry {
            id: self.next_id(),
            user: user.to_string(),
            source: source.map(str::to_string),
            sql: sql.to_string(),
            protocol,
            created: SystemTime::now(),
            created_at: Instant::now(),
            progress: Mutex::new(Progress {
                state: QueryState::Queued,
                started: None,
                ended: None,
                error: None,
            }),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            cancel: CancelToken::default(),
            tasks: Mutex::new(Vec::new()),
        });
        self.active.fetch_add(1, Ordering::SeqCst);
        self.metrics.query_started(protocol);
        lock(&self.entries)
            .active
            .insert(entry.id.clone(), Arc::clone(&entry));
        Ok(QueryHandle {
            entry,
            registry: Arc::clone(self),
            done: false,
        })
    }

    pub fn get(&self, id: &str) -> Option<Arc<QueryEntry>> {
        let entries = lock(&self.entries);
        entries
            .active
            .get(id)
            .cloned()
            .or_else(|| entries.history.iter().find(|e| e.id == id).cloned())
    }

    /// Cancels a running query; `user` (when given) must own it.
    pub fn cancel(&self, id: &str, user: Option<&str>) -> CancelOutcome {
        let Some(entry) = self.get(id) else {
            return CancelOutcome::NotFound;
        };
        if user.is_some_and(|u| u != entry.user) {
            return CancelOutcome::NotOwner;
        }
        if entry.state().is_done() {
            return CancelOutcome::AlreadyDone;
        }
        entry.cancel.cancel();
        CancelOutcome::Cancelling
    }

    /// Every known query's entry: running ones first (oldest first), then the history.
    pub fn entries(&self) -> Vec<Arc<QueryEntry>> {
        let entries = lock(&self.entries);
        let mut active: Vec<_> = entries.active.values().cloned().collect();
        active.sort_by_key(|e| e.created);
        active.extend(entries.history.iter().rev().cloned());
        active
    }

    /// Running queries first (oldest first), then the history (newest first).
    pub fn records(&self) -> Vec<QueryRecord> {
        let entries = lock(&self.entries);
        let mut active: Vec<_> = entries.active.values().map(|e| e.record()).collect();
        active.sort_by_key(|r| r.created);
        active.extend(entries.history.iter().rev().map(|e| e.record()));
        active
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Refuses new queries and waits for in-flight ones, at most `timeout`; returns whether
    /// they all finished.
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.draining.store(true, Ordering::SeqCst);
        self.idle.notify_waiters();
        tokio::time::timeout(timeout, async {
            loop {
                let idle = self.idle.notified();
                if self.active() == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await
        .is_ok()
    }

    fn finished(&self, entry: &Arc<QueryEntry>) {
        let mut entries = lock(&self.entries);
        entries.active.remove(&entry.id);
        entries.history.push_back(Arc::clone(entry));
        while entries.history.len() > HISTORY_LIMIT {
            entries.history.pop_front();
        }
        drop(entries);
        if self.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }
}

/// The running side of a registered query. Dropping it unfinished records the query as
/// cancelled (the client went away).
pub struct QueryHandle {
    entry: Arc<QueryEntry>,
    registry: Arc<QueryRegistry>,
    done: bool,
}

impl std::fmt::Debug for QueryHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QueryHandle({})", self.entry.id)
    }
}

impl QueryHandle {
    pub fn id(&self) -> &str {
        &self.entry.id
    }

    pub fn entry(&self) -> &Arc<QueryEntry> {
        &self.entry
    }

    pub fn cancel_token(&self) -> &CancelToken {
        &self.entry.cancel
    }

    pub fn set_state(&self, state: QueryState) {
        self.entry.set_state(state);
    }

    /// Counts result rows and bytes handed to the client.
    pub fn add_output(&self, rows: u64, bytes: u64) {
        self.entry.add_output(rows, bytes);
    }

    /// Records the query's outcome once (later calls are ignored), logs it and counts it.
    pub fn finish(&mut self, result: std::result::Result<(), &SqeError>) {
        if self.done {
            return;
        }
        self.done = true;
        let entry = &self.entry;
        let error = match result {
            Ok(()) if entry.cancel.is_cancelled() => Some(SqeError::cancelled()),
            Ok(()) => None,
            Err(e) => Some(e.clone()),
        };
        let elapsed = {
            let mut p = lock(&entry.progress);
            let now = Instant::now();
            p.ended = Some(now);
            p.started.get_or_insert(now);
            p.state = if error.is_some() {
                QueryState::Failed
            } else {
                QueryState::Finished
            };
            p.error = error.clone();
            now - entry.created_at
        };
        let outcome = error.as_ref().map_or("success", SqeError::outcome);
        let metrics = &self.registry.metrics;
        metrics.query_finished(
            entry.protocol,
            outcome,
            elapsed,
            entry.rows(),
            entry.bytes(),
        );
        let elapsed_ms = elapsed.as_millis() as u64;
        match &error {
            None => info!(
                query_id = %entry.id, user = %entry.user, protocol = entry.protocol.label(),
                elapsed_ms, rows = entry.rows(), bytes = entry.bytes(), "query finished"
            ),
            Some(e) if e.kind().is_user_error() => info!(
                query_id = %entry.id, user = %entry.user, protocol = entry.protocol.label(),
                elapsed_ms, kind = ?e.kind(), error = %e, "query failed"
            ),
            Some(e) => error!(
                query_id = %entry.id, user = %entry.user, protocol = entry.protocol.label(),
                elapsed_ms, kind = ?e.kind(), error = %e, "query failed"
            ),
        }
        self.registry.finished(entry);
    }

    pub fn succeed(&mut self) {
        self.finish(Ok(()));
    }

    pub fn fail(&mut self, e: &SqeError) {
        self.finish(Err(e));
    }

    pub fn is_cancelled(&self) -> bool {
        self.entry.cancel.is_cancelled()
    }

    /// Runs `fut` unless the query is cancelled first.
    pub async fn unless_cancelled<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::select! {
            biased;
            _ = self.entry.cancel.cancelled() => Err(SqeError::cancelled()),
            r = fut => r,
        }
    }
}

impl Drop for QueryHandle {
    fn drop(&mut self) {
        if !self.done {
            self.entry.cancel.cancel();
            self.finish(Err(&SqeError::new(
                ErrorKind::Cancelled,
                "the client went away before the query finished",
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Arc<QueryRegistry> {
        Arc::new(QueryRegistry::new(Arc::new(Metrics::new())))
    }

    #[test]
    fn query_ids_have_trinos_shape() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-01T22:41:07Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            format_query_id(t, 7, "ab2cd"),
            "20261201_224107_00007_ab2cd"
        );
        assert_eq!(
            format_query_id(t, 123_456, "ab2cd"),
            "20261201_224107_23456_ab2cd"
        );
        let id = registry().next_id();
        let parts: Vec<&str> = id.split('_').collect();
        assert_eq!(parts.len(), 4, "{id}");
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 6, 5, 5]
        );
    }

    #[test]
    fn a_finished_query_moves_to_the_history_with_its_outcome() {
        let r = registry();
        let mut q = r
            .begin("ann", Some("test"), "SELECT 1", Protocol::Trino)
            .unwrap();
        let id = q.id().to_string();
        assert_eq!(r.active(), 1);
        q.set_state(QueryState::Running);
        q.add_output(3, 24);
        q.succeed();
        assert_eq!(r.active(), 0);
        let rec = &r.records()[0];
        assert_eq!(
            (rec.id.as_str(), rec.state, rec.rows, rec.bytes),
            (id.as_str(), QueryState::Finished, 3, 24)
        );
        let mut q = r.begin("ann", None, "SELEC", Protocol::FlightSql).unwrap();
        q.fail(&SqeError::syntax("bad"));
        assert_eq!(r.records()[0].state, QueryState::Failed);
        assert_eq!(
            r.records()[0].error.as_ref().map(|e| e.kind()),
            Some(ErrorKind::Syntax)
        );
    }

    #[test]
    fn cancel_checks_the_owner_and_a_dropped_handle_counts_as_cancelled() {
        let r = registry();
        let q = r.begin("ann", None, "SELECT 1", Protocol::Trino).unwrap();
        let id = q.id().to_string();
        assert_eq!(r.cancel(&id, Some("bob")), CancelOutcome::NotOwner);
        assert!(!q.is_cancelled());
        assert_eq!(r.cancel(&id, Some("ann")), CancelOutcome::Cancelling);
        assert!(q.is_cancelled());
        drop(q);
        assert_eq!(r.active(), 0);
        assert_eq!(
            r.get(&id).and_then(|e| e.error()).map(|e| e.kind()),
            Some(ErrorKind::Cancelled)
        );
        assert_eq!(r.cancel(&id, None), CancelOutcome::AlreadyDone);
        assert_eq!(r.cancel("nope", None), CancelOutcome::NotFound);
    }

    #[tokio::test]
    async fn drain_refuses_new_queries_and_waits_for_running_ones() {
        let r = registry();
        let mut q = r.begin("ann", None, "SELECT 1", Protocol::Trino).unwrap();
        assert!(!r.drain(Duration::from_millis(10)).await);
        assert!(r.begin("ann", None, "SELECT 2", Protocol::Trino).is_err());
        let waiter = {
            let r = Arc::clone(&r);
            tokio::spawn(async move { r.drain(Duration::from_secs(10)).await })
        };
        q.succeed();
        assert!(waiter.await.unwrap());
    }

    #[test]
    fn the_history_is_bounded() {
        let r = registry();
        for _ in 0..HISTORY_LIMIT + 5 {
            r.begin("ann", None, "SELECT 1", Protocol::Trino)
                .unwrap()
                .succeed();
        }
        assert_eq!(r.records().len(), HISTORY_LIMIT);
    }
}
