//! Runs one Trino statement and produces its pages: session statements answered here (their
//! effect is response headers), everything else through the engine, results encoded as Trino
//! JSON in pages of about [`PAGE_BYTES`].

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::common::ScalarValue;
use datafusion::common::metadata::ScalarAndMetadata;
use futures::StreamExt;
use sqe_core::engine::{Engine, Output};
use sqe_core::error::{ErrorKind, Result, SqeError};
use sqe_core::registry::{QueryEntry, QueryState};
use sqe_core::session::SqeSession;
use sqe_core::sql::like_match;
use tokio::sync::mpsc;

use crate::headers::{ClientSession, SessionUpdate};
use crate::query::{Completion, Item, PAGE_BYTES, send};
use crate::statement::{self, SessionStatement};
use crate::types::{TypeOptions, column_json, trino_type, write_value};

/// Everything a statement runs with.
pub struct Statement {
    pub engine: Arc<Engine>,
    pub session: Arc<SqeSession>,
    pub client: ClientSession,
    pub sql: String,
}

/// Runs the statement and sends its items, ending with [`Item::Done`] unless cancelled.
pub async fn produce(statement: Statement, entry: Arc<QueryEntry>, tx: mpsc::Sender<Item>) {
    let result = run(&statement, &entry, &tx).await;
    let done = match result {
        Ok(Some(c)) => Ok(c),
        // cancelled, or the client is gone: the delivery side records it
        Ok(None) => return,
        Err(e) => Err(e),
    };
    send(&tx, &entry, Item::Done(done)).await;
}

