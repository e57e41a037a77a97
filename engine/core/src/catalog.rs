//! An Iceberg catalog and what SQE caches of it: one [`SqeCatalog`] per configured catalog
//! (DataFusion's view of it is in [`crate::provider`]).
//!
//! ```text
//!  DataFusion planner ──sync──▶ CatalogHandle (provider.rs) ── names from a TTL snapshot
//!                    └─async─▶ SqeSchema::table() ── load_table (TTL cache) ─▶ IcebergTable
//!  Engine, before planning ──▶ SqeCatalog::refresh_if_stale() ── list_namespaces / list_tables
//! ```
//!
//! DataFusion asks for schema and table names synchronously, so names are served from a
//! snapshot the engine refreshes (asynchronously) before each statement once it is older than
//! `metadata_cache_ttl_secs`. Table metadata is cached per table with the same TTL; SQE's own
//! commits invalidate their entry at once, so a session always reads its own writes. Views
//! created with `CREATE VIEW` live in memory on this coordinator.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use datafusion::catalog::TableProvider;
use iceberg::io::StorageFactory;
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableIdent};
use iceberg_storage_opendal::OpenDalResolvingStorageFactory;
use sqe_config::{CatalogType, SqeConfig};

use crate::error::{ErrorKind, Result, SqeError};

/// Connects to the catalog the config describes.
pub async fn connect(config: &SqeConfig, data_dir: &std::path::Path) -> Result<Arc<dyn Catalog>> {
    let storage: Arc<dyn StorageFactory> = Arc::new(OpenDalResolvingStorageFactory::new());
    let mut props: HashMap<String, String> = storage_props(config);
    let k = &config.catalog;
    props.extend(k.properties.iter().map(|(a, b)| (a.clone(), b.clone())));
    match k.kind {
        CatalogType::Sql => {
            std::fs::create_dir_all(data_dir).map_err(|e| {
                SqeError::external(format!(
                    "cannot create data directory {}: {e}",
                    data_dir.display()
                ))
            })?;
            let abs = std::fs::canonicalize(data_dir).map_err(|e| {
                SqeError::external(format!(
                    "cannot resolve data directory {}: {e}",
                    data_dir.display()
                ))
            })?;
            let uri = k
                .uri
                .clone()
                .unwrap_or_else(|| format!("sqlite:{}/catalog.db?mode=rwc", abs.display()));
            let warehouse = match &k.warehouse {
                Some(w) if w.contains("://") => w.clone(),
                Some(w) => {
                    std::fs::create_dir_all(w).map_err(|e| {
                        SqeError::external(format!("cannot create warehouse directory {w}: {e}"))
                    })?;
                    let abs_w = std::fs::canonicalize(w)
                        .map_err(|e| SqeError::external(format!("warehouse {w}: {e}")))?;
                    format!("file://{}", abs_w.display())
                }
                None => {
                    let w = abs.join("warehouse");
                    std::fs::create_dir_all(&w).map_err(|e| {
                        SqeError::external(format!("cannot create warehouse {}: {e}", w.display()))
                    })?;
                    format!("file://{}", w.display())
                }
            };
            props.insert(iceberg_catalog_sql::SQL_CATALOG_PROP_URI.to_string(), uri);
            props.insert(
                iceberg_catalog_sql::SQL_CATALOG_PROP_WAREHOUSE.to_string(),
                warehouse,
            );
            props.insert(
                iceberg_catalog_sql::SQL_CATALOG_PROP_BIND_STYLE.to_string(),
                iceberg_catalog_sql::SqlBindStyle::QMark.to_string(),
            );
            let catalog = iceberg_catalog_sql::SqlCatalogBuilder::default()
                .with_storage_factory(storage)
                .load(k.name.clone(), props)
                .await
                .map_err(|e| {
                    SqeError::external(format!("cannot open the embedded catalog: {e}"))
                })?;
            Ok(Arc::new(catalog))
        }
        CatalogType::Rest => {
            let uri = k
                .uri
                .clone()
                .ok_or_else(|| SqeError::internal("catalog.uri was validated as present"))?;
            props.insert(
                iceberg_catalog_rest::REST_CATALOG_PROP_URI.to_string(),
                uri.clone(),
            );
            if let Some(w) = &k.warehouse {
                props.insert(
                    iceberg_catalog_rest::REST_CATALOG_PROP_WAREHOUSE.to_string(),
                    w.clone(),
                );
            }
            if let Some(c) = &k.credential {
                props.insert("credential".into(), c.expose().to_string());
            }
            if let Some(t) = &k.token {
                props.insert("token".into(), t.expose().to_string());
            }
            if let Some(s) = &k.scope {
                props.insert("scope".into(), s.clone());
            }
            if let Some(o) = &k.oauth2_server_uri {
                props.insert("oauth2-server-uri".into(), o.clone());
            }
            for (name, value) in &k.headers {
                props.insert(format!("header.{name}"), value.clone());
            }
            let catalog = iceberg_catalog_rest::RestCatalogBuilder::default()
                .with_storage_factory(storage)
                .load(k.name.clone(), props)
                .await
                .map_err(|e| {
                    SqeError::external(format!("cannot connect to the REST catalog at {uri}: {e}"))
                })?;
            Ok(Arc::new(catalog))
        }
    }
}

