//! The coordinator's registry of workers (distributed mode): who heartbeats, in which state,
//! with which protocol, and which of them may get tasks now.
//!
//! ```text
//!  worker ── Heartbeat every interval ──▶ Membership::heartbeat ──▶ member (last seen now)
//!                                                │
//!  system.runtime.nodes ◀── workers() ◀──────────┤ state_of: leaving → gone; no heartbeat for
//!  the planner          ◀── schedulable() ◀──────┘ misses × interval → gone; draining → draining
//!                            (active, protocol compatible, under its task cap and memory limit)
//! ```
//!
//! The decisions (state, protocol compatibility, headroom) are pure functions with table tests;
//! the registry only stores heartbeats and the coordinator's own count of tasks in flight per
//! worker (a heartbeat's count lags by up to one interval).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// The coordinator ↔ worker protocol this build speaks. A worker accepts this version and the
/// one before it, so workers can be upgraded first while the old coordinator keeps scheduling.
pub const PROTOCOL_VERSION: u32 = 1;

/// Overrides [`PROTOCOL_VERSION`] (tests of version skew build "two builds" this way).
pub const PROTOCOL_OVERRIDE_ENV: &str = "SQE_TEST_PROTOCOL_VERSION";

/// The Flight `DoAction` type a worker heartbeats with (on the coordinator's Flight SQL port,
/// authenticated with the internal credential).
pub const HEARTBEAT_ACTION: &str = "sqe.worker.heartbeat";

/// Whether an `authorization` header carries the internal credential `expected`
/// (`Bearer <token>`, compared in constant time). Without a configured token (loopback-only
/// setups), anything passes.
pub fn internal_credential_ok(expected: Option<&str>, authorization: Option<&str>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let presented = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    presented.len() == expected.len()
        && presented
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The protocol version this process speaks: [`PROTOCOL_VERSION`] unless overridden.
pub fn protocol_version() -> u32 {
    std::env::var(PROTOCOL_OVERRIDE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PROTOCOL_VERSION)
}

/// The oldest protocol a worker speaking `current` still accepts.
pub fn oldest_accepted(current: u32) -> u32 {
    current.saturating_sub(1).max(1)
}

/// What a worker reports on every heartbeat (JSON in a Flight `DoAction` body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node_id: String,
    /// Where the coordinator and other workers reach the worker.
    pub url: String,
    /// The worker's build version.
    pub version: String,
    /// The protocol the worker speaks and the oldest it accepts.
    pub protocol: u32,
    pub oldest_protocol: u32,
    /// Draining after SIGTERM: finishing its tasks, taking no new ones.
    pub draining: bool,
    /// The last heartbeat: the worker is leaving now.
    pub leaving: bool,
    pub memory_used_bytes: u64,
    /// 0 = unlimited.
    pub memory_limit_bytes: u64,
    pub running_tasks: u32,
    pub max_tasks: u32,
    pub interval_ms: u64,
}

/// The coordinator's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    pub coordinator_protocol: u32,
    /// Whether the coordinator will schedule on this worker (and why not, when it will not).
    pub schedulable: bool,
    pub note: Option<String>,
}

/// A worker's state as `system.runtime.nodes` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Active,
    Draining,
    Gone,
}

impl NodeState {
    pub fn name(self) -> &'static str {
        match self {
            NodeState::Active => "active",
            NodeState::Draining => "draining",
            NodeState::Gone => "gone",
        }
    }
}

/// A worker's state from its last heartbeat and how long ago that was.
pub fn state_of(last: &Heartbeat, since_last: Duration, misses: u32) -> NodeState {
    let allowed = Duration::from_millis(last.interval_ms.max(1)) * misses.max(1);
    if last.leaving || since_last > allowed {
        NodeState::Gone
    } else if last.draining {
        NodeState::Draining
    } else {
        NodeState::Active
    }
}