async fn cancellable<T>(
    entry: &Arc<QueryEntry>,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<Option<T>> {
    tokio::select! {
        biased;
        _ = entry.cancel.cancelled() => Ok(None),
        r = fut => r.map(Some),
    }
}

async fn run(
    s: &Statement,
    entry: &Arc<QueryEntry>,
    tx: &mpsc::Sender<Item>,
) -> Result<Option<Completion>> {
    entry.set_state(QueryState::Planning);
    let Some(parsed) = statement::parse(&s.sql)? else {
        return run_sql(s, entry, tx, &s.sql, None).await;
    };
    let update = |update_type: &str, session: SessionUpdate| {
        Some(Completion {
            update_type: Some(update_type.into()),
            update_count: None,
            session,
        })
    };
    let types = s.client.types;
    match parsed {
        SessionStatement::Use { catalog, schema } => {
            let target = match &catalog {
                Some(c) => format!("{}.{}", quote(c), quote(&schema)),
                None => quote(&schema),
            };
            let scratch = s.engine.new_session(s.session.user(), s.session.protocol());
            if let Some(c) = &s.client.catalog {
                scratch.set_catalog(c);
            }
            s.engine
                .run(&scratch, &format!("USE {target}"), None)
                .await?;
            Ok(update(
                "USE",
                SessionUpdate {
                    set_catalog: Some(catalog.unwrap_or_else(|| s.session.catalog())),
                    set_schema: Some(schema),
                    ..Default::default()
                },
            ))
        }
        SessionStatement::SetSession { name, value } => {
            check_property(&s.engine, &name, &value)?;
            Ok(update(
                "SET SESSION",
                SessionUpdate {
                    set_session: vec![(name, value)],
                    ..Default::default()
                },
            ))
        }
        SessionStatement::ResetSession { name } => {
            if !is_property(&name) {
                return Err(unknown_property(&name));
            }
            Ok(update(
                "RESET SESSION",
                SessionUpdate {
                    clear_session: vec![name],
                    ..Default::default()
                },
            ))
        }
        SessionStatement::Prepare { name, sql } => {
            // the statement must at least parse and plan now, as in Trino
            s.engine.describe(&s.session, &sql).await?;
            Ok(update(
                "PREPARE",
                SessionUpdate {
                    added_prepare: vec![(name, sql)],
                    ..Default::default()
                },
            ))
        }
        SessionStatement::Execute { name, using } => {
            let sql = prepared(&s.client, &name)?;
            let params = arguments(s, using.as_deref()).await?;
            run_sql(s, entry, tx, &sql, params).await
        }
        SessionStatement::ExecuteImmediate { sql, using } => {
            let params = arguments(s, using.as_deref()).await?;
            run_sql(s, entry, tx, &sql, params).await
        }
        SessionStatement::Deallocate { name } => {
            prepared(&s.client, &name)?;
            Ok(update(
                "DEALLOCATE",
                SessionUpdate {
                    deallocated_prepare: vec![name],
                    ..Default::default()
                },
            ))
        }
        SessionStatement::DescribeInput { name } => {
            let sql = prepared(&s.client, &name)?;
            let (_, params) = s.engine.describe(&s.session, &sql).await?;
            let positions: Vec<i32> = (0..params.fields().len() as i32).collect();
            let types: Vec<String> = params
                .fields()
                .iter()
                .map(|f| trino_type(f.data_type(), types).display)
                .collect();
            let batch = batch(vec![
                ("Position", Arc::new(Int32Array::from(positions))),
                ("Type", strings(types)),
            ])?;
            send_batches(s, entry, tx, batch).await
        }
        SessionStatement::DescribeOutput { name } => {
            let sql = prepared(&s.client, &name)?;
            let (dataset, _) = s.engine.describe(&s.session, &sql).await?;
            let fields = dataset.fields();
            let n = fields.len();
            let batch = batch(vec![
                (
                    "Column Name",
                    strings(fields.iter().map(|f| f.name().clone()).collect()),
                ),
                ("Catalog", strings(vec![String::new(); n])),
                ("Schema", strings(vec![String::new(); n])),
                ("Table", strings(vec![String::new(); n])),
                (
                    "Type",
                    strings(
                        fields
                            .iter()
                            .map(|f| trino_type(f.data_type(), types).display)
                            .collect(),
                    ),
                ),
                (
                    "Type Size",
                    Arc::new(Int32Array::from(
                        fields
                            .iter()
                            .map(|f| type_size(f.data_type()))
                            .collect::<Vec<_>>(),
                    )),
                ),
                ("Aliased", Arc::new(BooleanArray::from(vec![false; n]))),
            ])?;
            send_batches(s, entry, tx, batch).await
        }
        SessionStatement::StartTransaction => {
            if s.client.transaction_id.is_some() {
                return Err(SqeError::not_supported("nested transactions"));
            }
            Ok(update(
                "START TRANSACTION",
                SessionUpdate {
                    started_transaction: Some(uuid_like(&entry.id)),
                    ..Default::default()
                },
            ))
        }
        SessionStatement::Commit => Ok(update(
            "COMMIT",
            SessionUpdate {
                clear_transaction: true,
                ..Default::default()
            },
        )),
        SessionStatement::Rollback => Err(SqeError::not_supported(
            "ROLLBACK: SQE commits every statement when it finishes, so there is nothing to roll back",
        )),
        SessionStatement::ShowSession => {
            let options = s.session.ctx().state().config_options().entries();
            let mut names = Vec::new();
            let mut values = Vec::new();
            let mut descriptions = Vec::new();
            for o in options {
                names.push(o.key.clone());
                values.push(o.value.clone().unwrap_or_default());
                descriptions.push(o.description.to_string());
            }
            let defaults = names
                .iter()
                .map(|n| default_option(n).unwrap_or_default())
                .collect();
            let n = names.len();
            let batch = batch(vec![
                ("Name", strings(names)),
                ("Value", strings(values)),
                ("Default", strings(defaults)),
                ("Type", strings(vec!["varchar".to_string(); n])),
                ("Description", strings(descriptions)),
            ])?;
            send_batches(s, entry, tx, batch).await
        }
        SessionStatement::ShowCatalogs { like } => {
            let mut names: Vec<String> = s
                .session
                .ctx()
                .catalog_names()
                .into_iter()
                .filter(|c| like.as_deref().is_none_or(|p| like_match(p, c, None)))
                .collect();
            names.sort();
            let batch = batch(vec![("Catalog", strings(names))])?;
            send_batches(s, entry, tx, batch).await
        }
        SessionStatement::ShowFunctions { like } => {
            let state = s.session.ctx().state();
            let mut functions: Vec<(String, &str)> = state
                .scalar_functions()
                .keys()
                .map(|k| (k.clone(), "scalar"))
                .chain(
                    state
                        .aggregate_functions()
                        .keys()
                        .map(|k| (k.clone(), "aggregate")),
                )
                .chain(
                    state
                        .window_functions()
                        .keys()
                        .map(|k| (k.clone(), "window")),
                )
                .filter(|(name, _)| like.as_deref().is_none_or(|p| like_match(p, name, None)))
                .collect();
            functions.sort();
            let batch = batch(vec![
                (
                    "Function",
                    strings(functions.iter().map(|(n, _)| n.clone()).collect()),
                ),
                (
                    "Function Type",
                    strings(functions.iter().map(|(_, t)| t.to_string()).collect()),
                ),
            ])?;
            send_batches(s, entry, tx, batch).await
        }
        SessionStatement::ShowColumns { table } => {
            let schema = table_schema(s, &table).await?;
            let n = schema.fields().len();
            let batch = batch(vec![
                (
                    "Column",
                    strings(schema.fields().iter().map(|f| f.name().clone()).collect()),
                ),
                (
                    "Type",
                    strings(
                        schema
                            .fields()
                            .iter()
                            .map(|f| trino_type(f.data_type(), types).display)
                            .collect(),
                    ),
                ),
                ("Extra", strings(vec![String::new(); n])),
                ("Comment", strings(vec![String::new(); n])),
            ])?;
            send_batches(s, entry, tx, batch).await
        }
        SessionStatement::ShowCreateTable { table } => {
            let schema = table_schema(s, &table).await?;
            let name = qualified(s, &table);
            let columns: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| {
                    format!(
                        "   {} {}{}",
                        quote(f.name()),
                        trino_type(f.data_type(), types).display,
                        if f.is_nullable() { "" } else { " NOT NULL" }
                    )
                })
                .collect();
            let text = format!("CREATE TABLE {name} (\n{}\n)", columns.join(",\n"));
            let batch = batch(vec![("Create Table", strings(vec![text]))])?;
            send_batches(s, entry, tx, batch).await
        }
    }
}

