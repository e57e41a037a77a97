//! The engine: sessions, statement dispatch, and the query runtime.
//!
//! ```text
//!  protocol layer ──sql, params──▶ Engine::run(session) ──┬─ SQE DDL (ddl.rs) ───────────▶ Output::Done
//!                                                         ├─ SHOW …  → information_schema query
//!                                                         ├─ DML / SET / views (DataFusion) ▶ Output::Done
//!                                                         └─ queries ── physical plan ────▶ Output::Query
//!  Engine::stream(Output::Query) ── runs on the query runtime ──▶ record batches
//! ```
//!
//! Commands run to completion inside `run` (so a client that sends DDL through a query call
//! sees it happen at once); queries are planned in `run` and executed lazily by `stream`, on a
//! dedicated multi-threaded runtime so heavy queries never starve the network runtime.

use std::sync::Arc;

use std::time::Duration;

use arrow::array::{RecordBatch, UInt64Array};
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList};
use datafusion::common::ParamValues;
use datafusion::common::tree_node::TreeNode;
use datafusion::dataframe::DataFrame;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    ObjectType, SchemaName, ShowStatementFilter, ShowStatementFilterPosition, ShowStatementOptions,
    Statement, Use,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::StreamExt;
use sqe_config::SqeConfig;

use crate::catalog::SqeCatalog;
use crate::ddl;
use crate::distribution::Distribution;
use crate::error::{Result, SqeError};
use crate::execution::QueryRun;
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::provider::CatalogHandle;
use crate::registry::{QueryEntry, QueryHandle, QueryRegistry};
use crate::session::Protocol;
use crate::session::SqeSession;
use crate::sql;
use crate::system::{NodeInfo, SYSTEM_CATALOG, system_catalog};

/// What running a statement produced.
pub enum Output {
    /// A planned query; [`Engine::stream`] executes it.
    Query {
        plan: Arc<dyn ExecutionPlan>,
        task_ctx: Arc<TaskContext>,
        /// Distributed mode, read-only statements: what to plan again if a worker is lost.
        replan: Option<Box<DataFrame>>,
    },
    /// A command that has already run, with its (small) result.
    Done {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Query { .. } => f.write_str("Output::Query"),
            Output::Done { batches, .. } => write!(f, "Output::Done({} batches)", batches.len()),
        }
    }
}

impl Output {
    pub fn schema(&self) -> SchemaRef {
        match self {
            Output::Query { plan, .. } => plan.schema(),
            Output::Done { schema, .. } => Arc::clone(schema),
        }
    }

    fn done_empty() -> Self {
        Output::Done {
            schema: Arc::new(Schema::empty()),
            batches: vec![],
        }
    }

    fn done(batches: Vec<RecordBatch>, schema: SchemaRef) -> Self {
        Output::Done { schema, batches }
    }

    /// The affected-row count of a command (`count` column), or 0.
    pub fn update_count(&self) -> i64 {
        match self {
            Output::Done { batches, .. } => crate::write::count_from(batches) as i64,
            Output::Query { .. } => -1,
        }
    }
}

