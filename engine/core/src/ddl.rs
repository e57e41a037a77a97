//! DDL on Iceberg: `CREATE/DROP SCHEMA`, `CREATE TABLE [AS SELECT]` with partition
//! transforms, `DROP TABLE`. DataFusion plans the column list or the query; SQE turns the
//! result into an Iceberg schema and partition spec and commits through the catalog.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use datafusion::common::TableReference;
use datafusion::datasource::provider_as_source;
use datafusion::execution::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::collect;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    CreateTable, CreateTableOptions, Expr as SqlExpr, ObjectName, SqlOption, Statement, Value,
    ValueWithSpan,
};
use iceberg::spec::{Transform as IceTransform, UnboundPartitionSpec};
use iceberg::{NamespaceIdent, TableCreation, TableIdent};

use crate::catalog::{SqeCatalog, namespace};
use crate::error::{ErrorKind, Result, SqeError};
use crate::sql::{PartitionTerm, Transform, parse_term_text};
use crate::table::IcebergTable;

/// `[catalog.]schema` from a `CREATE/DROP SCHEMA` name, checked against our catalog.
pub fn schema_ident(catalog: &SqeCatalog, name: &ObjectName) -> Result<NamespaceIdent> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| {
            p.as_ident()
                .map(|i| normalize(&i.value, i.quote_style.is_some()))
        })
        .collect();
    let schema = match parts.as_slice() {
        [schema] => schema.clone(),
        [cat, schema] if cat == catalog.name() => schema.clone(),
        [cat, _] => {
            return Err(catalog.unknown_catalog(cat));
        }
        _ => {
            return Err(SqeError::semantic(format!("`{name}` is not a schema name")));
        }
    };
    Ok(namespace(&schema))
}

fn normalize(value: &str, quoted: bool) -> String {
    if quoted {
        value.to_string()
    } else {
        value.to_ascii_lowercase()
    }
}

/// Resolves a table name against the session's defaults; the catalog must be ours.
pub fn table_ident(
    catalog: &SqeCatalog,
    state: &SessionState,
    name: &ObjectName,
) -> Result<TableIdent> {
    let reference: TableReference = state.resolve_table_ref_name(name)?;
    let options = state.config_options();
    let resolved = reference.resolve(
        &options.catalog.default_catalog,
        &options.catalog.default_schema,
    );
    if resolved.catalog.as_ref() != catalog.name() {
        return Err(catalog.unknown_catalog(&resolved.catalog));
    }
    Ok(TableIdent::new(
        namespace(&resolved.schema),
        resolved.table.to_string(),
    ))
}

trait ResolveName {
    fn resolve_table_ref_name(&self, name: &ObjectName) -> Result<TableReference>;
}

impl ResolveName for SessionState {
    fn resolve_table_ref_name(&self, name: &ObjectName) -> Result<TableReference> {
        let normalize_idents = self.config_options().sql_parser.enable_ident_normalization;
        datafusion::sql::planner::object_name_to_table_reference(name.clone(), normalize_idents)
            .map_err(SqeError::from)
    }
}

pub async fn create_schema(
    catalog: &SqeCatalog,
    ns: &NamespaceIdent,
    if_not_exists: bool,
) -> Result<()> {
    if catalog.iceberg().namespace_exists(ns).await? {
        if if_not_exists {
            return Ok(());
        }
        return Err(SqeError::new(
            ErrorKind::SchemaAlreadyExists,
            format!("schema {}.{} already exists", catalog.name(), ns.join(".")),
        ));
    }
    catalog
        .iceberg()
        .create_namespace(ns, HashMap::new())
        .await?;
    catalog.schema_created(ns);
    Ok(())
}

pub async fn drop_schema(
    catalog: &SqeCatalog,
    ns: &NamespaceIdent,
    if_exists: bool,
    cascade: bool,
) -> Result<()> {
    if !catalog.iceberg().namespace_exists(ns).await? {
        if if_exists {
            return Ok(());
        }
        return Err(catalog.missing_schema(ns));
    }
    let tables = catalog.iceberg().list_tables(ns).await?;
    if !tables.is_empty() && !cascade {
        return Err(SqeError::semantic(format!(
            "schema {}.{} is not empty ({} tables); drop its tables first or use DROP SCHEMA … CASCADE",
            catalog.name(),
            ns.join("."),
            tables.len()
        )));
    }
    for t in &tables {
        catalog.iceberg().drop_table(t).await?;
        catalog.table_dropped(t);
    }
    catalog.iceberg().drop_namespace(ns).await?;
    catalog.schema_dropped(ns);
    Ok(())
}

