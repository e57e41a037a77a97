//! Workers-first rollouts: the pure decision `decide(observed, desired) -> Step`.
//!
//! ```text
//!  Idle ──(a pod template changed)──▶ RollingWorkers: apply the new worker template,
//!                                     keep the coordinator's live template
//!    RollingWorkers ──(worker Deployment fully rolled: observedGeneration current,
//!                      all replicas updated and available, no old pods)──▶ RollingCoordinator
//!    RollingCoordinator: apply the new coordinator template ──(coordinator rolled)──▶ Idle
//! ```
//!
//! Everything is read back from the live Deployments (their pod-template annotations and
//! status), so an operator restarted mid-rollout resumes where it was and rolls nothing twice.
//! A missing Deployment is always created; scaling is never a rollout.

use serde_json::Value;

use crate::build::TemplateFacts;
use crate::labels;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutPhase {
    Idle,
    RollingWorkers,
    RollingCoordinator,
}

impl RolloutPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutPhase::Idle => "Idle",
            RolloutPhase::RollingWorkers => "RollingWorkers",
            RolloutPhase::RollingCoordinator => "RollingCoordinator",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Idle" => Some(RolloutPhase::Idle),
            "RollingWorkers" => Some(RolloutPhase::RollingWorkers),
            "RollingCoordinator" => Some(RolloutPhase::RollingCoordinator),
            _ => None,
        }
    }
}

/// Why pods roll. The Event reason and `status.rollout.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutReason {
    ImageChanged,
    ConfigChanged,
    SecretChanged,
    RestartRequested,
    /// Anything else in the pod template (resources, pod overrides, ...).
    SpecChanged,
}

impl RolloutReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutReason::ImageChanged => "ImageChanged",
            RolloutReason::ConfigChanged => "ConfigChanged",
            RolloutReason::SecretChanged => "SecretChanged",
            RolloutReason::RestartRequested => "RestartRequested",
            RolloutReason::SpecChanged => "SpecChanged",
        }
    }

    /// The most telling difference between a live and a desired template.
    pub fn between(live: &TemplateFacts, desired: &TemplateFacts) -> Self {
        if live.image != desired.image {
            RolloutReason::ImageChanged
        } else if live.config_hash != desired.config_hash {
            RolloutReason::ConfigChanged
        } else if live.secret_hash != desired.secret_hash {
            RolloutReason::SecretChanged
        } else if live.restart_request != desired.restart_request {
            RolloutReason::RestartRequested
        } else {
            RolloutReason::SpecChanged
        }
    }
}

/// What the operator reads from one live Deployment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeploymentObservation {
    /// The facts recorded in the live pod template's annotations and container image.
    pub facts: TemplateFacts,
    pub generation: i64,
    pub observed_generation: i64,
    /// `spec.replicas`
    pub replicas: i32,
    /// `status.replicas`: all pods, old and new.
    pub status_replicas: i32,
    pub updated_replicas: i32,
    pub ready_replicas: i32,
    pub available_replicas: i32,
    /// `Progressing=False` with reason `ProgressDeadlineExceeded`.
    pub stalled: bool,
}