pub struct Engine {
    config: SqeConfig,
    catalog: Arc<SqeCatalog>,
    catalogs: Arc<dyn CatalogProviderList>,
    runtime_env: Arc<RuntimeEnv>,
    session_config: SessionConfig,
    query_runtime: Option<tokio::runtime::Runtime>,
    pub metrics: Arc<Metrics>,
    pub registry: Arc<QueryRegistry>,
    /// This process's id in `system.runtime.nodes` and `system.runtime.tasks`.
    node_id: String,
    /// Distributed mode: the workers and the planner that spreads queries over them.
    distribution: Option<Distribution>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(rt) = self.query_runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Engine {
    pub fn new(
        config: SqeConfig,
        catalog: Arc<SqeCatalog>,
        metrics: Arc<Metrics>,
        distribution: Option<Distribution>,
    ) -> Result<Self> {
        let c = &config.coordinator;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let target_partitions = if c.target_partitions == 0 {
            cores
        } else {
            c.target_partitions
        };
        let mut session_config = SessionConfig::new()
            .with_target_partitions(target_partitions)
            .with_batch_size(c.batch_size)
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(catalog.name(), &c.default_schema);
        let options = session_config.options_mut();
        options.sql_parser.map_string_types_to_utf8view = false;
        options.sql_parser.collect_spans = true;
        // 12345678901234567890.123456789 is an exact DECIMAL, as in Trino, not a lossy DOUBLE
        options.sql_parser.parse_float_as_decimal = true;
        options.execution.parquet.schema_force_view_types = false;
        // `TIMESTAMP WITH TIME ZONE` means UTC-adjusted instants (Iceberg's timestamptz)
        options.execution.time_zone = Some("+00:00".into());

        let spill_dir = std::path::Path::new(&c.data_dir).join("spill");
        let mut builder = RuntimeEnvBuilder::new().with_temp_file_path(spill_dir);
        if let Some(pool) =
            crate::memory::LimitedPool::for_limit("coordinator.memory_limit_mb", c.memory_limit_mb)
        {
            builder = builder.with_memory_pool(pool);
        }
        let runtime_env = builder.build_arc()?;

        let registry = Arc::new(QueryRegistry::new(Arc::clone(&metrics)));
        let list = Arc::new(MemoryCatalogProviderList::new());
        let catalogs: Arc<dyn CatalogProviderList> = Arc::clone(&list) as _;
        catalogs.register_catalog(
            catalog.name().to_string(),
            Arc::new(CatalogHandle(Arc::clone(&catalog))),
        );
        let node_id = std::env::var("HOSTNAME").unwrap_or_else(|_| "sqe-coordinator".into());
        let node = NodeInfo {
            node_id: node_id.clone(),
            http_uri: c
                .advertise_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", c.trino_http_addr)),
            version: crate::version().to_string(),
            coordinator: true,
        };
        catalogs.register_catalog(
            SYSTEM_CATALOG.to_string(),
            system_catalog(
                Arc::clone(&registry),
                Arc::downgrade(&catalogs),
                node,
                distribution.as_ref().map(|d| Arc::clone(&d.membership)),
            ),
        );

        // One worker more than cores: DataFusion polls some operators for a long time without
        // yielding (a nested-loop join probes a whole build side per batch), so a query with a
        // partition per core could otherwise hold every worker, and a short statement (a
        // system.runtime poll, a dashboard's metadata query) would wait for its slice to end.
        let query_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores + 1)
            .thread_name("sqe-query")
            .enable_all()
            .build()
            .map_err(|e| SqeError::internal(format!("cannot start the query runtime: {e}")))?;

        Ok(Self {
            config,
            catalog,
            catalogs,
            runtime_env,
            session_config,
            query_runtime: Some(query_runtime),
            registry,
            metrics,
            node_id,
            distribution,
        })
    }

    /// Distributed mode: the registry of workers (heartbeats go here).
    pub fn membership(&self) -> Option<&Arc<Membership>> {
        self.distribution.as_ref().map(|d| &d.membership)
    }

    pub fn config(&self) -> &SqeConfig {
        &self.config
    }

    pub fn catalog(&self) -> &Arc<SqeCatalog> {
        &self.catalog
    }

    /// A new DataFusion session with the configured defaults.
    pub fn new_context(&self) -> SessionContext {
        let mut builder = datafusion::execution::SessionStateBuilder::new()
            .with_config(self.session_config.clone())
            .with_runtime_env(Arc::clone(&self.runtime_env))
            .with_catalog_list(Arc::clone(&self.catalogs))
            .with_default_features();
        if let Some(d) = &self.distribution {
            builder = d.distributor.extend(builder);
        }
        SessionContext::new_with_state(builder.build())
    }

    /// A new session for `user` with the configured defaults.
    pub fn new_session(&self, user: &str, protocol: Protocol) -> SqeSession {
        let ctx = self.new_context();
        crate::functions::register(&ctx, user);
        SqeSession::new(user, protocol, ctx)
    }

