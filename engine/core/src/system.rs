//! The `system` catalog, the same for every protocol: `system.runtime.*` (nodes, queries, tasks),
//! `system.jdbc.*` (what the Trino JDBC driver's `DatabaseMetaData` queries) and
//! `system.metadata.table_comments` (what the Trino SQLAlchemy dialect queries) and
//! `system.metadata.columns` (Trino's `information_schema.columns`, which Trino clients'
//! queries of `information_schema.columns` are pointed at: SQL type names, `comment`).
//!
//! ```text
//!  SELECT … FROM system.jdbc.columns WHERE table_schem LIKE 'tpch' …
//!     └─▶ SystemTable::scan(filters) ─▶ NameFilter (catalog / schema / table, pushed down)
//!            └─▶ rows built now from the catalogs (and each matching table's schema),
//!                the query registry, this node ─▶ one in-memory batch
//! ```
//!
//! Tables are computed when scanned, so they are always current; the name filters a JDBC
//! driver sends are used to load only the tables they can match.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use arrow::array::{
    ArrayRef, BooleanArray, Int64Array, ListArray, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, Session};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::scalar::ScalarValue;
use futures::future::BoxFuture;

use crate::membership::Membership;
use crate::registry::QueryRegistry;
use crate::sql::like_match;
use crate::sql_types;

pub const SYSTEM_CATALOG: &str = "system";

/// This process as `system.runtime.nodes` shows it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node_id: String,
    pub http_uri: String,
    pub version: String,
    pub coordinator: bool,
}

/// What the system tables read from.
struct Sources {
    registry: Arc<QueryRegistry>,
    catalogs: Weak<dyn CatalogProviderList>,
    node: NodeInfo,
    /// Distributed mode: the workers that heartbeat to this coordinator.
    membership: Option<Arc<Membership>>,
}

type Rows = fn(Arc<Sources>, NameFilter) -> BoxFuture<'static, DFResult<Vec<ArrayRef>>>;

/// One system table: its columns and how to compute its rows.
struct SystemTable {
    schema: SchemaRef,
    rows: Rows,
    sources: Arc<Sources>,
    /// Columns that hold (catalog, schema, table) names, for filter pushdown.
    names: [Option<&'static str>; 3],
}

impl std::fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SystemTable({:?})", self.schema.fields().len())
    }
}

fn varchar(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn bigint(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}

fn boolean(name: &str) -> Field {
    Field::new(name, DataType::Boolean, true)
}

fn timestamp(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
        true,
    )
}

/// A name a pushed-down filter pins: exactly, or by a `LIKE` pattern.
#[derive(Debug, Clone, PartialEq)]
enum NameMatch {
    Equals(String),
    Like(String, Option<char>),
}

impl NameMatch {
    fn matches(&self, value: &str) -> bool {
        match self {
            NameMatch::Equals(v) => v == value,
            NameMatch::Like(p, escape) => like_match(p, value, *escape),
        }
    }
}

/// The catalog, schema and table names a scan can be narrowed to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NameFilter {
    catalog: Vec<NameMatch>,
    schema: Vec<NameMatch>,
    table: Vec<NameMatch>,
}

impl NameFilter {
    fn catalog(&self, name: &str) -> bool {
        self.catalog.iter().all(|m| m.matches(name))
    }
    fn schema(&self, name: &str) -> bool {
        self.schema.iter().all(|m| m.matches(name))
    }
    fn table(&self, name: &str) -> bool {
        self.table.iter().all(|m| m.matches(name))
    }
}

/// `column = 'x'` or `column LIKE 'p' [ESCAPE 'e']` on a string column.
fn name_match(expr: &Expr) -> Option<(String, NameMatch)> {
    let literal = |e: &Expr| match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) => {
            Some(s.clone())
        }
        _ => None,
    };
    match expr {
        Expr::BinaryExpr(b) if b.op == Operator::Eq => match (b.left.as_ref(), b.right.as_ref()) {
            (Expr::Column(c), v) | (v, Expr::Column(c)) => {
                Some((c.name.clone(), NameMatch::Equals(literal(v)?)))
            }
            _ => None,
        },
        Expr::Like(l) if !l.negated && !l.case_insensitive => match l.expr.as_ref() {
            Expr::Column(c) => Some((
                c.name.clone(),
                NameMatch::Like(literal(&l.pattern)?, l.escape_char),
            )),
            _ => None,
        },
        _ => None,
    }
}

