//! The `sqe.toml` schema: sections, keys, defaults, and the pure checks on their values.
//!
//! Every struct denies unknown fields, so a typo is an error that names the key. Defaults live
//! here and nowhere else; `docs/configuration.md` lists every key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, Problem};
use crate::ports;

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqeConfig {
    pub coordinator: CoordinatorConfig,
    pub worker: WorkerConfig,
    pub auth: AuthConfig,
    pub catalog: CatalogConfig,
    pub storage: StorageConfig,
    pub metrics: MetricsConfig,
}

/// How the cluster runs: `hybrid` (the coordinator also executes) or `distributed` (the
/// coordinator plans, workers execute plan fragments).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Hybrid,
    Distributed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[coordinator]`: listeners, query execution and lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoordinatorConfig {
    pub mode: Mode,
    /// Flight SQL listener.
    pub flight_sql_addr: String,
    /// Trino HTTP client protocol listener.
    pub trino_http_addr: String,
    /// The URL of this coordinator's Trino port that others see (`system.runtime.nodes`);
    /// unset, it is `http://<trino_http_addr>`.
    pub advertise_url: Option<String>,
    /// A Trino query whose client has not polled for this long is cancelled and freed.
    pub trino_client_timeout_secs: u64,
    /// `/healthz` and `/readyz` listener.
    pub health_addr: String,
    /// Where the embedded catalog, the local warehouse and spill files live.
    pub data_dir: String,
    /// Partitions each query is split into; 0 means the number of CPU cores.
    pub target_partitions: usize,
    /// Rows per Arrow record batch.
    pub batch_size: usize,
    /// Memory the query engine may use, in MiB; 0 means no limit.
    pub memory_limit_mb: u64,
    /// How long in-flight queries may run after SIGTERM before the process exits.
    pub shutdown_timeout_secs: u64,
    /// Load the TPC-H sample into schema `tpch` on first start (embedded catalog only).
    pub sample_data: bool,
    /// Scale factor of the TPC-H sample.
    pub sample_scale_factor: f64,
    /// Schema used for unqualified table names until a session runs `USE`.
    pub default_schema: String,
    /// A session (its `USE`, `SET`, prepared statements) is forgotten after this idle time.
    pub session_idle_timeout_secs: u64,
    pub log_format: LogFormat,
    /// A tracing filter, e.g. `info` or `sqe_engine=debug,info`.
    pub log_level: String,
    /// Distributed mode: a worker whose heartbeats stop for this many of its intervals is GONE
    /// and gets no more tasks.
    pub worker_heartbeat_misses: u32,
    /// Distributed mode: how long a query waits for a worker with headroom (ACTIVE, under its
    /// task cap and memory limit) before it fails.
    pub worker_wait_timeout_secs: u64,
    /// Distributed mode: how many times a read-only query that lost a worker is run again on
    /// the remaining ones (whole-query retry); 0 turns retries off.
    pub query_retries: u32,
    /// Distributed mode: a retryable query's first rows are held back up to this many MiB, so
    /// a retry never sends a client a row twice; past it the rows go out and the query is no
    /// longer retried.
    pub retry_buffer_mb: u64,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Hybrid,
            flight_sql_addr: ports::loopback(ports::FLIGHT_SQL),
            trino_http_addr: ports::loopback(ports::TRINO_HTTP),
            advertise_url: None,
            trino_client_timeout_secs: 300,
            health_addr: ports::loopback(ports::HEALTH),
            data_dir: "./sqe-data".into(),
            target_partitions: 0,
            batch_size: 8192,
            memory_limit_mb: 0,
            shutdown_timeout_secs: 30,
            sample_data: true,
            sample_scale_factor: 0.01,
            default_schema: "default".into(),
            session_idle_timeout_secs: 3600,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            worker_heartbeat_misses: 3,
            worker_wait_timeout_secs: 60,
            query_retries: 2,
            retry_buffer_mb: 32,
        }
    }
}

