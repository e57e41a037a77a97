//! What a reconcile pass announces about a rollout: the Events and the `rollouts_total` /
//! `restarts_total` counts. Pure: from the status the operator last wrote, the live Deployments,
//! the desired templates and this pass's [`Step`] to a list of [`Announcement`]s, each
//! transition announced once.
//!
//! ```text
//!  a new template goes to the first Deployment (workers; a hybrid cluster's coordinator) ─▶ Started
//!  workers done, the coordinator's new template goes out now                   ─▶ WorkersRolledOut
//!  last written phase Rolling…, now Idle, with the coordinator's version known ─▶ CoordinatorRolledOut
//!  a part stalls that the last written status did not report stalled           ─▶ Stalled
//! ```

use crate::build::TemplateFacts;
use crate::rollout::{DeploymentObservation, RolloutPhase, RolloutReason, StalledPart, Step};

/// One thing to tell about a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcement {
    /// A new pod template is written to the Deployment that rolls first: an Event named after
    /// the reason, `rollouts_total{started}` and `restarts_total{reason}`.
    Started {
        reason: RolloutReason,
        target: RolloutTarget,
    },
    /// Every worker runs the new template; the coordinator's is written now.
    WorkersRolledOut,
    /// The coordinator runs the new template: `rollouts_total{completed}`.
    CoordinatorRolledOut,
    /// A part made no progress within its deadline: a Warning, `rollouts_total{stalled}`.
    Stalled(StalledPart),
}

/// What rolls first: the workers of a distributed cluster, or a hybrid cluster's coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutTarget {
    Workers,
    Coordinator,
}

impl RolloutTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutTarget::Workers => "workers",
            RolloutTarget::Coordinator => "coordinator",
        }
    }
}

/// What the operator last wrote to the cluster's status (it remembers that, not the
/// reflector's copy, which may lag behind its own write).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PreviousRollout {
    pub phase: Option<RolloutPhase>,
    /// `status.versions.coordinator` was set: the cluster had been up before this rollout.
    pub coordinator_version_known: bool,
    /// The `Degraded` condition said a rollout stalled.
    pub stalled: bool,
}

pub struct AnnounceInput<'a> {
    pub previous: PreviousRollout,
    pub desired_coordinator: &'a TemplateFacts,
    pub desired_workers: Option<&'a TemplateFacts>,
    pub coordinator: Option<&'a DeploymentObservation>,
    pub workers: Option<&'a DeploymentObservation>,
    pub step: &'a Step,
    /// A paused cluster applies nothing, so nothing starts.
    pub paused: bool,
}