impl SystemTable {
    fn filter(&self, filters: &[Expr]) -> NameFilter {
        let mut out = NameFilter::default();
        for f in filters {
            let Some((column, m)) = name_match(f) else {
                continue;
            };
            let column = column.to_ascii_lowercase();
            if self.names[0] == Some(column.as_str()) {
                out.catalog.push(m);
            } else if self.names[1] == Some(column.as_str()) {
                out.schema.push(m);
            } else if self.names[2] == Some(column.as_str()) {
                out.table.push(m);
            }
        }
        out
    }
}

#[async_trait]
impl TableProvider for SystemTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        // name filters narrow what is computed; DataFusion still applies every filter
        Ok(filters
            .iter()
            .map(|_| TableProviderFilterPushDown::Inexact)
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let columns = (self.rows)(Arc::clone(&self.sources), self.filter(filters)).await?;
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}

fn strings<I: IntoIterator<Item = Option<String>>>(values: I) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

fn longs<I: IntoIterator<Item = Option<i64>>>(values: I) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Int64Array>())
}

/// Milliseconds since the epoch as `timestamp(3) with time zone` (UTC).
fn timestamps<I: IntoIterator<Item = Option<i64>>>(values: I) -> ArrayRef {
    let values: Vec<Option<i64>> = values.into_iter().collect();
    Arc::new(TimestampMillisecondArray::from(values).with_timezone("+00:00"))
}

fn nulls(field: &Field, n: usize) -> ArrayRef {
    arrow::array::new_null_array(field.data_type(), n)
}

/// Every (catalog, schema) visible to the session, in name order.
fn schemas(
    sources: &Sources,
    filter: &NameFilter,
) -> Vec<(String, String, Arc<dyn SchemaProvider>)> {
    let Some(list) = sources.catalogs.upgrade() else {
        return vec![];
    };
    let mut out = Vec::new();
    let mut catalogs = list.catalog_names();
    catalogs.sort();
    for c in catalogs.into_iter().filter(|c| filter.catalog(c)) {
        let Some(catalog) = list.catalog(&c) else {
            continue;
        };
        let mut names = catalog.schema_names();
        names.sort();
        for s in names.into_iter().filter(|s| filter.schema(s)) {
            if let Some(schema) = catalog.schema(&s) {
                out.push((c.clone(), s, schema));
            }
        }
    }
    out
}

struct TableEntry {
    catalog: String,
    schema: String,
    name: String,
    provider: Arc<dyn TableProvider>,
}

/// Every table matching the filter, with its provider (which loads its metadata).
async fn tables(sources: &Sources, filter: &NameFilter) -> DFResult<Vec<TableEntry>> {
    let mut out = Vec::new();
    for (catalog, schema, provider) in schemas(sources, filter) {
        let mut names = provider.table_names();
        names.sort();
        for name in names.into_iter().filter(|t| filter.table(t)) {
            if let Some(table) = provider.table(&name).await? {
                out.push(TableEntry {
                    catalog: catalog.clone(),
                    schema: schema.clone(),
                    name,
                    provider: table,
                });
            }
        }
    }
    Ok(out)
}

fn table_type(t: TableType) -> &'static str {
    match t {
        TableType::View => "VIEW",
        TableType::Base | TableType::Temporary => "TABLE",
    }
}

fn jdbc_catalogs(s: Arc<Sources>, f: NameFilter) -> BoxFuture<'static, DFResult<Vec<ArrayRef>>> {
    Box::pin(async move {
        let mut names = s
            .catalogs
            .upgrade()
            .map(|l| l.catalog_names())
            .unwrap_or_default();
        names.sort();
        Ok(vec![strings(
            names.into_iter().filter(|c| f.catalog(c)).map(Some),
        )])
    })
}

fn jdbc_schemas(s: Arc<Sources>, f: NameFilter) -> BoxFuture<'static, DFResult<Vec<ArrayRef>>> {
    Box::pin(async move {
        let rows = schemas(&s, &f);
        Ok(vec![
            strings(rows.iter().map(|(_, s, _)| Some(s.clone()))),
            strings(rows.iter().map(|(c, _, _)| Some(c.clone()))),
        ])
    })
}

