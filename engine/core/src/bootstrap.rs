//! Start-up of a coordinator's core: the catalog, the default schema, the TPC-H sample (first
//! start, embedded catalog) and the engine. The listeners are the server binary's business.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqe_config::{CatalogType, SqeConfig};
use tracing::info;

use crate::auth::Authenticator;
use crate::catalog::{SqeCatalog, connect, namespace};
use crate::distribution::Distribution;
use crate::engine::Engine;
use crate::error::{Result, SqeError};
use crate::metrics::Metrics;

const SAMPLE_SCHEMA: &str = "tpch";
const SAMPLE_MARKER: &str = ".tpch-sample-loaded";

/// Everything a running coordinator needs, built from the config.
pub struct Coordinator {
    pub engine: Arc<Engine>,
    pub auth: Arc<Authenticator>,
}

/// Opens the catalog, prepares the default schema and the sample, and builds the engine;
/// `distribution` is distributed mode's workers and planner (none in hybrid mode).
pub async fn build(config: SqeConfig, distribution: Option<Distribution>) -> Result<Coordinator> {
    if (config.coordinator.mode == sqe_config::Mode::Distributed) != distribution.is_some() {
        return Err(SqeError::internal(
            "coordinator.mode and the distributed planner disagree",
        ));
    }
    let data_dir = PathBuf::from(&config.coordinator.data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|e| {
        SqeError::external(format!(
            "coordinator.data_dir {}: cannot create it: {e}",
            data_dir.display()
        ))
    })?;
    let auth = Arc::new(Authenticator::from_config(&config)?);
    let iceberg = connect(&config, &data_dir).await?;
    let catalog = Arc::new(SqeCatalog::new(
        config.catalog.name.clone(),
        iceberg,
        Duration::from_secs(config.catalog.metadata_cache_ttl_secs),
    ));
    if config.catalog.kind == CatalogType::Sql {
        prepare_embedded(&config, &catalog, &data_dir).await?;
    }
    catalog
        .refresh()
        .await
        .map_err(|e| match config.catalog.kind {
            CatalogType::Rest => SqeError::external(format!(
                "cannot use the Iceberg REST catalog at {} (check catalog.uri, catalog.credential, \
             catalog.scope, catalog.warehouse): {e}",
                config.catalog.uri.as_deref().unwrap_or_default()
            )),
            CatalogType::Sql => e,
        })?;
    let engine = Arc::new(Engine::new(
        config,
        catalog,
        Arc::new(Metrics::new()),
        distribution,
    )?);
    Ok(Coordinator { engine, auth })
}

/// The embedded catalog gets its default schema, and on first start the TPC-H sample.
async fn prepare_embedded(config: &SqeConfig, catalog: &SqeCatalog, data_dir: &Path) -> Result<()> {
    let default = namespace(&config.coordinator.default_schema);
    if !catalog.iceberg().namespace_exists(&default).await? {
        catalog
            .iceberg()
            .create_namespace(&default, Default::default())
            .await?;
    }
    let marker = data_dir.join(SAMPLE_MARKER);
    if config.coordinator.sample_data && !marker.exists() {
        let sf = config.coordinator.sample_scale_factor;
        if catalog
            .iceberg()
            .namespace_exists(&namespace(SAMPLE_SCHEMA))
            .await?
        {
            info!("schema {SAMPLE_SCHEMA} exists already; not loading the TPC-H sample");
        } else {
            info!(
                scale_factor = sf,
                "loading the TPC-H sample into schema {SAMPLE_SCHEMA}"
            );
            let started = std::time::Instant::now();
            let rows = crate::tpch::load_into_catalog(catalog, SAMPLE_SCHEMA, sf).await?;
            info!(
                rows,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "TPC-H sample loaded"
            );
        }
        std::fs::write(&marker, format!("scale_factor = {sf}\n"))
            .map_err(|e| SqeError::external(format!("cannot write {}: {e}", marker.display())))?;
    }
    Ok(())
}
