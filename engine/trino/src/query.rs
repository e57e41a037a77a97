//! One Trino query: the producer that runs it and encodes its results into pages, and the
//! delivery that hands pages to the client one `nextUri` at a time.
//!
//! ```text
//!  producer (query runtime) ── Item::Columns, Item::Data(page JSON), …, Item::Done ──▶ bounded
//!      channel (PAGE_BUFFER pages) ──▶ GET …/{token}: wait ≤ 1 s for the next item ──▶ response
//! ```
//!
//! The channel is what bounds memory: a slow client leaves the producer blocked on a full
//! channel, and the engine's stream behind it stops pulling batches. The query counts as running
//! (and a draining server waits for it) until the client has received the last page.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue};
use serde_json::{Value, json};
use sqe_core::error::SqeError;
use sqe_core::registry::{QueryEntry, QueryHandle};
use tokio::sync::mpsc;

use crate::error::error_json;
use crate::headers::SessionUpdate;

/// Pages the producer may run ahead of the client.
pub const PAGE_BUFFER: usize = 4;
/// A page is sent once its JSON reaches this size.
pub const PAGE_BYTES: usize = 1 << 20;
/// How long a GET waits for the next page before answering without data.
pub const MAX_WAIT: Duration = Duration::from_secs(1);

/// What the producer hands the delivery side.
#[derive(Debug)]
pub enum Item {
    /// The `columns` array as JSON text; sent before any data.
    Columns(String),
    /// Rows as the JSON text of a `data` array.
    Data {
        json: String,
        rows: u64,
    },
    Done(Result<Completion, SqeError>),
}

/// How a statement ended, besides its rows.
#[derive(Debug, Default)]
pub struct Completion {
    pub update_type: Option<String>,
    pub update_count: Option<u64>,
    pub session: SessionUpdate,
}

