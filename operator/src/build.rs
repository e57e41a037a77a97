//! Build: a [`ClusterPlan`] → every object the cluster needs. Pure and deterministic: the same
//! plan always gives byte-identical objects (BTreeMaps everywhere), so GitOps diffs stay empty.
//!
//! ```text
//!   ClusterPlan ─▶ ServiceAccounts, ConfigMap (sqe.toml), internal Secret
//!               ─▶ Services (coordinator ClusterIP, workers headless), PDB, NetworkPolicies,
//!                  ServiceMonitor (when enabled and its API exists)
//!               ─▶ Deployments (workers, coordinator) — applied last, gated by `rollout::decide`
//! ```
//!
//! Each object carries `sqe.dev/applied-hash`, the hash of its own content, so the reconciler
//! can skip writes that would change nothing.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, Secret, SecretEnvSource,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort,
    ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::crd::ClusterMode;
use crate::engine_config::{
    ADVERTISE_URL_ENV, CONFIG_DIR, CONFIG_FILE, COORDINATOR_ADVERTISE_URL_ENV, DATA_DIR,
    INTERNAL_TOKEN_ENV, POD_IP_ENV, PORT_FLIGHT_SQL, PORT_HEALTH, PORT_METRICS, PORT_TRINO_HTTP,
    PORT_WORKER, SPILL_DIR, USERS_DIR, USERS_FILE,
};
use crate::labels::{self, Role};
use crate::validate::{ClusterPlan, DisruptionBudget, RolePlan, hex};

pub const INTERNAL_TOKEN_KEY: &str = "internal-token";
const USER_ID: i64 = 1000;

/// The kinds of object the operator owns, in apply order (workloads last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChildKind {
    ServiceAccount,
    ConfigMap,
    Secret,
    Service,
    PodDisruptionBudget,
    NetworkPolicy,
    ServiceMonitor,
    Deployment,
}

impl ChildKind {
    pub const ALL: [ChildKind; 8] = [
        ChildKind::ServiceAccount,
        ChildKind::ConfigMap,
        ChildKind::Secret,
        ChildKind::Service,
        ChildKind::PodDisruptionBudget,
        ChildKind::NetworkPolicy,
        ChildKind::ServiceMonitor,
        ChildKind::Deployment,
    ];
    /// (group, version, kind, plural)
    pub fn gvk(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            ChildKind::ServiceAccount => ("", "v1", "ServiceAccount", "serviceaccounts"),
            ChildKind::ConfigMap => ("", "v1", "ConfigMap", "configmaps"),
            ChildKind::Secret => ("", "v1", "Secret", "secrets"),
            ChildKind::Service => ("", "v1", "Service", "services"),
            ChildKind::PodDisruptionBudget => (
                "policy",
                "v1",
                "PodDisruptionBudget",
                "poddisruptionbudgets",
            ),
            ChildKind::NetworkPolicy => (
                "networking.k8s.io",
                "v1",
                "NetworkPolicy",
                "networkpolicies",
            ),
            ChildKind::ServiceMonitor => (
                "monitoring.coreos.com",
                "v1",
                "ServiceMonitor",
                "servicemonitors",
            ),
            ChildKind::Deployment => ("apps", "v1", "Deployment", "deployments"),
        }
    }
    pub fn kind(self) -> &'static str {
        self.gvk().2
    }
}

/// One desired object.
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    pub kind: ChildKind,
    pub name: String,
    /// The full object (apiVersion, kind, metadata, ...), as applied.
    pub object: Value,
    /// Hash of `object` without its applied-hash annotation.
    pub applied_hash: String,
}

/// What identifies a pod template and why it would change (read back by `rollout`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateFacts {
    pub template_hash: String,
    pub image: String,
    pub config_hash: String,
    pub secret_hash: String,
    pub restart_request: Option<String>,
}

/// Everything a cluster should consist of.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub children: Vec<Child>,
    pub coordinator: TemplateFacts,
    pub workers: Option<TemplateFacts>,
}

impl Desired {
    pub fn get(&self, kind: ChildKind, name: &str) -> Option<&Child> {
        self.children
            .iter()
            .find(|c| c.kind == kind && c.name == name)
    }
}

/// Options that come from the environment rather than the spec.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildContext {
    /// The coordinator <-> worker credential (kept from the live Secret; generated once).
    pub internal_token: Option<String>,
    /// Whether the `monitoring.coreos.com/v1` ServiceMonitor API exists.
    pub service_monitor_api: bool,
}

