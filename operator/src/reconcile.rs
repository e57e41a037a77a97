//! The controller: watches SqeClusters, their children and the Secrets they reference, and runs
//! the reconcile pipeline. The only module that talks to the API server.
//!
//! ```text
//!  read (cluster, Secrets, live children by label)
//!   └▶ validate ──invalid──▶ status Invalid + Warning Event, wait for the next change
//!   └▶ build ─▶ decide ─▶ apply (server-side apply, one field manager; unchanged objects are
//!                         skipped by their applied-hash; workloads last; coordinator gated)
//!                     ─▶ sweep (children the spec no longer asks for, found by label)
//!                     ─▶ status (written only when it changed) + Events on transitions
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use rand::RngCore;
use serde_json::{Value, json};
use tracing::{Instrument, info, info_span, warn};

use crate::announce::{self, AnnounceInput, Announcement, PreviousRollout};
use crate::build::{self, BuildContext, ChildKind, Desired};
use crate::crd::{ClusterMode, SqeCluster, SqeClusterStatus};
use crate::drift;
use crate::labels::{self, FIELD_MANAGER, Names, Role};
use crate::rollout::{self, DeploymentObservation, RolloutInput, RolloutPhase, StalledPart};
use crate::status::{self, Outcome, StatusInput};
use crate::telemetry::{ErrorLabel, Metrics, OutcomeLabel, ReasonLabel, ResultLabel};
use crate::validate::{self, SecretState, SecretsSeen};

/// One error per step; the variant name is the metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading Secret {name}: {source}")]
    ReadSecret { name: String, source: kube::Error },
    #[error("listing {kind}: {source}")]
    ListChildren {
        kind: &'static str,
        source: kube::Error,
    },
    #[error("discovering the ServiceMonitor API: {0}")]
    Discovery(kube::Error),
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("deleting {kind} {name}: {source}")]
    Delete {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("writing status: {0}")]
    PatchStatus(kube::Error),
    #[error("the object has no {0}")]
    MissingMetadata(&'static str),
}

