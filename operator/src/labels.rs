//! Names and labels of everything the operator creates, in one place.
//!
//! Children carry the `app.kubernetes.io/*` recommended labels; `instance` + `managed-by` find
//! them again for the orphan sweep, `component` tells the coordinator from the workers.

use std::collections::BTreeMap;

pub const NAME: &str = "sqe";
pub const MANAGED_BY: &str = "sqe-operator";
pub const FIELD_MANAGER: &str = "sqe-operator";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
pub const LABEL_VERSION: &str = "app.kubernetes.io/version";

/// Pod-template annotation: hash of the rendered config and the referenced Secrets' data.
pub const ANNOTATION_CONFIG_CHECKSUM: &str = "checksum/config";
/// Pod-template annotations the rollout reads back to tell why a template changed.
pub const ANNOTATION_CONFIG_HASH: &str = "sqe.dev/config-hash";
pub const ANNOTATION_SECRET_HASH: &str = "sqe.dev/secret-hash";
pub const ANNOTATION_RESTART: &str = "sqe.dev/restart-request";
/// Pod-template annotation: hash of the whole desired pod template (what `decide` compares).
pub const ANNOTATION_TEMPLATE_HASH: &str = "sqe.dev/template-hash";
/// Object annotation: hash of the object as last applied; equal means no write is needed.
pub const ANNOTATION_APPLIED_HASH: &str = "sqe.dev/applied-hash";

/// The two parts of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Coordinator,
    Worker,
}

impl Role {
    pub fn component(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Worker => "worker",
        }
    }
}

/// Object names for one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub cluster: String,
    pub namespace: String,
}

impl Names {
    pub fn new(cluster: &str, namespace: &str) -> Self {
        Self {
            cluster: cluster.to_string(),
            namespace: namespace.to_string(),
        }
    }
    pub fn config_map(&self) -> String {
        format!("{}-config", self.cluster)
    }
    pub fn internal_secret(&self) -> String {
        format!("{}-internal", self.cluster)
    }
    pub fn workload(&self, role: Role) -> String {
        match role {
            Role::Coordinator => format!("{}-coordinator", self.cluster),
            Role::Worker => format!("{}-workers", self.cluster),
        }
    }
    pub fn coordinator_service_host(&self) -> String {
        format!(
            "{}.{}.svc",
            self.workload(Role::Coordinator),
            self.namespace
        )
    }
}

/// Labels on every child of a cluster.
pub fn common(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), NAME.to_string()),
        (LABEL_INSTANCE.to_string(), cluster.to_string()),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_PART_OF.to_string(), NAME.to_string()),
    ])
}

/// Labels on a part's objects and pods.
pub fn for_role(cluster: &str, role: Role) -> BTreeMap<String, String> {
    let mut labels = common(cluster);
    labels.insert(LABEL_COMPONENT.to_string(), role.component().to_string());
    labels
}

/// The immutable pod selector of a part (no version: it must never change).
pub fn selector(cluster: &str, role: Role) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), NAME.to_string()),
        (LABEL_INSTANCE.to_string(), cluster.to_string()),
        (LABEL_COMPONENT.to_string(), role.component().to_string()),
    ])
}

/// `k=v,k=v` for a label selector query.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// What the orphan sweep lists: everything this operator made for this cluster.
pub fn sweep_selector(cluster: &str) -> String {
    format!("{LABEL_INSTANCE}={cluster},{LABEL_MANAGED_BY}={MANAGED_BY}")
}