fn jdbc_tables(s: Arc<Sources>, f: NameFilter) -> BoxFuture<'static, DFResult<Vec<ArrayRef>>> {
    Box::pin(async move {
        let rows = tables(&s, &f).await?;
        let n = rows.len();
        let mut columns = vec![
            strings(rows.iter().map(|t| Some(t.catalog.clone()))),
            strings(rows.iter().map(|t| Some(t.schema.clone()))),
            strings(rows.iter().map(|t| Some(t.name.clone()))),
            strings(
                rows.iter()
                    .map(|t| Some(table_type(t.provider.table_type()).to_string())),
            ),
        ];
        columns.extend((0..6).map(|_| strings(std::iter::repeat_n(None, n))));
        Ok(columns)
    })
}

fn jdbc_table_types(_: Arc<Sources>, _: NameFilter) -> BoxFuture<'static, DFResult<Vec<ArrayRef>>> {
    Box::pin(async {
        Ok(vec![strings(
            ["TABLE", "VIEW"].map(|t| Some(t.to_string())),
        )])
    })
}

fn jdbc_columns(s: Arc<Sources>, f: NameFilter) -> BoxFuture<'static, DFResult<Vec<ArrayRef>>> {
    Box::pin(async move {
        let mut rows: Vec<(String, String, String, Field, i64)> = Vec::new();
        for t in tables(&s, &f).await? {
            for (i, field) in t.provider.schema().fields().iter().enumerate() {
                rows.push((
                    t.catalog.clone(),
                    t.schema.clone(),
                    t.name.clone(),
                    field.as_ref().clone(),
                    i as i64 + 1,
                ));
            }
        }
        let n = rows.len();
        let none = || strings(std::iter::repeat_n(None, n));
        let no_long = || longs(std::iter::repeat_n(None, n));
        let dt = |r: &(String, String, String, Field, i64)| r.3.data_type().clone();
        Ok(vec![
            strings(rows.iter().map(|r| Some(r.0.clone()))),
            strings(rows.iter().map(|r| Some(r.1.clone()))),
            strings(rows.iter().map(|r| Some(r.2.clone()))),
            strings(rows.iter().map(|r| Some(r.3.name().clone()))),
            longs(rows.iter().map(|r| Some(sql_types::jdbc_type(&dt(r))))),
            strings(
                rows.iter()
                    .map(|r| Some(sql_types::type_name(&dt(r), true))),
            ),
            longs(rows.iter().map(|r| sql_types::column_size(&dt(r)))),
            longs(rows.iter().map(|_| Some(0))),
            longs(rows.iter().map(|r| sql_types::decimal_digits(&dt(r)))),
            longs(rows.iter().map(|r| sql_types::num_prec_radix(&dt(r)))),
            longs(rows.iter().map(|r| Some(i64::from(r.3.is_nullable())))),
            none(),
            none(),
            no_long(),
            no_long(),
            longs(rows.iter().map(|r| sql_types::char_octet_length(&dt(r)))),
            longs(rows.iter().map(|r| Some(r.4))),
            strings(
                rows.iter()
                    .map(|r| Some(if r.3.is_nullable() { "YES" } else { "NO" }.to_string())),
            ),
            none(),
            none(),
            none(),
            no_long(),
            none(),
            none(),
        ])
    })
}

/// The types `system.jdbc.types` lists: one per SQL type SQE has.
fn jdbc_types(_: Arc<Sources>, _: NameFilter) -> BoxFuture<'static, DFResult<Vec<ArrayRef>>> {
    Box::pin(async {
        let types = [
            DataType::Boolean,
            DataType::Int8,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal128(38, 0),
            DataType::Utf8,
            DataType::Binary,
            DataType::Date32,
            DataType::Time64(TimeUnit::Microsecond),
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
        ];
        let name = |t: &DataType| match t {
            DataType::Decimal128(..) => "decimal".to_string(),
            DataType::List(_) => "array".to_string(),
            other => sql_types::type_name(other, true),
        };
        let n = types.len();
        let none = || strings(std::iter::repeat_n(None, n));
        let no_long = || longs(std::iter::repeat_n(None, n));
        let falses = || -> ArrayRef { Arc::new(BooleanArray::from(vec![false; n])) };
        let no_bool = || -> ArrayRef { Arc::new(BooleanArray::from(vec![None; n])) };
        Ok(vec![
            strings(types.iter().map(|t| Some(name(t)))),
            longs(types.iter().map(|t| Some(sql_types::jdbc_type(t)))),
            longs(types.iter().map(sql_types::column_size)),
            none(),
            none(),
            none(),
            longs(types.iter().map(|_| Some(1))),
            falses(),
            longs(
                types
                    .iter()
                    .map(|t| Some(if matches!(t, DataType::List(_)) { 0 } else { 3 })),
            ),
            no_bool(),
            falses(),
            no_bool(),
            none(),
            longs(types.iter().map(|_| Some(0))),
            longs(types.iter().map(|_| Some(0))),
            no_long(),
            no_long(),
            longs(types.iter().map(sql_types::num_prec_radix)),
        ])
    })
}