/// The announcements of one reconcile pass, in the order they happen.
pub fn announcements(input: &AnnounceInput<'_>) -> Vec<Announcement> {
    let mut out = Vec::new();
    let step = input.step;
    if !input.paused {
        let (first, first_desired, target) = match (input.desired_workers, input.workers) {
            (Some(dw), Some(w)) => (Some(w), dw, RolloutTarget::Workers),
            (Some(_), None) => (None, input.desired_coordinator, RolloutTarget::Workers),
            (None, _) => (
                input.coordinator,
                input.desired_coordinator,
                RolloutTarget::Coordinator,
            ),
        };
        if let Some(first) = first
            && first.facts.template_hash != first_desired.template_hash
            && (input.desired_workers.is_some() || step.apply_coordinator)
        {
            out.push(Announcement::Started {
                reason: RolloutReason::between(&first.facts, first_desired),
                target,
            });
        }
        if input.desired_workers.is_some()
            && step.apply_coordinator
            && input
                .coordinator
                .is_some_and(|c| c.facts.template_hash != input.desired_coordinator.template_hash)
        {
            out.push(Announcement::WorkersRolledOut);
        }
    }
    if step.phase == RolloutPhase::Idle
        && matches!(
            input.previous.phase,
            Some(RolloutPhase::RollingCoordinator | RolloutPhase::RollingWorkers)
        )
        && input.previous.coordinator_version_known
    {
        out.push(Announcement::CoordinatorRolledOut);
    }
    if let Some(part) = step.stalled
        && !input.previous.stalled
    {
        out.push(Announcement::Stalled(part));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(hash: &str, image: &str) -> TemplateFacts {
        TemplateFacts {
            template_hash: hash.into(),
            image: image.into(),
            config_hash: "c".into(),
            secret_hash: "s".into(),
            restart_request: None,
        }
    }

    fn live(f: TemplateFacts) -> DeploymentObservation {
        DeploymentObservation {
            facts: f,
            ..Default::default()
        }
    }

    fn step(phase: RolloutPhase, apply_coordinator: bool, stalled: Option<StalledPart>) -> Step {
        Step {
            phase,
            apply_workers: true,
            apply_coordinator,
            reason: None,
            stalled,
        }
    }

    fn previous(phase: Option<RolloutPhase>, stalled: bool) -> PreviousRollout {
        PreviousRollout {
            phase,
            coordinator_version_known: true,
            stalled,
        }
    }

    use Announcement::*;
    use RolloutPhase::*;

    #[test]
    fn each_transition_is_announced_once() {
        let (v1, v2) = (facts("t1", "sqe:1"), facts("t2", "sqe:2"));
        let (c1, c2) = (facts("c1", "sqe:1"), facts("c2", "sqe:2"));
        let image = Started {
            reason: RolloutReason::ImageChanged,
            target: RolloutTarget::Workers,
        };
        // (case, previous, live workers, live coordinator, step, paused, expected)
        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            &str,
            PreviousRollout,
            &TemplateFacts,
            &TemplateFacts,
            Step,
            bool,
            Vec<Announcement>,
        )> = vec![
            (
                "steady state",
                previous(Some(Idle), false),
                &v2,
                &c2,
                step(Idle, true, None),
                false,
                vec![],
            ),
            (
                "new image: workers first",
                previous(Some(Idle), false),
                &v1,
                &c1,
                step(RollingWorkers, false, None),
                false,
                vec![image],
            ),
            (
                "workers rolling: nothing new",
                previous(Some(RollingWorkers), false),
                &v2,
                &c1,
                step(RollingWorkers, false, None),
                false,
                vec![],
            ),
            (
                "workers done: the coordinator goes",
                previous(Some(RollingWorkers), false),
                &v2,
                &c1,
                step(RollingCoordinator, true, None),
                false,
                vec![WorkersRolledOut],
            ),
            (
                "coordinator rolling: nothing new",
                previous(Some(RollingCoordinator), false),
                &v2,
                &c2,
                step(RollingCoordinator, true, None),
                false,
                vec![],
            ),
            (
                "coordinator done",
                previous(Some(RollingCoordinator), false),
                &v2,
                &c2,
                step(Idle, true, None),
                false,
                vec![CoordinatorRolledOut],
            ),
            (
                "done, and the written status says so: not again",
                previous(Some(Idle), false),
                &v2,
                &c2,
                step(Idle, true, None),
                false,
                vec![],
            ),
            (
                "paused: nothing starts",
                previous(Some(Idle), false),
                &v1,
                &c1,
                step(RollingWorkers, false, None),
                true,
                vec![],
            ),
            (
                "workers stall",
                previous(Some(RollingWorkers), false),
                &v2,
                &c1,
                step(RollingWorkers, false, Some(StalledPart::Workers)),
                false,
                vec![Stalled(StalledPart::Workers)],
            ),
            (
                "still stalled: not again",
                previous(Some(RollingWorkers), true),
                &v2,
                &c1,
                step(RollingWorkers, false, Some(StalledPart::Workers)),
                false,
                vec![],
            ),
        ];
        for (case, prev, workers, coordinator, step, paused, expected) in cases {
            let (w, c) = (live(workers.clone()), live(coordinator.clone()));
            let got = announcements(&AnnounceInput {
                previous: prev,
                desired_coordinator: &c2,
                desired_workers: Some(&v2),
                coordinator: Some(&c),
                workers: Some(&w),
                step: &step,
                paused,
            });
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn a_hybrid_cluster_rolls_its_coordinator_first() {
        let (c1, c2) = (facts("c1", "sqe:1"), facts("c2", "sqe:2"));
        let c = live(c1);
        let s = step(RollingCoordinator, true, None);
        let got = announcements(&AnnounceInput {
            previous: previous(Some(Idle), false),
            desired_coordinator: &c2,
            desired_workers: None,
            coordinator: Some(&c),
            workers: None,
            step: &s,
            paused: false,
        });
        assert_eq!(
            got,
            vec![Started {
                reason: RolloutReason::ImageChanged,
                target: RolloutTarget::Coordinator
            }]
        );
    }

    #[test]
    fn a_first_start_is_not_a_completed_rollout() {
        let c2 = facts("c2", "sqe:2");
        let c = live(c2.clone());
        let s = step(Idle, true, None);
        let got = announcements(&AnnounceInput {
            previous: PreviousRollout {
                phase: Some(RollingCoordinator),
                coordinator_version_known: false,
                stalled: false,
            },
            desired_coordinator: &c2,
            desired_workers: None,
            coordinator: Some(&c),
            workers: None,
            step: &s,
            paused: false,
        });
        assert_eq!(got, vec![]);
    }
}