/// `[worker]`: a worker process (distributed mode) and how it reaches the coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// The worker's listener for plan fragments, reached by the coordinator and other workers.
    pub flight_addr: String,
    /// The URL the coordinator and the other workers reach this worker at; default
    /// `http://<flight_addr>` (required when `flight_addr` binds every interface).
    pub advertise_url: Option<String>,
    /// The coordinator's Flight SQL URL that workers heartbeat to, e.g. `http://sqe-coordinator:50051`.
    pub coordinator_url: Option<String>,
    /// The shared coordinator <-> worker credential (the operator generates it; set it by
    /// `SQE_WORKER__INTERNAL_TOKEN`, never in the file).
    pub internal_token: Option<Secret>,
    /// Where workers spill sorts, joins and aggregations; default `<data_dir>/spill`.
    pub spill_dir: Option<String>,
    /// This worker's name in `system.runtime.nodes`; default the host name.
    pub node_id: Option<String>,
    /// How often the worker reports to the coordinator.
    pub heartbeat_interval_ms: u64,
    /// Memory the worker's tasks may use, in MiB, before they spill or fail; 0 = unlimited.
    pub memory_limit_mb: u64,
    /// Tasks the worker runs at once; the coordinator queues work beyond it.
    pub max_tasks: u32,
    /// How long running tasks may finish after SIGTERM before the worker exits.
    pub shutdown_timeout_secs: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            flight_addr: ports::loopback(ports::WORKER),
            advertise_url: None,
            coordinator_url: None,
            internal_token: None,
            spill_dir: None,
            node_id: None,
            heartbeat_interval_ms: 1000,
            memory_limit_mb: 0,
            max_tasks: 64,
            shutdown_timeout_secs: 30,
        }
    }
}

impl WorkerConfig {
    /// The URL others reach this worker at: `advertise_url`, else `http://<flight_addr>`, or
    /// the problem when `flight_addr` binds every interface and so names no reachable host.
    pub fn advertised(&self) -> Result<String, Problem> {
        if let Some(url) = &self.advertise_url {
            return Ok(url.clone());
        }
        match self.flight_addr.parse::<SocketAddr>() {
            Ok(addr) if addr.ip().is_unspecified() => Err(Problem::new(
                "worker.advertise_url",
                format!(
                    "worker.flight_addr = {addr} binds every interface, so the URL the coordinator \
                     and the other workers reach this worker at must be set, e.g. \
                     http://<pod IP>:{} (SQE_WORKER__ADVERTISE_URL)",
                    addr.port()
                ),
            )),
            _ => Ok(format!("http://{}", self.flight_addr)),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No credentials; only allowed while every query listener binds to loopback.
    #[default]
    None,
    /// Users with argon2 password hashes, from `users` and/or `users_file`.
    Password,
}

/// `[auth]`: who may connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// `[[auth.users]]` entries: a name and an argon2 PHC hash (`sqe-server hash-password`).
    pub users: Vec<UserEntry>,
    /// A file of `name:$argon2id$...` lines, read at start-up.
    pub users_file: Option<String>,
    /// Lifetime of the bearer token a Handshake returns.
    pub token_ttl_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::None,
            users: Vec::new(),
            users_file: None,
            token_ttl_secs: 8 * 3600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub name: String,
    pub password_hash: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogType {
    /// The embedded Iceberg SQL catalog on SQLite under the data directory.
    #[default]
    Sql,
    /// Any Iceberg REST catalog (Apache Polaris, Lakekeeper, Nessie, Gravitino, ...).
    Rest,
}

/// `[catalog]`: where Iceberg table metadata lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    #[serde(rename = "type")]
    pub kind: CatalogType,
    /// The catalog's name in SQL (`<name>.<schema>.<table>`).
    pub name: String,
    /// `sql`: a database URL (default `sqlite:<data_dir>/catalog.db`); `rest`: the catalog's base URL.
    pub uri: Option<String>,
    /// `sql`: the warehouse location (default `<data_dir>/warehouse`); `rest`: the warehouse name.
    pub warehouse: Option<String>,
    /// OAuth2 client credentials for a REST catalog, `client_id:client_secret`.
    pub credential: Option<Secret>,
    /// OAuth2 scope requested with `credential`.
    pub scope: Option<String>,
    /// OAuth2 token endpoint, when it is not the catalog's `v1/oauth/tokens`.
    pub oauth2_server_uri: Option<String>,
    /// A static bearer token for a REST catalog.
    pub token: Option<Secret>,
    /// Extra HTTP headers sent to a REST catalog.
    pub headers: BTreeMap<String, String>,
    /// Extra catalog properties passed through unchanged.
    pub properties: BTreeMap<String, String>,
    /// How long table lists and table metadata are cached before they are re-read.
    pub metadata_cache_ttl_secs: u64,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            kind: CatalogType::Sql,
            name: "iceberg".into(),
            uri: None,
            warehouse: None,
            credential: None,
            scope: None,
            oauth2_server_uri: None,
            token: None,
            headers: BTreeMap::new(),
            properties: BTreeMap::new(),
            metadata_cache_ttl_secs: 10,
        }
    }
}