    /// Registers a query of `session` (refused while draining).
    pub fn begin_query(&self, session: &SqeSession, sql: &str) -> Result<QueryHandle> {
        self.registry
            .begin(session.user(), session.source(), sql, session.protocol())
    }

    /// Runs `fut` on the query runtime, so planning and commands don't block the network runtime.
    pub async fn on_query_runtime<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let handle = self
            .query_runtime
            .as_ref()
            .ok_or_else(|| SqeError::shutting_down("the query runtime has stopped"))?
            .spawn(fut);
        // if the caller goes away (client cancelled), stop the work too
        let abort = handle.abort_handle();
        let _cancel_on_drop = AbortOnDrop(abort);
        match handle.await {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => Err(SqeError::cancelled()),
            Err(e) => Err(SqeError::internal(format!("query task failed: {e}"))),
        }
    }

    /// Starts `fut` on the query runtime (protocol work that is CPU-heavy, such as encoding
    /// results); the task ends when the runtime shuts down.
    pub fn spawn<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<tokio::task::JoinHandle<T>> {
        let rt = self
            .query_runtime
            .as_ref()
            .ok_or_else(|| SqeError::shutting_down("the query runtime has stopped"))?;
        Ok(rt.spawn(fut))
    }

    /// Executes a planned query on the query runtime; dropping the stream stops it.
    pub fn stream(&self, output: Output) -> Result<SendableRecordBatchStream> {
        self.stream_inner(output, None)
    }

    /// [`Engine::stream`] for a registered query: its plan's partitions become the query's
    /// tasks (`system.runtime.tasks`).
    pub fn stream_query(
        &self,
        output: Output,
        entry: &Arc<QueryEntry>,
    ) -> Result<SendableRecordBatchStream> {
        self.stream_inner(output, Some(entry))
    }

    fn stream_inner(
        &self,
        output: Output,
        entry: Option<&Arc<QueryEntry>>,
    ) -> Result<SendableRecordBatchStream> {
        match output {
            Output::Done { schema, batches } => Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::iter(batches.into_iter().map(Ok)),
            ))),
            Output::Query {
                plan,
                task_ctx,
                replan,
            } => {
                let schema = plan.schema();
                let (tx, rx) = tokio::sync::mpsc::channel(2);
                let rt = self
                    .query_runtime
                    .as_ref()
                    .ok_or_else(|| SqeError::shutting_down("the query runtime has stopped"))?;
                let c = &self.config.coordinator;
                let run = QueryRun {
                    node_id: self.node_id.clone(),
                    entry: entry.cloned(),
                    distribution: self.distribution.clone(),
                    metrics: Arc::clone(&self.metrics),
                    replan,
                    retries: c.query_retries,
                    hold_bytes: usize::try_from(c.retry_buffer_mb.saturating_mul(1 << 20))
                        .unwrap_or(usize::MAX),
                    wait: Duration::from_secs(c.worker_wait_timeout_secs),
                };
                let handle = rt.spawn(run.drive(plan, task_ctx, tx));
                let guard = AbortOnDrop(handle.abort_handle());
                let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |item| {
                    let _keep = &guard;
                    item
                });
                Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
            }
        }
    }

    /// Parses, plans and (for commands) executes one statement.
    pub async fn run(
        &self,
        sqe_session: &SqeSession,
        sql_text: &str,
        params: Option<ParamValues>,
    ) -> Result<Output> {
        let session = sqe_session.ctx();
        self.catalog.refresh_if_stale().await?;
        let (mut statement, partitioning) = parse_one(sql_text)?;
        if sqe_session.trino_dialect()
            && let DFStatement::Statement(s) = &mut statement
        {
            sql::name_columns_by_position(s);
            sql::use_trino_information_schema(s);
        }
        if params.is_some() && !matches!(&statement, DFStatement::Statement(s) if can_bind(s)) {
            return Err(SqeError::semantic("this statement takes no parameters"));
        }
        let state = session.state();
        let catalog = &self.catalog;
        if let DFStatement::Statement(stmt) = &statement {
            match stmt.as_ref() {
                Statement::CreateSchema {
                    schema_name,
                    if_not_exists,
                    ..
                } => {
                    let name = match schema_name {
                        SchemaName::Simple(n) | SchemaName::NamedAuthorization(n, _) => n,
                        SchemaName::UnnamedAuthorization(_) => {
                            return Err(SqeError::semantic("CREATE SCHEMA needs a name"));
                        }
                    };
                    let ns = ddl::schema_ident(catalog, name)?;
                    ddl::create_schema(catalog, &ns, *if_not_exists).await?;
                    return Ok(Output::done_empty());
                }
                Statement::CreateTable(ct) => {
                    let rows = ddl::create_table(catalog, &state, ct.clone(), partitioning).await?;
                    return Ok(if ct.query.is_some() {
                        count_output(rows)
                    } else {
                        Output::done_empty()
                    });
                }
                Statement::Drop {
                    object_type: ObjectType::Table,
                    if_exists,
                    names,
                    ..
                } => {
                    for name in names {
                        let ident = ddl::table_ident(catalog, &state, name)?;
                        ddl::drop_table(catalog, &ident, *if_exists).await?;
                    }
                    return Ok(Output::done_empty());
                }
                Statement::Drop {
                    object_type: ObjectType::Schema | ObjectType::Database,
                    if_exists,
                    names,
                    cascade,
                    ..
                } => {
                    for name in names {
                        let ns = ddl::schema_ident(catalog, name)?;
                        ddl::drop_schema(catalog, &ns, *if_exists, *cascade).await?;
                    }
                    return Ok(Output::done_empty());
                }
                Statement::ShowSchemas { show_options, .. }
                | Statement::ShowDatabases { show_options, .. } => {
                    let sql = show_schemas_sql(catalog.name(), show_options)?;
                    return Box::pin(self.run(sqe_session, &sql, None)).await;
                }
                Statement::ShowTables { show_options, .. } => {
                    let schema = state.config_options().catalog.default_schema.clone();
                    let sql = show_tables_sql(catalog.name(), &schema, show_options)?;
                    return Box::pin(self.run(sqe_session, &sql, None)).await;
                }
                Statement::Use(u) => {
                    self.use_schema(sqe_session, u).await?;
                    return Ok(Output::done_empty());
                }
                _ => {}
            }
        }
        match &statement {
            DFStatement::CreateExternalTable(_) => {
                return Err(SqeError::not_supported(
                    "CREATE EXTERNAL TABLE: SQE reads tables through its Iceberg catalog only",
                ));
            }
            DFStatement::CopyTo(_) => {
                return Err(SqeError::not_supported(
                    "COPY … TO: SQE does not write files outside its Iceberg tables",
                ));
            }
            _ => {}
        }

        crate::relations::check(session, &statement).await?;
        let located = statement.clone();
        let mut plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| crate::relations::locate(&located, SqeError::from(e)))?;
        if let Some(p) = params {
            plan = plan.with_param_values(p)?;
        }
        if is_command(&plan) {
            let df = session.execute_logical_plan(plan).await?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            return Ok(Output::done(batches, schema));
        }
        let df = session.execute_logical_plan(plan).await?;
        let task_ctx = Arc::new(df.task_ctx());
        let replan = (self.distribution.is_some() && read_only(df.logical_plan()))
            .then(|| Box::new(df.clone()));
        let mut physical = df.clone().create_physical_plan().await?;
        if let Some(d) = &self.distribution
            && d.membership.schedulable().is_empty()
            && reads_tables(&physical)
        {
            // the queue: with no worker that has room, the planner would keep the whole query
            // here; wait for one, then plan again across the workers
            let timeout = Duration::from_secs(self.config.coordinator.worker_wait_timeout_secs);
            d.membership
                .wait_schedulable(timeout)
                .await
                .map_err(|why| SqeError::new(crate::error::ErrorKind::NoWorkers, why))?;
            physical = df.create_physical_plan().await?;
        }
        Ok(Output::Query {
            plan: physical,
            task_ctx,
            replan,
        })
    }

    /// Plans a statement without running it: the schemas a prepared statement reports.
    pub async fn describe(
        &self,
        session: &SqeSession,
        sql_text: &str,
    ) -> Result<(SchemaRef, SchemaRef)> {
        self.catalog.refresh_if_stale().await?;
        let (statement, _) = parse_one(sql_text)?;
        let bindable = matches!(&statement, DFStatement::Statement(s) if can_bind(s));
        if !bindable {
            // DDL and other commands: no result set, no parameters
            return Ok((Arc::new(Schema::empty()), Arc::new(Schema::empty())));
        }
        let plan = session.ctx().state().statement_to_plan(statement).await?;
        let fields = plan.get_parameter_fields()?;
        let mut params: Vec<(usize, arrow::datatypes::Field)> = fields
            .into_iter()
            .map(|(name, field)| {
                let index: usize = name.trim_start_matches('$').parse().unwrap_or(usize::MAX);
                let data_type = field
                    .as_ref()
                    .map(|f| f.data_type().clone())
                    .unwrap_or(arrow::datatypes::DataType::Null);
                (index, arrow::datatypes::Field::new(name, data_type, true))
            })
            .collect();
        params.sort_by_key(|(i, _)| *i);
        let param_schema = Arc::new(Schema::new(
            params.into_iter().map(|(_, f)| f).collect::<Vec<_>>(),
        ));
        // DML and DDL describe an empty result: the Flight SQL JDBC driver (and DBeaver) runs
        // a prepared statement with an empty dataset schema as an update, with a row count
        let dataset = if is_command(&plan) {
            Arc::new(Schema::empty())
        } else {
            Arc::new(plan.schema().as_arrow().clone())
        };
        Ok((dataset, param_schema))
    }

    async fn use_schema(&self, session: &SqeSession, target: &Use) -> Result<()> {
        let name = match target {
            Use::Object(n) | Use::Schema(n) | Use::Database(n) => n,
            Use::Catalog(n) => {
                let n = n.to_string();
                if n.eq_ignore_ascii_case(self.catalog.name()) {
                    return Ok(());
                }
                return Err(self.catalog.unknown_catalog(&n));
            }
            other => {
                return Err(SqeError::not_supported(format!("USE {other}")));
            }
        };
        let ns = ddl::schema_ident(&self.catalog, name)?;
        if !self.catalog.iceberg().namespace_exists(&ns).await? {
            return Err(self.catalog.missing_schema(&ns));
        }
        session.set_schema(&ns.join("."));
        Ok(())
    }

    /// Runs a statement to completion and returns all batches (tests, sample loading, CLI-less callers).
    pub async fn run_collect(
        &self,
        session: &SqeSession,
        sql_text: &str,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        match self.run(session, sql_text, None).await? {
            Output::Done { schema, batches } => Ok((schema, batches)),
            Output::Query { plan, task_ctx, .. } => {
                let schema = plan.schema();
                let batches = collect(plan, task_ctx).await?;
                Ok((schema, batches))
            }
        }
    }

    /// Waits for in-flight queries, at most `timeout`; returns whether they all finished.
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.registry.drain(timeout).await
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether a plan scans Iceberg tables (work for workers) rather than only constants or
/// this coordinator's own state (system tables).
fn reads_tables(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.as_any().is::<crate::scan::IcebergScanExec>()
        || plan.children().iter().any(|c| reads_tables(c))
}