impl Error {
    pub fn metric_label(&self) -> String {
        match self {
            Error::ReadSecret { .. } => "ReadSecret".into(),
            Error::ListChildren { .. } => "ListChildren".into(),
            Error::Discovery(_) => "Discovery".into(),
            Error::Apply { kind, .. } => format!("Apply{kind}"),
            Error::Delete { kind, .. } => format!("Delete{kind}"),
            Error::PatchStatus(_) => "PatchStatus".into(),
            Error::MissingMetadata(_) => "MissingMetadata".into(),
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub reporter: Reporter,
    pub metrics: Arc<Metrics>,
    service_monitor_api: Mutex<Option<(Instant, bool)>>,
    failures: Mutex<HashMap<ObjectRef<SqeCluster>, u32>>,
    /// The status this process last wrote (or found current) per cluster, by UID. The
    /// controller's cache can lag behind our own status write, so a reconcile that starts right
    /// after another would otherwise see the older status and announce a transition twice.
    /// Only this process writes status, and it exits when it loses the leader lease, so what it
    /// remembers is never older than the API server's copy.
    written: Mutex<HashMap<ObjectRef<SqeCluster>, (String, SqeClusterStatus)>>,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, identity: &str) -> Self {
        Self {
            client,
            reporter: Reporter {
                controller: labels::MANAGED_BY.into(),
                instance: Some(identity.to_string()),
            },
            metrics,
            service_monitor_api: Mutex::new(None),
            failures: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// The newest status of `cluster` this process knows: its own last write, else the cache's.
    fn previous_status(&self, cluster: &SqeCluster) -> SqeClusterStatus {
        let uid = cluster.uid().unwrap_or_default();
        self.written
            .lock()
            .ok()
            .and_then(|w| {
                w.get(&ObjectRef::from_obj(cluster))
                    .filter(|(written_uid, _)| *written_uid == uid)
                    .map(|(_, status)| status.clone())
            })
            .or_else(|| cluster.status.clone())
            .unwrap_or_default()
    }

    fn remember_status(&self, cluster: &SqeCluster, status: SqeClusterStatus) {
        if let Ok(mut w) = self.written.lock() {
            w.insert(
                ObjectRef::from_obj(cluster),
                (cluster.uid().unwrap_or_default(), status),
            );
        }
    }

    /// Drops what is remembered about clusters that no longer exist.
    fn retain_statuses(&self, present: &std::collections::HashSet<ObjectRef<SqeCluster>>) {
        if let Ok(mut w) = self.written.lock() {
            w.retain(|key, _| present.contains(key));
        }
    }

    fn forget_status(&self, cluster: &SqeCluster) {
        if let Ok(mut w) = self.written.lock() {
            w.remove(&ObjectRef::from_obj(cluster));
        }
    }

    /// Whether `monitoring.coreos.com/v1` serves ServiceMonitors (cached for a minute).
    async fn service_monitor_api(&self) -> Result<bool, Error> {
        if let Ok(guard) = self.service_monitor_api.lock()
            && let Some((at, present)) = *guard
            && at.elapsed() < Duration::from_secs(60)
        {
            return Ok(present);
        }
        let present = match self
            .client
            .list_api_group_resources("monitoring.coreos.com/v1")
            .await
        {
            Ok(list) => list.resources.iter().any(|r| r.name == "servicemonitors"),
            Err(kube::Error::Api(e)) if e.code == 404 => false,
            Err(e) => return Err(Error::Discovery(e)),
        };
        if let Ok(mut guard) = self.service_monitor_api.lock() {
            *guard = Some((Instant::now(), present));
        }
        Ok(present)
    }
}

/// Runs the controller for one namespace (or all, with `None`) until shutdown.
pub async fn run_controller(ctx: Arc<Context>, namespace: Option<String>, concurrency: u16) {
    let client = ctx.client.clone();
    let api = |c: &Client| -> (Api<SqeCluster>, Api<Secret>) {
        match &namespace {
            Some(ns) => (
                Api::namespaced(c.clone(), ns),
                Api::namespaced(c.clone(), ns),
            ),
            None => (Api::all(c.clone()), Api::all(c.clone())),
        }
    };
    let (clusters, secrets) = api(&client);
    // Only our children: the watches (and their memory) stay small in busy namespaces.
    let children = || {
        watcher::Config::default().labels(&format!(
            "{}={}",
            labels::LABEL_MANAGED_BY,
            labels::MANAGED_BY
        ))
    };
    let controller = Controller::new(clusters, watcher::Config::default());
    let store = controller.store();
    // clusters{phase} follows the cache, so deleted clusters leave the gauge (and the
    // remembered statuses).
    let gauge_store = store.clone();
    let gauge_ctx = Arc::clone(&ctx);
    let scope = namespace.clone();
    tokio::spawn(async move {
        loop {
            let clusters = gauge_store.state();
            let present: std::collections::HashSet<ObjectRef<SqeCluster>> =
                clusters.iter().map(|c| ObjectRef::from_obj(&**c)).collect();
            gauge_ctx.retain_statuses(&present);
            let phases: Vec<(String, String)> = clusters
                .iter()
                .map(|c| {
                    (
                        format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()),
                        c.status
                            .as_ref()
                            .and_then(|s| s.phase.clone())
                            .unwrap_or_else(|| "Creating".into()),
                    )
                })
                .collect();
            gauge_ctx.metrics.replace_phases(scope.as_deref(), phases);
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    });
    let ns_api = |c: &Client| match &namespace {
        Some(ns) => (
            Api::<Deployment>::namespaced(c.clone(), ns),
            Api::<ConfigMap>::namespaced(c.clone(), ns),
            Api::<Service>::namespaced(c.clone(), ns),
            Api::<ServiceAccount>::namespaced(c.clone(), ns),
            Api::<PodDisruptionBudget>::namespaced(c.clone(), ns),
            Api::<NetworkPolicy>::namespaced(c.clone(), ns),
        ),
        None => (
            Api::all(c.clone()),
            Api::all(c.clone()),
            Api::all(c.clone()),
            Api::all(c.clone()),
            Api::all(c.clone()),
            Api::all(c.clone()),
        ),
    };
    let (deployments, config_maps, services, accounts, pdbs, policies) = ns_api(&client);
    controller
        .owns(deployments, children())
        .owns(config_maps, children())
        .owns(services, children())
        .owns(accounts, children())
        .owns(pdbs, children())
        .owns(policies, children())
        // Secrets: our internal one (owned) and those a cluster references.
        .watches(
            secrets,
            watcher::Config::default(),
            move |secret: Secret| {
                let name = secret.name_any();
                let ns = secret.namespace();
                let owners: Vec<String> = secret
                    .owner_references()
                    .iter()
                    .filter(|o| o.kind == "SqeCluster")
                    .map(|o| o.name.clone())
                    .collect();
                store
                    .state()
                    .into_iter()
                    .filter(|c| c.namespace() == ns)
                    .filter(|c| {
                        owners.contains(&c.name_any())
                            || c.spec.existing_secret.as_deref() == Some(name.as_str())
                            || c.spec.auth.users_secret.name == name
                    })
                    .map(|c| ObjectRef::from_obj(&*c))
                    .collect::<Vec<_>>()
            },
        )
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}

fn error_policy(cluster: Arc<SqeCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(&*cluster);
    let failures = ctx
        .failures
        .lock()
        .map(|mut f| {
            let n = f.entry(key).or_insert(0);
            *n = n.saturating_add(1);
            *n
        })
        .unwrap_or(1);
    let delay = Duration::from_secs((1u64 << failures.min(9)).min(300));
    warn!(
        namespace = cluster.namespace().unwrap_or_default(),
        name = cluster.name_any(),
        error = %error,
        retry_in_secs = delay.as_secs(),
        "reconcile failed"
    );
    Action::requeue(delay)
}

async fn reconcile(cluster: Arc<SqeCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = cluster
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let name = cluster.name_any();
    let span = info_span!("reconcile", namespace = %namespace, name = %name);
    let started = Instant::now();
    let result = reconcile_cluster(&cluster, &ctx, &namespace, &name)
        .instrument(span)
        .await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    let label = match &result {
        Ok((_, invalid)) if *invalid => "invalid",
        Ok(_) => "ok",
        Err(_) => "error",
    };
    ctx.metrics
        .reconciles
        .get_or_create(&ResultLabel {
            result: label.into(),
        })
        .inc();
    match result {
        Ok((action, _)) => {
            if let Ok(mut f) = ctx.failures.lock() {
                f.remove(&ObjectRef::from_obj(&*cluster));
            }
            Ok(action)
        }
        Err(e) => {
            ctx.metrics
                .errors
                .get_or_create(&ErrorLabel {
                    error: e.metric_label(),
                })
                .inc();
            Err(e)
        }
    }
}

fn api_resource(kind: ChildKind) -> ApiResource {
    let (group, version, kind_name, plural) = kind.gvk();
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind_name.into(),
        plural: plural.into(),
    }
}

async fn read_secret(client: &Client, namespace: &str, name: &str) -> Result<SecretState, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(None) => Ok(SecretState::Missing),
        Ok(Some(secret)) => Ok(SecretState::Found(
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect(),
        )),
        Err(source) => Err(Error::ReadSecret {
            name: name.into(),
            source,
        }),
    }
}