/// Runs SQL through the engine and streams its result (or its update count).
async fn run_sql(
    s: &Statement,
    entry: &Arc<QueryEntry>,
    tx: &mpsc::Sender<Item>,
    sql: &str,
    params: Option<ParamValues>,
) -> Result<Option<Completion>> {
    let Some(output) = cancellable(entry, s.engine.run(&s.session, sql, params)).await? else {
        return Ok(None);
    };
    match update_type(sql) {
        Some(UpdateKind::Rows(update_type)) => {
            let count = u64::try_from(output.update_count()).unwrap_or(0);
            // a DML answer is one `rows` column holding the count
            let schema = Arc::new(Schema::new(vec![Field::new(
                "rows",
                DataType::Int64,
                false,
            )]));
            if !send_columns(tx, entry, &columns(&schema, s.client.types)).await {
                return Ok(None);
            }
            entry.set_state(QueryState::Running);
            let data = format!("[[{count}]]");
            if !send(
                tx,
                entry,
                Item::Data {
                    json: data,
                    rows: 1,
                },
            )
            .await
            {
                return Ok(None);
            }
            Ok(Some(Completion {
                update_type: Some(update_type.into()),
                update_count: Some(count),
                session: SessionUpdate::default(),
            }))
        }
        Some(UpdateKind::Ddl(update_type)) => Ok(Some(Completion {
            update_type: Some(update_type.into()),
            update_count: None,
            session: SessionUpdate::default(),
        })),
        None => stream(s, entry, tx, output).await,
    }
}

async fn send_batches(
    s: &Statement,
    entry: &Arc<QueryEntry>,
    tx: &mpsc::Sender<Item>,
    batch: RecordBatch,
) -> Result<Option<Completion>> {
    let schema = batch.schema();
    let output = Output::Done {
        schema,
        batches: vec![batch],
    };
    stream(s, entry, tx, output).await
}

async fn send_columns(tx: &mpsc::Sender<Item>, entry: &QueryEntry, json: &str) -> bool {
    send(tx, entry, Item::Columns(json.to_string())).await
}

fn columns(schema: &SchemaRef, types: TypeOptions) -> String {
    serde_json::Value::Array(
        schema
            .fields()
            .iter()
            .map(|f| column_json(f, types))
            .collect(),
    )
    .to_string()
}