/// Builds every desired object of a cluster.
pub fn build(plan: &ClusterPlan, ctx: &BuildContext) -> Desired {
    let names = &plan.names;
    let mut children = Vec::new();
    let distributed = plan.mode == ClusterMode::Distributed;
    let owner = owner_reference(plan);
    let meta = |name: String, role: Option<Role>| ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(match role {
            Some(r) => labels::for_role(&names.cluster, r),
            None => labels::common(&names.cluster),
        }),
        owner_references: owner.clone().map(|o| vec![o]),
        ..Default::default()
    };

    // ServiceAccounts: their own, with no API token mounted.
    let roles: &[Role] = if distributed {
        &[Role::Coordinator, Role::Worker]
    } else {
        &[Role::Coordinator]
    };
    for role in roles {
        push(
            &mut children,
            ChildKind::ServiceAccount,
            &ServiceAccount {
                metadata: meta(names.workload(*role), Some(*role)),
                automount_service_account_token: Some(false),
                ..Default::default()
            },
        );
    }

    // The engine config.
    let config_hash = hex(&Sha256::digest(plan.config.toml.as_bytes()));
    push(
        &mut children,
        ChildKind::ConfigMap,
        &ConfigMap {
            metadata: meta(names.config_map(), None),
            data: Some(BTreeMap::from([(
                CONFIG_FILE.to_string(),
                plan.config.toml.clone(),
            )])),
            ..Default::default()
        },
    );

    // The cluster's credential: workers authenticate with it, and every coordinator signs
    // bearer tokens and prepared statement handles with a key derived from it, so both stay
    // valid across a restart or an upgrade of the coordinator (in hybrid mode too).
    if let Some(token) = &ctx.internal_token {
        push(
            &mut children,
            ChildKind::Secret,
            &Secret {
                metadata: meta(names.internal_secret(), None),
                type_: Some("Opaque".into()),
                data: Some(BTreeMap::from([(
                    INTERNAL_TOKEN_KEY.to_string(),
                    ByteString(token.as_bytes().to_vec()),
                )])),
                ..Default::default()
            },
        );
    }

    // Services: clients reach the coordinator; workers only get a headless Service for DNS.
    push(
        &mut children,
        ChildKind::Service,
        &Service {
            metadata: meta(names.workload(Role::Coordinator), Some(Role::Coordinator)),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                selector: Some(labels::selector(&names.cluster, Role::Coordinator)),
                ports: Some(vec![
                    service_port("flight-sql", PORT_FLIGHT_SQL, Some("grpc")),
                    service_port("trino-http", PORT_TRINO_HTTP, Some("http")),
                    service_port("metrics", PORT_METRICS, Some("http")),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    if distributed {
        push(
            &mut children,
            ChildKind::Service,
            &Service {
                metadata: meta(names.workload(Role::Worker), Some(Role::Worker)),
                spec: Some(ServiceSpec {
                    cluster_ip: Some("None".into()),
                    selector: Some(labels::selector(&names.cluster, Role::Worker)),
                    ports: Some(vec![
                        service_port("flight", PORT_WORKER, Some("grpc")),
                        service_port("metrics", PORT_METRICS, Some("http")),
                    ]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
    }

    // Disruption budget for workers (the single coordinator gets none: drains never block).
    if let Some(workers) = &plan.workers
        && let Some(budget) = &workers.disruption_budget
    {
        let (min_available, max_unavailable) = match budget {
            DisruptionBudget::MinAvailable(v) => (Some(v.clone()), None),
            DisruptionBudget::MaxUnavailable(v) => (None, Some(v.clone())),
        };
        push(
            &mut children,
            ChildKind::PodDisruptionBudget,
            &PodDisruptionBudget {
                metadata: meta(names.workload(Role::Worker), Some(Role::Worker)),
                spec: Some(PodDisruptionBudgetSpec {
                    selector: Some(match_labels(labels::selector(&names.cluster, Role::Worker))),
                    min_available,
                    max_unavailable,
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
    }

    // NetworkPolicies.
    if let Some(np) = &plan.network_policy {
        let scrapers = np.metrics_scrapers.clone().map_or_else(
            || {
                vec![NetworkPolicyPeer {
                    namespace_selector: Some(LabelSelector::default()),
                    pod_selector: Some(match_labels(BTreeMap::from([(
                        labels::LABEL_NAME.to_string(),
                        "prometheus".to_string(),
                    )]))),
                    ..Default::default()
                }]
            },
            |selectors| selectors.into_iter().map(peer).collect(),
        );
        let clients = if np.allowed_clients.is_empty() {
            vec![NetworkPolicyPeer {
                pod_selector: Some(LabelSelector::default()),
                ..Default::default()
            }]
        } else {
            np.allowed_clients.iter().cloned().map(peer).collect()
        };
        let coordinator_pods = match_labels(labels::selector(&names.cluster, Role::Coordinator));
        let worker_pods = match_labels(labels::selector(&names.cluster, Role::Worker));
        let mut coordinator_rules = vec![
            ingress(clients, &[PORT_FLIGHT_SQL, PORT_TRINO_HTTP]),
            ingress(scrapers.clone(), &[PORT_METRICS]),
        ];
        if distributed {
            coordinator_rules.push(ingress(
                vec![NetworkPolicyPeer {
                    pod_selector: Some(worker_pods.clone()),
                    ..Default::default()
                }],
                &[PORT_FLIGHT_SQL],
            ));
        }
        push(
            &mut children,
            ChildKind::NetworkPolicy,
            &NetworkPolicy {
                metadata: meta(names.workload(Role::Coordinator), Some(Role::Coordinator)),
                spec: Some(NetworkPolicySpec {
                    pod_selector: Some(coordinator_pods.clone()),
                    policy_types: Some(vec!["Ingress".into()]),
                    ingress: Some(coordinator_rules),
                    ..Default::default()
                }),
            },
        );
        if distributed {
            push(
                &mut children,
                ChildKind::NetworkPolicy,
                &NetworkPolicy {
                    metadata: meta(names.workload(Role::Worker), Some(Role::Worker)),
                    spec: Some(NetworkPolicySpec {
                        pod_selector: Some(worker_pods.clone()),
                        policy_types: Some(vec!["Ingress".into()]),
                        ingress: Some(vec![
                            // the coordinator sends plan fragments; workers read each other's
                            // task outputs (stages exchange Arrow Flight streams)
                            ingress(
                                vec![
                                    NetworkPolicyPeer {
                                        pod_selector: Some(coordinator_pods),
                                        ..Default::default()
                                    },
                                    NetworkPolicyPeer {
                                        pod_selector: Some(worker_pods.clone()),
                                        ..Default::default()
                                    },
                                ],
                                &[PORT_WORKER],
                            ),
                            ingress(scrapers, &[PORT_METRICS]),
                        ]),
                        ..Default::default()
                    }),
                },
            );
        }
    }

    // ServiceMonitor (only when asked for and its API exists).
    if let Some(sm) = &plan.service_monitor
        && ctx.service_monitor_api
    {
        let mut sm_labels = sm.labels.clone();
        sm_labels.extend(labels::common(&names.cluster));
        let mut metadata = meta(names.cluster.clone(), None);
        metadata.labels = Some(sm_labels);
        let object = json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": metadata,
            "spec": {
                "selector": {"matchLabels": {
                    labels::LABEL_NAME: labels::NAME,
                    labels::LABEL_INSTANCE: names.cluster,
                }},
                "namespaceSelector": {"matchNames": [names.namespace]},
                "endpoints": [{"port": "metrics", "path": "/metrics", "interval": sm.interval}],
            },
        });
        push_value(
            &mut children,
            ChildKind::ServiceMonitor,
            names.cluster.clone(),
            object,
        );
    }

    // Workloads.
    let secret_hash = plan.secret_hash.clone();
    let facts = || TemplateFacts {
        template_hash: String::new(),
        image: plan.image.reference.clone(),
        config_hash: config_hash.clone(),
        secret_hash: secret_hash.clone(),
        restart_request: plan.restart_request.clone(),
    };
    let mut workers_facts = None;
    if let Some(workers) = &plan.workers {
        let mut f = facts();
        let deployment = deployment(plan, Role::Worker, &workers.role, workers.replicas, &mut f);
        push(&mut children, ChildKind::Deployment, &deployment);
        workers_facts = Some(f);
    }
    let mut coordinator_facts = facts();
    let deployment = deployment(
        plan,
        Role::Coordinator,
        &plan.coordinator,
        1,
        &mut coordinator_facts,
    );
    push(&mut children, ChildKind::Deployment, &deployment);

    Desired {
        children,
        coordinator: coordinator_facts,
        workers: workers_facts,
    }
}

fn deployment(
    plan: &ClusterPlan,
    role: Role,
    settings: &RolePlan,
    replicas: i32,
    facts: &mut TemplateFacts,
) -> Deployment {
    let names = &plan.names;
    let overrides = &settings.overrides;

    let mut pod_labels = overrides.labels.clone().unwrap_or_default();
    pod_labels.extend(labels::for_role(&names.cluster, role));
    let mut annotations = overrides.annotations.clone().unwrap_or_default();
    let checksum = hex(&Sha256::digest(
        format!("{}\n{}", facts.config_hash, facts.secret_hash).as_bytes(),
    ));
    annotations.insert(labels::ANNOTATION_CONFIG_CHECKSUM.into(), checksum);
    annotations.insert(
        labels::ANNOTATION_CONFIG_HASH.into(),
        facts.config_hash.clone(),
    );
    annotations.insert(
        labels::ANNOTATION_SECRET_HASH.into(),
        facts.secret_hash.clone(),
    );
    if let Some(token) = &facts.restart_request {
        annotations.insert(labels::ANNOTATION_RESTART.into(), token.clone());
    }

    let (command, ports) = match role {
        Role::Coordinator => (
            "sqe-server",
            vec![
                container_port("flight-sql", PORT_FLIGHT_SQL),
                container_port("trino-http", PORT_TRINO_HTTP),
                container_port("metrics", PORT_METRICS),
                container_port("health", PORT_HEALTH),
            ],
        ),
        Role::Worker => (
            "sqe-worker",
            vec![
                container_port("flight", PORT_WORKER),
                container_port("metrics", PORT_METRICS),
                container_port("health", PORT_HEALTH),
            ],
        ),
    };

    let mut env = vec![EnvVar {
        name: INTERNAL_TOKEN_ENV.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: names.internal_secret(),
                key: INTERNAL_TOKEN_KEY.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }];
    env.extend(address_env(role));
    let env_from = plan.existing_secret.as_ref().map(|secret| {
        vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }]
    });

    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names.config_map(),
                default_mode: Some(0o444),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "users".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(plan.users_secret.clone()),
                items: Some(vec![KeyToPath {
                    key: plan.users_key.clone(),
                    path: USERS_FILE.into(),
                    ..Default::default()
                }]),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        },
        empty_dir("tmp", None, false),
        empty_dir("data", None, false),
    ];
    let mut mounts = vec![
        mount("config", CONFIG_DIR, true),
        mount("users", USERS_DIR, true),
        mount("tmp", "/tmp", false),
        mount("data", DATA_DIR, false),
    ];
    if role == Role::Worker
        && let Some(workers) = &plan.workers
    {
        volumes.push(empty_dir(
            "spill",
            Some(workers.spill_size.clone()),
            workers.spill_in_memory,
        ));
        mounts.push(mount("spill", SPILL_DIR, false));
    }

    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("health".into()),
            scheme: Some("HTTP".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Default::default()
    };

    let container = Container {
        name: "sqe".into(),
        image: Some(plan.image.reference.clone()),
        image_pull_policy: Some(plan.image.pull_policy.clone()),
        command: Some(vec![command.into()]),
        args: Some(vec![
            "--config".into(),
            format!("{CONFIG_DIR}/{CONFIG_FILE}"),
        ]),
        ports: Some(ports),
        env: (!env.is_empty()).then_some(env),
        env_from,
        resources: Some(settings.resources.clone()),
        startup_probe: Some(probe("/healthz", 2, 90)),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        readiness_probe: Some(probe("/readyz", 5, 2)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(USER_ID),
            run_as_group: Some(USER_ID),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };

    let mut template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(annotations),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(names.workload(role)),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(settings.termination_grace_period_seconds),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(USER_ID),
                run_as_group: Some(USER_ID),
                fs_group: Some(USER_ID),
                seccomp_profile: Some(runtime_default()),
                ..Default::default()
            }),
            image_pull_secrets: (!plan.image.pull_secrets.is_empty())
                .then(|| plan.image.pull_secrets.clone()),
            node_selector: overrides.node_selector.clone(),
            tolerations: overrides.tolerations.clone(),
            affinity: overrides.affinity.clone(),
            topology_spread_constraints: overrides.topology_spread_constraints.clone(),
            priority_class_name: overrides.priority_class_name.clone(),
            containers: vec![container],
            volumes: Some(volumes),
            ..Default::default()
        }),
    };
    let template_hash = hash_value(&serde_json::to_value(&template).unwrap_or(Value::Null));
    if let Some(a) = template
        .metadata
        .as_mut()
        .and_then(|m| m.annotations.as_mut())
    {
        a.insert(
            labels::ANNOTATION_TEMPLATE_HASH.into(),
            template_hash.clone(),
        );
    }
    facts.template_hash = template_hash;

    let mut meta_labels = labels::for_role(&names.cluster, role);
    meta_labels.insert(
        labels::LABEL_VERSION.into(),
        label_value(&plan.image.version),
    );
    Deployment {
        metadata: ObjectMeta {
            name: Some(names.workload(role)),
            namespace: Some(names.namespace.clone()),
            labels: Some(meta_labels),
            owner_references: owner_reference(plan).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(if plan.stopped { 0 } else { replicas }),
            selector: match_labels(labels::selector(&names.cluster, role)),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            progress_deadline_seconds: Some(settings.progress_deadline_seconds),
            revision_history_limit: Some(5),
            template,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A label value: at most 63 characters of `[A-Za-z0-9._-]`.
fn label_value(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

fn owner_reference(plan: &ClusterPlan) -> Option<OwnerReference> {
    plan.uid.as_ref().map(|uid| OwnerReference {
        api_version: "sqe.dev/v1alpha1".into(),
        kind: "SqeCluster".into(),
        name: plan.names.cluster.clone(),
        uid: uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}

fn match_labels(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..Default::default()
    }
}

fn peer(selector: crate::crd::ClientSelector) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: selector.pod_selector,
        namespace_selector: selector.namespace_selector,
        ..Default::default()
    }
}

fn ingress(from: Vec<NetworkPolicyPeer>, ports: &[i32]) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        from: Some(from),
        ports: Some(
            ports
                .iter()
                .map(|p| NetworkPolicyPort {
                    port: Some(IntOrString::Int(*p)),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                })
                .collect(),
        ),
    }
}

fn service_port(name: &str, port: i32, app_protocol: Option<&str>) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        app_protocol: app_protocol.map(Into::into),
        ..Default::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn empty_dir(
    name: &str,
    size_limit: Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    memory: bool,
) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit,
            medium: memory.then(|| "Memory".into()),
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn push<T: serde::Serialize + k8s_openapi::Resource>(
    children: &mut Vec<Child>,
    kind: ChildKind,
    object: &T,
) {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("apiVersion".into(), Value::String(T::API_VERSION.into()));
        map.insert("kind".into(), Value::String(T::KIND.into()));
    }
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    push_value(children, kind, name, value);
}

fn push_value(children: &mut Vec<Child>, kind: ChildKind, name: String, mut object: Value) {
    let applied_hash = hash_value(&object);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(a) = annotations {
            a.insert(
                labels::ANNOTATION_APPLIED_HASH.into(),
                Value::String(applied_hash.clone()),
            );
        }
    }
    children.push(Child {
        kind,
        name,
        object,
        applied_hash,
    });
}

/// A stable hash of a JSON value (keys sorted).
pub fn hash_value(value: &Value) -> String {
    let canonical = canonical(value);
    hex(&Sha256::digest(canonical.as_bytes()))[..16].to_string()
}

fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, String> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            let body: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(canonical).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

/// All children as one multi-document YAML stream (what `sqe-operator render` prints).
pub fn to_yaml(desired: &Desired) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for child in &desired.children {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&canonical_value(&child.object))?);
    }
    Ok(out)
}