/// Returns the action and whether the spec was invalid.
async fn reconcile_cluster(
    cluster: &SqeCluster,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<(Action, bool), Error> {
    // Being deleted: the garbage collector removes the children; re-applying them would keep a
    // foreground delete (Argo CD's default prune) from ever completing.
    if cluster.metadata.deletion_timestamp.is_some() {
        ctx.metrics.set_phase(&format!("{namespace}/{name}"), None);
        ctx.forget_status(cluster);
        return Ok((Action::await_change(), false));
    }
    let client = &ctx.client;
    let recorder = Recorder::new(client.clone(), ctx.reporter.clone());
    let reference = cluster.object_ref(&());
    let previous = ctx.previous_status(cluster);
    let names = Names::new(name, namespace);

    // read
    let mut secrets = SecretsSeen::default();
    if let Some(s) = &cluster.spec.existing_secret {
        secrets.existing = read_secret(client, namespace, s).await?;
    }
    secrets.users = read_secret(client, namespace, &cluster.spec.auth.users_secret.name).await?;

    // validate
    let plan = match validate::validate(cluster, &secrets) {
        Ok(plan) => plan,
        Err(problems) => {
            let new_status = status::compute(StatusInput {
                generation: cluster.metadata.generation,
                names: &names,
                previous: &previous,
                now: Time(Timestamp::now()),
                outcome: Outcome::Invalid(&problems),
            });
            let message = validate::describe(&problems);
            let was_same = previous.conditions.iter().any(|c| {
                c.type_ == status::DEGRADED
                    && c.reason == status::REASON_INVALID_SPEC
                    && c.message == message
            });
            if !was_same {
                warn!(problems = %message, "invalid spec; waiting for a change");
                publish(
                    ctx,
                    &recorder,
                    &reference,
                    EventType::Warning,
                    status::REASON_INVALID_SPEC,
                    &message,
                )
                .await;
            }
            write_status(ctx, cluster, &previous, new_status).await?;
            ctx.metrics
                .set_phase(&format!("{namespace}/{name}"), Some("Invalid"));
            return Ok((Action::await_change(), true));
        }
    };

    // live children, by label
    let mut live: BTreeMap<(ChildKind, String), Value> = BTreeMap::new();
    let service_monitor_api = ctx.service_monitor_api().await?;
    for kind in ChildKind::ALL {
        if kind == ChildKind::ServiceMonitor && !service_monitor_api {
            continue;
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &api_resource(kind));
        let list = api
            .list(&ListParams::default().labels(&labels::sweep_selector(name)))
            .await
            .map_err(|source| Error::ListChildren {
                kind: kind.kind(),
                source,
            })?;
        for object in list.items {
            let object_name = object.name_any();
            let value = serde_json::to_value(&object).unwrap_or(Value::Null);
            live.insert((kind, object_name), value);
        }
    }

    // build
    let internal_token = Some(
        live.get(&(ChildKind::Secret, names.internal_secret()))
            .and_then(|s| s.pointer(&format!("/data/{}", build::INTERNAL_TOKEN_KEY)))
            .and_then(Value::as_str)
            .and_then(|b64| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.decode(b64).ok()
            })
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .unwrap_or_else(generate_token),
    );
    let desired = build::build(
        &plan,
        &BuildContext {
            internal_token,
            service_monitor_api,
        },
    );

    // decide
    let observe = |role: Role| {
        live.get(&(ChildKind::Deployment, names.workload(role)))
            .map(DeploymentObservation::from_live)
    };
    let coordinator_obs = observe(Role::Coordinator);
    let workers_obs = observe(Role::Worker).filter(|_| plan.mode == ClusterMode::Distributed);
    let step = rollout::decide(RolloutInput {
        desired_coordinator: &desired.coordinator,
        desired_workers: desired.workers.as_ref(),
        coordinator: coordinator_obs.as_ref(),
        workers: workers_obs.as_ref(),
        previous: previous
            .rollout
            .as_ref()
            .and_then(|r| RolloutPhase::parse(&r.phase))
            .unwrap_or(RolloutPhase::Idle),
    });

    // announce what this pass starts, hands over, completes or finds stalled
    let previously_stalled = status::is_true(&previous, status::DEGRADED)
        && previous.conditions.iter().any(|c| {
            c.type_ == status::DEGRADED && StalledPart::from_condition_reason(&c.reason).is_some()
        });
    let told = announce::announcements(&AnnounceInput {
        previous: PreviousRollout {
            phase: previous
                .rollout
                .as_ref()
                .and_then(|r| RolloutPhase::parse(&r.phase)),
            coordinator_version_known: previous
                .versions
                .as_ref()
                .is_some_and(|v| v.coordinator.is_some()),
            stalled: previously_stalled,
        },
        desired_coordinator: &desired.coordinator,
        desired_workers: desired.workers.as_ref(),
        coordinator: coordinator_obs.as_ref(),
        workers: workers_obs.as_ref(),
        step: &step,
        paused: plan.paused,
    });
    for a in &told {
        publish_announcement(ctx, &recorder, &reference, *a, &plan.image.version).await;
    }

    // apply + sweep (not while paused)
    if !plan.paused {
        apply_children(ctx, namespace, &desired, &live, &step, &names).await?;
        sweep(ctx, namespace, &desired, &live).await?;
    }

    // status
    let new_status = status::compute(StatusInput {
        generation: cluster.metadata.generation,
        names: &names,
        previous: &previous,
        now: Time(Timestamp::now()),
        outcome: Outcome::Valid {
            plan: &plan,
            step: &step,
            coordinator: coordinator_obs.as_ref(),
            workers: workers_obs.as_ref(),
            service_monitor_missing: plan.service_monitor.is_some() && !service_monitor_api,
        },
    });
    let was_missing = !previous
        .conditions
        .iter()
        .any(|c| c.type_ == status::SERVICE_MONITOR && c.reason == status::REASON_CRD_MISSING);
    if plan.service_monitor.is_some() && !service_monitor_api && was_missing {
        publish(
            ctx,
            &recorder,
            &reference,
            EventType::Warning,
            "ServiceMonitorCRDMissing",
            "spec.metrics.serviceMonitor.enabled is true but the monitoring.coreos.com/v1 ServiceMonitor API is not installed; metrics are still served on port 9090",
        )
        .await;
    }
    ctx.metrics
        .set_phase(&format!("{namespace}/{name}"), new_status.phase.as_deref());
    write_status(ctx, cluster, &previous, new_status).await?;

    let action = if step.phase != RolloutPhase::Idle {
        Action::requeue(Duration::from_secs(30))
    } else if plan.service_monitor.is_some() && !service_monitor_api {
        // Look for the ServiceMonitor API again once its discovery cache expires: installing
        // prometheus-operator's CRDs is not a change of this cluster.
        Action::requeue(Duration::from_secs(60))
    } else {
        Action::requeue(Duration::from_secs(600))
    };
    Ok((action, false))
}

