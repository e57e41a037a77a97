//! Renders the engine's `sqe.toml` from a cluster spec, through the engine's own config crate.
//!
//! ```text
//!   operator-owned keys (listeners, data dir, auth, catalog, storage from the spec)
//!        └── overlaid by spec.config (free-form; operator-owned and secret keys refused)
//!              └── parsed by sqe-config (unknown key / wrong type / bad value = a problem)
//!                    └── SqeConfig::to_toml()  → the ConfigMap (never a secret in it)
//! ```
//!
//! The same text, with the referenced Secret's `SQE_*` variables applied, is loaded once more
//! to check what the pods will really see; that result is never rendered.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use sqe_config::{ConfigError, Origin, SqeConfig, ports};
use toml::{Table, Value};

use crate::crd::{ClusterMode, SqeClusterSpec};
use crate::labels::Names;
use crate::validate::SpecProblem;

/// Where the pods find things; the Deployments mount volumes at these paths.
pub const CONFIG_DIR: &str = "/etc/sqe/config";
pub const CONFIG_FILE: &str = "sqe.toml";
pub const USERS_DIR: &str = "/etc/sqe/users";
pub const USERS_FILE: &str = "users";
pub const DATA_DIR: &str = "/var/lib/sqe";
pub const SPILL_DIR: &str = "/var/lib/sqe-spill";

// The container ports (Kubernetes counts them in i32), from the engine's config crate.
pub const PORT_FLIGHT_SQL: i32 = ports::FLIGHT_SQL as i32;
pub const PORT_TRINO_HTTP: i32 = ports::TRINO_HTTP as i32;
pub const PORT_METRICS: i32 = ports::METRICS as i32;
pub const PORT_HEALTH: i32 = ports::HEALTH as i32;
pub const PORT_WORKER: i32 = ports::WORKER as i32;

/// Origin name used for values from `spec.config`, so problems read `spec.config.<section>.<key>`.
const SPEC_CONFIG: &str = "spec.config";

/// Keys the operator sets from other spec fields (or must own so probes and Services work).
const OPERATOR_KEYS: &[(&str, &str)] = &[
    ("coordinator.mode", "spec.mode"),
    ("coordinator.flight_sql_addr", "the operator (port 50051)"),
    ("coordinator.trino_http_addr", "the operator (port 8080)"),
    (
        "coordinator.advertise_url",
        "the operator (the pod's IP, SQE_COORDINATOR__ADVERTISE_URL)",
    ),
    (
        "coordinator.health_addr",
        "the operator (port 9091, the probes)",
    ),
    ("coordinator.data_dir", "the operator (an emptyDir)"),
    ("metrics.addr", "the operator (port 9090)"),
    (
        "metrics.enabled",
        "the operator (the metrics port is always served)",
    ),
    ("worker.flight_addr", "the operator (port 50052)"),
    (
        "worker.coordinator_url",
        "the operator (the coordinator Service)",
    ),
    ("worker.spill_dir", "the operator (spec.workers.spill)"),
    (
        "worker.advertise_url",
        "the operator (the pod's IP, SQE_WORKER__ADVERTISE_URL)",
    ),
    ("worker.node_id", "the operator (the pod's name)"),
    ("auth.mode", "spec.auth"),
    ("auth.users_file", "spec.auth.usersSecret"),
    ("auth.users", "spec.auth.usersSecret"),
    ("auth.token_ttl_secs", "spec.auth.tokenTtlSeconds"),
    ("catalog.type", "spec.catalog.uri"),
    ("catalog.uri", "spec.catalog.uri"),
    ("catalog.warehouse", "spec.catalog.warehouse"),
    (
        "catalog.metadata_cache_ttl_secs",
        "spec.catalog.metadataCacheTtlSeconds",
    ),
    ("storage.s3_endpoint", "spec.storage.s3Endpoint"),
    ("storage.s3_region", "spec.storage.s3Region"),
    ("storage.s3_path_style", "spec.storage.s3PathStyle"),
];

/// Keys whose values are secrets: they go in `existingSecret`, never in the ConfigMap.
const SECRET_KEYS: &[&str] = &[
    "catalog.credential",
    "catalog.token",
    "storage.s3_secret_access_key",
    "storage.s3_session_token",
    "worker.internal_token",
];

/// A worker's pod IP (the downward API), and the URL it advertises from it: the coordinator
/// and the other workers reach each worker pod directly, not through a Service.
pub const POD_IP_ENV: &str = "POD_IP";
pub const ADVERTISE_URL_ENV: &str = "SQE_WORKER__ADVERTISE_URL";
/// The coordinator's Trino URL from its pod IP, as `system.runtime.nodes` shows it.
pub const COORDINATOR_ADVERTISE_URL_ENV: &str = "SQE_COORDINATOR__ADVERTISE_URL";