pub async fn drop_table(catalog: &SqeCatalog, ident: &TableIdent, if_exists: bool) -> Result<()> {
    if !catalog.iceberg().table_exists(ident).await? {
        if if_exists {
            return Ok(());
        }
        return Err(catalog.missing_table(ident));
    }
    catalog.iceberg().drop_table(ident).await?;
    catalog.table_dropped(ident);
    Ok(())
}

/// `CREATE TABLE`, with columns or `AS SELECT`. Returns the rows written (0 without a query).
pub async fn create_table(
    catalog: &Arc<SqeCatalog>,
    state: &SessionState,
    mut ct: CreateTable,
    partitioned_by: Option<Vec<PartitionTerm>>,
) -> Result<u64> {
    let ident = table_ident(catalog, state, &ct.name)?;
    if ct.external || ct.temporary {
        return Err(SqeError::not_supported(
            "CREATE EXTERNAL/TEMPORARY TABLE: SQE tables are Iceberg tables; use CREATE TABLE",
        ));
    }
    if ct.or_replace {
        return Err(SqeError::not_supported(
            "CREATE OR REPLACE TABLE; drop the table first",
        ));
    }
    let TableProperties {
        partitioning,
        location,
        format_version,
    } = table_properties(&ct.table_options)?;
    let terms = match (partitioned_by, partitioning) {
        (Some(_), Some(_)) => {
            return Err(SqeError::semantic(
                "give the partitioning once: PARTITIONED BY (…) or WITH (partitioning = …)",
            ));
        }
        (a, b) => a.or(b).unwrap_or_default(),
    };
    ct.table_options = CreateTableOptions::None;
    if !catalog
        .iceberg()
        .namespace_exists(ident.namespace())
        .await?
    {
        return Err(catalog.missing_schema(ident.namespace()));
    }
    if catalog.iceberg().table_exists(&ident).await? {
        if ct.if_not_exists {
            return Ok(0);
        }
        return Err(SqeError::new(
            ErrorKind::TableAlreadyExists,
            format!("table {}.{ident} already exists", catalog.name()),
        ));
    }
    let is_ctas = ct.query.is_some();
    let plan = state
        .statement_to_plan(DFStatement::Statement(Box::new(Statement::CreateTable(ct))))
        .await?;
    let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) = plan else {
        return Err(SqeError::internal(format!(
            "CREATE TABLE planned as {}",
            plan.display()
        )));
    };
    let input = create.input.as_ref().clone();
    let arrow = input.schema().as_arrow().clone();
    let options = TableOptions {
        all_nullable: is_ctas,
        partitioning: &terms,
        location,
        format_version,
    };
    if !is_ctas {
        create_from_arrow(catalog, &ident, &arrow, options).await?;
        return Ok(0);
    }
    let name = TableReference::full(
        catalog.name().to_string(),
        ident.namespace().to_url_string(),
        ident.name().to_string(),
    );
    create_and_fill(catalog, &ident, &arrow, options, |table| async move {
        // planned as the INSERT it is, so distributed mode writes on the workers too
        let target =
            provider_as_source(Arc::new(IcebergTable::try_new(Arc::clone(catalog), table)?));
        let insert =
            LogicalPlanBuilder::insert_into(input, name, target, InsertOp::Append)?.build()?;
        let physical = state.create_physical_plan(&insert).await?;
        let batches = collect(physical, state.task_ctx()).await?;
        Ok(crate::write::count_from(&batches))
    })
    .await
}

/// Creates a table and fills it with `fill` (which gets the new table and returns the rows it
/// wrote). If filling fails the table is dropped again, so the statement is all or nothing.
/// `CREATE TABLE AS SELECT`, Flight SQL bulk ingest into a new table and the sample loader
/// all go through here.
pub async fn create_and_fill<F, Fut>(
    catalog: &SqeCatalog,
    ident: &TableIdent,
    arrow: &Schema,
    options: TableOptions<'_>,
    fill: F,
) -> Result<u64>
where
    F: FnOnce(iceberg::table::Table) -> Fut,
    Fut: std::future::Future<Output = Result<u64>>,
{
    let table = create_from_arrow(catalog, ident, arrow, options).await?;
    match fill(table).await {
        Ok(rows) => Ok(rows),
        Err(e) => {
            if let Err(drop_error) = catalog.iceberg().drop_table(ident).await {
                tracing::warn!(table = %ident, error = %drop_error, "could not drop the table a failed statement created");
            }
            catalog.table_dropped(ident);
            Err(e)
        }
    }
}