/// FileIO properties from `[storage]`.
fn storage_props(config: &SqeConfig) -> HashMap<String, String> {
    let s = &config.storage;
    let mut props = HashMap::new();
    if let Some(v) = &s.s3_endpoint {
        props.insert("s3.endpoint".into(), v.clone());
    }
    if let Some(v) = &s.s3_region {
        props.insert("s3.region".into(), v.clone());
    }
    props.insert("s3.path-style-access".into(), s.s3_path_style.to_string());
    if let Some(v) = &s.s3_access_key_id {
        props.insert("s3.access-key-id".into(), v.clone());
    }
    if let Some(v) = &s.s3_secret_access_key {
        props.insert("s3.secret-access-key".into(), v.expose().to_string());
    }
    if let Some(v) = &s.s3_session_token {
        props.insert("s3.session-token".into(), v.expose().to_string());
    }
    props
}

/// A namespace's name in SQL: its levels joined by `.`.
pub fn schema_name(ns: &NamespaceIdent) -> String {
    ns.as_ref().join(".")
}

pub fn namespace(schema: &str) -> NamespaceIdent {
    NamespaceIdent::from_vec(schema.split('.').map(str::to_string).collect())
        .unwrap_or_else(|_| NamespaceIdent::new(schema.to_string()))
}

#[derive(Default)]
struct NameSnapshot {
    fetched_at: Option<Instant>,
    /// schema -> table names
    schemas: BTreeMap<String, BTreeSet<String>>,
}

/// One Iceberg catalog, exposed to DataFusion.
pub struct SqeCatalog {
    name: String,
    iceberg: Arc<dyn Catalog>,
    ttl: Duration,
    names: RwLock<NameSnapshot>,
    tables: Mutex<HashMap<TableIdent, (Instant, Table)>>,
    views: RwLock<BTreeMap<(String, String), Arc<dyn TableProvider>>>,
    refresh_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SqeCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqeCatalog")
            .field("name", &self.name)
            .finish()
    }
}

