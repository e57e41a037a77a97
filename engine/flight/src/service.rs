//! The Flight SQL endpoint (port 50051): what ADBC, the Flight SQL JDBC driver, pyarrow and
//! `sqe-cli` talk to.
//!
//! ```text
//!  Handshake (Basic) ─▶ bearer token (response header + payload) = the caller's session
//!  GetFlightInfo(statement | prepared) ─▶ Engine::run ─▶ PendingQuery{id} ─▶ ticket(id)
//!  DoGet(ticket) ─▶ Engine::stream ─▶ Arrow IPC batches  (CancelFlightInfo stops it)
//!  DoPut(update | prepared update | ingest) ─▶ Engine::run / append_stream ─▶ row count
//!  metadata commands ─▶ catalogs, schemas, tables, SqlInfo, XdbcTypeInfo, empty key lists
//! ```
//!
//! Sessions hold `USE`/`SET` state and are keyed by the bearer token, or for token-less
//! callers by user and peer address (one gRPC connection). Query handles are kept on this
//! coordinator until fetched; an unfetched handle expires after [`PENDING_TTL`].

use std::collections::HashMap;
use std::pin::Pin;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{
    GetCatalogsBuilder, GetDbSchemasBuilder, GetTablesBuilder, SqlInfoData, XdbcTypeInfoData,
};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys,
    CommandGetImportedKeys, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TableExistsOption, TableNotExistOption, TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus,
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use bytes::Bytes;
use datafusion::common::metadata::ScalarAndMetadata;
use datafusion::common::{ParamValues, ScalarValue};

use futures::{Stream, StreamExt, TryStreamExt};
use iceberg::TableIdent;
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use sqe_core::auth::{Authenticator, Principal, decode_basic};
use sqe_core::catalog::namespace;
use sqe_core::ddl::create_and_fill;
use sqe_core::engine::{Engine, Output};
use sqe_core::error::{ErrorKind, Result, SqeError};
use sqe_core::membership::{HEARTBEAT_ACTION, Heartbeat, internal_credential_ok};
use sqe_core::registry::{CancelOutcome, QueryHandle, QueryState};
use sqe_core::scan::arrow_schema;
use sqe_core::session::Protocol;
use sqe_core::session::SqeSession;
use sqe_core::sql::like_match;
use sqe_core::write::append_stream;

use crate::error::status;
use crate::metadata;
use crate::session_options;

/// How long a planned query waits for its DoGet before it is dropped.
pub const PENDING_TTL: Duration = Duration::from_secs(600);

type BoxStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send + 'static>>;

/// Per-client state: the core session (user, defaults, settings, views) and its last use.
struct Session {
    sqe: Arc<SqeSession>,
    user: String,
    last_used: Mutex<Instant>,
}

struct PreparedStatement {
    owner: String,
    sql: String,
    parameter_schema: SchemaRef,
    /// Rows of bound parameters (DoPut), applied at execution.
    params: Vec<Vec<ScalarValue>>,
}

/// A planned query waiting for (or in) its DoGet.
struct PendingQuery {
    output: Output,
    handle: QueryHandle,
    owner: String,
    created: Instant,
}

pub struct SqeFlightService {
    engine: Arc<Engine>,
    auth: Arc<Authenticator>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    prepared: Mutex<HashMap<Bytes, PreparedStatement>>,
    pending: Mutex<HashMap<String, PendingQuery>>,
    sql_info: SqlInfoData,
    xdbc: XdbcTypeInfoData,
    idle_timeout: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SqeFlightService {
    pub fn new(engine: Arc<Engine>, auth: Arc<Authenticator>) -> Result<Self> {
        let idle_timeout =
            Duration::from_secs(engine.config().coordinator.session_idle_timeout_secs);
        Ok(Self {
            engine,
            auth,
            sessions: Mutex::new(HashMap::new()),
            prepared: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            sql_info: metadata::sql_info()?,
            xdbc: metadata::xdbc_type_info()?,
            idle_timeout,
        })
    }

    fn principal(&self, metadata: &MetadataMap) -> std::result::Result<Principal, Status> {
        let header = metadata.get("authorization").and_then(|v| v.to_str().ok());
        self.auth.authenticate(header).map_err(status)
    }

    fn session_key<T>(principal: &Principal, request: &Request<T>) -> String {
        match &principal.token {
            Some(t) => format!("token:{t}"),
            None => format!(
                "peer:{}@{}",
                principal.user,
                request
                    .remote_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "local".into())
            ),
        }
    }