/// One announcement as an Event and its counters.
async fn publish_announcement(
    ctx: &Context,
    recorder: &Recorder,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    announcement: Announcement,
    version: &str,
) {
    let count = |outcome: &str| {
        ctx.metrics
            .rollouts
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    };
    let (kind, reason, message) = match announcement {
        Announcement::Started { reason, target } => {
            count("started");
            ctx.metrics
                .restarts
                .get_or_create(&ReasonLabel {
                    reason: reason.as_str().into(),
                })
                .inc();
            (
                EventType::Normal,
                reason.as_str(),
                format!(
                    "rolling the {} to a new pod template ({})",
                    target.as_str(),
                    reason.as_str()
                ),
            )
        }
        Announcement::WorkersRolledOut => (
            EventType::Normal,
            "WorkersRolledOut",
            "every worker runs the new template; rolling the coordinator".to_string(),
        ),
        Announcement::CoordinatorRolledOut => {
            count("completed");
            (
                EventType::Normal,
                "CoordinatorRolledOut",
                format!("the coordinator runs {version}; rollout complete"),
            )
        }
        Announcement::Stalled(part) => {
            count("stalled");
            let what = match part {
                StalledPart::Workers => {
                    "the worker rollout made no progress within its deadline; the coordinator is left unchanged"
                }
                StalledPart::Coordinator => {
                    "the coordinator rollout made no progress within its deadline"
                }
            };
            (EventType::Warning, "RolloutStalled", what.to_string())
        }
    };
    publish(ctx, recorder, reference, kind, reason, &message).await;
}