impl SqeCatalog {
    pub fn new(name: impl Into<String>, iceberg: Arc<dyn Catalog>, ttl: Duration) -> Self {
        Self {
            name: name.into(),
            iceberg,
            ttl,
            names: RwLock::new(NameSnapshot::default()),
            tables: Mutex::new(HashMap::new()),
            views: RwLock::new(BTreeMap::new()),
            refresh_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn iceberg(&self) -> &Arc<dyn Catalog> {
        &self.iceberg
    }

    /// The error for a catalog name that is not this one.
    pub fn unknown_catalog(&self, name: &str) -> SqeError {
        SqeError::new(
            ErrorKind::CatalogNotFound,
            format!(
                "catalog {name} does not exist (this server has {})",
                self.name
            ),
        )
    }

    /// The error for a schema that does not exist.
    pub fn missing_schema(&self, ns: &NamespaceIdent) -> SqeError {
        SqeError::new(
            ErrorKind::SchemaNotFound,
            format!("schema {}.{} does not exist", self.name, schema_name(ns)),
        )
    }

    /// The error for a table that does not exist.
    pub fn missing_table(&self, ident: &TableIdent) -> SqeError {
        SqeError::new(
            ErrorKind::TableNotFound,
            format!("table {}.{ident} does not exist", self.name),
        )
    }

    /// Re-reads schema and table names when the snapshot is older than the TTL.
    pub async fn refresh_if_stale(&self) -> Result<()> {
        let fresh = |s: &NameSnapshot| s.fetched_at.is_some_and(|t| t.elapsed() < self.ttl);
        if self.names.read().map(|s| fresh(&s)).unwrap_or(false) {
            return Ok(());
        }
        let _guard = self.refresh_lock.lock().await;
        if self.names.read().map(|s| fresh(&s)).unwrap_or(false) {
            return Ok(());
        }
        self.refresh().await
    }

    /// Re-reads every schema and table name from the catalog.
    pub async fn refresh(&self) -> Result<()> {
        let mut schemas = BTreeMap::new();
        let mut pending: Vec<Option<NamespaceIdent>> = vec![None];
        while let Some(parent) = pending.pop() {
            let children = match self.iceberg.list_namespaces(parent.as_ref()).await {
                Ok(c) => c,
                Err(e) if parent.is_none() => return Err(e.into()),
                // a catalog without nested namespaces: this one simply has no children
                Err(_) => continue,
            };
            for ns in children {
                let tables = match self.iceberg.list_tables(&ns).await {
                    Ok(t) => t,
                    // dropped between the two calls
                    Err(e) if e.kind() == iceberg::ErrorKind::NamespaceNotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                let names = tables.into_iter().map(|t| t.name().to_string()).collect();
                schemas.insert(schema_name(&ns), names);
                // nested namespaces (some REST catalogs have them, others answer 404)
                if parent.is_none() {
                    pending.push(Some(ns));
                }
            }
        }
        if let Ok(mut snap) = self.names.write() {
            snap.schemas = schemas;
            snap.fetched_at = Some(Instant::now());
        }
        Ok(())
    }

    /// After SQE created a table: its name joins the snapshot and its metadata the cache, so
    /// the next statement neither re-lists the catalog nor reloads the table.
    pub fn table_created(&self, table: &Table) {
        let ident = table.identifier();
        if let Ok(mut snap) = self.names.write() {
            snap.schemas
                .entry(schema_name(ident.namespace()))
                .or_default()
                .insert(ident.name().to_string());
        }
        self.remember(table.clone());
    }

    /// After SQE dropped a table.
    pub fn table_dropped(&self, ident: &TableIdent) {
        if let Ok(mut snap) = self.names.write()
            && let Some(names) = snap.schemas.get_mut(&schema_name(ident.namespace()))
        {
            names.remove(ident.name());
        }
        if let Ok(mut tables) = self.tables.lock() {
            tables.remove(ident);
        }
    }

    /// After SQE created a schema.
    pub fn schema_created(&self, ns: &NamespaceIdent) {
        if let Ok(mut snap) = self.names.write() {
            snap.schemas.entry(schema_name(ns)).or_default();
        }
    }

    /// After SQE dropped a schema (and its tables).
    pub fn schema_dropped(&self, ns: &NamespaceIdent) {
        let name = schema_name(ns);
        if let Ok(mut snap) = self.names.write() {
            snap.schemas.remove(&name);
        }
        if let Ok(mut tables) = self.tables.lock() {
            tables.retain(|ident, _| schema_name(ident.namespace()) != name);
        }
    }

    /// Records a committed table version so the next statement reads it without a reload.
    pub fn remember(&self, table: Table) {
        if let Ok(mut tables) = self.tables.lock() {
            tables.insert(table.identifier().clone(), (Instant::now(), table));
        }
    }

    /// Loads a table, from the cache while it is younger than the TTL.
    pub async fn load_table(&self, ident: &TableIdent) -> Result<Table> {
        if let Ok(tables) = self.tables.lock()
            && let Some((at, table)) = tables.get(ident)
            && at.elapsed() < self.ttl
        {
            return Ok(table.clone());
        }
        let table = self.iceberg.load_table(ident).await?;
        self.remember(table.clone());
        Ok(table)
    }

    pub fn schema_names_cached(&self) -> Vec<String> {
        self.names
            .read()
            .map(|s| s.schemas.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn table_names_cached(&self, schema: &str) -> Vec<String> {
        let mut names: BTreeSet<String> = self
            .names
            .read()
            .map(|s| s.schemas.get(schema).cloned().unwrap_or_default())
            .unwrap_or_default();
        if let Ok(views) = self.views.read() {
            names.extend(
                views
                    .keys()
                    .filter(|(s, _)| s == schema)
                    .map(|(_, n)| n.clone()),
            );
        }
        names.into_iter().collect()
    }

    pub(crate) fn has_schema(&self, schema: &str) -> bool {
        self.names
            .read()
            .map(|s| s.schemas.contains_key(schema))
            .unwrap_or(false)
    }

    pub(crate) fn view(&self, schema: &str, name: &str) -> Option<Arc<dyn TableProvider>> {
        self.views
            .read()
            .ok()
            .and_then(|v| v.get(&(schema.to_string(), name.to_string())).cloned())
    }

    /// Whether the name snapshot lists `schema.name` as a table.
    pub(crate) fn has_table_cached(&self, schema: &str, name: &str) -> bool {
        self.names
            .read()
            .map(|s| s.schemas.get(schema).is_some_and(|t| t.contains(name)))
            .unwrap_or(false)
    }

    /// Keeps a `CREATE VIEW` on this coordinator; returns the view it replaces.
    pub(crate) fn register_view(
        &self,
        schema: &str,
        name: String,
        view: Arc<dyn TableProvider>,
    ) -> Option<Arc<dyn TableProvider>> {
        self.views
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((schema.to_string(), name), view)
    }

    pub(crate) fn deregister_view(
        &self,
        schema: &str,
        name: &str,
    ) -> Option<Arc<dyn TableProvider>> {
        self.views
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(schema.to_string(), name.to_string()))
    }
}