/// `[storage]`: object storage for table data. Local paths need no settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), which most self-hosted stores need.
    pub s3_path_style: bool,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<Secret>,
    pub s3_session_token: Option<Secret>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            s3_endpoint: None,
            s3_region: None,
            s3_path_style: true,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_session_token: None,
        }
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub addr: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            addr: ports::loopback(ports::METRICS),
        }
    }
}

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl SqeConfig {
    /// The checks on values that types alone cannot express. Pure; every problem names its key.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let c = &self.coordinator;
        let mut query_listeners = Vec::new();
        for (key, value) in [
            ("coordinator.flight_sql_addr", &c.flight_sql_addr),
            ("coordinator.trino_http_addr", &c.trino_http_addr),
            ("coordinator.health_addr", &c.health_addr),
            ("metrics.addr", &self.metrics.addr),
            ("worker.flight_addr", &self.worker.flight_addr),
        ] {
            match value.parse::<SocketAddr>() {
                Ok(addr)
                    if key == "coordinator.flight_sql_addr"
                        || key == "coordinator.trino_http_addr" =>
                {
                    query_listeners.push((key, addr))
                }
                Ok(_) => {}
                Err(_) => out.push(Problem::new(
                    key,
                    format!(
                        "`{value}` is not an address of the form ip:port (e.g. 127.0.0.1:50051)"
                    ),
                )),
            }
        }
        if c.trino_client_timeout_secs == 0 {
            out.push(Problem::new(
                "coordinator.trino_client_timeout_secs",
                "must be at least 1",
            ));
        }
        if c.batch_size == 0 {
            out.push(Problem::new("coordinator.batch_size", "must be at least 1"));
        }
        if !(c.sample_scale_factor > 0.0 && c.sample_scale_factor <= 10.0) {
            out.push(Problem::new(
                "coordinator.sample_scale_factor",
                format!("{} is outside (0, 10]", c.sample_scale_factor),
            ));
        }
        if !is_identifier(&c.default_schema) {
            out.push(Problem::new(
                "coordinator.default_schema",
                format!(
                    "`{}` is not a schema name (letters, digits, `_`)",
                    c.default_schema
                ),
            ));
        }
        let w = &self.worker;
        for (key, url) in [
            ("coordinator.advertise_url", &c.advertise_url),
            ("worker.coordinator_url", &w.coordinator_url),
            ("worker.advertise_url", &w.advertise_url),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                out.push(Problem::new(key, format!("`{url}` is not an http(s) URL")));
            }
        }
        if w.heartbeat_interval_ms < 100 {
            out.push(Problem::new(
                "worker.heartbeat_interval_ms",
                "must be at least 100",
            ));
        }
        if w.max_tasks == 0 {
            out.push(Problem::new("worker.max_tasks", "must be at least 1"));
        }
        if c.worker_heartbeat_misses == 0 {
            out.push(Problem::new(
                "coordinator.worker_heartbeat_misses",
                "must be at least 1",
            ));
        }
        if c.data_dir.trim().is_empty() {
            out.push(Problem::new("coordinator.data_dir", "must not be empty"));
        }

        let a = &self.auth;
        match a.mode {
            AuthMode::None => {
                for (key, addr) in &query_listeners {
                    if !addr.ip().is_loopback() {
                        out.push(Problem::new(
                            "auth.mode",
                            format!(
                                "\"none\" is only allowed while every query listener binds to loopback, \
                                 but {key} is {addr}; set auth.mode = \"password\" with users, or bind to 127.0.0.1"
                            ),
                        ));
                    }
                }
            }
            AuthMode::Password => {
                if a.users.is_empty() && a.users_file.is_none() {
                    out.push(Problem::new(
                        "auth.users",
                        "auth.mode = \"password\" needs at least one [[auth.users]] entry or auth.users_file",
                    ));
                }
            }
        }
        for (i, user) in a.users.iter().enumerate() {
            if user.name.is_empty() || user.name.contains(':') {
                out.push(Problem::new(
                    format!("auth.users[{i}].name"),
                    "must be non-empty and must not contain `:`",
                ));
            }
            if let Err(why) = check_password_hash(&user.password_hash) {
                out.push(Problem::new(format!("auth.users[{i}].password_hash"), why));
            }
        }
        if a.token_ttl_secs == 0 {
            out.push(Problem::new("auth.token_ttl_secs", "must be at least 1"));
        }

        let k = &self.catalog;
        if !is_identifier(&k.name) {
            out.push(Problem::new(
                "catalog.name",
                format!("`{}` is not a catalog name (letters, digits, `_`)", k.name),
            ));
        }
        match k.kind {
            CatalogType::Rest => match &k.uri {
                None => out.push(Problem::new(
                    "catalog.uri",
                    "catalog.type = \"rest\" needs the catalog's URL, e.g. http://polaris:8181/api/catalog",
                )),
                Some(uri) if !(uri.starts_with("http://") || uri.starts_with("https://")) => out.push(
                    Problem::new("catalog.uri", format!("`{uri}` is not an http(s) URL")),
                ),
                Some(_) => {}
            },
            CatalogType::Sql => {
                if let Some(uri) = &k.uri
                    && !uri.starts_with("sqlite:")
                {
                    out.push(Problem::new(
                        "catalog.uri",
                        format!("`{uri}` is not a sqlite: URL (the embedded catalog runs on SQLite)"),
                    ));
                }
                for key in ["credential", "token", "scope", "oauth2_server_uri"] {
                    let set = match key {
                        "credential" => k.credential.is_some(),
                        "token" => k.token.is_some(),
                        "scope" => k.scope.is_some(),
                        _ => k.oauth2_server_uri.is_some(),
                    };
                    if set {
                        out.push(Problem::new(
                            format!("catalog.{key}"),
                            "only applies to catalog.type = \"rest\"",
                        ));
                    }
                }
            }
        }
        if let Some(cred) = &k.credential
            && !cred.expose().contains(':')
        {
            out.push(Problem::new(
                "catalog.credential",
                "must be `client_id:client_secret`",
            ));
        }
        if let Some(endpoint) = &self.storage.s3_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            out.push(Problem::new(
                "storage.s3_endpoint",
                format!("`{endpoint}` is not an http(s) URL"),
            ));
        }
        out
    }

    /// Validates and returns the config, or an error listing every problem.
    pub fn validated(self) -> Result<Self, ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Renders the config as `sqe.toml` text (what the operator writes into a ConfigMap).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Render(e.to_string()))
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// A password hash must be an argon2 PHC string; anything else is most likely a plain password.
pub fn check_password_hash(hash: &str) -> Result<(), String> {
    if hash.starts_with("$argon2id$")
        || hash.starts_with("$argon2i$")
        || hash.starts_with("$argon2d$")
    {
        Ok(())
    } else {
        Err(
            "is not an argon2 hash (`$argon2id$...`); plain-text passwords are not accepted, \
             make one with `sqe-server hash-password`"
                .into(),
        )
    }
}