/// Trino's `information_schema.columns`: SQL type names and a `comment` column.
fn columns(s: Arc<Sources>, f: NameFilter) -> BoxFuture<'static, DFResult<Vec<ArrayRef>>> {
    Box::pin(async move {
        let mut rows: Vec<(TableEntry, Field, i64)> = Vec::new();
        for t in tables(&s, &f).await? {
            let schema = t.provider.schema();
            for (i, field) in schema.fields().iter().enumerate() {
                let entry = TableEntry {
                    catalog: t.catalog.clone(),
                    schema: t.schema.clone(),
                    name: t.name.clone(),
                    provider: Arc::clone(&t.provider),
                };
                rows.push((entry, field.as_ref().clone(), i as i64 + 1));
            }
        }
        let n = rows.len();
        Ok(vec![
            strings(rows.iter().map(|r| Some(r.0.catalog.clone()))),
            strings(rows.iter().map(|r| Some(r.0.schema.clone()))),
            strings(rows.iter().map(|r| Some(r.0.name.clone()))),
            strings(rows.iter().map(|r| Some(r.1.name().clone()))),
            longs(rows.iter().map(|r| Some(r.2))),
            strings(std::iter::repeat_n(None, n)),
            strings(
                rows.iter()
                    .map(|r| Some(if r.1.is_nullable() { "YES" } else { "NO" }.to_string())),
            ),
            strings(
                rows.iter()
                    .map(|r| Some(sql_types::type_name(r.1.data_type(), true))),
            ),
            strings(std::iter::repeat_n(None, n)),
            strings(std::iter::repeat_n(None, n)),
        ])
    })
}

fn table_comments(s: Arc<Sources>, f: NameFilter) -> BoxFuture<'static, DFResult<Vec<ArrayRef>>> {
    Box::pin(async move {
        let rows = tables(&s, &f).await?;
        let n = rows.len();
        Ok(vec![
            strings(rows.iter().map(|t| Some(t.catalog.clone()))),
            strings(rows.iter().map(|t| Some(t.schema.clone()))),
            strings(rows.iter().map(|t| Some(t.name.clone()))),
            strings(std::iter::repeat_n(None, n)),
        ])
    })
}

fn nodes(s: Arc<Sources>, _: NameFilter) -> BoxFuture<'static, DFResult<Vec<ArrayRef>>> {
    Box::pin(async move {
        let n = &s.node;
        let state = if s.registry.is_draining() {
            "shutting_down"
        } else {
            "active"
        };
        let workers = s
            .membership
            .as_ref()
            .map(|m| m.workers())
            .unwrap_or_default();
        let own_protocol = s.membership.as_ref().map(|m| i64::from(m.protocol()));
        let mb = |b: u64| Some((b >> 20) as i64);
        Ok(vec![
            strings(
                std::iter::once(Some(n.node_id.clone()))
                    .chain(workers.iter().map(|w| Some(w.node_id.clone()))),
            ),
            strings(
                std::iter::once(Some(n.http_uri.clone()))
                    .chain(workers.iter().map(|w| Some(w.url.clone()))),
            ),
            strings(
                std::iter::once(Some(n.version.clone()))
                    .chain(workers.iter().map(|w| Some(w.version.clone()))),
            ),
            Arc::new(BooleanArray::from(
                std::iter::once(n.coordinator)
                    .chain(workers.iter().map(|_| false))
                    .collect::<Vec<_>>(),
            )),
            strings(
                std::iter::once(Some(state.to_string()))
                    .chain(workers.iter().map(|w| Some(w.state.name().to_string()))),
            ),
            longs(
                std::iter::once(own_protocol)
                    .chain(workers.iter().map(|w| Some(i64::from(w.protocol)))),
            ),
            Arc::new(BooleanArray::from(
                std::iter::once(None)
                    .chain(workers.iter().map(|w| Some(w.schedulable)))
                    .collect::<Vec<_>>(),
            )),
            strings(std::iter::once(None).chain(workers.iter().map(|w| w.note.clone()))),
            longs(
                std::iter::once(None)
                    .chain(workers.iter().map(|w| Some(i64::from(w.running_tasks)))),
            ),
            longs(std::iter::once(None).chain(workers.iter().map(|w| mb(w.memory_used_bytes)))),
            longs(std::iter::once(None).chain(workers.iter().map(|w| mb(w.memory_limit_bytes)))),
            timestamps(
                std::iter::once(None).chain(workers.iter().map(|w| millis(Some(w.last_heartbeat)))),
            ),
        ])
    })
}