    /// Authenticates the call and returns its session (created on first use).
    fn session<T>(&self, request: &Request<T>) -> std::result::Result<Arc<Session>, Status> {
        let principal = self.principal(request.metadata())?;
        let key = Self::session_key(&principal, request);
        let mut sessions = lock(&self.sessions);
        let now = Instant::now();
        let idle = self.idle_timeout;
        sessions.retain(|_, s| now.duration_since(*lock(&s.last_used)) < idle);
        let session = sessions.entry(key).or_insert_with(|| {
            Arc::new(Session {
                sqe: Arc::new(
                    self.engine
                        .new_session(&principal.user, Protocol::FlightSql),
                ),
                user: principal.user.clone(),
                last_used: Mutex::new(now),
            })
        });
        let session = Arc::clone(session);
        *lock(&session.last_used) = now;
        Ok(session)
    }

    fn expire_pending(&self) {
        let now = Instant::now();
        lock(&self.pending).retain(|_, q| now.duration_since(q.created) < PENDING_TTL);
    }

    /// Runs a statement for a session and, for queries, registers the plan for DoGet.
    async fn start_query(
        &self,
        session: &Arc<Session>,
        sql: String,
        params: Option<ParamValues>,
        descriptor: FlightDescriptor,
    ) -> std::result::Result<FlightInfo, Status> {
        self.expire_pending();
        let mut handle = self
            .engine
            .begin_query(&session.sqe, &sql)
            .map_err(status)?;
        handle.set_state(QueryState::Planning);
        let engine = Arc::clone(&self.engine);
        let sqe = Arc::clone(&session.sqe);
        let result = handle
            .unless_cancelled(
                self.engine
                    .on_query_runtime(async move { engine.run(&sqe, &sql, params).await }),
            )
            .await;
        let output = match result {
            Ok(o) => o,
            Err(e) => {
                handle.fail(&e);
                return Err(status(e));
            }
        };
        let schema = output.schema();
        let id = handle.id().to_string();
        lock(&self.pending).insert(
            id.clone(),
            PendingQuery {
                output,
                handle,
                owner: session.user.clone(),
                created: Instant::now(),
            },
        );
        let ticket = TicketStatementQuery {
            statement_handle: Bytes::from(id),
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(format!("cannot encode the result schema: {e}")))
            .map(|i| {
                i.with_endpoint(endpoint)
                    .with_descriptor(descriptor)
                    .with_total_records(-1)
                    .with_total_bytes(-1)
            })
    }

    /// Runs a statement to completion and returns its update count.
    async fn run_update(
        &self,
        session: &Arc<Session>,
        sql: String,
        params: Option<ParamValues>,
    ) -> std::result::Result<i64, Status> {
        let mut handle = self
            .engine
            .begin_query(&session.sqe, &sql)
            .map_err(status)?;
        handle.set_state(QueryState::Running);
        let engine = Arc::clone(&self.engine);
        let sqe = Arc::clone(&session.sqe);
        let run = self.engine.on_query_runtime(async move {
            let output = engine.run(&sqe, &sql, params).await?;
            match output {
                Output::Query { .. } => {
                    // a query sent as an update: run it, report the rows it produced
                    let mut stream = engine.stream(output)?;
                    let mut rows = 0i64;
                    while let Some(b) = stream.next().await {
                        rows += b.map_err(SqeError::from)?.num_rows() as i64;
                    }
                    Ok(rows)
                }
                done => Ok(done.update_count()),
            }
        });
        match handle.unless_cancelled(run).await {
            Ok(n) => {
                handle.succeed();
                Ok(n)
            }
            Err(e) => {
                handle.fail(&e);
                Err(status(e))
            }
        }
    }

