//! The `SqeCluster` custom resource (`sqe.dev/v1alpha1`): spec, status and the generated CRD.
//!
//! Every spec field is optional in the schema and carries no schema default: defaults live in
//! the operator (`defaults` in `build`), so the stored object is exactly what the user wrote and
//! GitOps tools never see drift. Cross-field rules are CEL `x-kubernetes-validations` whose
//! messages name the field; rules that need data the API server does not have (the engine's
//! config schema, Secrets) are checked by `validate` and reported as conditions.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest `metadata.name`: the name prefixes Services (`<name>-coordinator`), which must be
/// DNS labels of at most 63 characters, and label values.
pub const MAX_NAME_LEN: usize = 40;

/// An SQE cluster: a coordinator (Flight SQL, Trino HTTP) and, in distributed mode, workers.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[kube(
    group = "sqe.dev",
    version = "v1alpha1",
    kind = "SqeCluster",
    plural = "sqeclusters",
    shortname = "sqe",
    category = "sqe",
    namespaced,
    status = "SqeClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "An SQE cluster: a coordinator speaking Flight SQL and the Trino HTTP protocol over Iceberg tables, and in distributed mode its workers.",
    scale(
        spec_replicas_path = ".spec.workers.replicas",
        status_replicas_path = ".status.workers.replicas",
        label_selector_path = ".status.workers.selector"
    ),
    printcolumn = r#"{"name":"Version","type":"string","description":"The image tag the coordinator runs","jsonPath":".status.versions.coordinator"}"#,
    printcolumn = r#"{"name":"Workers","type":"string","description":"Ready workers / desired workers","jsonPath":".status.workers.ready"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.mode) || self.mode != 'distributed' || (has(self.catalog) && has(self.catalog.uri))",
        "message": "spec.catalog.uri is required when spec.mode is distributed: workers need a shared Iceberg REST catalog",
        "fieldPath": ".catalog",
    },
    {
        "rule": "(has(self.mode) && self.mode == 'distributed') || !has(self.workers) || !has(self.workers.replicas) || self.workers.replicas == 0",
        "message": "spec.workers.replicas must be 0 or unset when spec.mode is hybrid (the coordinator executes queries itself)",
        "fieldPath": ".workers.replicas",
    },
]))]
pub struct SqeClusterSpec {
    /// The SQE image both parts run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSpec>,
    /// `hybrid` (default): one coordinator that also executes. `distributed`: a coordinator and workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ClusterMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<CoordinatorSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<WorkersSpec>,
    /// The Iceberg catalog. Without `uri` the coordinator uses an embedded catalog on its own
    /// (ephemeral) disk: fine to try SQE, not for data you keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// Who may connect. Every port that leaves the pod is authenticated.
    pub auth: AuthSpec,
    /// A Secret in this namespace whose keys are `SQE_<SECTION>__<KEY>` environment variables
    /// (catalog credentials, S3 keys, ...). Its content is part of the config checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub existing_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,
    /// Free-form `sqe.toml` overrides by section (`coordinator`, `catalog`, ...), checked against
    /// the engine's configuration schema. Secrets belong in `existingSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub config: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_operation: Option<ClusterOperation>,
    /// Changing this token restarts the cluster, workers first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub restart_request: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClusterMode {
    #[default]
    Hybrid,
    Distributed,
}

impl ClusterMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterMode::Hybrid => "hybrid",
            ClusterMode::Distributed => "distributed",
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.tag) && has(self.digest))",
        "message": "spec.image: set tag or digest, not both",
    },
]))]
pub struct ImageSpec {
    /// Image repository, e.g. `ghcr.io/sqe-dev/sqe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub repository: Option<String>,
    /// Image tag; it is the version shown in status. Defaults to the operator's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"))]
    pub tag: Option<String>,
    /// Image digest (`sha256:<64 hex>`), instead of a tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^sha256:[a-f0-9]{64}$"))]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secrets: Option<Vec<LocalObjectReference>>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Settings shared by the coordinator and the workers' pods.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSettings {
    /// Requests and limits; keys you leave out keep the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Seconds a pod may drain in-flight queries after SIGTERM before it is killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub termination_grace_period_seconds: Option<i64>,
    /// How long a rollout may make no progress before it counts as stalled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 86400))]
    pub progress_deadline_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_overrides: Option<PodOverrides>,
}

/// What a platform team usually needs to place pods; merged into the rendered pod template.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CoordinatorSpec {
    #[serde(flatten)]
    pub pod: PodSettings,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.podDisruptionBudget) || !(has(self.podDisruptionBudget.minAvailable) && has(self.podDisruptionBudget.maxUnavailable))",
        "message": "spec.workers.podDisruptionBudget: set minAvailable or maxUnavailable, not both",
        "fieldPath": ".podDisruptionBudget",
    },
]))]
pub struct WorkersSpec {
    /// Number of workers (distributed mode). The scale subresource: `kubectl scale` and an HPA set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    #[serde(flatten)]
    pub pod: PodSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spill: Option<SpillSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_disruption_budget: Option<DisruptionBudgetSpec>,
}

