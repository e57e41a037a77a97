//! Status: observations → `SqeClusterStatus`. Pure; conditions keep their
//! `lastTransitionTime` while their status does not change, so an idle cluster's status is
//! byte-identical from one reconcile to the next (and nothing is written).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{
    ClusterMode, EndpointsStatus, ReplicasStatus, RolloutStatus, SqeClusterStatus, VersionsStatus,
};
use crate::engine_config::{PORT_FLIGHT_SQL, PORT_TRINO_HTTP};
use crate::labels::{self, Names, Role};
use crate::rollout::{DeploymentObservation, RolloutPhase, StalledPart, Step};
use crate::validate::{ClusterPlan, SpecProblem, describe};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const PAUSED: &str = "Paused";
pub const SERVICE_MONITOR: &str = "ServiceMonitorAvailable";

/// Condition reasons the reconciler reads back from the status it wrote.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
pub const REASON_CRD_MISSING: &str = "CRDMissing";

/// What the status is computed from.
pub struct StatusInput<'a> {
    pub generation: Option<i64>,
    pub names: &'a Names,
    pub previous: &'a SqeClusterStatus,
    pub now: Time,
    pub outcome: Outcome<'a>,
}

/// The result of validate/decide for this reconcile.
pub enum Outcome<'a> {
    Invalid(&'a [SpecProblem]),
    Valid {
        plan: &'a ClusterPlan,
        step: &'a Step,
        coordinator: Option<&'a DeploymentObservation>,
        workers: Option<&'a DeploymentObservation>,
        /// ServiceMonitor asked for but the monitoring.coreos.com API is missing.
        service_monitor_missing: bool,
    },
}

