//! DataFusion's view of an Iceberg catalog: [`CatalogHandle`] (a `CatalogProvider`) and
//! [`SqeSchema`] (a `SchemaProvider` per namespace), which serve names from the
//! [`SqeCatalog`]'s snapshot and load tables as [`IcebergTable`]s. Views made with
//! `CREATE VIEW` live in the `SqeCatalog`, in memory on this coordinator.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DFResult};
use iceberg::TableIdent;

use crate::catalog::{SqeCatalog, namespace};
use crate::error::ErrorKind;
use crate::table::IcebergTable;

/// The DataFusion face of a catalog (cheap to clone; shares the [`SqeCatalog`]).
#[derive(Debug, Clone)]
pub struct CatalogHandle(pub Arc<SqeCatalog>);

impl CatalogProvider for CatalogHandle {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        self.0.schema_names_cached()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if self.0.has_schema(name) {
            Some(Arc::new(SqeSchema {
                catalog: Arc::clone(&self.0),
                name: name.to_string(),
            }))
        } else {
            None
        }
    }
}

/// One namespace of the catalog.
#[derive(Debug)]
pub struct SqeSchema {
    catalog: Arc<SqeCatalog>,
    name: String,
}

#[async_trait]
impl SchemaProvider for SqeSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        self.catalog.table_names_cached(&self.name)
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        if let Some(view) = self.catalog.view(&self.name, name) {
            return Ok(Some(view));
        }
        let ident = TableIdent::new(namespace(&self.name), name.to_string());
        match self.catalog.load_table(&ident).await {
            Ok(table) => Ok(Some(Arc::new(IcebergTable::try_new(
                Arc::clone(&self.catalog),
                table,
            )?))),
            Err(e) if e.kind() == ErrorKind::TableNotFound => Ok(None),
            Err(e) => Err(crate::error::to_df(e)),
        }
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> DFResult<Option<Arc<dyn TableProvider>>> {
        if table.table_type() != TableType::View {
            return Err(DataFusionError::Plan(format!(
                "cannot register table {name} in an Iceberg schema; use CREATE TABLE"
            )));
        }
        if self.catalog.table_names_cached(&self.name).contains(&name)
            && self.catalog.view(&self.name, &name).is_none()
        {
            return Err(DataFusionError::Plan(format!(
                "a table named {}.{name} already exists",
                self.name
            )));
        }
        Ok(self.catalog.register_view(&self.name, name, table))
    }

    fn deregister_table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        match self.catalog.deregister_view(&self.name, name) {
            Some(v) => Ok(Some(v)),
            None => Err(DataFusionError::Plan(format!(
                "{}.{name} is not a view; use DROP TABLE",
                self.name
            ))),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog.view(&self.name, name).is_some()
            || self.catalog.has_table_cached(&self.name, name)
    }
}