async fn apply_children(
    ctx: &Context,
    namespace: &str,
    desired: &Desired,
    live: &BTreeMap<(ChildKind, String), Value>,
    step: &rollout::Step,
    names: &Names,
) -> Result<(), Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for child in &desired.children {
        if child.kind == ChildKind::Deployment {
            let is_coordinator = child.name == names.workload(Role::Coordinator);
            if (is_coordinator && !step.apply_coordinator)
                || (!is_coordinator && !step.apply_workers)
            {
                continue;
            }
        }
        let live_child = live.get(&(child.kind, child.name.clone()));
        let current_hash = live_child
            .and_then(|o| o.pointer("/metadata/annotations"))
            .and_then(|a| a.get(labels::ANNOTATION_APPLIED_HASH))
            .and_then(Value::as_str);
        if let Some(live_child) = live_child
            && current_hash == Some(child.applied_hash.as_str())
        {
            match drift::first_difference(&child.object, live_child) {
                None => continue,
                Some(field) => info!(
                    kind = child.kind.kind(),
                    object = %child.name,
                    field = %field,
                    "changed outside the operator; applying the rendered value again"
                ),
            }
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), namespace, &api_resource(child.kind));
        api.patch(&child.name, &params, &Patch::Apply(&child.object))
            .await
            .map_err(|source| Error::Apply {
                kind: child.kind.kind(),
                name: child.name.clone(),
                source,
            })?;
        ctx.metrics.write("apply", child.kind.kind());
        info!(kind = child.kind.kind(), object = %child.name, "applied");
    }
    Ok(())
}

