//! Validate: a cluster spec and the Secrets it references → a [`ClusterPlan`] with every default
//! applied, or the list of problems, each naming its `spec.` field. Pure: no client, no I/O.
//!
//! The API server already enforces the CRD schema and its CEL rules; this step checks what it
//! cannot: the engine's config schema, the referenced Secrets, and relations between values.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{LocalObjectReference, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use crate::crd::{
    ClientSelector, ClusterMode, MAX_NAME_LEN, PodOverrides, PodSettings, SqeCluster,
};
use crate::engine_config::{self, RenderedConfig};
use crate::labels::Names;

/// One thing wrong with a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    pub field: String,
    pub message: String,
}

impl SpecProblem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Joins problems into one condition message.
pub fn describe(problems: &[SpecProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the operator knows about a referenced Secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SecretState {
    /// Not looked up (offline `render`): its content is not part of the checksum.
    #[default]
    NotRead,
    Missing,
    Found(BTreeMap<String, Vec<u8>>),
}

/// The referenced Secrets, as read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecretsSeen {
    pub existing: SecretState,
    pub users: SecretState,
}

/// Defaults from production experience (see docs/operator.md).
pub mod defaults {
    pub const IMAGE_REPOSITORY: &str = "ghcr.io/sqe-dev/sqe";
    pub const PULL_POLICY: &str = "IfNotPresent";
    pub const WORKER_REPLICAS: i32 = 2;
    pub const COORDINATOR_REQUESTS: (&str, &str) = ("500m", "512Mi");
    pub const COORDINATOR_LIMITS: (&str, &str) = ("2", "2Gi");
    pub const WORKER_REQUESTS: (&str, &str) = ("1", "1Gi");
    pub const WORKER_LIMITS: (&str, &str) = ("4", "4Gi");
    pub const TERMINATION_GRACE_SECONDS: i64 = 60;
    pub const PROGRESS_DEADLINE_SECONDS: i32 = 600;
    pub const SPILL_SIZE: &str = "20Gi";
    pub const SERVICE_MONITOR_INTERVAL: &str = "30s";
    pub const USERS_KEY: &str = "users";
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImagePlan {
    /// `repository:tag` or `repository@digest`.
    pub reference: String,
    /// What status shows as the version: the tag, or the digest's first 12 hex digits.
    pub version: String,
    pub pull_policy: String,
    pub pull_secrets: Vec<LocalObjectReference>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RolePlan {
    pub resources: ResourceRequirements,
    pub termination_grace_period_seconds: i64,
    pub progress_deadline_seconds: i32,
    pub overrides: PodOverrides,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkersPlan {
    pub replicas: i32,
    pub role: RolePlan,
    pub spill_size: Quantity,
    pub spill_in_memory: bool,
    /// `None` when the PodDisruptionBudget is disabled.
    pub disruption_budget: Option<DisruptionBudget>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DisruptionBudget {
    MinAvailable(IntOrString),
    MaxUnavailable(IntOrString),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceMonitorPlan {
    pub interval: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkPolicyPlan {
    pub allowed_clients: Vec<ClientSelector>,
    pub metrics_scrapers: Option<Vec<ClientSelector>>,
}

/// A valid cluster with every default applied: everything `build` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterPlan {
    pub names: Names,
    pub uid: Option<String>,
    pub mode: ClusterMode,
    pub image: ImagePlan,
    pub coordinator: RolePlan,
    /// `None` in hybrid mode.
    pub workers: Option<WorkersPlan>,
    pub config: RenderedConfig,
    pub existing_secret: Option<String>,
    pub users_secret: String,
    pub users_key: String,
    /// Hash of the referenced Secrets' data (empty data when not read).
    pub secret_hash: String,
    pub service_monitor: Option<ServiceMonitorPlan>,
    pub network_policy: Option<NetworkPolicyPlan>,
    pub paused: bool,
    pub stopped: bool,
    pub restart_request: Option<String>,
}

/// Validates a cluster against what was read of its Secrets.
pub fn validate(
    cluster: &SqeCluster,
    secrets: &SecretsSeen,
) -> Result<ClusterPlan, Vec<SpecProblem>> {
    let mut problems = Vec::new();
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let namespace = cluster
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    if name.is_empty() {
        problems.push(SpecProblem::new("metadata.name", "is required"));
    } else if name.len() > MAX_NAME_LEN {
        problems.push(SpecProblem::new(
            "metadata.name",
            format!("must be at most {MAX_NAME_LEN} characters: it prefixes the names of the cluster's Services"),
        ));
    }
    let names = Names::new(&name, &namespace);
    let spec = &cluster.spec;
    let mode = spec.mode.unwrap_or_default();

    let image = image_plan(spec.image.as_ref(), &mut problems);

    let coordinator_settings = spec.coordinator.as_ref().map(|c| &c.pod);
    let coordinator = role_plan(
        "spec.coordinator",
        coordinator_settings,
        defaults::COORDINATOR_REQUESTS,
        defaults::COORDINATOR_LIMITS,
        &mut problems,
    );

    let workers_spec = spec.workers.clone().unwrap_or_default();
    let workers = match mode {
        ClusterMode::Hybrid => {
            if workers_spec.replicas.is_some_and(|r| r > 0) {
                problems.push(SpecProblem::new(
                    "spec.workers.replicas",
                    "must be 0 or unset when spec.mode is hybrid",
                ));
            }
            None
        }
        ClusterMode::Distributed => {
            if spec.catalog.as_ref().and_then(|c| c.uri.as_ref()).is_none() {
                problems.push(SpecProblem::new(
                    "spec.catalog.uri",
                    "is required when spec.mode is distributed: workers need a shared Iceberg REST catalog",
                ));
            }
            let role = role_plan(
                "spec.workers",
                Some(&workers_spec.pod),
                defaults::WORKER_REQUESTS,
                defaults::WORKER_LIMITS,
                &mut problems,
            );
            let spill = workers_spec.spill.clone().unwrap_or_default();
            let spill_size = spill
                .size_limit
                .clone()
                .unwrap_or_else(|| Quantity(defaults::SPILL_SIZE.into()));
            if parse_quantity(&spill_size.0).is_none() {
                problems.push(SpecProblem::new(
                    "spec.workers.spill.sizeLimit",
                    format!("`{}` is not a quantity (e.g. 20Gi)", spill_size.0),
                ));
            }
            let pdb = workers_spec
                .pod_disruption_budget
                .clone()
                .unwrap_or_default();
            let disruption_budget = if pdb.enabled == Some(false) {
                None
            } else {
                match (pdb.min_available, pdb.max_unavailable) {
                    (Some(_), Some(_)) => {
                        problems.push(SpecProblem::new(
                            "spec.workers.podDisruptionBudget",
                            "set minAvailable or maxUnavailable, not both",
                        ));
                        None
                    }
                    (None, Some(max)) => Some(DisruptionBudget::MaxUnavailable(max)),
                    (Some(min), None) => Some(DisruptionBudget::MinAvailable(min)),
                    (None, None) => Some(DisruptionBudget::MinAvailable(IntOrString::Int(1))),
                }
            };
            Some(WorkersPlan {
                replicas: workers_spec.replicas.unwrap_or(defaults::WORKER_REPLICAS),
                role,
                spill_size,
                spill_in_memory: spill.medium_memory.unwrap_or(false),
                disruption_budget,
            })
        }
    };

    let pools = engine_config::MemoryPools {
        coordinator_mb: engine_config::pool_mb(&coordinator.resources),
        worker_mb: workers
            .as_ref()
            .and_then(|w| engine_config::pool_mb(&w.role.resources)),
    };
    let config = match engine_config::render(spec, &names, pools) {
        Ok(config) => Some(config),
        Err(p) => {
            problems.extend(p);
            None
        }
    };

    // The referenced Secrets.
    let existing_secret = spec.existing_secret.clone();
    let mut env = Vec::new();
    if let Some(secret) = &existing_secret {
        match &secrets.existing {
            SecretState::NotRead => {}
            SecretState::Missing => problems.push(SpecProblem::new(
                "spec.existingSecret",
                format!("Secret `{secret}` does not exist in namespace `{namespace}`"),
            )),
            SecretState::Found(data) => {
                for (key, value) in data {
                    let well_formed = key
                        .strip_prefix(sqe_config::ENV_PREFIX)
                        .and_then(|rest| rest.split_once("__"))
                        .is_some_and(|(s, k)| !s.is_empty() && !k.is_empty());
                    if !well_formed {
                        problems.push(SpecProblem::new(
                            format!("spec.existingSecret key {key}"),
                            "is not an SQE_<SECTION>__<KEY> variable (e.g. SQE_CATALOG__CREDENTIAL)",
                        ));
                        continue;
                    }
                    match String::from_utf8(value.clone()) {
                        Ok(text) => env.push((key.clone(), text)),
                        Err(_) => problems.push(SpecProblem::new(
                            format!("spec.existingSecret key {key}"),
                            "is not UTF-8 text",
                        )),
                    }
                }
            }
        }
    }
    if let Some(config) = &config
        && !matches!(
            secrets.existing,
            SecretState::NotRead | SecretState::Missing
        )
        && let Err(p) = config.check_with_env(env)
    {
        problems.extend(p);
    }

    let users_secret = spec.auth.users_secret.name.clone();
    let users_key = spec
        .auth
        .users_secret
        .key
        .clone()
        .unwrap_or_else(|| defaults::USERS_KEY.to_string());
    match &secrets.users {
        SecretState::NotRead => {}
        SecretState::Missing => problems.push(SpecProblem::new(
            "spec.auth.usersSecret.name",
            format!("Secret `{users_secret}` does not exist in namespace `{namespace}`"),
        )),
        SecretState::Found(data) => match data.get(&users_key) {
            None => problems.push(SpecProblem::new(
                "spec.auth.usersSecret.key",
                format!("Secret `{users_secret}` has no key `{users_key}`"),
            )),
            Some(content) => problems.extend(check_users_file(content, &users_secret, &users_key)),
        },
    }

    // Drain time must fit in the grace period, or SIGKILL cuts queries off.
    if let Some(config) = &config {
        let drain = config.parsed.coordinator.shutdown_timeout_secs as i64;
        if coordinator.termination_grace_period_seconds <= drain {
            problems.push(SpecProblem::new(
                "spec.coordinator.terminationGracePeriodSeconds",
                format!(
                    "{} must exceed coordinator.shutdown_timeout_secs ({drain}) so in-flight queries can drain",
                    coordinator.termination_grace_period_seconds
                ),
            ));
        }
    }

    let metrics = spec.metrics.clone().unwrap_or_default();
    let service_monitor = metrics
        .service_monitor
        .filter(|sm| sm.enabled == Some(true))
        .map(|sm| ServiceMonitorPlan {
            interval: sm
                .interval
                .unwrap_or_else(|| defaults::SERVICE_MONITOR_INTERVAL.to_string()),
            labels: sm.labels.unwrap_or_default(),
        });
    let np = spec.network_policy.clone().unwrap_or_default();
    let network_policy = (np.enabled != Some(false)).then(|| NetworkPolicyPlan {
        allowed_clients: np.allowed_clients.unwrap_or_default(),
        metrics_scrapers: np.metrics_scrapers,
    });
    let operation = spec.cluster_operation.clone().unwrap_or_default();

    match config {
        Some(config) if problems.is_empty() => Ok(ClusterPlan {
            uid: cluster.metadata.uid.clone(),
            names,
            mode,
            image,
            coordinator,
            workers,
            config,
            existing_secret,
            users_secret,
            users_key,
            secret_hash: secret_hash(secrets),
            service_monitor,
            network_policy,
            paused: operation.paused.unwrap_or(false),
            stopped: operation.stopped.unwrap_or(false),
            restart_request: spec.restart_request.clone(),
        }),
        _ => Err(problems),
    }
}

fn image_plan(image: Option<&crate::crd::ImageSpec>, problems: &mut Vec<SpecProblem>) -> ImagePlan {
    let image = image.cloned().unwrap_or_default();
    let repository = image
        .repository
        .unwrap_or_else(|| defaults::IMAGE_REPOSITORY.to_string());
    if repository.contains('@')
        || repository
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
    {
        problems.push(SpecProblem::new(
            "spec.image.repository",
            format!("`{repository}` must not contain a tag or digest; use spec.image.tag or spec.image.digest"),
        ));
    }
    let (reference, version) = match (&image.tag, &image.digest) {
        (_, Some(digest)) => (
            format!("{repository}@{digest}"),
            digest
                .strip_prefix("sha256:")
                .map(|hex| format!("sha256:{}", &hex[..hex.len().min(12)]))
                .unwrap_or_else(|| digest.clone()),
        ),
        (Some(tag), None) => (format!("{repository}:{tag}"), tag.clone()),
        (None, None) => {
            let tag = env!("CARGO_PKG_VERSION").to_string();
            (format!("{repository}:{tag}"), tag)
        }
    };
    ImagePlan {
        reference,
        version,
        pull_policy: image
            .pull_policy
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| defaults::PULL_POLICY.to_string()),
        pull_secrets: image.pull_secrets.unwrap_or_default(),
    }
}

fn role_plan(
    field: &str,
    settings: Option<&PodSettings>,
    requests: (&str, &str),
    limits: (&str, &str),
    problems: &mut Vec<SpecProblem>,
) -> RolePlan {
    let settings = settings.cloned().unwrap_or_default();
    let resources = merge_resources(settings.resources.as_ref(), requests, limits);
    for resource in ["cpu", "memory"] {
        let get = |map: &Option<BTreeMap<String, Quantity>>| {
            map.as_ref()
                .and_then(|m| m.get(resource))
                .map(|q| q.0.clone())
        };
        let request = get(&resources.requests);
        let limit = get(&resources.limits);
        for (which, value) in [("requests", &request), ("limits", &limit)] {
            if let Some(v) = value
                && parse_quantity(v).is_none()
            {
                problems.push(SpecProblem::new(
                    format!("{field}.resources.{which}.{resource}"),
                    format!("`{v}` is not a quantity"),
                ));
            }
        }
        if let (Some(r), Some(l)) = (
            request.as_deref().and_then(parse_quantity),
            limit.as_deref().and_then(parse_quantity),
        ) && r > l
        {
            problems.push(SpecProblem::new(
                format!("{field}.resources.requests.{resource}"),
                format!(
                    "{} is more than the limit {} ({field}.resources.limits.{resource})",
                    request.unwrap_or_default(),
                    limit.unwrap_or_default()
                ),
            ));
        }
    }
    RolePlan {
        resources,
        termination_grace_period_seconds: settings
            .termination_grace_period_seconds
            .unwrap_or(defaults::TERMINATION_GRACE_SECONDS),
        progress_deadline_seconds: settings
            .progress_deadline_seconds
            .unwrap_or(defaults::PROGRESS_DEADLINE_SECONDS),
        overrides: settings.pod_overrides.unwrap_or_default(),
    }
}

/// Defaults per key, overlaid with what the user set (a user who sets only a memory limit keeps
/// the default requests and CPU limit).
fn merge_resources(
    user: Option<&ResourceRequirements>,
    requests: (&str, &str),
    limits: (&str, &str),
) -> ResourceRequirements {
    let base = |(cpu, memory): (&str, &str)| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(memory.to_string())),
        ])
    };
    let mut req = base(requests);
    let mut lim = base(limits);
    if let Some(user) = user {
        req.extend(user.requests.clone().unwrap_or_default());
        lim.extend(user.limits.clone().unwrap_or_default());
    }
    ResourceRequirements {
        requests: Some(req),
        limits: Some(lim),
        claims: user.and_then(|u| u.claims.clone()),
    }
}

/// Parses a Kubernetes quantity (`500m`, `2`, `1.5Gi`, `1e3`) into a number; `None` if malformed.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let suffixes: [(&str, f64); 13] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = q.strip_suffix(suffix) {
            return parse_number(number).map(|n| n * factor);
        }
    }
    for (suffix, factor) in [("P", 1e15), ("E", 1e18)] {
        if let Some(number) = q.strip_suffix(suffix) {
            return parse_number(number).map(|n| n * factor);
        }
    }
    parse_number(q)
}