/// Whether a worker speaking `[oldest, current]` understands a coordinator speaking `coordinator`.
pub fn compatibility(coordinator: u32, oldest: u32, current: u32) -> Result<(), String> {
    if (oldest..=current).contains(&coordinator) {
        Ok(())
    } else {
        Err(format!(
            "speaks protocol {oldest}..{current}, the coordinator speaks {coordinator}: no tasks"
        ))
    }
}

/// Memory in use at or above this share of a worker's limit means no new tasks.
const MEMORY_HEADROOM: f64 = 0.9;

/// Whether a worker has room for one more task: under its cap (counting the tasks the
/// coordinator dispatched since its last heartbeat) and under its memory limit.
pub fn headroom(last: &Heartbeat, dispatched: u32) -> Result<(), String> {
    let running = last.running_tasks.max(dispatched);
    if running >= last.max_tasks {
        return Err(format!(
            "at its task cap ({running} of {} running)",
            last.max_tasks
        ));
    }
    if last.memory_limit_bytes > 0
        && last.memory_used_bytes as f64 >= last.memory_limit_bytes as f64 * MEMORY_HEADROOM
    {
        return Err(format!(
            "memory {} of {} MiB in use",
            last.memory_used_bytes >> 20,
            last.memory_limit_bytes >> 20
        ));
    }
    Ok(())
}

/// One worker as the registry sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerView {
    pub node_id: String,
    pub url: String,
    pub version: String,
    pub state: NodeState,
    pub protocol: u32,
    pub oldest_protocol: u32,
    /// Whether the coordinator schedules on it now, and why not.
    pub schedulable: bool,
    pub note: Option<String>,
    pub memory_used_bytes: u64,
    pub memory_limit_bytes: u64,
    pub running_tasks: u32,
    pub max_tasks: u32,
    pub last_heartbeat: SystemTime,
}

struct Member {
    last: Heartbeat,
    seen: Instant,
    seen_at: SystemTime,
    /// Tasks this coordinator dispatched to the worker that have not finished.
    dispatched: u32,
    /// The coordinator could not reach the worker after a query lost it (when, why): gone
    /// until it heartbeats again.
    unreachable: Option<(Instant, String)>,
}

/// Gone workers are still listed for this long, so an operator sees what left.
const FORGET_GONE_AFTER: Duration = Duration::from_secs(600);