async fn sweep(
    ctx: &Context,
    namespace: &str,
    desired: &Desired,
    live: &BTreeMap<(ChildKind, String), Value>,
) -> Result<(), Error> {
    for (kind, name) in live.keys() {
        if desired.get(*kind, name).is_some() {
            continue;
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), namespace, &api_resource(*kind));
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(Error::Delete {
                    kind: kind.kind(),
                    name: name.clone(),
                    source,
                });
            }
        }
        ctx.metrics.write("delete", kind.kind());
        info!(kind = kind.kind(), object = %name, "deleted: the spec no longer asks for it");
    }
    Ok(())
}

async fn write_status(
    ctx: &Context,
    cluster: &SqeCluster,
    previous: &SqeClusterStatus,
    new_status: SqeClusterStatus,
) -> Result<(), Error> {
    if *previous == new_status {
        ctx.remember_status(cluster, new_status);
        return Ok(());
    }
    let api: Api<SqeCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "sqe.dev/v1alpha1",
        "kind": "SqeCluster",
        "status": new_status,
    });
    api.patch_status(
        &cluster.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::PatchStatus)?;
    ctx.metrics.write("apply", "SqeCluster/status");
    ctx.remember_status(cluster, new_status);
    Ok(())
}

async fn publish(
    ctx: &Context,
    recorder: &Recorder,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    match recorder.publish(&event, reference).await {
        Ok(()) => ctx.metrics.write("create", "Event"),
        Err(e) => warn!(error = %e, reason, "cannot publish an Event"),
    }
}

/// 32 random bytes, base64url: the coordinator <-> worker credential.
fn generate_token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