/// Streams a result as pages: the columns first, then rows until the engine's stream ends.
async fn stream(
    s: &Statement,
    entry: &Arc<QueryEntry>,
    tx: &mpsc::Sender<Item>,
    output: Output,
) -> Result<Option<Completion>> {
    let types = s.client.types;
    let schema = output.schema();
    if !send_columns(tx, entry, &columns(&schema, types)).await {
        return Ok(None);
    }
    entry.set_state(QueryState::Running);
    let mut batches = s.engine.stream_query(output, entry)?;
    let mut page = String::with_capacity(PAGE_BYTES + PAGE_BYTES / 4);
    let mut rows = 0u64;
    loop {
        let next = tokio::select! {
            biased;
            _ = entry.cancel.cancelled() => return Ok(None),
            b = batches.next() => b,
        };
        let batch = match next {
            None => break,
            Some(b) => b.map_err(SqeError::from)?,
        };
        entry.add_output(
            batch.num_rows() as u64,
            batch.get_array_memory_size() as u64,
        );
        let columns: &[ArrayRef] = batch.columns();
        for row in 0..batch.num_rows() {
            page.push(if rows == 0 { '[' } else { ',' });
            page.push('[');
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    page.push(',');
                }
                write_value(&mut page, column, row, types);
            }
            page.push(']');
            rows += 1;
            if page.len() >= PAGE_BYTES {
                page.push(']');
                let json = std::mem::replace(
                    &mut page,
                    String::with_capacity(PAGE_BYTES + PAGE_BYTES / 4),
                );
                if !send(tx, entry, Item::Data { json, rows }).await {
                    return Ok(None);
                }
                rows = 0;
            }
        }
    }
    if rows > 0 {
        page.push(']');
        if !send(tx, entry, Item::Data { json: page, rows }).await {
            return Ok(None);
        }
    }
    entry.set_state(QueryState::Finishing);
    Ok(Some(Completion::default()))
}

/// Trino's `updateType` of a statement, known before it runs (so every page can say it; the
/// JDBC driver decides query or update from the first page that has `columns`).
pub fn announced_update_type(sql: &str, client: &ClientSession) -> Option<String> {
    let kind = match statement::parse(sql).ok().flatten() {
        None => update_type(sql),
        Some(SessionStatement::Execute { name, .. }) => {
            client.prepared.get(&name).and_then(|s| update_type(s))
        }
        Some(SessionStatement::ExecuteImmediate { sql, .. }) => update_type(&sql),
        Some(s) => {
            return match s {
                SessionStatement::Use { .. } => Some("USE"),
                SessionStatement::SetSession { .. } => Some("SET SESSION"),
                SessionStatement::ResetSession { .. } => Some("RESET SESSION"),
                SessionStatement::Prepare { .. } => Some("PREPARE"),
                SessionStatement::Deallocate { .. } => Some("DEALLOCATE"),
                SessionStatement::StartTransaction => Some("START TRANSACTION"),
                SessionStatement::Commit => Some("COMMIT"),
                SessionStatement::Rollback => Some("ROLLBACK"),
                _ => None,
            }
            .map(str::to_string);
        }
    };
    kind.map(|k| match k {
        UpdateKind::Rows(t) | UpdateKind::Ddl(t) => t.to_string(),
    })
}

/// What kind of answer a statement gives: a row count (DML) or nothing (DDL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpdateKind {
    Rows(&'static str),
    Ddl(&'static str),
}

/// Trino's `updateType` of a statement, from its leading keywords.
fn update_type(sql: &str) -> Option<UpdateKind> {
    let words: Vec<String> = sql
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .take(8)
        .map(str::to_ascii_uppercase)
        .collect();
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let has_as = {
        let upper = sql.to_ascii_uppercase();
        upper.contains(" AS SELECT")
            || upper.contains(" AS WITH")
            || upper.contains(" AS (")
            || upper.contains("\nAS ")
            || upper.contains(" AS\n")
    };
    Some(match w.as_slice() {
        ["INSERT", ..] => UpdateKind::Rows("INSERT"),
        ["DELETE", ..] => UpdateKind::Rows("DELETE"),
        ["UPDATE", ..] => UpdateKind::Rows("UPDATE"),
        ["MERGE", ..] => UpdateKind::Rows("MERGE"),
        ["CREATE", "TABLE", ..] | ["CREATE", "OR", "REPLACE", "TABLE", ..] if has_as => {
            UpdateKind::Rows("CREATE TABLE")
        }
        ["CREATE", "TABLE", ..] | ["CREATE", "OR", "REPLACE", "TABLE", ..] => {
            UpdateKind::Ddl("CREATE TABLE")
        }
        ["CREATE", "SCHEMA" | "DATABASE", ..] => UpdateKind::Ddl("CREATE SCHEMA"),
        ["CREATE", "VIEW", ..] | ["CREATE", "OR", "REPLACE", "VIEW", ..] => {
            UpdateKind::Ddl("CREATE VIEW")
        }
        ["DROP", "TABLE", ..] => UpdateKind::Ddl("DROP TABLE"),
        ["DROP", "SCHEMA" | "DATABASE", ..] => UpdateKind::Ddl("DROP SCHEMA"),
        ["DROP", "VIEW", ..] => UpdateKind::Ddl("DROP VIEW"),
        ["ALTER", "TABLE", ..] => UpdateKind::Ddl("ALTER TABLE"),
        ["SET", ..] => UpdateKind::Ddl("SET SESSION"),
        _ => return None,
    })
}

fn prepared(client: &ClientSession, name: &str) -> Result<String> {
    client.prepared.get(name).cloned().ok_or_else(|| {
        SqeError::new(
            ErrorKind::StatementNotFound,
            format!("Prepared statement not found: {name}"),
        )
    })
}

/// The values after `USING`, evaluated by the engine as one row of a `SELECT`.
async fn arguments(s: &Statement, using: Option<&str>) -> Result<Option<ParamValues>> {
    let Some(text) = using else {
        return Ok(None);
    };
    let args = statement::split_arguments(text)?;
    if args.is_empty() {
        return Ok(None);
    }
    let select = format!("SELECT {}", args.join(", "));
    let scratch = s.engine.new_session(s.session.user(), s.session.protocol());
    let (_, batches) = s.engine.run_collect(&scratch, &select).await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| SqeError::internal("parameter values produced no row"))?;
    let values = batch
        .columns()
        .iter()
        .map(|c| ScalarValue::try_from_array(c, 0).map(ScalarAndMetadata::from))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(SqeError::from)?;
    Ok(Some(ParamValues::List(values)))
}