/// The registry of workers that heartbeat to this coordinator.
pub struct Membership {
    members: Mutex<BTreeMap<String, Member>>,
    misses: u32,
    protocol: u32,
    changed: tokio::sync::Notify,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl Membership {
    /// A registry for a coordinator speaking `protocol`; a worker is gone after `misses`
    /// missed heartbeats.
    pub fn new(protocol: u32, misses: u32) -> Self {
        Self {
            members: Mutex::new(BTreeMap::new()),
            misses,
            protocol,
            changed: tokio::sync::Notify::new(),
        }
    }

    pub fn protocol(&self) -> u32 {
        self.protocol
    }

    fn members(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Member>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a heartbeat; the worker is keyed by its URL (a restarted pod with a new IP is a
    /// new member, the old one goes gone).
    pub fn heartbeat(&self, hb: Heartbeat) -> HeartbeatReply {
        self.heartbeat_at(hb, Instant::now())
    }

    fn heartbeat_at(&self, hb: Heartbeat, now: Instant) -> HeartbeatReply {
        let mut members = self.members();
        members.retain(|_, m| {
            now.duration_since(m.seen) < FORGET_GONE_AFTER
                || state_of(&m.last, now.duration_since(m.seen), self.misses) != NodeState::Gone
        });
        let previous = members.get(&hb.url);
        let dispatched = previous.map_or(0, |m| m.dispatched);
        // a beat the worker sent just before it died can arrive after the coordinator found
        // it unreachable: only a beat a whole interval later proves it is back
        let fresh = Duration::from_millis(hb.interval_ms.max(100));
        let unreachable = previous
            .and_then(|m| m.unreachable.clone())
            .filter(|(at, _)| now.duration_since(*at) < fresh);
        let url = hb.url.clone();
        let member = Member {
            last: hb,
            seen: now,
            seen_at: SystemTime::now(),
            dispatched,
            unreachable,
        };
        let view = self.view(&member, now);
        members.insert(url, member);
        drop(members);
        self.changed.notify_waiters();
        HeartbeatReply {
            coordinator_protocol: self.protocol,
            schedulable: view.schedulable,
            note: view.note,
        }
    }

    fn view(&self, m: &Member, now: Instant) -> WorkerView {
        let state = match &m.unreachable {
            Some(_) => NodeState::Gone,
            None => state_of(&m.last, now.duration_since(m.seen), self.misses),
        };
        let why_not = match (state, &m.unreachable) {
            (_, Some((_, why))) => Err(format!("gone: unreachable ({why})")),
            (NodeState::Gone, None) if m.last.leaving => Err("gone: left the cluster".into()),
            (NodeState::Gone, None) => Err("gone: no heartbeat".into()),
            (NodeState::Draining, None) => Err("draining".into()),
            (NodeState::Active, None) => {
                compatibility(self.protocol, m.last.oldest_protocol, m.last.protocol)
                    .and_then(|()| headroom(&m.last, m.dispatched))
            }
        };
        let hb = &m.last;
        WorkerView {
            node_id: hb.node_id.clone(),
            url: hb.url.clone(),
            version: hb.version.clone(),
            state,
            protocol: hb.protocol,
            oldest_protocol: hb.oldest_protocol,
            schedulable: why_not.is_ok(),
            note: why_not.err(),
            memory_used_bytes: hb.memory_used_bytes,
            memory_limit_bytes: hb.memory_limit_bytes,
            running_tasks: hb.running_tasks.max(m.dispatched),
            max_tasks: hb.max_tasks,
            last_heartbeat: m.seen_at,
        }
    }

    /// Every known worker (gone ones for a while), ordered by URL.
    pub fn workers(&self) -> Vec<WorkerView> {
        let now = Instant::now();
        self.members().values().map(|m| self.view(m, now)).collect()
    }

    /// The workers that may get a task now.
    pub fn schedulable(&self) -> Vec<WorkerView> {
        self.workers()
            .into_iter()
            .filter(|w| w.schedulable)
            .collect()
    }

    /// Waits up to `timeout` for a schedulable worker; the error says why there is none.
    pub async fn wait_schedulable(&self, timeout: Duration) -> Result<Vec<WorkerView>, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let ready = self.schedulable();
            if !ready.is_empty() {
                return Ok(ready);
            }
            // heartbeats wake us; a task finishing or a worker going stale does not, so
            // look again at least every 100 ms
            let wake = (tokio::time::Instant::now() + Duration::from_millis(100)).min(deadline);
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.why_none(timeout));
            }
        }
    }

    fn why_none(&self, waited: Duration) -> String {
        let workers = self.workers();
        if workers.is_empty() {
            return format!(
                "no worker has registered with this coordinator (waited {} s; start sqe-worker \
                 with worker.coordinator_url pointing here)",
                waited.as_secs()
            );
        }
        let reasons: Vec<String> = workers
            .iter()
            .map(|w| {
                format!(
                    "{} ({}): {}",
                    w.node_id,
                    w.url,
                    w.note.as_deref().unwrap_or("ready")
                )
            })
            .collect();
        format!(
            "no worker can take a task after waiting {} s: {}",
            waited.as_secs(),
            reasons.join("; ")
        )
    }

    /// A query lost the worker at `url` and the coordinator cannot reach it: no tasks for it
    /// until it heartbeats again (a dead worker would otherwise look active for up to
    /// `misses` intervals, and a retry could be planned onto it).
    pub fn mark_unreachable(&self, url: &str, why: &str) {
        if let Some(m) = self.members().get_mut(url) {
            m.unreachable = Some((Instant::now(), why.to_string()));
        }
        self.changed.notify_waiters();
    }

    /// Counts tasks this coordinator dispatched to `url`; the guard gives them back.
    pub fn dispatch(self: &Arc<Self>, url: &str, tasks: u32) -> DispatchGuard {
        if let Some(m) = self.members().get_mut(url) {
            m.dispatched = m.dispatched.saturating_add(tasks);
        }
        DispatchGuard {
            membership: Arc::clone(self),
            url: url.to_string(),
            tasks,
        }
    }

    /// Whether the worker at `url` is gone (or unknown): a query that failed while using it
    /// may be re-run on the others.
    pub fn is_gone(&self, url: &str) -> bool {
        let now = Instant::now();
        self.members()
            .get(url)
            .is_none_or(|m| self.view(m, now).state == NodeState::Gone)
    }
}