fn millis(t: Option<std::time::SystemTime>) -> Option<i64> {
    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
}

fn queries(s: Arc<Sources>, _: NameFilter) -> BoxFuture<'static, DFResult<Vec<ArrayRef>>> {
    Box::pin(async move {
        let records = s.registry.records();
        let n = records.len();
        let error_type = |r: &crate::registry::QueryRecord| {
            r.error.as_ref().map(|e| {
                if e.kind().is_user_error() {
                    "USER_ERROR"
                } else {
                    "INTERNAL_ERROR"
                }
                .to_string()
            })
        };
        Ok(vec![
            strings(records.iter().map(|r| Some(r.id.clone()))),
            strings(records.iter().map(|r| Some(r.state.name().to_string()))),
            strings(records.iter().map(|r| Some(r.user.clone()))),
            strings(records.iter().map(|r| r.source.clone())),
            strings(records.iter().map(|r| Some(r.sql.clone()))),
            Arc::new(ListArray::new_null(
                Arc::new(Field::new("item", DataType::Utf8, true)),
                n,
            )),
            longs(records.iter().map(|r| Some(r.queued.as_millis() as i64))),
            longs(records.iter().map(|_| Some(0))),
            longs(records.iter().map(|r| Some(r.queued.as_millis() as i64))),
            timestamps(records.iter().map(|r| millis(Some(r.created)))),
            timestamps(records.iter().map(|r| millis(r.started))),
            timestamps(records.iter().map(|r| {
                if r.state.is_done() {
                    millis(r.ended)
                } else {
                    millis(Some(std::time::SystemTime::now()))
                }
            })),
            timestamps(records.iter().map(|r| millis(r.ended))),
            strings(records.iter().map(error_type)),
            strings(
                records
                    .iter()
                    .map(|r| r.error.as_ref().map(|e| e.kind().name().to_string())),
            ),
            strings(records.iter().map(|r| Some(r.protocol.label().to_string()))),
            longs(records.iter().map(|r| Some(r.elapsed.as_millis() as i64))),
            longs(records.iter().map(|r| Some(r.rows as i64))),
            longs(records.iter().map(|r| Some(r.bytes as i64))),
            strings(
                records
                    .iter()
                    .map(|r| r.error.as_ref().map(|e| e.to_string())),
            ),
        ])
    })
}