/// The environment variable the operator sets from the internal Secret.
pub const INTERNAL_TOKEN_ENV: &str = "SQE_WORKER__INTERNAL_TOKEN";

/// The engine's memory pools, from the containers' memory limits: the query memory each
/// process may use before it spills or fails (`coordinator.memory_limit_mb`,
/// `worker.memory_limit_mb`; `spec.config` may set them instead).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryPools {
    pub coordinator_mb: Option<u64>,
    pub worker_mb: Option<u64>,
}

/// The share of a container's memory limit its query pool gets; the rest is for the
/// process itself (Arrow buffers in flight, gRPC, caches, the allocator).
const POOL_SHARE: f64 = 0.75;

/// The pool for a container with these resources: 3/4 of its memory limit, in MiB.
pub fn pool_mb(resources: &ResourceRequirements) -> Option<u64> {
    let limit = resources.limits.as_ref()?.get("memory")?;
    let bytes = crate::validate::parse_quantity(&limit.0)?;
    let mb = (bytes * POOL_SHARE / (1024.0 * 1024.0)).floor();
    (mb >= 1.0).then_some(mb as u64)
}

/// The operator-owned part of `sqe.toml`.
fn base_table(spec: &SqeClusterSpec, names: &Names, pools: MemoryPools) -> Table {
    let mode = spec.mode.unwrap_or_default();
    let mut coordinator = Table::new();
    coordinator.insert("mode".into(), mode.as_str().into());
    coordinator.insert(
        "flight_sql_addr".into(),
        ports::any(ports::FLIGHT_SQL).into(),
    );
    coordinator.insert(
        "trino_http_addr".into(),
        ports::any(ports::TRINO_HTTP).into(),
    );
    coordinator.insert("health_addr".into(), ports::any(ports::HEALTH).into());
    coordinator.insert("data_dir".into(), DATA_DIR.into());
    coordinator.insert("log_format".into(), "json".into());
    if let Some(mb) = pools.coordinator_mb {
        coordinator.insert("memory_limit_mb".into(), Value::Integer(mb as i64));
    }

    let mut auth = Table::new();
    auth.insert("mode".into(), "password".into());
    auth.insert(
        "users_file".into(),
        format!("{USERS_DIR}/{USERS_FILE}").into(),
    );
    if let Some(ttl) = spec.auth.token_ttl_seconds {
        auth.insert("token_ttl_secs".into(), Value::Integer(ttl));
    }

    let mut catalog = Table::new();
    if let Some(c) = &spec.catalog {
        if let Some(uri) = &c.uri {
            catalog.insert("type".into(), "rest".into());
            catalog.insert("uri".into(), uri.as_str().into());
        }
        if let Some(w) = &c.warehouse {
            catalog.insert("warehouse".into(), w.as_str().into());
        }
        if let Some(ttl) = c.metadata_cache_ttl_seconds {
            catalog.insert("metadata_cache_ttl_secs".into(), Value::Integer(ttl));
        }
    }

    let mut storage = Table::new();
    if let Some(s) = &spec.storage {
        if let Some(e) = &s.s3_endpoint {
            storage.insert("s3_endpoint".into(), e.as_str().into());
        }
        if let Some(r) = &s.s3_region {
            storage.insert("s3_region".into(), r.as_str().into());
        }
        if let Some(p) = s.s3_path_style {
            storage.insert("s3_path_style".into(), p.into());
        }
    }

    let mut metrics = Table::new();
    metrics.insert("enabled".into(), true.into());
    metrics.insert("addr".into(), ports::any(ports::METRICS).into());

    let mut table = Table::new();
    table.insert("coordinator".into(), Value::Table(coordinator));
    if mode == ClusterMode::Distributed {
        let mut worker = Table::new();
        worker.insert("flight_addr".into(), ports::any(ports::WORKER).into());
        worker.insert(
            "coordinator_url".into(),
            format!(
                "http://{}:{PORT_FLIGHT_SQL}",
                names.coordinator_service_host()
            )
            .into(),
        );
        worker.insert("spill_dir".into(), SPILL_DIR.into());
        if let Some(mb) = pools.worker_mb {
            worker.insert("memory_limit_mb".into(), Value::Integer(mb as i64));
        }
        table.insert("worker".into(), Value::Table(worker));
    }
    table.insert("auth".into(), Value::Table(auth));
    table.insert("catalog".into(), Value::Table(catalog));
    table.insert("storage".into(), Value::Table(storage));
    table.insert("metrics".into(), Value::Table(metrics));
    table
}