fn count_output(rows: u64) -> Output {
    let schema = crate::write::count_schema();
    match RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(UInt64Array::from(vec![rows]))],
    ) {
        Ok(batch) => Output::done(vec![batch], schema),
        Err(_) => Output::done(vec![], schema),
    }
}

/// Statements whose plan may carry `$n` parameters.
fn can_bind(s: &Statement) -> bool {
    matches!(
        s,
        Statement::Query(_) | Statement::Insert(_) | Statement::Explain { .. }
    )
}

/// Whether running a plan again changes nothing (no writes): only such plans are retried.
fn read_only(plan: &LogicalPlan) -> bool {
    !plan
        .exists(|p| {
            Ok(matches!(
                p,
                LogicalPlan::Dml(_) | LogicalPlan::Copy(_) | LogicalPlan::Ddl(_)
            ))
        })
        .unwrap_or(true)
}

/// Plans that change state run at once; everything else is a query.
fn is_command(plan: &LogicalPlan) -> bool {
    matches!(
        plan,
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Copy(_)
    )
}

/// Parses exactly one statement (after SQE's preprocessing).
pub fn parse_one(text: &str) -> Result<(DFStatement, Option<Vec<sql::PartitionTerm>>)> {
    let (text, partitioning) = sql::extract_partitioning(text)?;
    let text = sql::number_placeholders(&text)?;
    let dialect = GenericDialect {};
    let mut parser = DFParserBuilder::new(text.as_str())
        .with_dialect(&dialect)
        .build()
        .map_err(SqeError::from)?;
    let mut statements = parser.parse_statements().map_err(SqeError::from)?;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(s), true) => Ok((s, partitioning)),
        (None, _) => Err(SqeError::syntax("empty statement")),
        (Some(_), false) => Err(SqeError::syntax(
            "send one statement at a time (found more than one `;`-separated statement)",
        )),
    }
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn like_filter(options: &ShowStatementOptions, column: &str) -> Result<String> {
    match &options.filter_position {
        None => Ok(String::new()),
        Some(ShowStatementFilterPosition::Infix(f) | ShowStatementFilterPosition::Suffix(f)) => {
            match f {
                ShowStatementFilter::Like(p) | ShowStatementFilter::NoKeyword(p) => {
                    Ok(format!(" AND {column} LIKE {}", quote_literal(p)))
                }
                ShowStatementFilter::ILike(p) => {
                    Ok(format!(" AND {column} ILIKE {}", quote_literal(p)))
                }
                ShowStatementFilter::Where(e) => Ok(format!(" AND ({e})")),
            }
        }
    }
}