fn tasks(s: Arc<Sources>, _: NameFilter) -> BoxFuture<'static, DFResult<Vec<ArrayRef>>> {
    Box::pin(async move {
        let mut rows = Vec::new();
        for entry in s.registry.entries() {
            for t in entry.tasks() {
                rows.push((entry.id.clone(), t));
            }
        }
        let n = rows.len();
        let zeros = || longs(std::iter::repeat_n(Some(0), n));
        let running = |r: &(String, crate::tasks::TaskRecord)| {
            i64::from(r.1.state == crate::tasks::TaskState::Running)
        };
        let done = |r: &(String, crate::tasks::TaskRecord)| {
            i64::from(!matches!(
                r.1.state,
                crate::tasks::TaskState::Running | crate::tasks::TaskState::Planned
            ))
        };
        let now = millis(Some(std::time::SystemTime::now()));
        Ok(vec![
            strings(rows.iter().map(|r| Some(r.1.node_id.clone()))),
            strings(
                rows.iter()
                    .map(|r| Some(format!("{}.{}.{}", r.0, r.1.stage, r.1.partition))),
            ),
            strings(rows.iter().map(|r| Some(format!("{}.{}", r.0, r.1.stage)))),
            strings(rows.iter().map(|r| Some(r.0.clone()))),
            strings(rows.iter().map(|r| Some(r.1.state.name().to_string()))),
            longs(rows.iter().map(|_| Some(1))),
            zeros(),
            longs(rows.iter().map(|r| Some(running(r)))),
            longs(rows.iter().map(|r| Some(done(r)))),
            longs(rows.iter().map(|r| Some(r.1.elapsed.as_millis() as i64))),
            zeros(),
            zeros(),
            zeros(),
            zeros(),
            zeros(),
            zeros(),
            longs(rows.iter().map(|r| Some(r.1.bytes as i64))),
            longs(rows.iter().map(|r| Some(r.1.rows as i64))),
            zeros(),
            zeros(),
            timestamps(rows.iter().map(|r| millis(r.1.started))),
            timestamps(rows.iter().map(|r| millis(r.1.started))),
            timestamps(rows.iter().map(|r| millis(r.1.ended).or(now))),
            timestamps(rows.iter().map(|r| millis(r.1.ended))),
            longs(rows.iter().map(|r| Some(r.1.partition as i64))),
            longs(rows.iter().map(|r| Some(r.1.elapsed.as_millis() as i64))),
        ])
    })
}

fn table(
    sources: &Arc<Sources>,
    fields: Vec<Field>,
    rows: Rows,
    names: [Option<&'static str>; 3],
) -> Arc<dyn TableProvider> {
    Arc::new(SystemTable {
        schema: Arc::new(Schema::new(fields)),
        rows,
        sources: Arc::clone(sources),
        names,
    })
}

/// A table that is always empty (JDBC metadata SQE has nothing for: procedures, UDTs, …).
fn empty_table(_sources: &Arc<Sources>, fields: Vec<Field>) -> Arc<dyn TableProvider> {
    let schema = Arc::new(Schema::new(fields));
    Arc::new(EmptyTable(schema))
}

#[derive(Debug)]
struct EmptyTable(SchemaRef);

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sources")
    }
}

#[async_trait]
impl TableProvider for EmptyTable {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.0)
    }
    fn table_type(&self) -> TableType {
        TableType::View
    }
    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let columns = self.0.fields().iter().map(|f| nulls(f, 0)).collect();
        let batch = RecordBatch::try_new(Arc::clone(&self.0), columns)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Arc::clone(&self.0),
            projection.cloned(),
        )?)
    }
}

fn v(names: &[&str]) -> Vec<Field> {
    names.iter().map(|n| varchar(n)).collect()
}