/// Overlays `spec.config` on the base table; refuses operator-owned keys, secrets and nulls.
fn overlay(table: &mut Table, overrides: &BTreeMap<String, serde_json::Value>) -> Vec<SpecProblem> {
    let mut problems = Vec::new();
    for (section, keys) in overrides {
        let field = format!("{SPEC_CONFIG}.{section}");
        let serde_json::Value::Object(keys) = keys else {
            problems.push(SpecProblem::new(
                field,
                "must be an object of keys (a sqe.toml section such as `coordinator`)",
            ));
            continue;
        };
        for (key, value) in keys {
            let path = format!("{section}.{key}");
            let field = format!("{SPEC_CONFIG}.{path}");
            if let Some((_, owner)) = OPERATOR_KEYS.iter().find(|(k, _)| *k == path) {
                problems.push(SpecProblem::new(
                    field,
                    format!("is set by {owner}; remove it from spec.config"),
                ));
                continue;
            }
            if SECRET_KEYS.contains(&path.as_str()) {
                problems.push(SpecProblem::new(
                    field,
                    format!(
                        "is a secret and must not be in a ConfigMap: put it in the spec.existingSecret Secret as {}",
                        sqe_config::env_var_name(section, key)
                    ),
                ));
                continue;
            }
            match json_to_toml(value) {
                Ok(v) => {
                    let entry = table
                        .entry(section.clone())
                        .or_insert_with(|| Value::Table(Table::new()));
                    if let Value::Table(t) = entry {
                        t.insert(key.clone(), v);
                    }
                }
                Err(why) => problems.push(SpecProblem::new(field, why)),
            }
        }
    }
    problems
}

fn json_to_toml(value: &serde_json::Value) -> Result<Value, String> {
    Ok(match value {
        serde_json::Value::Null => return Err("null is not a value; remove the key instead".into()),
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::Integer(i),
            (None, Some(f)) => Value::Float(f),
            _ => return Err(format!("{n} is out of range")),
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(items) => Value::Array(
            items
                .iter()
                .map(json_to_toml)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        serde_json::Value::Object(map) => {
            let mut t = Table::new();
            for (k, v) in map {
                t.insert(k.clone(), json_to_toml(v)?);
            }
            Value::Table(t)
        }
    })
}

/// The rendered engine config: the ConfigMap's `sqe.toml` text.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedConfig {
    pub toml: String,
    /// The parsed config (without the Secret's environment), for checks across spec fields.
    pub parsed: SqeConfig,
    /// The operator's table before parsing, to re-check with the Secret's environment.
    table_text: String,
}

/// Renders `sqe.toml` for a cluster; every problem names its `spec.` field.
pub fn render(
    spec: &SqeClusterSpec,
    names: &Names,
    pools: MemoryPools,
) -> Result<RenderedConfig, Vec<SpecProblem>> {
    let mut table = base_table(spec, names, pools);
    if let Some(overrides) = &spec.config {
        let problems = overlay(&mut table, overrides);
        if !problems.is_empty() {
            return Err(problems);
        }
    }
    let table_text =
        toml::to_string(&table).map_err(|e| vec![SpecProblem::new(SPEC_CONFIG, e.to_string())])?;
    let config = parse(&table_text, std::iter::empty())?;
    let toml = config
        .to_toml()
        .map_err(|e| vec![SpecProblem::new(SPEC_CONFIG, e.to_string())])?;
    Ok(RenderedConfig {
        toml,
        parsed: config,
        table_text,
    })
}

impl RenderedConfig {
    /// Loads the config as a pod will: with the `SQE_*` variables of the referenced Secret.
    /// Problems name the variable (never its value).
    pub fn check_with_env(
        &self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<SqeConfig, Vec<SpecProblem>> {
        parse(&self.table_text, env)
    }
}

fn parse(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<SqeConfig, Vec<SpecProblem>> {
    sqe_config::load_from_str(text, Origin::File(SPEC_CONFIG.into()), env).map_err(to_problems)
}

fn to_problems(err: ConfigError) -> Vec<SpecProblem> {
    err.problems()
        .into_iter()
        .map(|p| {
            let owner = OPERATOR_KEYS
                .iter()
                .find(|(k, owner)| *k == p.key && owner.starts_with("spec."));
            let field = match (&p.origin, owner) {
                (Some(Origin::Env(var)), _) => format!("spec.existingSecret key {var}"),
                (_, Some((_, owner))) => owner.to_string(),
                _ if p.key.is_empty() => SPEC_CONFIG.to_string(),
                _ => format!("{SPEC_CONFIG}.{}", p.key),
            };
            SpecProblem::new(field, p.message)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    #[test]
    fn memory_pools_are_three_quarters_of_the_limit() {
        let with = |limit: Option<&str>| ResourceRequirements {
            limits: limit.map(|l| BTreeMap::from([("memory".to_string(), Quantity(l.into()))])),
            ..Default::default()
        };
        let cases = [
            (Some("4Gi"), Some(3072)),
            (Some("512Mi"), Some(384)),
            (Some("1G"), Some(715)),
            (Some("1Ki"), None),
            (Some("lots"), None),
            (None, None),
        ];
        for (limit, want) in cases {
            assert_eq!(pool_mb(&with(limit)), want, "{limit:?}");
        }
    }
}