    fn metadata_info<T: ProstMessageExt>(
        &self,
        command: T,
        schema: &Schema,
        descriptor: FlightDescriptor,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let ticket = Ticket::new(command.as_any().encode_to_vec());
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("schema: {e}")))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(descriptor)
            .with_total_records(-1)
            .with_total_bytes(-1);
        Ok(Response::new(info))
    }

    fn batch_response(
        batch: RecordBatch,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let schema = batch.schema();
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::iter(vec![Ok(batch)]))
            .map_err(Status::from);
        Ok(Response::new(Box::pin(stream)))
    }

    /// The bound parameter rows of a prepared statement, cast to the types the plan expects.
    fn param_values(schema: &SchemaRef, row: &[ScalarValue]) -> Result<ParamValues> {
        let mut values = Vec::with_capacity(row.len());
        for (i, v) in row.iter().enumerate() {
            let target = schema.fields().get(i).map(|f| f.data_type().clone());
            let v = match target {
                Some(t) if !t.is_null() && v.data_type() != t && !v.is_null() => {
                    let cast = v.cast_to(&t).map_err(|e| {
                        SqeError::semantic(format!(
                            "parameter ${}: cannot use a {} value as {t}: {e}",
                            i + 1,
                            v.data_type()
                        ))
                    })?;
                    // a number that does not survive the cast (3.5 as bigint) would change
                    // the query's meaning: refuse it rather than answer another question
                    let numeric = v.data_type().is_numeric() && t.is_numeric();
                    if numeric && cast.cast_to(&v.data_type()).ok().as_ref() != Some(v) {
                        return Err(SqeError::new(
                            ErrorKind::InvalidCast,
                            format!(
                                "parameter ${}: {v} does not fit the {t} the statement expects there; cast it in the SQL (CAST(? AS {}))",
                                i + 1,
                                v.data_type()
                            ),
                        ));
                    }
                    cast
                }
                Some(t) if v.is_null() && !t.is_null() => ScalarValue::try_from(&t)
                    .map_err(|e| SqeError::semantic(format!("parameter ${}: {e}", i + 1)))?,
                _ => v.clone(),
            };
            values.push(ScalarAndMetadata::from(v));
        }
        Ok(ParamValues::List(values))
    }

    async fn read_param_rows(
        stream: PeekableFlightDataStream,
    ) -> std::result::Result<Vec<Vec<ScalarValue>>, Status> {
        let batches: Vec<RecordBatch> =
            FlightRecordBatchStream::new_from_flight_data(stream.map_err(FlightError::from))
                .try_collect()
                .await
                .map_err(|e| Status::invalid_argument(format!("cannot read parameters: {e}")))?;
        let mut rows = Vec::new();
        for batch in batches {
            for r in 0..batch.num_rows() {
                let row = batch
                    .columns()
                    .iter()
                    .map(|c: &ArrayRef| ScalarValue::try_from_array(c, r))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Status::invalid_argument(format!("parameter value: {e}")))?;
                rows.push(row);
            }
        }
        Ok(rows)
    }

    /// The SQL, parameter schema and bound rows of a prepared statement. A handle this
    /// coordinator does not hold (it was created on another coordinator of the cluster, e.g.
    /// before a rolling upgrade moved the connection) is opened from its signed contents and
    /// described again; rows bound on the other coordinator are not carried over.
    async fn prepared_params(
        &self,
        handle: &Bytes,
        session: &Session,
    ) -> std::result::Result<(String, SchemaRef, Vec<Vec<ScalarValue>>), Status> {
        if let Some(p) = lock(&self.prepared)
            .get(handle)
            .filter(|p| p.owner == session.user)
        {
            return Ok((
                p.sql.clone(),
                Arc::clone(&p.parameter_schema),
                p.params.clone(),
            ));
        }
        let sql = self
            .auth
            .unseal(&session.user, handle)
            .and_then(|sql| String::from_utf8(sql).ok())
            .ok_or_else(|| {
                Status::not_found(
                    "unknown prepared statement handle (closed, or not issued by this cluster)",
                )
            })?;
        let (_, parameters) = self.describe(session, &sql).await?;
        lock(&self.prepared).insert(
            handle.clone(),
            PreparedStatement {
                owner: session.user.clone(),
                sql: sql.clone(),
                parameter_schema: Arc::clone(&parameters),
                params: vec![],
            },
        );
        Ok((sql, parameters, vec![]))
    }

    async fn describe(
        &self,
        session: &Session,
        sql: &str,
    ) -> std::result::Result<(SchemaRef, SchemaRef), Status> {
        let engine = Arc::clone(&self.engine);
        let sqe = Arc::clone(&session.sqe);
        let sql = sql.to_string();
        self.engine
            .on_query_runtime(async move { engine.describe(&sqe, &sql).await })
            .await
            .map_err(status)
    }

    fn cancel_handle(&self, id: &str, user: &str) -> CancelStatus {
        if let Some(q) = lock(&self.pending).remove(id) {
            if q.owner == user {
                drop(q); // the handle records the query as cancelled
                return CancelStatus::Cancelled;
            }
            lock(&self.pending).insert(id.to_string(), q);
            return CancelStatus::NotCancellable;
        }
        match self.engine.registry.cancel(id, Some(user)) {
            CancelOutcome::Cancelling => CancelStatus::Cancelling,
            CancelOutcome::AlreadyDone | CancelOutcome::NotFound | CancelOutcome::NotOwner => {
                CancelStatus::NotCancellable
            }
        }
    }

    fn cancel_info(&self, info: &FlightInfo, user: &str) -> CancelStatus {
        let mut result = CancelStatus::NotCancellable;
        for endpoint in &info.endpoint {
            let Some(ticket) = &endpoint.ticket else {
                continue;
            };
            let Ok(any) = Any::decode(ticket.ticket.as_ref()) else {
                continue;
            };
            if let Ok(Some(t)) = any.unpack::<TicketStatementQuery>() {
                let id = String::from_utf8_lossy(&t.statement_handle).to_string();
                let s = self.cancel_handle(&id, user);
                if s != CancelStatus::NotCancellable {
                    result = s;
                }
            }
        }
        result
    }

    async fn ingest(
        &self,
        session: &Arc<Session>,
        cmd: CommandStatementIngest,
        stream: PeekableFlightDataStream,
    ) -> Result<i64> {
        if cmd.temporary {
            return Err(SqeError::not_supported(
                "temporary tables; ingest into a regular table",
            ));
        }
        if cmd.transaction_id.is_some() {
            return Err(SqeError::not_supported("transactions"));
        }
        let catalog = Arc::clone(self.engine.catalog());
        if let Some(c) = &cmd.catalog
            && c != catalog.name()
        {
            return Err(catalog.unknown_catalog(c));
        }
        let schema_name = cmd.schema.clone().unwrap_or_else(|| session.sqe.schema());
        let ident = TableIdent::new(namespace(&schema_name), cmd.table.clone());
        let options = cmd.table_definition_options.unwrap_or_default();
        let if_not_exist = TableNotExistOption::try_from(options.if_not_exist)
            .unwrap_or(TableNotExistOption::Unspecified);
        let if_exists = TableExistsOption::try_from(options.if_exists)
            .unwrap_or(TableExistsOption::Unspecified);

        let mut batches =
            FlightRecordBatchStream::new_from_flight_data(stream.map_err(FlightError::from));
        let first = batches
            .try_next()
            .await
            .map_err(|e| SqeError::semantic(format!("cannot read ingested data: {e}")))?;
        let input_schema: SchemaRef = match (&first, batches.schema()) {
            (Some(b), _) => b.schema(),
            (None, Some(s)) => Arc::clone(s),
            (None, None) => {
                return Err(SqeError::semantic("ingest stream carried no schema"));
            }
        };

        let rest =
            batches.map_err(|e| SqeError::semantic(format!("cannot read ingested data: {e}")));
        let stream = futures::stream::iter(first.map(Ok)).chain(rest);
        // the columns are checked against the table before anything is written
        let append = |table: iceberg::table::Table| {
            let catalog = Arc::clone(&catalog);
            let input_schema = Arc::clone(&input_schema);
            async move {
                let target = arrow_schema(&table).map_err(SqeError::from)?;
                check_ingest_columns(&input_schema, &target)?;
                append_stream(&catalog, &table, stream).await
            }
        };
        let iceberg = catalog.iceberg();
        let exists = iceberg.table_exists(&ident).await?;
        let rows = match (exists, if_exists, if_not_exist) {
            (true, TableExistsOption::Append, _) => {
                let table = catalog.load_table(&ident).await?;
                append(table).await?
            }
            (true, TableExistsOption::Replace, _) => {
                iceberg.drop_table(&ident).await?;
                catalog.table_dropped(&ident);
                create_and_fill(&catalog, &ident, &input_schema, Default::default(), append).await?
            }
            (true, TableExistsOption::Fail | TableExistsOption::Unspecified, _) => {
                return Err(SqeError::new(
                    ErrorKind::TableAlreadyExists,
                    format!("table {}.{ident} already exists", catalog.name()),
                ));
            }
            (false, _, TableNotExistOption::Create) => {
                if !iceberg.namespace_exists(ident.namespace()).await? {
                    return Err(catalog.missing_schema(ident.namespace()));
                }
                create_and_fill(&catalog, &ident, &input_schema, Default::default(), append).await?
            }
            (false, _, TableNotExistOption::Fail | TableNotExistOption::Unspecified) => {
                return Err(catalog.missing_table(&ident));
            }
        };
        Ok(rows as i64)
    }
}