fn show_parent(options: &ShowStatementOptions) -> Option<Vec<String>> {
    options.show_in.as_ref().and_then(|i| {
        i.parent_name.as_ref().map(|n| {
            n.0.iter()
                .filter_map(|p| p.as_ident())
                .map(|i| {
                    if i.quote_style.is_some() {
                        i.value.clone()
                    } else {
                        i.value.to_ascii_lowercase()
                    }
                })
                .collect()
        })
    })
}

fn show_schemas_sql(catalog: &str, options: &ShowStatementOptions) -> Result<String> {
    let cat = match show_parent(options).as_deref() {
        None | Some([]) => catalog.to_string(),
        Some([c]) => c.clone(),
        Some(other) => {
            return Err(SqeError::semantic(format!(
                "SHOW SCHEMAS FROM {}: expected a catalog name",
                other.join(".")
            )));
        }
    };
    Ok(format!(
        "SELECT schema_name AS \"Schema\" FROM information_schema.schemata \
         WHERE catalog_name = {}{} ORDER BY 1",
        quote_literal(&cat),
        like_filter(options, "schema_name")?
    ))
}

fn show_tables_sql(
    catalog: &str,
    default_schema: &str,
    options: &ShowStatementOptions,
) -> Result<String> {
    let (cat, schema) = match show_parent(options).as_deref() {
        None | Some([]) => (catalog.to_string(), default_schema.to_string()),
        Some([s]) => (catalog.to_string(), s.clone()),
        Some([c, s]) => (c.clone(), s.clone()),
        Some(other) => {
            return Err(SqeError::semantic(format!(
                "SHOW TABLES FROM {}: expected [catalog.]schema",
                other.join(".")
            )));
        }
    };
    Ok(format!(
        "SELECT table_name AS \"Table\" FROM information_schema.tables \
         WHERE table_catalog = {} AND table_schema = {}{} ORDER BY 1",
        quote_literal(&cat),
        quote_literal(&schema),
        like_filter(options, "table_name")?
    ))
}