pub fn compute(input: StatusInput<'_>) -> SqeClusterStatus {
    let prev = input.previous;
    let mut status = SqeClusterStatus {
        observed_generation: input.generation,
        conditions: prev.conditions.clone(),
        versions: prev.versions.clone(),
        coordinator: prev.coordinator.clone(),
        workers: prev.workers.clone(),
        endpoints: Some(EndpointsStatus {
            flight_sql: format!(
                "{}:{PORT_FLIGHT_SQL}",
                input.names.coordinator_service_host()
            ),
            trino_http: format!(
                "{}:{PORT_TRINO_HTTP}",
                input.names.coordinator_service_host()
            ),
        }),
        ..Default::default()
    };
    let now = input.now;
    let mut set = |type_: &str, ok: bool, reason: &str, message: String| {
        set_condition(
            &mut status.conditions,
            type_,
            ok,
            reason,
            message,
            &now,
            input.generation,
        )
    };

    match input.outcome {
        Outcome::Invalid(problems) => {
            let message = describe(problems);
            set(READY, false, REASON_INVALID_SPEC, message.clone());
            set(
                PROGRESSING,
                false,
                REASON_INVALID_SPEC,
                "waiting for a corrected spec".into(),
            );
            set(DEGRADED, true, REASON_INVALID_SPEC, message);
            set(PAUSED, false, "NotPaused", String::new());
            status.phase = Some("Invalid".into());
            status.rollout = prev.rollout.clone();
        }
        Outcome::Valid {
            plan,
            step,
            coordinator,
            workers,
            service_monitor_missing,
        } => {
            let c_ready = coordinator.map_or(0, |c| c.ready_replicas);
            let w_ready = workers.map_or(0, |w| w.ready_replicas);
            let distributed = plan.mode == ClusterMode::Distributed;

            status.coordinator = Some(replicas_status(
                coordinator,
                if plan.stopped { 0 } else { 1 },
                None,
            ));
            status.workers = plan.workers.as_ref().map(|w| {
                replicas_status(
                    workers,
                    w.replicas,
                    Some(labels::selector_string(&labels::selector(
                        &plan.names.cluster,
                        Role::Worker,
                    ))),
                )
            });

            // Versions: recorded once a part fully runs the desired template.
            let mut versions = prev.versions.clone().unwrap_or_default();
            if coordinator.is_some_and(|c| {
                c.facts.image == plan.image.reference && c.fully_rolled() && c.replicas > 0
            }) {
                versions.coordinator = Some(plan.image.version.clone());
            }
            if distributed {
                if workers.is_some_and(|w| {
                    w.facts.image == plan.image.reference && w.fully_rolled() && w.replicas > 0
                }) {
                    versions.workers = Some(plan.image.version.clone());
                }
            } else {
                versions.workers = None;
            }
            status.versions = (versions != VersionsStatus::default()).then_some(versions);

            let prev_reason = prev
                .rollout
                .as_ref()
                .filter(|r| r.phase != RolloutPhase::Idle.as_str())
                .and_then(|r| r.reason.clone());
            status.rollout = Some(RolloutStatus {
                phase: step.phase.as_str().into(),
                reason: match step.phase {
                    RolloutPhase::Idle => None,
                    _ => step.reason.map(|r| r.as_str().to_string()).or(prev_reason),
                },
            });

            let workers_needed =
                distributed && plan.workers.as_ref().is_some_and(|w| w.replicas > 0);
            let ready =
                !plan.stopped && c_ready >= 1 && (!distributed || w_ready >= 1 || !workers_needed);
            let ready_message = if ready {
                format!(
                    "{c_ready} coordinator and {w_ready} workers ready; Flight SQL at {}",
                    status
                        .endpoints
                        .as_ref()
                        .map_or(String::new(), |e| e.flight_sql.clone())
                )
            } else if plan.stopped {
                "stopped (spec.clusterOperation.stopped)".into()
            } else {
                format!("{c_ready} coordinator and {w_ready} workers ready")
            };
            set(
                READY,
                ready,
                if ready {
                    "Ready"
                } else if plan.stopped {
                    "Stopped"
                } else {
                    "PodsNotReady"
                },
                ready_message,
            );

            let progressing = step.phase != RolloutPhase::Idle
                || coordinator.is_none_or(|c| !c.fully_rolled())
                || (distributed && workers.is_none_or(|w| !w.fully_rolled()));
            let (p_reason, p_message) = match step.phase {
                RolloutPhase::RollingWorkers => (
                    "RollingWorkers",
                    "rolling the workers; the coordinator keeps its template until they are done",
                ),
                RolloutPhase::RollingCoordinator => {
                    ("RollingCoordinator", "rolling the coordinator")
                }
                RolloutPhase::Idle if progressing => (
                    "PodsChanging",
                    "pods are starting or being replaced outside a rollout (scaling, kubectl rollout restart)",
                ),
                RolloutPhase::Idle => ("UpToDate", "every part runs the desired template"),
            };
            set(PROGRESSING, progressing, p_reason, p_message.into());

            match step.stalled {
                Some(StalledPart::Workers) => set(
                    DEGRADED,
                    true,
                    StalledPart::Workers.condition_reason(),
                    "the worker rollout exceeded its progress deadline (ProgressDeadlineExceeded); the coordinator is left unchanged".into(),
                ),
                Some(StalledPart::Coordinator) => set(
                    DEGRADED,
                    true,
                    StalledPart::Coordinator.condition_reason(),
                    "the coordinator rollout exceeded its progress deadline (ProgressDeadlineExceeded)".into(),
                ),
                None => set(DEGRADED, false, "AsExpected", String::new()),
            }
            set(
                PAUSED,
                plan.paused,
                if plan.paused { "Paused" } else { "NotPaused" },
                if plan.paused {
                    "spec.clusterOperation.paused: changes are not applied".into()
                } else {
                    String::new()
                },
            );
            if plan.service_monitor.is_some() {
                set(
                    SERVICE_MONITOR,
                    !service_monitor_missing,
                    if service_monitor_missing {
                        REASON_CRD_MISSING
                    } else {
                        "Created"
                    },
                    if service_monitor_missing {
                        "spec.metrics.serviceMonitor.enabled is true but the monitoring.coreos.com/v1 ServiceMonitor API is not installed".into()
                    } else {
                        String::new()
                    },
                );
            } else {
                status.conditions.retain(|c| c.type_ != SERVICE_MONITOR);
            }

            let ever_ran = prev
                .versions
                .as_ref()
                .is_some_and(|v| v.coordinator.is_some());
            status.phase = Some(
                if plan.paused {
                    "Paused"
                } else if plan.stopped {
                    "Stopped"
                } else if step.stalled.is_some() {
                    "Degraded"
                } else if step.phase != RolloutPhase::Idle && ever_ran {
                    "Upgrading"
                } else if ready {
                    "Running"
                } else if !ever_ran {
                    "Creating"
                } else {
                    "Degraded"
                }
                .into(),
            );
        }
    }
    status
}

fn replicas_status(
    obs: Option<&DeploymentObservation>,
    desired: i32,
    selector: Option<String>,
) -> ReplicasStatus {
    let ready = obs.map_or(0, |o| o.ready_replicas);
    ReplicasStatus {
        replicas: desired,
        ready_replicas: ready,
        updated_replicas: obs.map_or(0, |o| o.updated_replicas),
        ready: format!("{ready}/{desired}"),
        selector,
    }
}