/// Builds the `system` catalog; `catalogs` is the list it is registered in (held weakly).
pub fn system_catalog(
    registry: Arc<QueryRegistry>,
    catalogs: Weak<dyn CatalogProviderList>,
    node: NodeInfo,
    membership: Option<Arc<Membership>>,
) -> Arc<dyn CatalogProvider> {
    let s = Arc::new(Sources {
        registry,
        catalogs,
        node,
        membership,
    });
    let mut jdbc: HashMap<&str, Arc<dyn TableProvider>> = HashMap::new();
    let names = [Some("table_cat"), Some("table_schem"), Some("table_name")];
    jdbc.insert(
        "catalogs",
        table(
            &s,
            v(&["table_cat"]),
            jdbc_catalogs,
            [Some("table_cat"), None, None],
        ),
    );
    jdbc.insert(
        "schemas",
        table(
            &s,
            v(&["table_schem", "table_catalog"]),
            jdbc_schemas,
            [Some("table_catalog"), Some("table_schem"), None],
        ),
    );
    let mut tables_fields = v(&[
        "table_cat",
        "table_schem",
        "table_name",
        "table_type",
        "remarks",
    ]);
    tables_fields.extend(v(&[
        "type_cat",
        "type_schem",
        "type_name",
        "self_referencing_col_name",
        "ref_generation",
    ]));
    jdbc.insert("tables", table(&s, tables_fields, jdbc_tables, names));
    jdbc.insert(
        "table_types",
        table(&s, v(&["table_type"]), jdbc_table_types, [None; 3]),
    );
    let columns_fields = vec![
        varchar("table_cat"),
        varchar("table_schem"),
        varchar("table_name"),
        varchar("column_name"),
        bigint("data_type"),
        varchar("type_name"),
        bigint("column_size"),
        bigint("buffer_length"),
        bigint("decimal_digits"),
        bigint("num_prec_radix"),
        bigint("nullable"),
        varchar("remarks"),
        varchar("column_def"),
        bigint("sql_data_type"),
        bigint("sql_datetime_sub"),
        bigint("char_octet_length"),
        bigint("ordinal_position"),
        varchar("is_nullable"),
        varchar("scope_catalog"),
        varchar("scope_schema"),
        varchar("scope_table"),
        bigint("source_data_type"),
        varchar("is_autoincrement"),
        varchar("is_generatedcolumn"),
    ];
    jdbc.insert("columns", table(&s, columns_fields, jdbc_columns, names));
    let types_fields = vec![
        varchar("type_name"),
        bigint("data_type"),
        bigint("precision"),
        varchar("literal_prefix"),
        varchar("literal_suffix"),
        varchar("create_params"),
        bigint("nullable"),
        boolean("case_sensitive"),
        bigint("searchable"),
        boolean("unsigned_attribute"),
        boolean("fixed_prec_scale"),
        boolean("auto_increment"),
        varchar("local_type_name"),
        bigint("minimum_scale"),
        bigint("maximum_scale"),
        bigint("sql_data_type"),
        bigint("sql_datetime_sub"),
        bigint("num_prec_radix"),
    ];
    jdbc.insert("types", table(&s, types_fields, jdbc_types, [None; 3]));
    let mut procedures = v(&[
        "procedure_cat",
        "procedure_schem",
        "procedure_name",
        "remarks",
    ]);
    procedures.push(bigint("procedure_type"));
    procedures.push(varchar("specific_name"));
    jdbc.insert("procedures", empty_table(&s, procedures));
    let mut procedure_columns = v(&[
        "procedure_cat",
        "procedure_schem",
        "procedure_name",
        "column_name",
    ]);
    procedure_columns.extend([
        bigint("column_type"),
        bigint("data_type"),
        varchar("type_name"),
    ]);
    procedure_columns.extend(["precision", "length", "scale", "radix", "nullable"].map(bigint));
    procedure_columns.extend(v(&["remarks", "column_def"]));
    procedure_columns.extend(
        [
            "sql_data_type",
            "sql_datetime_sub",
            "char_octet_length",
            "ordinal_position",
        ]
        .map(bigint),
    );
    procedure_columns.extend(v(&["is_nullable", "specific_name"]));
    jdbc.insert("procedure_columns", empty_table(&s, procedure_columns));
    jdbc.insert(
        "udts",
        empty_table(
            &s,
            v(&[
                "type_cat",
                "type_schem",
                "type_name",
                "class_name",
                "data_type",
                "remarks",
                "base_type",
            ]),
        ),
    );
    jdbc.insert(
        "super_types",
        empty_table(
            &s,
            v(&[
                "type_cat",
                "type_schem",
                "type_name",
                "supertype_cat",
                "supertype_schem",
                "supertype_name",
            ]),
        ),
    );
    jdbc.insert(
        "super_tables",
        empty_table(
            &s,
            v(&["table_cat", "table_schem", "table_name", "supertable_name"]),
        ),
    );
    let mut attributes = v(&["type_cat", "type_schem", "type_name", "attr_name"]);
    attributes.extend([bigint("data_type"), varchar("attr_type_name")]);
    attributes.extend(["attr_size", "decimal_digits", "num_prec_radix", "nullable"].map(bigint));
    attributes.extend(v(&["remarks", "attr_def"]));
    attributes.extend(
        [
            "sql_data_type",
            "sql_datetime_sub",
            "char_octet_length",
            "ordinal_position",
        ]
        .map(bigint),
    );
    attributes.extend(v(&[
        "is_nullable",
        "scope_catalog",
        "scope_schema",
        "scope_table",
    ]));
    attributes.push(bigint("source_data_type"));
    jdbc.insert("attributes", empty_table(&s, attributes));
    let mut pseudo = v(&["table_cat", "table_schem", "table_name", "column_name"]);
    pseudo.extend(
        [
            "data_type",
            "column_size",
            "decimal_digits",
            "num_prec_radix",
        ]
        .map(bigint),
    );
    pseudo.extend(v(&["column_usage", "remarks"]));
    pseudo.extend([bigint("char_octet_length"), bigint("is_nullable")]);
    jdbc.insert("pseudo_columns", empty_table(&s, pseudo));

    let mut metadata: HashMap<&str, Arc<dyn TableProvider>> = HashMap::new();
    metadata.insert(
        "table_comments",
        table(
            &s,
            v(&["catalog_name", "schema_name", "table_name", "comment"]),
            table_comments,
            [
                Some("catalog_name"),
                Some("schema_name"),
                Some("table_name"),
            ],
        ),
    );

    let mut columns_fields = v(&["table_catalog", "table_schema", "table_name", "column_name"]);
    columns_fields.push(bigint("ordinal_position"));
    columns_fields.extend(v(&[
        "column_default",
        "is_nullable",
        "data_type",
        "comment",
        "extra_info",
    ]));
    metadata.insert(
        "columns",
        table(
            &s,
            columns_fields,
            columns,
            [
                Some("table_catalog"),
                Some("table_schema"),
                Some("table_name"),
            ],
        ),
    );

    let mut runtime: HashMap<&str, Arc<dyn TableProvider>> = HashMap::new();
    runtime.insert(
        "nodes",
        table(
            &s,
            vec![
                varchar("node_id"),
                varchar("http_uri"),
                varchar("node_version"),
                boolean("coordinator"),
                varchar("state"),
                bigint("protocol_version"),
                boolean("schedulable"),
                varchar("note"),
                bigint("running_tasks"),
                bigint("memory_used_mb"),
                bigint("memory_limit_mb"),
                timestamp("last_heartbeat"),
            ],
            nodes,
            [None; 3],
        ),
    );
    runtime.insert(
        "queries",
        table(
            &s,
            vec![
                varchar("query_id"),
                varchar("state"),
                varchar("user"),
                varchar("source"),
                varchar("query"),
                Field::new(
                    "resource_group_id",
                    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                    true,
                ),
                bigint("queued_time_ms"),
                bigint("analysis_time_ms"),
                bigint("planning_time_ms"),
                timestamp("created"),
                timestamp("started"),
                timestamp("last_heartbeat"),
                timestamp("end"),
                varchar("error_type"),
                varchar("error_code"),
                varchar("protocol"),
                bigint("elapsed_time_ms"),
                bigint("rows"),
                bigint("bytes"),
                varchar("error_message"),
            ],
            queries,
            [None; 3],
        ),
    );

    let mut task_fields = v(&["node_id", "task_id", "stage_id", "query_id", "state"]);
    task_fields.extend(
        [
            "splits",
            "queued_splits",
            "running_splits",
            "completed_splits",
            "split_scheduled_time_ms",
            "split_cpu_time_ms",
            "split_blocked_time_ms",
            "raw_input_bytes",
            "raw_input_rows",
            "processed_input_bytes",
            "processed_input_rows",
            "output_bytes",
            "output_rows",
            "physical_input_bytes",
            "physical_written_bytes",
        ]
        .map(bigint),
    );
    task_fields.extend(["created", "start", "last_heartbeat", "end"].map(timestamp));
    task_fields.extend([bigint("partition"), bigint("elapsed_time_ms")]);
    runtime.insert("tasks", table(&s, task_fields, tasks, [None; 3]));

    let schemas: HashMap<String, Arc<dyn SchemaProvider>> =
        [("jdbc", jdbc), ("metadata", metadata), ("runtime", runtime)]
            .into_iter()
            .map(|(name, tables)| {
                let tables = tables
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                (
                    name.to_string(),
                    Arc::new(SystemSchema(tables)) as Arc<dyn SchemaProvider>,
                )
            })
            .collect();
    Arc::new(SystemCatalog(schemas))
}

#[derive(Debug)]
struct SystemCatalog(HashMap<String, Arc<dyn SchemaProvider>>);

impl CatalogProvider for SystemCatalog {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.0.keys().cloned().collect();
        names.sort();
        names
    }
    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.0.get(name).cloned()
    }
}

#[derive(Debug)]
struct SystemSchema(HashMap<String, Arc<dyn TableProvider>>);

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.0.keys().cloned().collect();
        names.sort();
        names
    }
    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Ok(self.0.get(name).cloned())
    }
    fn table_exist(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}