impl DeploymentObservation {
    /// Reads a live Deployment (as JSON).
    pub fn from_live(deployment: &Value) -> Self {
        let int = |path: &str| {
            deployment
                .pointer(path)
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        let annotation = |key: &str| {
            deployment
                .pointer("/spec/template/metadata/annotations")
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let image = deployment
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("name").and_then(Value::as_str) == Some("sqe"))
            })
            .and_then(|c| c.get("image"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let stalled = deployment
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|conds| {
                conds.iter().any(|c| {
                    c.get("type").and_then(Value::as_str) == Some("Progressing")
                        && c.get("status").and_then(Value::as_str) == Some("False")
                        && c.get("reason").and_then(Value::as_str)
                            == Some("ProgressDeadlineExceeded")
                })
            });
        Self {
            facts: TemplateFacts {
                template_hash: annotation(labels::ANNOTATION_TEMPLATE_HASH).unwrap_or_default(),
                image,
                config_hash: annotation(labels::ANNOTATION_CONFIG_HASH).unwrap_or_default(),
                secret_hash: annotation(labels::ANNOTATION_SECRET_HASH).unwrap_or_default(),
                restart_request: annotation(labels::ANNOTATION_RESTART),
            },
            generation: int("/metadata/generation"),
            observed_generation: int("/status/observedGeneration"),
            replicas: deployment
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1) as i32,
            status_replicas: int("/status/replicas") as i32,
            updated_replicas: int("/status/updatedReplicas") as i32,
            ready_replicas: int("/status/readyReplicas") as i32,
            available_replicas: int("/status/availableReplicas") as i32,
            stalled,
        }
    }

    /// The Deployment controller has seen the current spec and every pod runs it and is available.
    pub fn fully_rolled(&self) -> bool {
        self.observed_generation >= self.generation
            && self.updated_replicas == self.replicas
            && self.status_replicas == self.replicas
            && self.available_replicas == self.replicas
    }

    /// Pods of an older template are still around (a rollout, not a scale, is in progress).
    pub fn has_old_pods(&self) -> bool {
        self.observed_generation < self.generation || self.status_replicas > self.updated_replicas
    }

    fn runs(&self, desired: &TemplateFacts) -> bool {
        self.facts.template_hash == desired.template_hash
    }
}

/// What `decide` sees.
#[derive(Debug, Clone, Copy)]
pub struct RolloutInput<'a> {
    pub desired_coordinator: &'a TemplateFacts,
    /// `None` in hybrid mode.
    pub desired_workers: Option<&'a TemplateFacts>,
    pub coordinator: Option<&'a DeploymentObservation>,
    pub workers: Option<&'a DeploymentObservation>,
    /// The phase this operator last recorded. Old pods of an unchanged template belong to
    /// our rollout only while one is in progress; otherwise someone else replaced them
    /// (`kubectl rollout restart`, an evicted node) and there is nothing to report or hand on.
    pub previous: RolloutPhase,
}

/// The next step: which Deployments to apply now, and what to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub phase: RolloutPhase,
    /// Apply the desired worker Deployment (always: workers go first).
    pub apply_workers: bool,
    /// Apply the desired coordinator Deployment; `false` keeps its live template.
    pub apply_coordinator: bool,
    pub reason: Option<RolloutReason>,
    /// A rollout that made no progress within its deadline.
    pub stalled: Option<StalledPart>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StalledPart {
    Workers,
    Coordinator,
}

impl StalledPart {
    /// The reason of the `Degraded` condition that reports it.
    pub fn condition_reason(self) -> &'static str {
        match self {
            StalledPart::Workers => "WorkerRolloutStalled",
            StalledPart::Coordinator => "CoordinatorRolloutStalled",
        }
    }

    pub fn from_condition_reason(reason: &str) -> Option<Self> {
        [StalledPart::Workers, StalledPart::Coordinator]
            .into_iter()
            .find(|p| p.condition_reason() == reason)
    }
}