/// Tasks counted against a worker until dropped.
pub struct DispatchGuard {
    membership: Arc<Membership>,
    url: String,
    tasks: u32,
}

impl Drop for DispatchGuard {
    fn drop(&mut self) {
        if let Some(m) = self.membership.members().get_mut(&self.url) {
            m.dispatched = m.dispatched.saturating_sub(self.tasks);
        }
        self.membership.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(url: &str) -> Heartbeat {
        Heartbeat {
            node_id: format!("w-{url}"),
            url: url.into(),
            version: "0.1.0".into(),
            protocol: 2,
            oldest_protocol: 1,
            draining: false,
            leaving: false,
            memory_used_bytes: 0,
            memory_limit_bytes: 0,
            running_tasks: 0,
            max_tasks: 4,
            interval_ms: 1000,
        }
    }

    #[test]
    fn internal_credential() {
        let cases = [
            (Some("tok"), Some("Bearer tok"), true),
            (Some("tok"), Some("Bearer to"), false),
            (Some("tok"), Some("Bearer tok2"), false),
            (Some("tok"), Some("tok"), false),
            (Some("tok"), None, false),
            (None, None, true),
            (None, Some("Bearer x"), true),
        ];
        for (expected, header, ok) in cases {
            assert_eq!(
                internal_credential_ok(expected, header),
                ok,
                "{expected:?} {header:?}"
            );
        }
    }

    #[test]
    fn states() {
        let ms = Duration::from_millis;
        let draining = Heartbeat {
            draining: true,
            ..hb("a")
        };
        let leaving = Heartbeat {
            leaving: true,
            ..hb("a")
        };
        let cases: &[(&Heartbeat, Duration, u32, NodeState)] = &[
            (&hb("a"), ms(0), 3, NodeState::Active),
            (&hb("a"), ms(2999), 3, NodeState::Active),
            (&hb("a"), ms(3000), 3, NodeState::Active),
            (&hb("a"), ms(3001), 3, NodeState::Gone),
            (&hb("a"), ms(1001), 1, NodeState::Gone),
            (&draining, ms(10), 3, NodeState::Draining),
            (&draining, ms(5000), 3, NodeState::Gone),
            (&leaving, ms(0), 3, NodeState::Gone),
        ];
        for (beat, since, misses, want) in cases {
            assert_eq!(state_of(beat, *since, *misses), *want, "{beat:?} {since:?}");
        }
    }

    #[test]
    fn protocol_compatibility() {
        // (coordinator, worker oldest, worker current, compatible)
        let cases = [
            (1, 1, 1, true),
            (1, 1, 2, true), // a new worker under the old coordinator: the rolling upgrade
            (2, 1, 2, true),
            (2, 1, 1, false), // an old worker under the new coordinator
            (3, 1, 2, false),
            (1, 2, 3, false),
        ];
        for (coordinator, oldest, current, ok) in cases {
            assert_eq!(
                compatibility(coordinator, oldest, current).is_ok(),
                ok,
                "{coordinator} vs {oldest}..{current}"
            );
        }
        assert_eq!(oldest_accepted(1), 1);
        assert_eq!(oldest_accepted(5), 4);
    }

    #[test]
    fn headroom_counts_tasks_and_memory() {
        let full = Heartbeat {
            running_tasks: 4,
            ..hb("a")
        };
        let hot = Heartbeat {
            memory_used_bytes: 950 << 20,
            memory_limit_bytes: 1000 << 20,
            ..hb("a")
        };
        let warm = Heartbeat {
            memory_used_bytes: 800 << 20,
            memory_limit_bytes: 1000 << 20,
            ..hb("a")
        };
        assert!(headroom(&hb("a"), 0).is_ok());
        assert!(headroom(&hb("a"), 3).is_ok());
        assert!(headroom(&hb("a"), 4).unwrap_err().contains("task cap"));
        assert!(headroom(&full, 0).unwrap_err().contains("4 of 4"));
        assert!(headroom(&hot, 0).unwrap_err().contains("950 of 1000 MiB"));
        assert!(headroom(&warm, 0).is_ok());
    }

    #[tokio::test]
    async fn registry_schedules_only_workers_with_room() {
        let m = Arc::new(Membership::new(2, 3));
        assert!(m.schedulable().is_empty());
        let reply = m.heartbeat(hb("http://a"));
        assert!(reply.schedulable);
        let old = Heartbeat {
            protocol: 1,
            oldest_protocol: 1,
            ..hb("http://b")
        };
        let reply = m.heartbeat(old);
        assert!(!reply.schedulable);
        assert!(reply.note.unwrap().contains("protocol 1..1"));
        assert_eq!(m.workers().len(), 2);
        assert_eq!(m.schedulable().len(), 1);

        let guard = m.dispatch("http://a", 4);
        assert!(m.schedulable().is_empty());
        let err = m
            .wait_schedulable(Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(err.contains("task cap"), "{err}");
        drop(guard);
        assert_eq!(m.wait_schedulable(Duration::ZERO).await.unwrap().len(), 1);

        m.heartbeat(Heartbeat {
            leaving: true,
            ..hb("http://a")
        });
        assert!(m.is_gone("http://a"));
        assert!(m.is_gone("http://unknown"));
        assert!(!m.is_gone("http://b"));
    }

    #[tokio::test]
    async fn waiting_ends_when_a_worker_registers() {
        let m = Arc::new(Membership::new(1, 3));
        let waiter = {
            let m = Arc::clone(&m);
            tokio::spawn(async move { m.wait_schedulable(Duration::from_secs(10)).await })
        };
        tokio::task::yield_now().await;
        m.heartbeat(Heartbeat {
            protocol: 1,
            ..hb("http://a")
        });
        let ready = waiter.await.unwrap().unwrap();
        assert_eq!(ready[0].url, "http://a");
        let none = Membership::new(1, 3)
            .wait_schedulable(Duration::ZERO)
            .await
            .unwrap_err();
        assert!(none.contains("no worker has registered"), "{none}");
    }

    #[test]
    fn an_unreachable_worker_is_gone_until_it_heartbeats_again() {
        let m = Membership::new(2, 3);
        m.heartbeat(hb("http://a"));
        m.heartbeat(hb("http://b"));
        m.mark_unreachable("http://a", "connection refused");
        m.mark_unreachable("http://unknown", "ignored");
        let a = &m.workers()[0];
        assert_eq!((a.state, a.schedulable), (NodeState::Gone, false));
        assert_eq!(
            a.note.as_deref(),
            Some("gone: unreachable (connection refused)")
        );
        assert_eq!(m.schedulable().len(), 1);
        m.heartbeat(hb("http://a"));
        assert_eq!(
            m.schedulable().len(),
            1,
            "a beat right after the mark may have been sent before the worker died"
        );
        m.heartbeat(Heartbeat {
            interval_ms: 0,
            ..hb("http://a")
        });
        assert_eq!(m.schedulable().len(), 1, "at least 100 ms must pass");
        m.heartbeat_at(
            Heartbeat {
                interval_ms: 100,
                ..hb("http://a")
            },
            Instant::now() + Duration::from_millis(150),
        );
        assert_eq!(m.schedulable().len(), 2, "a later beat brings it back");
        m.heartbeat(Heartbeat {
            leaving: true,
            ..hb("http://b")
        });
        assert_eq!(
            m.workers()[1].note.as_deref(),
            Some("gone: left the cluster")
        );
    }
}