fn is_property(name: &str) -> bool {
    name.starts_with("datafusion.")
}

fn unknown_property(name: &str) -> SqeError {
    SqeError::new(
        ErrorKind::InvalidSetting,
        format!(
            "Session property '{name}' does not exist (SQE's session properties are DataFusion's settings, e.g. datafusion.execution.batch_size; SHOW SESSION lists them)"
        ),
    )
}

/// Checks a session property by setting it on a scratch session.
fn check_property(engine: &Engine, name: &str, value: &str) -> Result<()> {
    if !is_property(name) {
        return Err(unknown_property(name));
    }
    let scratch = engine.new_context();
    let state = scratch.state_ref();
    let mut state = state.write();
    state
        .config_mut()
        .options_mut()
        .set(name, value)
        .map_err(|e| SqeError::new(ErrorKind::InvalidSetting, e.to_string()))
}

fn default_option(name: &str) -> Option<String> {
    datafusion::config::ConfigOptions::default()
        .entries()
        .into_iter()
        .find(|e| e.key == name)
        .and_then(|e| e.value)
}

/// A table's Arrow schema, resolved with the session's catalog and schema.
async fn table_schema(s: &Statement, table: &[String]) -> Result<SchemaRef> {
    let sql = format!("SELECT * FROM {} LIMIT 0", qualified(s, table));
    let output = s.engine.run(&s.session, &sql, None).await?;
    Ok(output.schema())
}

fn qualified(s: &Statement, table: &[String]) -> String {
    let parts: Vec<String> = match table {
        [t] => vec![s.session.catalog(), s.session.schema(), t.clone()],
        [schema, t] => vec![s.session.catalog(), schema.clone(), t.clone()],
        other => other.to_vec(),
    };
    parts.iter().map(|p| quote(p)).collect::<Vec<_>>().join(".")
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn strings(values: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect())
        .map_err(|e| SqeError::internal(format!("building a result: {e}")))
}

/// `DESCRIBE OUTPUT`'s type size: bytes of fixed-width types, 0 otherwise.
fn type_size(t: &DataType) -> i32 {
    t.primitive_width().map_or(0, |w| w as i32)
}

/// A transaction id (SQE has no transactions; the id only has to be unique).
fn uuid_like(query_id: &str) -> String {
    format!("sqe-{query_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_types_follow_the_statement() {
        let cases = [
            ("INSERT INTO t VALUES (1)", Some(UpdateKind::Rows("INSERT"))),
            ("insert into t select 1", Some(UpdateKind::Rows("INSERT"))),
            (
                "CREATE TABLE t (x int)",
                Some(UpdateKind::Ddl("CREATE TABLE")),
            ),
            (
                "CREATE TABLE t AS SELECT 1",
                Some(UpdateKind::Rows("CREATE TABLE")),
            ),
            ("DROP TABLE t", Some(UpdateKind::Ddl("DROP TABLE"))),
            ("CREATE SCHEMA s", Some(UpdateKind::Ddl("CREATE SCHEMA"))),
            ("DELETE FROM t", Some(UpdateKind::Rows("DELETE"))),
            ("SELECT 1", None),
            ("WITH x AS (SELECT 1) SELECT * FROM x", None),
            ("SHOW TABLES", None),
        ];
        for (sql, expected) in cases {
            assert_eq!(update_type(sql), expected, "{sql}");
        }
    }
}