/// Sets a condition, keeping `lastTransitionTime` when its status is unchanged.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    now: &Time,
    generation: Option<i64>,
) {
    let status = if ok { "True" } else { "False" };
    let existing = conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = match existing.map(|i| &conditions[i]) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now.clone(),
    };
    let condition = Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time,
    };
    match existing {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
    conditions.sort_by_key(|c| order(&c.type_));
}

fn order(type_: &str) -> usize {
    [READY, PROGRESSING, DEGRADED, PAUSED, SERVICE_MONITOR]
        .iter()
        .position(|t| *t == type_)
        .unwrap_or(usize::MAX)
}

/// Whether a condition of that type is True.
pub fn is_true(status: &SqeClusterStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::SqeCluster;
    use crate::rollout::RolloutPhase;
    use crate::validate::{SecretsSeen, validate};
    use k8s_openapi::jiff::Timestamp;

    fn plan(mode: &str) -> ClusterPlan {
        let cluster: SqeCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "sqe.dev/v1alpha1", "kind": "SqeCluster",
            "metadata": {"name": "c", "namespace": "ns"},
            "spec": {"mode": mode, "catalog": {"uri": "http://cat"},
                     "auth": {"usersSecret": {"name": "u"}}}
        }))
        .expect("cluster");
        validate(&cluster, &SecretsSeen::default()).expect("valid")
    }

    fn obs(ready: i32, replicas: i32) -> DeploymentObservation {
        DeploymentObservation {
            replicas,
            status_replicas: replicas,
            updated_replicas: replicas,
            ready_replicas: ready,
            available_replicas: ready,
            ..Default::default()
        }
    }

    fn run(
        plan: &ClusterPlan,
        c: Option<&DeploymentObservation>,
        w: Option<&DeploymentObservation>,
        prev: &SqeClusterStatus,
    ) -> SqeClusterStatus {
        let step = Step {
            phase: RolloutPhase::Idle,
            apply_workers: true,
            apply_coordinator: true,
            reason: None,
            stalled: None,
        };
        compute(StatusInput {
            generation: Some(2),
            names: &plan.names,
            previous: prev,
            now: Time(Timestamp::UNIX_EPOCH),
            outcome: Outcome::Valid {
                plan,
                step: &step,
                coordinator: c,
                workers: w,
                service_monitor_missing: false,
            },
        })
    }

    #[test]
    fn ready_is_never_true_with_zero_ready_pods() {
        let p = plan("distributed");
        let none = run(&p, None, None, &SqeClusterStatus::default());
        assert!(!is_true(&none, READY));
        let no_workers = run(
            &p,
            Some(&obs(1, 1)),
            Some(&obs(0, 2)),
            &SqeClusterStatus::default(),
        );
        assert!(!is_true(&no_workers, READY));
        let no_coordinator = run(
            &p,
            Some(&obs(0, 1)),
            Some(&obs(2, 2)),
            &SqeClusterStatus::default(),
        );
        assert!(!is_true(&no_coordinator, READY));
        assert_eq!(no_coordinator.phase.as_deref(), Some("Creating"));
        let all = run(
            &p,
            Some(&obs(1, 1)),
            Some(&obs(2, 2)),
            &SqeClusterStatus::default(),
        );
        assert!(is_true(&all, READY));
        assert_eq!(all.phase.as_deref(), Some("Running"));
        assert_eq!(all.workers.as_ref().map(|w| w.ready.as_str()), Some("2/2"));
        assert_eq!(all.observed_generation, Some(2));
        assert_eq!(
            all.endpoints.as_ref().map(|e| e.flight_sql.as_str()),
            Some("c-coordinator.ns.svc:50051")
        );
    }

    #[test]
    fn an_unchanged_observation_gives_an_identical_status() {
        let p = plan("hybrid");
        let first = run(&p, Some(&obs(1, 1)), None, &SqeClusterStatus::default());
        let mut later = run(&p, Some(&obs(1, 1)), None, &first);
        assert_eq!(first, later, "nothing changed, so nothing is written");
        // A real change moves lastTransitionTime only on the condition that flipped.
        later = run(&p, Some(&obs(0, 1)), None, &first);
        let ready = later
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .expect("ready");
        assert_eq!(ready.status, "False");
    }
}