/// A response ready to send (and to send again if the client retries the same token).
#[derive(Debug, Clone)]
pub struct Served {
    pub body: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Why a GET on a query's `nextUri` cannot be answered.
#[derive(Debug, PartialEq, Eq)]
pub enum DeliveryError {
    /// A token that is neither the last one served nor the next.
    BadToken,
    /// The client already received the final response.
    Gone,
}

struct Delivery {
    rx: mpsc::Receiver<Item>,
    /// The token of the last response served.
    token: u64,
    last: Option<Served>,
    /// An item taken from the channel but not yet served.
    pending: Option<Item>,
    columns: Option<String>,
    finished: bool,
}

pub struct TrinoQuery {
    pub id: String,
    pub slug: String,
    pub user: String,
    /// Set for DDL, DML and session statements: every page says it, and their `columns`
    /// come only with the final page, as Trino sends them.
    update_type: Option<String>,
    pub entry: Arc<QueryEntry>,
    handle: Mutex<Option<QueryHandle>>,
    delivery: tokio::sync::Mutex<Delivery>,
    last_poll: Mutex<Instant>,
    done_at: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TrinoQuery {
    pub fn new(
        handle: QueryHandle,
        slug: String,
        update_type: Option<String>,
        rx: mpsc::Receiver<Item>,
    ) -> Self {
        let entry = Arc::clone(handle.entry());
        Self {
            id: entry.id.clone(),
            slug,
            user: entry.user.clone(),
            update_type,
            entry,
            handle: Mutex::new(Some(handle)),
            delivery: tokio::sync::Mutex::new(Delivery {
                rx,
                token: 0,
                last: None,
                pending: None,
                columns: None,
                finished: false,
            }),
            last_poll: Mutex::new(Instant::now()),
            done_at: Mutex::new(None),
        }
    }

    /// Whether the client stopped polling `timeout` ago without the query having ended.
    pub fn is_abandoned(&self, timeout: Duration) -> bool {
        lock(&self.done_at).is_none() && lock(&self.last_poll).elapsed() > timeout
    }

    /// Whether the final response was served more than `linger` ago.
    pub fn is_expired(&self, linger: Duration) -> bool {
        lock(&self.done_at).is_some_and(|t| t.elapsed() > linger)
    }

    /// Stops the query and records it as cancelled (DELETE, or an abandoned client).
    pub fn cancel(&self, reason: SqeError) {
        // the reason is recorded before the token fires, so a waiting poll answers with it
        if let Some(mut h) = lock(&self.handle).take() {
            h.fail(&reason);
        }
        self.entry.cancel.cancel();
        lock(&self.done_at).get_or_insert_with(Instant::now);
    }

    fn cancel_reason(&self) -> SqeError {
        self.entry.error().unwrap_or_else(SqeError::cancelled)
    }

    /// The response for `token`, waiting up to `wait` for the producer.
    pub async fn respond(
        &self,
        token: u64,
        base: &str,
        wait: Duration,
    ) -> Result<Served, DeliveryError> {
        let mut d = self.delivery.lock().await;
        *lock(&self.last_poll) = Instant::now();
        if token == d.token
            && let Some(s) = &d.last
        {
            return Ok(s.clone());
        }
        if d.finished {
            return Err(DeliveryError::Gone);
        }
        if token != d.token + 1 && !(token == 0 && d.last.is_none()) {
            return Err(DeliveryError::BadToken);
        }
        let deadline = tokio::time::Instant::now() + wait;
        let mut data: Option<(String, u64)> = None;
        let mut done: Option<Result<Completion, SqeError>> = None;
        // the answer to the POST never waits: it is QUEUED with a nextUri, as Trino's is
        if token > 0 {
            loop {
                if self.entry.cancel.is_cancelled() {
                    // a cancelled query answers FAILED at once: its producer may still be
                    // waiting for a thread of the busy query runtime to notice
                    data = None;
                    done = Some(Err(self.cancel_reason()));
                    break;
                }
                let item = match d.pending.take() {
                    Some(i) => Some(i),
                    None if data.is_some() => match d.rx.try_recv() {
                        Ok(i) => Some(i),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => None,
                    },
                    None => tokio::select! {
                        biased;
                        _ = self.entry.cancel.cancelled() => continue,
                        r = tokio::time::timeout_at(deadline, d.rx.recv()) => match r {
                            Ok(i) => i,
                            Err(_) => break,
                        },
                    },
                };
                match item {
                    Some(Item::Columns(c)) => d.columns = Some(c),
                    Some(Item::Data { json, rows }) => {
                        if data.is_some() {
                            d.pending = Some(Item::Data { json, rows });
                            break;
                        }
                        data = Some((json, rows));
                    }
                    Some(Item::Done(r)) => {
                        done = Some(r);
                        break;
                    }
                    None => {
                        // the producer is gone without a result: it was cancelled
                        done = Some(Err(self.cancel_reason()));
                        break;
                    }
                }
            }
        }
        if self.update_type.is_some() && done.is_none() {
            // an update's count comes with its final page
            if let Some((json, rows)) = data.take() {
                d.pending = Some(Item::Data { json, rows });
            }
        }
        if let Some(Ok(_)) = &done
            && d.columns.is_none()
        {
            d.columns = Some("[]".to_string());
        }
        let served = self.render(&d, token, base, data, done.as_ref());
        if let Some(result) = done {
            d.finished = true;
            if let Some(mut h) = lock(&self.handle).take() {
                h.finish(result.as_ref().map(|_| ()));
            }
            *lock(&self.done_at) = Some(Instant::now());
        }
        d.token = token;
        d.last = Some(served.clone());
        Ok(served)
    }

    fn render(
        &self,
        d: &Delivery,
        token: u64,
        base: &str,
        data: Option<(String, u64)>,
        done: Option<&Result<Completion, SqeError>>,
    ) -> Served {
        let state = match done {
            Some(Ok(_)) => "FINISHED",
            Some(Err(_)) => "FAILED",
            // the answer to the POST is always QUEUED, as Trino's is
            None if token == 0 => "QUEUED",
            None => self.entry.state().name(),
        };
        let mut body = json!({
            "id": self.id,
            "infoUri": format!("{base}/v1/query/{}", self.id),
            "stats": stats(&self.entry, state),
            "warnings": [],
        });
        if done.is_none() {
            body["nextUri"] = Value::String(format!(
                "{base}/v1/statement/executing/{}/{}/{}",
                self.id,
                self.slug,
                token + 1
            ));
            body["partialCancelUri"] = Value::String(format!(
                "{base}/v1/statement/executing/{}/{}/{}",
                self.id, self.slug, token
            ));
        }
        if let Some(t) = &self.update_type {
            body["updateType"] = Value::String(t.clone());
        }
        let mut headers = Vec::new();
        match done {
            Some(Ok(c)) => {
                if let Some(t) = &c.update_type {
                    body["updateType"] = Value::String(t.clone());
                }
                if let Some(n) = c.update_count {
                    body["updateCount"] = json!(n);
                }
                headers = c.session.headers();
            }
            Some(Err(e)) => body["error"] = error_json(e),
            None => {}
        }
        let mut text = body.to_string();
        // columns and data are JSON text already: splice them in instead of re-parsing
        let held_back = self.update_type.is_some() && done.is_none();
        if let Some(columns) = &d.columns
            && !matches!(done, Some(Err(_)))
            && !held_back
        {
            text.pop();
            text.push_str(",\"columns\":");
            text.push_str(columns);
            if let Some((rows, _)) = &data {
                text.push_str(",\"data\":");
                text.push_str(rows);
            }
            text.push('}');
        }
        Served {
            body: text,
            headers,
        }
    }
}

fn stats(entry: &QueryEntry, state: &str) -> Value {
    let elapsed = entry.elapsed().as_millis() as u64;
    let queued = entry.queued().as_millis() as u64;
    let done = state == "FINISHED" || state == "FAILED";
    json!({
        "state": state,
        "queued": state == "QUEUED",
        "scheduled": state != "QUEUED" && state != "PLANNING",
        "progressPercentage": if done { 100.0 } else { 0.0 },
        "runningPercentage": if done { 0.0 } else { 100.0 },
        "nodes": 1,
        "totalSplits": 1,
        "queuedSplits": 0,
        "runningSplits": u64::from(!done),
        "completedSplits": u64::from(done),
        "cpuTimeMillis": elapsed.saturating_sub(queued),
        "wallTimeMillis": elapsed.saturating_sub(queued),
        "queuedTimeMillis": queued,
        "elapsedTimeMillis": elapsed,
        "processedRows": entry.rows(),
        "processedBytes": entry.bytes(),
        "physicalInputBytes": 0,
        "physicalWrittenBytes": 0,
        "peakMemoryBytes": 0,
        "spilledBytes": 0,
    })
}

/// Sends an item unless the query is cancelled first; `false` means stop producing.
pub async fn send(tx: &mpsc::Sender<Item>, entry: &QueryEntry, item: Item) -> bool {
    tokio::select! {
        biased;
        _ = entry.cancel.cancelled() => false,
        r = tx.send(item) => r.is_ok(),
    }
}