/// The workers-first rollout decision. Pure; one step per reconcile.
pub fn decide(input: RolloutInput<'_>) -> Step {
    let desired_c = input.desired_coordinator;
    let coordinator_reason = input
        .coordinator
        .filter(|c| !c.runs(desired_c))
        .map(|c| RolloutReason::between(&c.facts, desired_c));
    let in_rollout = input.previous != RolloutPhase::Idle;
    let mut workers_stalled = false;

    if let Some(desired_w) = input.desired_workers {
        let workers_settled = input
            .workers
            .is_some_and(|w| w.runs(desired_w) && w.fully_rolled());
        if !workers_settled {
            // Ours: a template to write, a Deployment to create, pods of our rollout still
            // replacing, or a coordinator change waiting for the workers.
            let ours = match input.workers {
                None => true,
                Some(w) if !w.runs(desired_w) => true,
                Some(w) => {
                    (w.has_old_pods() && input.previous == RolloutPhase::RollingWorkers)
                        || coordinator_reason.is_some()
                        || input.coordinator.is_none()
                }
            };
            if ours {
                let workers_reason = match input.workers {
                    Some(w) if !w.runs(desired_w) => {
                        Some(RolloutReason::between(&w.facts, desired_w))
                    }
                    _ => coordinator_reason,
                };
                return Step {
                    phase: RolloutPhase::RollingWorkers,
                    apply_workers: true,
                    // A missing coordinator has no live template to keep.
                    apply_coordinator: input.coordinator.is_none(),
                    reason: workers_reason,
                    stalled: input
                        .workers
                        .is_some_and(|w| w.stalled)
                        .then_some(StalledPart::Workers),
                };
            }
            // Scaling, or someone else's restart: not a rollout; the coordinator has nothing
            // to wait for.
            workers_stalled = input.workers.is_some_and(|w| w.stalled);
        }
    }

    let (phase, reason, coordinator_stalled) = match input.coordinator {
        None => (RolloutPhase::RollingCoordinator, None, false),
        Some(c) if !c.runs(desired_c) => (
            RolloutPhase::RollingCoordinator,
            coordinator_reason,
            c.stalled,
        ),
        Some(c) if c.has_old_pods() && in_rollout => {
            (RolloutPhase::RollingCoordinator, None, c.stalled)
        }
        Some(c) => (RolloutPhase::Idle, None, c.stalled),
    };
    Step {
        phase,
        apply_workers: true,
        apply_coordinator: true,
        reason,
        stalled: if workers_stalled {
            Some(StalledPart::Workers)
        } else {
            coordinator_stalled.then_some(StalledPart::Coordinator)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(
        hash: &str,
        image: &str,
        config: &str,
        secret: &str,
        restart: Option<&str>,
    ) -> TemplateFacts {
        TemplateFacts {
            template_hash: hash.into(),
            image: image.into(),
            config_hash: config.into(),
            secret_hash: secret.into(),
            restart_request: restart.map(Into::into),
        }
    }

    fn v1() -> TemplateFacts {
        facts("t1", "sqe:1", "c1", "s1", None)
    }
    fn v2_image() -> TemplateFacts {
        facts("t2", "sqe:2", "c1", "s1", None)
    }

    /// A Deployment running `f` with `replicas` pods, all updated and available.
    fn settled(f: TemplateFacts, replicas: i32) -> DeploymentObservation {
        DeploymentObservation {
            facts: f,
            generation: 3,
            observed_generation: 3,
            replicas,
            status_replicas: replicas,
            updated_replicas: replicas,
            ready_replicas: replicas,
            available_replicas: replicas,
            stalled: false,
        }
    }

    /// The template was just written: the controller has not caught up.
    fn just_applied(f: TemplateFacts, replicas: i32) -> DeploymentObservation {
        DeploymentObservation {
            generation: 4,
            observed_generation: 3,
            updated_replicas: 0,
            ..settled(f, replicas)
        }
    }

    /// Halfway: one new pod, old ones still there.
    fn rolling(f: TemplateFacts, replicas: i32) -> DeploymentObservation {
        DeploymentObservation {
            generation: 4,
            observed_generation: 4,
            status_replicas: replicas + 1,
            updated_replicas: 1,
            available_replicas: replicas,
            ..settled(f, replicas)
        }
    }

    fn stalled(f: TemplateFacts, replicas: i32) -> DeploymentObservation {
        DeploymentObservation {
            stalled: true,
            ..rolling(f, replicas)
        }
    }

    /// Scaled up from 2 to 4: two new pods of the current template are starting.
    fn scaling(f: TemplateFacts) -> DeploymentObservation {
        DeploymentObservation {
            generation: 5,
            observed_generation: 5,
            replicas: 4,
            status_replicas: 4,
            updated_replicas: 4,
            ready_replicas: 2,
            available_replicas: 2,
            ..settled(f, 4)
        }
    }

    struct Row {
        name: &'static str,
        previous: RolloutPhase,
        desired_c: TemplateFacts,
        desired_w: Option<TemplateFacts>,
        coordinator: Option<DeploymentObservation>,
        workers: Option<DeploymentObservation>,
        phase: RolloutPhase,
        apply_coordinator: bool,
        reason: Option<RolloutReason>,
        stalled: Option<StalledPart>,
    }

    #[test]
    fn the_state_machine_table() {
        use RolloutPhase::*;
        use RolloutReason::*;
        let rows = vec![
            // ---- distributed: phase × observation ----
            Row {
                name: "new cluster: create both",
                previous: Idle,
                desired_c: v1(),
                desired_w: Some(v1()),
                coordinator: None,
                workers: None,
                phase: RollingWorkers,
                apply_coordinator: true,
                reason: None,
                stalled: None,
            },
            Row {
                name: "Idle, nothing changed",
                previous: Idle,
                desired_c: v1(),
                desired_w: Some(v1()),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(settled(v1(), 2)),
                phase: Idle,
                apply_coordinator: true,
                reason: None,
                stalled: None,
            },
            Row {
                name: "Idle -> RollingWorkers: image changed, coordinator keeps its template",
                previous: Idle,
                desired_c: v2_image(),
                desired_w: Some(v2_image()),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(settled(v1(), 2)),
                phase: RollingWorkers,
                apply_coordinator: false,
                reason: Some(ImageChanged),
                stalled: None,
            },
            Row {
                name: "RollingWorkers: template applied, controller not caught up",
                previous: RollingWorkers,
                desired_c: v2_image(),
                desired_w: Some(v2_image()),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(just_applied(v2_image(), 2)),
                phase: RollingWorkers,
                apply_coordinator: false,
                reason: Some(ImageChanged),
                stalled: None,
            },
            Row {
                name: "RollingWorkers: old worker pods remain",
                previous: RollingWorkers,
                desired_c: v2_image(),
                desired_w: Some(v2_image()),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(rolling(v2_image(), 2)),
                phase: RollingWorkers,
                apply_coordinator: false,
                reason: Some(ImageChanged),
                stalled: None,
            },
            Row {
                name: "RollingWorkers: stalled -> Degraded, coordinator untouched",
                previous: RollingWorkers,
                desired_c: v2_image(),
                desired_w: Some(v2_image()),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(stalled(v2_image(), 2)),
                phase: RollingWorkers,
                apply_coordinator: false,
                reason: Some(ImageChanged),
                stalled: Some(StalledPart::Workers),
            },
            Row {
                name: "RollingWorkers -> RollingCoordinator: workers fully rolled",
                previous: RollingWorkers,
                desired_c: v2_image(),
                desired_w: Some(v2_image()),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(settled(v2_image(), 2)),
                phase: RollingCoordinator,
                apply_coordinator: true,
                reason: Some(ImageChanged),
                stalled: None,
            },
            Row {
                name: "RollingCoordinator: coordinator template applied, pods rolling",
                previous: RollingCoordinator,
                desired_c: v2_image(),
                desired_w: Some(v2_image()),
                coordinator: Some(rolling(v2_image(), 1)),
                workers: Some(settled(v2_image(), 2)),
                phase: RollingCoordinator,
                apply_coordinator: true,
                reason: None,
                stalled: None,
            },
            Row {
                name: "RollingCoordinator: stalled coordinator",
                previous: RollingCoordinator,
                desired_c: v2_image(),
                desired_w: Some(v2_image()),
                coordinator: Some(stalled(v2_image(), 1)),
                workers: Some(settled(v2_image(), 2)),
                phase: RollingCoordinator,
                apply_coordinator: true,
                reason: None,
                stalled: Some(StalledPart::Coordinator),
            },
            Row {
                name: "RollingCoordinator -> Idle: coordinator rolled",
                previous: RollingCoordinator,
                desired_c: v2_image(),
                desired_w: Some(v2_image()),
                coordinator: Some(settled(v2_image(), 1)),
                workers: Some(settled(v2_image(), 2)),
                phase: Idle,
                apply_coordinator: true,
                reason: None,
                stalled: None,
            },
            Row {
                name: "config change rolls workers first",
                previous: Idle,
                desired_c: facts("t3", "sqe:1", "c2", "s1", None),
                desired_w: Some(facts("t3", "sqe:1", "c2", "s1", None)),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(settled(v1(), 2)),
                phase: RollingWorkers,
                apply_coordinator: false,
                reason: Some(ConfigChanged),
                stalled: None,
            },
            Row {
                name: "secret change rolls workers first",
                previous: Idle,
                desired_c: facts("t4", "sqe:1", "c1", "s2", None),
                desired_w: Some(facts("t4", "sqe:1", "c1", "s2", None)),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(settled(v1(), 2)),
                phase: RollingWorkers,
                apply_coordinator: false,
                reason: Some(SecretChanged),
                stalled: None,
            },
            Row {
                name: "restart request rolls workers first",
                previous: Idle,
                desired_c: facts("t5", "sqe:1", "c1", "s1", Some("r1")),
                desired_w: Some(facts("t5", "sqe:1", "c1", "s1", Some("r1"))),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(settled(v1(), 2)),
                phase: RollingWorkers,
                apply_coordinator: false,
                reason: Some(RestartRequested),
                stalled: None,
            },
            Row {
                name: "a coordinator-only change rolls the coordinator at once",
                previous: Idle,
                desired_c: facts("t6", "sqe:1", "c1", "s1", None),
                desired_w: Some(v1()),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(settled(v1(), 2)),
                phase: RollingCoordinator,
                apply_coordinator: true,
                reason: Some(SpecChanged),
                stalled: None,
            },
            Row {
                name: "scaling workers is not a rollout",
                previous: Idle,
                desired_c: v1(),
                desired_w: Some(v1()),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(scaling(v1())),
                phase: Idle,
                apply_coordinator: true,
                reason: None,
                stalled: None,
            },
            Row {
                name: "scaling while a change waits: the coordinator waits for all workers",
                previous: Idle,
                desired_c: v2_image(),
                desired_w: Some(v2_image()),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(scaling(v2_image())),
                phase: RollingWorkers,
                apply_coordinator: false,
                reason: Some(ImageChanged),
                stalled: None,
            },
            Row {
                name: "worker Deployment deleted: recreate it, keep the coordinator",
                previous: Idle,
                desired_c: v2_image(),
                desired_w: Some(v2_image()),
                coordinator: Some(settled(v1(), 1)),
                workers: None,
                phase: RollingWorkers,
                apply_coordinator: false,
                reason: Some(ImageChanged),
                stalled: None,
            },
            Row {
                name: "coordinator Deployment deleted mid-rollout: recreate it",
                previous: RollingWorkers,
                desired_c: v2_image(),
                desired_w: Some(v2_image()),
                coordinator: None,
                workers: Some(rolling(v2_image(), 2)),
                phase: RollingWorkers,
                apply_coordinator: true,
                reason: None,
                stalled: None,
            },
            Row {
                name: "coordinator deleted, workers settled: recreate it",
                previous: Idle,
                desired_c: v1(),
                desired_w: Some(v1()),
                coordinator: None,
                workers: Some(settled(v1(), 2)),
                phase: RollingCoordinator,
                apply_coordinator: true,
                reason: None,
                stalled: None,
            },
            Row {
                name: "a worker-only change: RollingWorkers while old worker pods remain",
                previous: RollingWorkers,
                desired_c: v1(),
                desired_w: Some(facts("t7", "sqe:1", "c1", "s1", None)),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(rolling(facts("t7", "sqe:1", "c1", "s1", None), 2)),
                phase: RollingWorkers,
                apply_coordinator: false,
                reason: None,
                stalled: None,
            },
            Row {
                name: "a worker-only change done: Idle",
                previous: RollingWorkers,
                desired_c: v1(),
                desired_w: Some(facts("t7", "sqe:1", "c1", "s1", None)),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(settled(facts("t7", "sqe:1", "c1", "s1", None), 2)),
                phase: Idle,
                apply_coordinator: true,
                reason: None,
                stalled: None,
            },
            Row {
                name: "kubectl rollout restart of the workers is not our rollout",
                previous: Idle,
                desired_c: v1(),
                desired_w: Some(v1()),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(rolling(v1(), 2)),
                phase: Idle,
                apply_coordinator: true,
                reason: None,
                stalled: None,
            },
            Row {
                name: "someone else's worker restart that stalls still shows as Degraded",
                previous: Idle,
                desired_c: v1(),
                desired_w: Some(v1()),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(stalled(v1(), 2)),
                phase: Idle,
                apply_coordinator: true,
                reason: None,
                stalled: Some(StalledPart::Workers),
            },
            Row {
                name: "kubectl rollout restart of the coordinator is not our rollout",
                previous: Idle,
                desired_c: v1(),
                desired_w: Some(v1()),
                coordinator: Some(rolling(v1(), 1)),
                workers: Some(settled(v1(), 2)),
                phase: Idle,
                apply_coordinator: true,
                reason: None,
                stalled: None,
            },
            Row {
                name: "a change arriving during someone else's worker restart waits for it",
                previous: Idle,
                desired_c: v2_image(),
                desired_w: Some(v2_image()),
                coordinator: Some(settled(v1(), 1)),
                workers: Some(rolling(v1(), 2)),
                phase: RollingWorkers,
                apply_coordinator: false,
                reason: Some(ImageChanged),
                stalled: None,
            },
            // ---- hybrid: only a coordinator ----
            Row {
                name: "hybrid: new cluster",
                previous: Idle,
                desired_c: v1(),
                desired_w: None,
                coordinator: None,
                workers: None,
                phase: RollingCoordinator,
                apply_coordinator: true,
                reason: None,
                stalled: None,
            },
            Row {
                name: "hybrid: image change rolls the coordinator",
                previous: Idle,
                desired_c: v2_image(),
                desired_w: None,
                coordinator: Some(settled(v1(), 1)),
                workers: None,
                phase: RollingCoordinator,
                apply_coordinator: true,
                reason: Some(ImageChanged),
                stalled: None,
            },
            Row {
                name: "hybrid: kubectl rollout restart is not our rollout",
                previous: Idle,
                desired_c: v1(),
                desired_w: None,
                coordinator: Some(rolling(v1(), 1)),
                workers: None,
                phase: Idle,
                apply_coordinator: true,
                reason: None,
                stalled: None,
            },
            Row {
                name: "hybrid: our rollout continues while old pods remain",
                previous: RollingCoordinator,
                desired_c: v2_image(),
                desired_w: None,
                coordinator: Some(rolling(v2_image(), 1)),
                workers: None,
                phase: RollingCoordinator,
                apply_coordinator: true,
                reason: None,
                stalled: None,
            },
            Row {
                name: "hybrid: idle",
                previous: Idle,
                desired_c: v1(),
                desired_w: None,
                coordinator: Some(settled(v1(), 1)),
                workers: None,
                phase: Idle,
                apply_coordinator: true,
                reason: None,
                stalled: None,
            },
        ];
        for row in rows {
            let step = decide(RolloutInput {
                desired_coordinator: &row.desired_c,
                desired_workers: row.desired_w.as_ref(),
                coordinator: row.coordinator.as_ref(),
                workers: row.workers.as_ref(),
                previous: row.previous,
            });
            assert_eq!(step.phase, row.phase, "{}: phase", row.name);
            assert!(step.apply_workers, "{}: workers always applied", row.name);
            assert_eq!(
                step.apply_coordinator, row.apply_coordinator,
                "{}: apply coordinator",
                row.name
            );
            assert_eq!(step.reason, row.reason, "{}: reason", row.name);
            assert_eq!(step.stalled, row.stalled, "{}: stalled", row.name);
        }
    }

    #[test]
    fn reads_a_live_deployment() {
        let live = serde_json::json!({
            "metadata": {"generation": 7},
            "spec": {
                "replicas": 3,
                "template": {
                    "metadata": {"annotations": {
                        "sqe.dev/template-hash": "abc",
                        "sqe.dev/config-hash": "c",
                        "sqe.dev/secret-hash": "s",
                        "kubectl.kubernetes.io/restartedAt": "2026-11-25T00:00:00Z"
                    }},
                    "spec": {"containers": [{"name": "sqe", "image": "sqe:9"}]}
                }
            },
            "status": {
                "observedGeneration": 7, "replicas": 4, "updatedReplicas": 1,
                "readyReplicas": 3, "availableReplicas": 3,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
            }
        });
        let obs = DeploymentObservation::from_live(&live);
        assert_eq!(obs.facts.template_hash, "abc");
        assert_eq!(obs.facts.image, "sqe:9");
        assert_eq!(obs.facts.restart_request, None);
        assert_eq!(obs.replicas, 3);
        assert!(obs.stalled);
        assert!(obs.has_old_pods());
        assert!(!obs.fully_rolled());
    }
}
