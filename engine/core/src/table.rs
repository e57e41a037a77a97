//! `IcebergTable`: one Iceberg table as a DataFusion `TableProvider` — parallel scans with
//! projection and filter pushdown, and appends through [`crate::write::append_plan`].

use std::any::Any;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::catalog::TableProvider;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use iceberg::expr::Bind;
use iceberg::table::Table;
use iceberg_datafusion::physical_plan::convert_filters_to_predicate;

use crate::catalog::SqeCatalog;
use crate::error::ice_to_df;
use crate::scan::{IcebergScanExec, arrow_schema};
use crate::write::append_plan;

#[derive(Debug)]
pub struct IcebergTable {
    catalog: Arc<SqeCatalog>,
    table: Table,
    schema: SchemaRef,
}

impl IcebergTable {
    pub fn try_new(catalog: Arc<SqeCatalog>, table: Table) -> DFResult<Self> {
        let schema = arrow_schema(&table)?;
        Ok(Self {
            catalog,
            table,
            schema,
        })
    }

    pub fn table(&self) -> &Table {
        &self.table
    }
}

#[async_trait]
impl TableProvider for IcebergTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let out_schema = Arc::new(self.schema.project(&indices)?);
        let mut columns: Vec<String> = out_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        if columns.is_empty()
            && let Some(first) = self.schema.fields().first()
        {
            // count(*) and friends: read the narrowest thing we can, keep only row counts
            columns.push(first.name().clone());
        }
        // Views keep their provider: read the table version of now, not of planning time.
        let table = self
            .catalog
            .load_table(self.table.identifier())
            .await
            .map_err(crate::error::to_df)?;
        let pushed: Vec<Expr> = filters
            .iter()
            .filter(|f| binds(&table, f))
            .cloned()
            .collect();
        let predicate = convert_filters_to_predicate(&pushed);
        // A limit can only cut the file list when no filter may drop rows.
        let limit = if filters.is_empty() { limit } else { None };
        let mut builder = table.scan().select(columns);
        if let Some(p) = &predicate {
            builder = builder.with_filter(p.clone());
        }
        let scan = builder.build().map_err(ice_to_df)?;
        let mut tasks: Vec<_> = scan
            .plan_files()
            .await
            .map_err(ice_to_df)?
            .try_collect()
            .await
            .map_err(ice_to_df)?;
        if let Some(l) = limit {
            tasks = cut_for_limit(tasks, l);
        }
        let options = state.config_options();
        Ok(Arc::new(IcebergScanExec::new(
            &table,
            out_schema,
            predicate,
            tasks,
            options.execution.target_partitions,
            limit,
            options.execution.batch_size,
        )))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if binds(&self.table, f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        match insert_op {
            InsertOp::Append => Ok(append_plan(
                Arc::clone(&self.catalog),
                self.table.clone(),
                input,
            )),
            InsertOp::Overwrite | InsertOp::Replace => Err(DataFusionError::NotImplemented(
                format!("{insert_op} on Iceberg tables; use INSERT INTO (append)"),
            )),
        }
    }
}

/// Keeps just enough whole files to produce `limit` rows, when row counts are known.
fn cut_for_limit(
    tasks: Vec<iceberg::scan::FileScanTask>,
    limit: usize,
) -> Vec<iceberg::scan::FileScanTask> {
    if tasks
        .iter()
        .any(|t| t.record_count.is_none() || !t.deletes.is_empty())
    {
        return tasks;
    }
    let mut rows = 0u64;
    let mut out = Vec::new();
    for t in tasks {
        if rows >= limit as u64 {
            break;
        }
        rows += t.record_count.unwrap_or(0);
        out.push(t);
    }
    out
}

/// Whether a filter becomes an Iceberg predicate that binds to the table's schema. One that
/// does not (a literal of another type than its column, `bigint_col < 2.5`) is left to
/// DataFusion, which applies every filter anyway.
fn binds(table: &Table, filter: &Expr) -> bool {
    convert_filters_to_predicate(std::slice::from_ref(filter)).is_some_and(|p| {
        p.bind(Arc::clone(table.metadata().current_schema()), true)
            .is_ok()
    })
}