/// Ingested columns must all exist in the table (by name); missing ones become NULL.
fn check_ingest_columns(input: &Schema, table: &Schema) -> Result<()> {
    for f in input.fields() {
        if table.field_with_name(f.name()).is_err() {
            return Err(SqeError::semantic(format!(
                "ingested column `{}` is not a column of the table (columns: {})",
                f.name(),
                table
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    for f in table.fields() {
        if !f.is_nullable() && input.field_with_name(f.name()).is_err() {
            return Err(SqeError::semantic(format!(
                "required column `{}` is missing from the ingested data",
                f.name()
            )));
        }
    }
    Ok(())
}

#[tonic::async_trait]
impl FlightSqlService for SqeFlightService {
    type FlightService = SqeFlightService;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> std::result::Result<Response<BoxStream<HandshakeResponse>>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (user, password) = match header {
            Some(h) if h.len() > 6 && h[..6].eq_ignore_ascii_case("basic ") => {
                decode_basic(&h[6..]).map_err(status)?
            }
            Some(h) if h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer ") => {
                // already holding a token: confirm it and hand it back
                let p = self.auth.authenticate(Some(&h)).map_err(status)?;
                let token = p.token.unwrap_or_default();
                return handshake_response(&token);
            }
            _ => {
                // Flight's own BasicAuth payload in the first message
                let mut stream = request.into_inner();
                let first = stream.message().await?.unwrap_or_default();
                match arrow_flight::BasicAuth::decode(first.payload.as_ref()) {
                    Ok(b) if !b.username.is_empty() => (b.username, b.password),
                    _ if self.auth.mode() == sqe_config::AuthMode::None => {
                        (String::new(), String::new())
                    }
                    _ => {
                        return Err(Status::unauthenticated(
                            "send credentials: authorization: Basic <base64 user:password>",
                        ));
                    }
                }
            }
        };
        let auth = Arc::clone(&self.auth);
        let token = tokio::task::spawn_blocking(move || auth.login(&user, &password))
            .await
            .map_err(|e| Status::internal(format!("login task: {e}")))?
            .map_err(status)?;
        handshake_response(&token)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let session = self.session(&request)?;
        let descriptor = request.into_inner();
        let info = self
            .start_query(&session, query.query, None, descriptor)
            .await?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let session = self.session(&request)?;
        let (sql, schema, rows) = self
            .prepared_params(&cmd.prepared_statement_handle, &session)
            .await?;
        let params = match rows.as_slice() {
            [] => None,
            [row] => Some(Self::param_values(&schema, row).map_err(status)?),
            _ => {
                return Err(Status::invalid_argument(
                    "a query takes one row of parameters; bind a single row",
                ));
            }
        };
        let descriptor = request.into_inner();
        let info = self.start_query(&session, sql, params, descriptor).await?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.into_builder().schema();
        self.metadata_info(query, &schema, request.into_inner())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.clone().into_builder().schema();
        self.metadata_info(query, &schema, request.into_inner())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.clone().into_builder().schema();
        self.metadata_info(query, &schema, request.into_inner())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.into_builder().schema();
        self.metadata_info(query, &schema, request.into_inner())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        self.metadata_info(query, &schema, request.into_inner())
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        self.metadata_info(
            query,
            &metadata::primary_keys_schema(),
            request.into_inner(),
        )
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        self.metadata_info(
            query,
            &metadata::foreign_keys_schema(),
            request.into_inner(),
        )
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        self.metadata_info(
            query,
            &metadata::foreign_keys_schema(),
            request.into_inner(),
        )
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        self.metadata_info(
            query,
            &metadata::foreign_keys_schema(),
            request.into_inner(),
        )
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.into_builder(&self.xdbc).schema();
        self.metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let principal = self.principal(request.metadata())?;
        let id = String::from_utf8_lossy(&ticket.statement_handle).to_string();
        let pending = {
            let mut map = lock(&self.pending);
            match map.remove(&id) {
                Some(q) if q.owner == principal.user => q,
                Some(q) => {
                    map.insert(id.clone(), q);
                    return Err(Status::permission_denied(
                        "this query belongs to another user",
                    ));
                }
                None => {
                    return Err(Status::not_found(
                        "unknown or already fetched query ticket (tickets are single-use and expire after 10 minutes)",
                    ));
                }
            }
        };
        let PendingQuery {
            output, mut handle, ..
        } = pending;
        let stream = match self.engine.stream_query(output, handle.entry()) {
            Ok(s) => s,
            Err(e) => {
                handle.fail(&e);
                return Err(status(e));
            }
        };
        handle.set_state(QueryState::Running);
        let schema = stream.schema();
        let batches = ResultStream {
            inner: stream,
            handle,
            done: false,
        }
        .into_stream();
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(encoded)))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.principal(request.metadata())?;
        let mut builder: GetCatalogsBuilder = query.into_builder();
        builder.append(self.engine.catalog().name());
        Self::batch_response(
            builder
                .build()
                .map_err(|e| Status::internal(e.to_string()))?,
        )
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.principal(request.metadata())?;
        let catalog = Arc::clone(self.engine.catalog());
        catalog.refresh_if_stale().await.map_err(status)?;
        let mut builder: GetDbSchemasBuilder = query.into_builder();
        for schema in catalog.schema_names_cached() {
            builder.append(catalog.name(), schema);
        }
        builder.append(catalog.name(), "information_schema");
        Self::batch_response(
            builder
                .build()
                .map_err(|e| Status::internal(e.to_string()))?,
        )
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let session = self.session(&request)?;
        let include_schema = query.include_schema;
        let catalog = Arc::clone(self.engine.catalog());
        catalog.refresh_if_stale().await.map_err(status)?;
        let catalog_filter = query.catalog.clone();
        let schema_pattern = query.db_schema_filter_pattern.clone();
        let table_pattern = query.table_name_filter_pattern.clone();
        let mut builder: GetTablesBuilder = query.into_builder();
        if catalog_filter
            .as_deref()
            .is_none_or(|c| c == catalog.name())
        {
            let provider = session
                .sqe
                .ctx()
                .catalog(catalog.name())
                .ok_or_else(|| Status::internal("catalog missing from the session"))?;
            let mut schemas = catalog.schema_names_cached();
            schemas.push("information_schema".into());
            for schema_name in schemas {
                if !matches_pattern(schema_pattern.as_deref(), &schema_name) {
                    continue;
                }
                let Some(schema) = provider.schema(&schema_name) else {
                    continue;
                };
                let mut names = schema.table_names();
                names.sort();
                for table_name in names {
                    if !matches_pattern(table_pattern.as_deref(), &table_name) {
                        continue;
                    }
                    let Ok(Some(table)) = schema.table(&table_name).await else {
                        continue;
                    };
                    let kind = match table.table_type() {
                        datafusion::datasource::TableType::View => "VIEW",
                        _ if schema_name == "information_schema" => "SYSTEM TABLE",
                        _ => "TABLE",
                    };
                    let table_schema = if include_schema {
                        table.schema()
                    } else {
                        Arc::new(Schema::empty())
                    };
                    builder
                        .append(
                            catalog.name(),
                            &schema_name,
                            &table_name,
                            kind,
                            &table_schema,
                        )
                        .map_err(|e| Status::internal(e.to_string()))?;
                }
            }
        }
        Self::batch_response(
            builder
                .build()
                .map_err(|e| Status::internal(e.to_string()))?,
        )
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.principal(request.metadata())?;
        let mut builder = query.into_builder();
        for t in ["SYSTEM TABLE", "TABLE", "VIEW"] {
            builder.append(t);
        }
        Self::batch_response(
            builder
                .build()
                .map_err(|e| Status::internal(e.to_string()))?,
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.principal(request.metadata())?;
        let batch = query
            .into_builder(&self.sql_info)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Self::batch_response(batch)
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.principal(request.metadata())?;
        Self::batch_response(metadata::empty(metadata::primary_keys_schema()))
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.principal(request.metadata())?;
        Self::batch_response(metadata::empty(metadata::foreign_keys_schema()))
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.principal(request.metadata())?;
        Self::batch_response(metadata::empty(metadata::foreign_keys_schema()))
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.principal(request.metadata())?;
        Self::batch_response(metadata::empty(metadata::foreign_keys_schema()))
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.principal(request.metadata())?;
        let batch = query
            .into_builder(&self.xdbc)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Self::batch_response(batch)
    }

    async fn do_put_statement_update(
        &self,
        cmd: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> std::result::Result<i64, Status> {
        let session = self.session(&request)?;
        self.run_update(&session, cmd.query, None).await
    }

    async fn do_put_statement_ingest(
        &self,
        cmd: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> std::result::Result<i64, Status> {
        let session = self.session(&request)?;
        let text = format!("-- bulk ingest into {}", cmd.table);
        let mut handle = self
            .engine
            .begin_query(&session.sqe, &text)
            .map_err(status)?;
        handle.set_state(QueryState::Running);
        let result = handle
            .unless_cancelled(self.ingest(&session, cmd, request.into_inner()))
            .await;
        match result {
            Ok(rows) => {
                handle.add_output(u64::try_from(rows).unwrap_or(0), 0);
                handle.succeed();
                Ok(rows)
            }
            Err(e) => {
                handle.fail(&e);
                Err(status(e))
            }
        }
    }

    async fn do_put_prepared_statement_query(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> std::result::Result<DoPutPreparedStatementResult, Status> {
        let session = self.session(&request)?;
        let rows = Self::read_param_rows(request.into_inner()).await?;
        // held here, or reopened from the handle
        self.prepared_params(&cmd.prepared_statement_handle, &session)
            .await?;
        let mut prepared = lock(&self.prepared);
        let p = prepared
            .get_mut(&cmd.prepared_statement_handle)
            .filter(|p| p.owner == session.user)
            .ok_or_else(|| Status::not_found("unknown prepared statement handle"))?;
        p.params = rows;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(cmd.prepared_statement_handle),
        })
    }

    async fn do_put_prepared_statement_update(
        &self,
        cmd: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> std::result::Result<i64, Status> {
        let session = self.session(&request)?;
        let (sql, schema, bound) = self
            .prepared_params(&cmd.prepared_statement_handle, &session)
            .await?;
        let sent = Self::read_param_rows(request.into_inner()).await?;
        let rows = if sent.is_empty() { bound } else { sent };
        if rows.is_empty() {
            return self.run_update(&session, sql, None).await;
        }
        let mut total = 0;
        for row in rows {
            let params = Self::param_values(&schema, &row).map_err(status)?;
            total += self.run_update(&session, sql.clone(), Some(params)).await?;
        }
        Ok(total)
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> std::result::Result<ActionCreatePreparedStatementResult, Status> {
        let session = self.session(&request)?;
        let (dataset, parameters) = self.describe(&session, &query.query).await?;
        let handle = Bytes::from(self.auth.seal(&session.user, query.query.as_bytes()));
        lock(&self.prepared).insert(
            handle.clone(),
            PreparedStatement {
                owner: session.user.clone(),
                sql: query.query,
                parameter_schema: Arc::clone(&parameters),
                params: vec![],
            },
        );
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle,
            dataset_schema: encode_schema(&dataset)?,
            parameter_schema: encode_schema(&parameters)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> std::result::Result<(), Status> {
        let session = self.session(&request)?;
        let mut prepared = lock(&self.prepared);
        if prepared
            .get(&query.prepared_statement_handle)
            .is_some_and(|p| p.owner == session.user)
        {
            prepared.remove(&query.prepared_statement_handle);
        }
        Ok(())
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> std::result::Result<ActionCancelQueryResult, Status> {
        let principal = self.principal(request.metadata())?;
        let info = FlightInfo::decode(query.info.as_ref())
            .map_err(|e| Status::invalid_argument(format!("CancelQuery: {e}")))?;
        // ActionCancelQueryResult.CancelResult has the same numbering as CancelStatus
        let result = self.cancel_info(&info, &principal.user) as i32;
        Ok(ActionCancelQueryResult { result })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let kind = request.get_ref().r#type.clone();
        let body = request.get_ref().body.clone();
        let reply = |bytes: Vec<u8>| -> std::result::Result<
            Response<<Self as FlightService>::DoActionStream>,
            Status,
        > {
            let result = arrow_flight::Result {
                body: Bytes::from(bytes),
            };
            Ok(Response::new(Box::pin(futures::stream::iter(vec![Ok(
                result,
            )]))))
        };
        match kind.as_str() {
            "CancelFlightInfo" => {
                let principal = self.principal(request.metadata())?;
                let req = CancelFlightInfoRequest::decode(body.as_ref())
                    .map_err(|e| Status::invalid_argument(format!("CancelFlightInfo: {e}")))?;
                let info = req.info.unwrap_or_default();
                let status = self.cancel_info(&info, &principal.user);
                reply(
                    CancelFlightInfoResult {
                        status: status as i32,
                    }
                    .encode_to_vec(),
                )
            }
            "SetSessionOptions" => {
                let session = self.session(&request)?;
                let req = session_options::SetSessionOptionsRequest::decode(body.as_ref())
                    .map_err(|e| Status::invalid_argument(format!("SetSessionOptions: {e}")))?;
                let mut errors = HashMap::new();
                for (name, value) in req.session_options {
                    let text = match value.option_value {
                        Some(session_options::OptionValue::StringValue(s)) => Some(s),
                        _ => None,
                    };
                    let outcome = match (name.as_str(), text) {
                        ("catalog", Some(c)) if c == self.engine.catalog().name() => None,
                        ("schema", Some(s)) => {
                            let exists = self
                                .engine
                                .catalog()
                                .iceberg()
                                .namespace_exists(&namespace(&s))
                                .await
                                .unwrap_or(false);
                            if exists {
                                session.sqe.set_schema(&s);
                                None
                            } else {
                                Some(session_options::error_value::INVALID_VALUE)
                            }
                        }
                        ("catalog" | "schema", _) => {
                            Some(session_options::error_value::INVALID_VALUE)
                        }
                        _ => Some(session_options::error_value::INVALID_NAME),
                    };
                    if let Some(value) = outcome {
                        errors.insert(name, session_options::SetSessionOptionsError { value });
                    }
                }
                reply(session_options::SetSessionOptionsResult { errors }.encode_to_vec())
            }
            "GetSessionOptions" => {
                let session = self.session(&request)?;
                let mut options = HashMap::new();
                options.insert(
                    "catalog".to_string(),
                    session_options::string_value(self.engine.catalog().name()),
                );
                options.insert(
                    "schema".to_string(),
                    session_options::string_value(session.sqe.schema()),
                );
                reply(
                    session_options::GetSessionOptionsResult {
                        session_options: options,
                    }
                    .encode_to_vec(),
                )
            }
            "CloseSession" => {
                let principal = self.principal(request.metadata())?;
                let key = Self::session_key(&principal, &request);
                lock(&self.sessions).remove(&key);
                reply(
                    session_options::CloseSessionResult {
                        status: session_options::CLOSE_STATUS_CLOSED,
                    }
                    .encode_to_vec(),
                )
            }
            HEARTBEAT_ACTION => {
                let Some(membership) = self.engine.membership() else {
                    return Err(Status::failed_precondition(
                        "this coordinator runs in hybrid mode and takes no workers \
                         (coordinator.mode = \"hybrid\")",
                    ));
                };
                let expected = self.engine.config().worker.internal_token.as_ref();
                let header = request
                    .metadata()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok());
                if !internal_credential_ok(expected.map(|t| t.expose()), header) {
                    return Err(Status::unauthenticated(
                        "a worker heartbeat needs the cluster's internal credential",
                    ));
                }
                let beat: Heartbeat = serde_json::from_slice(&body)
                    .map_err(|e| Status::invalid_argument(format!("{HEARTBEAT_ACTION}: {e}")))?;
                let reply_body = membership.heartbeat(beat);
                reply(
                    serde_json::to_vec(&reply_body)
                        .map_err(|e| Status::internal(format!("{HEARTBEAT_ACTION}: {e}")))?,
                )
            }
            other => Err(Status::invalid_argument(format!(
                "unknown action type {other:?}"
            ))),
        }
    }

    async fn list_custom_actions(&self) -> Option<Vec<std::result::Result<ActionType, Status>>> {
        Some(
            [
                ("CancelFlightInfo", "Cancels a query given its FlightInfo"),
                ("SetSessionOptions", "Sets session options: catalog, schema"),
                ("GetSessionOptions", "Returns the session options"),
                ("CloseSession", "Ends the session"),
            ]
            .into_iter()
            .map(|(t, d)| {
                Ok(ActionType {
                    r#type: t.into(),
                    description: d.into(),
                })
            })
            .collect(),
        )
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// The result batches of one DoGet: counts rows and bytes, stops on cancel, and records the
/// query's outcome when the stream ends (or, by dropping the handle, when the client goes away).
struct ResultStream {
    inner: datafusion::execution::SendableRecordBatchStream,
    handle: QueryHandle,
    done: bool,
}

impl ResultStream {
    fn finish(&mut self, result: std::result::Result<(), &SqeError>) {
        self.done = true;
        self.handle.finish(result);
    }

    fn into_stream(
        self,
    ) -> impl Stream<Item = std::result::Result<RecordBatch, FlightError>> + Send + 'static {
        futures::stream::unfold(self, |mut s| async move {
            if s.done {
                return None;
            }
            let entry = Arc::clone(s.handle.entry());
            tokio::select! {
                biased;
                _ = entry.cancel.cancelled() => {
                    let e = SqeError::cancelled();
                    s.finish(Err(&e));
                    Some((Err(flight_error(e)), s))
                }
                item = s.inner.next() => match item {
                    Some(Ok(batch)) => {
                        s.handle.add_output(
                            batch.num_rows() as u64,
                            batch.get_array_memory_size() as u64,
                        );
                        Some((Ok(batch), s))
                    }
                    Some(Err(e)) => {
                        let e = SqeError::from(e);
                        s.finish(Err(&e));
                        Some((Err(flight_error(e)), s))
                    }
                    None => {
                        s.finish(Ok(()));
                        None
                    }
                },
            }
        })
    }
}

fn flight_error(e: SqeError) -> FlightError {
    FlightError::Tonic(Box::new(status(e)))
}

fn handshake_response(
    token: &str,
) -> std::result::Result<Response<BoxStream<HandshakeResponse>>, Status> {
    let output = futures::stream::iter(vec![Ok(HandshakeResponse {
        protocol_version: 0,
        payload: Bytes::from(token.to_string()),
    })]);
    let mut response: Response<BoxStream<HandshakeResponse>> = Response::new(Box::pin(output));
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| Status::internal("token is not a valid header value"))?;
    response.metadata_mut().insert("authorization", value);
    Ok(response)
}

fn encode_schema(schema: &Schema) -> std::result::Result<Bytes, Status> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &Default::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(format!("schema: {e}")))?;
    Ok(message.0)
}

/// SQL LIKE-style pattern of the metadata commands: `%` any run, `_` one character, `\`
/// escapes (JDBC's `getSearchStringEscape`).
fn matches_pattern(pattern: Option<&str>, value: &str) -> bool {
    pattern.is_none_or(|p| like_match(p, value, Some('\\')))
}