/// How [`create_from_arrow`] shapes a new table.
#[derive(Default)]
pub struct TableOptions<'a> {
    /// Make every column optional (CTAS, as Trino does).
    pub all_nullable: bool,
    pub partitioning: &'a [PartitionTerm],
    pub location: Option<String>,
    pub format_version: Option<iceberg::spec::FormatVersion>,
}

/// Creates an Iceberg table for an Arrow schema with SQE's defaults (zstd Parquet) and adds it
/// to the cached names.
pub async fn create_from_arrow(
    catalog: &SqeCatalog,
    ident: &TableIdent,
    arrow: &Schema,
    options: TableOptions<'_>,
) -> Result<iceberg::table::Table> {
    let normalized = iceberg_arrow_schema(arrow, options.all_nullable)?;
    let schema = iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(&normalized)?;
    let spec = partition_spec(&schema, options.partitioning)?;
    let mut creation = TableCreation::builder()
        .name(ident.name().to_string())
        .schema(schema)
        .partition_spec(spec)
        .properties(HashMap::from([(
            "write.parquet.compression-codec".to_string(),
            "zstd".to_string(),
        )]))
        .build();
    creation.location = options.location;
    if let Some(v) = options.format_version {
        creation.format_version = v;
    }
    let table = catalog
        .iceberg()
        .create_table(ident.namespace(), creation)
        .await?;
    catalog.table_created(&table);
    Ok(table)
}

struct TableProperties {
    partitioning: Option<Vec<PartitionTerm>>,
    location: Option<String>,
    format_version: Option<iceberg::spec::FormatVersion>,
}

fn string_value(key: &str, e: &SqlExpr) -> Result<String> {
    match e {
        SqlExpr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(s),
            ..
        }) => Ok(s.clone()),
        SqlExpr::Value(ValueWithSpan {
            value: Value::Number(n, _),
            ..
        }) => Ok(n.clone()),
        other => Err(SqeError::semantic(format!(
            "table property {key}: expected a string, got {other}"
        ))),
    }
}

/// Reads Trino-style `WITH (partitioning = ARRAY['…'], location = '…', format_version = 2)`.
fn table_properties(options: &CreateTableOptions) -> Result<TableProperties> {
    let mut out = TableProperties {
        partitioning: None,
        location: None,
        format_version: None,
    };
    let list: &[SqlOption] = match options {
        CreateTableOptions::None => &[],
        CreateTableOptions::With(o)
        | CreateTableOptions::Options(o)
        | CreateTableOptions::Plain(o)
        | CreateTableOptions::TableProperties(o) => o,
    };
    for option in list {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(SqeError::semantic(format!(
                "unsupported table option `{option}`"
            )));
        };
        let name = key.value.to_ascii_lowercase();
        match name.as_str() {
            "partitioning" | "partitioned_by" => {
                let items: Vec<&SqlExpr> = match value {
                    SqlExpr::Array(a) => a.elem.iter().collect(),
                    single => vec![single],
                };
                let mut terms = Vec::new();
                for item in items {
                    terms.push(parse_term_text(&string_value(&name, item)?)?);
                }
                out.partitioning = Some(terms);
            }
            "location" => out.location = Some(string_value(&name, value)?),
            "format_version" => {
                out.format_version = Some(match string_value(&name, value)?.as_str() {
                    "1" => iceberg::spec::FormatVersion::V1,
                    "2" => iceberg::spec::FormatVersion::V2,
                    "3" => iceberg::spec::FormatVersion::V3,
                    v => {
                        return Err(SqeError::semantic(format!(
                            "table property format_version: {v} is not 1, 2 or 3"
                        )));
                    }
                })
            }
            other => {
                return Err(SqeError::semantic(format!(
                    "unknown table property `{other}`; supported: partitioning, location, format_version"
                )));
            }
        }
    }
    Ok(out)
}