/// Where workers spill sorts, joins and aggregations that do not fit in memory.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpillSpec {
    /// Size limit of the spill emptyDir (default 20Gi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<Quantity>,
    /// Back the spill directory with memory (tmpfs) instead of the node's disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium_memory: Option<bool>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudgetSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogSpec {
    /// Base URL of an Iceberg REST catalog (Apache Polaris, Lakekeeper, ...). Credentials go in
    /// `existingSecret` as `SQE_CATALOG__CREDENTIAL` or `SQE_CATALOG__TOKEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s]+$"))]
    pub uri: Option<String>,
    /// The warehouse (a name for REST catalogs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub warehouse: Option<String>,
    /// How long table lists and metadata are cached before they are re-read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub metadata_cache_ttl_seconds: Option<i64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// S3 endpoint for self-hosted stores (MinIO, SeaweedFS, Ceph); keys go in `existingSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s]+$"))]
    pub s3_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub s3_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_path_style: Option<bool>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// A Secret whose key holds `name:$argon2id$...` lines (`sqe-server hash-password`).
    pub users_secret: SecretKeyRef,
    /// Lifetime of the bearer tokens the coordinator issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 604800))]
    pub token_ttl_seconds: Option<i64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key in the Secret (default `users`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_monitor: Option<ServiceMonitorSpec>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Scrape interval, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub interval: Option<String>,
    /// Labels your Prometheus selects ServiceMonitors by (e.g. `release: prometheus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// On by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Who may reach the coordinator's client ports. Empty: pods in this namespace only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_clients: Option<Vec<ClientSelector>>,
    /// Who may scrape metrics (default: any pod in any namespace labelled
    /// `app.kubernetes.io/name=prometheus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_scrapers: Option<Vec<ClientSelector>>,
}

/// A NetworkPolicy peer: pods (by label) in namespaces (by label); either may be omitted.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.podSelector) || has(self.namespaceSelector)",
        "message": "spec.networkPolicy: each selector needs podSelector or namespaceSelector",
    },
]))]
pub struct ClientSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterOperation {
    /// Stop every change (only status is written) until unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Scale coordinator and workers to zero, keeping everything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<bool>,
}

fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// What the operator observed and did; written only by the operator.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SqeClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Creating, Running, Upgrading, Degraded, Paused, Stopped or Invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<VersionsStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<ReplicasStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<ReplicasStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<EndpointsStatus>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionsStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicasStatus {
    /// Desired replicas.
    pub replicas: i32,
    pub ready_replicas: i32,
    pub updated_replicas: i32,
    /// `ready/desired`, for `kubectl get`.
    pub ready: String,
    /// Label selector of the pods, for the scale subresource (HPA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Idle, RollingWorkers or RollingCoordinator.
    pub phase: String,
    /// Why the current rollout started: ImageChanged, ConfigChanged, SecretChanged, RestartRequested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointsStatus {
    pub flight_sql: String,
    pub trino_http: String,
}

/// Drops `nullable` and the `null` enum member the derive adds for `Option` fields: nothing in
/// the spec is meant to be set to null, and errors then list only real values.
fn strip_nullable(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("nullable");
            if let Some(serde_json::Value::Array(members)) = map.get_mut("enum") {
                members.retain(|m| !m.is_null());
            }
            for v in map.values_mut() {
                strip_nullable(v);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nullable),
        _ => {}
    }
}

/// The CRD with the rules the derive cannot express (on `metadata.name`).
pub fn crd() -> CustomResourceDefinition {
    let mut crd = SqeCluster::crd();
    if let Ok(mut value) = serde_json::to_value(&crd) {
        strip_nullable(&mut value);
        if let Ok(stripped) = serde_json::from_value(value) {
            crd = stripped;
        }
    }
    for version in &mut crd.spec.versions {
        if let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            let rule = k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule {
                rule: format!("size(self.metadata.name) <= {MAX_NAME_LEN}"),
                message: Some(format!(
                    "metadata.name must be at most {MAX_NAME_LEN} characters: it prefixes the names of the cluster's Services"
                )),
                ..Default::default()
            };
            root.x_kubernetes_validations
                .get_or_insert_with(Vec::new)
                .push(rule);
        }
    }
    crd
}

/// The CRD as YAML, as `make crds` writes it to `crds/sqecluster.yaml`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    let body = serde_yaml::to_string(&crd())?;
    Ok(format!(
        "# Generated by `sqe-operator crd` (make crds) from operator/src/crd.rs. Do not edit.\n{body}"
    ))
}