fn parse_number(s: &str) -> Option<f64> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '+' | '-' | 'e' | 'E'))
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0)
}

/// Checks a users file without ever echoing its content: problems name the line.
fn check_users_file(content: &[u8], secret: &str, key: &str) -> Vec<SpecProblem> {
    let field = "spec.auth.usersSecret";
    let Ok(text) = std::str::from_utf8(content) else {
        return vec![SpecProblem::new(
            field,
            format!("Secret `{secret}` key `{key}` is not UTF-8 text"),
        )];
    };
    let mut problems = Vec::new();
    let mut users = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some((name, hash)) if !name.is_empty() => {
                if sqe_config::check_password_hash(hash).is_err() {
                    problems.push(SpecProblem::new(
                        field,
                        format!(
                            "Secret `{secret}` key `{key}` line {}: the password is not an argon2 hash (make one with `sqe-server hash-password`)",
                            i + 1
                        ),
                    ));
                }
                users += 1;
            }
            _ => problems.push(SpecProblem::new(
                field,
                format!(
                    "Secret `{secret}` key `{key}` line {}: expected `name:$argon2id$...`",
                    i + 1
                ),
            )),
        }
    }
    if users == 0 && problems.is_empty() {
        problems.push(SpecProblem::new(
            field,
            format!("Secret `{secret}` key `{key}` has no users"),
        ));
    }
    problems
}

/// Hash of the referenced Secrets' data: part of the pods' `checksum/config`.
fn secret_hash(secrets: &SecretsSeen) -> String {
    let mut hasher = Sha256::new();
    for (label, state) in [("existing", &secrets.existing), ("users", &secrets.users)] {
        hasher.update(label.as_bytes());
        if let SecretState::Found(data) = state {
            for (k, v) in data {
                hasher.update((k.len() as u64).to_le_bytes());
                hasher.update(k.as_bytes());
                hasher.update((v.len() as u64).to_le_bytes());
                hasher.update(v);
            }
        }
    }
    hex(&hasher.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