fn partition_spec(
    schema: &iceberg::spec::Schema,
    terms: &[PartitionTerm],
) -> Result<UnboundPartitionSpec> {
    let mut builder = UnboundPartitionSpec::builder();
    for term in terms {
        let field = schema.field_by_name(&term.column).ok_or_else(|| {
            SqeError::semantic(format!(
                "partition column `{}` is not a column of the table",
                term.column
            ))
        })?;
        let transform = match term.transform {
            Transform::Identity => IceTransform::Identity,
            Transform::Year => IceTransform::Year,
            Transform::Month => IceTransform::Month,
            Transform::Day => IceTransform::Day,
            Transform::Hour => IceTransform::Hour,
            Transform::Bucket(n) => IceTransform::Bucket(n),
            Transform::Truncate(w) => IceTransform::Truncate(w),
            Transform::Void => IceTransform::Void,
        };
        if transform.result_type(&field.field_type).is_err() {
            return Err(SqeError::semantic(format!(
                "partition transform {} cannot apply to column `{}` of type {}",
                transform, term.column, field.field_type
            )));
        }
        builder = builder
            .add_partition_field(field.id, term.field_name(), transform)
            .map_err(|e| SqeError::semantic(format!("partitioning: {e}")))?;
    }
    Ok(builder.build())
}

/// Maps DataFusion's column types onto the ones Iceberg stores: narrow integers widen,
/// every timestamp becomes microseconds (UTC-adjusted when it has a zone), string and
/// binary views become plain strings and binaries. CTAS columns are nullable, as in Trino.
pub fn iceberg_arrow_schema(schema: &Schema, all_nullable: bool) -> Result<Schema> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| iceberg_field(f, all_nullable))
        .collect::<Result<Vec<_>>>()?;
    Ok(Schema::new(fields))
}

fn iceberg_field(f: &Field, all_nullable: bool) -> Result<Field> {
    let data_type = iceberg_type(f.name(), f.data_type())?;
    Ok(Field::new(
        f.name(),
        data_type,
        f.is_nullable() || all_nullable,
    ))
}

fn iceberg_type(name: &str, t: &DataType) -> Result<DataType> {
    use DataType as D;
    Ok(match t {
        D::Boolean | D::Int32 | D::Int64 | D::Float32 | D::Float64 | D::Utf8 | D::Date32 => {
            t.clone()
        }
        D::Int8 | D::Int16 | D::UInt8 | D::UInt16 => D::Int32,
        D::UInt32 | D::UInt64 => D::Int64,
        D::Float16 => D::Float32,
        D::Utf8View | D::LargeUtf8 => D::Utf8,
        D::Binary | D::BinaryView | D::LargeBinary => D::LargeBinary,
        D::FixedSizeBinary(n) => D::FixedSizeBinary(*n),
        D::Date64 => D::Date32,
        D::Time32(_) | D::Time64(_) => D::Time64(TimeUnit::Microsecond),
        D::Timestamp(_, None) => D::Timestamp(TimeUnit::Microsecond, None),
        D::Timestamp(_, Some(_)) => D::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        D::Decimal128(p, s) if *p <= 38 => D::Decimal128(*p, *s),
        D::Decimal32(p, s) | D::Decimal64(p, s) => D::Decimal128(*p, *s),
        D::Dictionary(_, v) => iceberg_type(name, v)?,
        D::List(inner) | D::LargeList(inner) | D::ListView(inner) | D::LargeListView(inner) => {
            D::List(Arc::new(iceberg_field(inner, true)?))
        }
        D::FixedSizeList(inner, _) => D::List(Arc::new(iceberg_field(inner, true)?)),
        D::Struct(fields) => D::Struct(Fields::from(
            fields
                .iter()
                .map(|f| iceberg_field(f, true))
                .collect::<Result<Vec<_>>>()?,
        )),
        D::Map(entries, sorted) => D::Map(Arc::new(iceberg_field(entries, false)?), *sorted),
        D::Null => {
            return Err(SqeError::semantic(format!(
                "column `{name}` has no type (it is always NULL); CAST it to a type"
            )));
        }
        other => {
            return Err(SqeError::semantic(format!(
                "column `{name}` has type {other}, which Iceberg tables cannot store"
            )));
        }
    })
}