/// The value with object keys sorted, for byte-stable YAML whatever the map implementation.
fn canonical_value(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), canonical_value(v)))
                .collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical_value).collect()),
        other => other.clone(),
    }
}

/// A pod's address from the downward API. A worker registers as its pod (`worker.node_id`)
/// at `http://<pod IP>:50052` (`worker.advertise_url`); the coordinator shows
/// `http://<pod IP>:8080` in `system.runtime.nodes` (`coordinator.advertise_url`).
fn address_env(role: Role) -> Vec<EnvVar> {
    let field = |path: &str| EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: path.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let value = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    };
    let mut env = vec![EnvVar {
        name: POD_IP_ENV.into(),
        value_from: Some(field("status.podIP")),
        ..Default::default()
    }];
    // Kubernetes expands $(POD_IP): it is defined above
    match role {
        Role::Coordinator => env.push(value(
            COORDINATOR_ADVERTISE_URL_ENV,
            format!("http://$({POD_IP_ENV}):{PORT_TRINO_HTTP}"),
        )),
        Role::Worker => env.extend([
            EnvVar {
                name: "SQE_WORKER__NODE_ID".into(),
                value_from: Some(field("metadata.name")),
                ..Default::default()
            },
            value(
                ADVERTISE_URL_ENV,
                format!("http://$({POD_IP_ENV}):{PORT_WORKER}"),
            ),
        ]),
    }
    env
}
