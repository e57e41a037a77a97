//! Appending to Iceberg tables: Parquet data files per input partition, one commit per statement.
//!
//! ```text
//!  IcebergWriteExec (per input partition; on workers in distributed mode)
//!  input partition 0 ─▶ TableWriter (split by partition spec, roll files) ─▶ [DataFile] ─┐
//!  input partition 1 ─▶ TableWriter ─────────────────────────────────────▶ [DataFile] ─┼─▶ IcebergCommitExec:
//!  ...                                (files travel as Iceberg's JSON form)            ┘   fast_append, one snapshot
//! ```
//!
//! Used by `INSERT`, `CREATE TABLE AS SELECT`, Flight SQL bulk ingest and the sample loader.
//! Nothing is visible to readers until the single commit succeeds; a failed statement leaves
//! only unreferenced files behind.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, Int32Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::runtime::SpawnedTask;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    Partitioning, PlanProperties,
};
use futures::StreamExt;
use iceberg::TableIdent;
use iceberg::arrow::{FieldMatchMode, RecordBatchPartitionSplitter};
use iceberg::spec::{
    DataFile, DataFileFormat, TableMetadata, deserialize_data_file_from_json,
    serialize_data_file_to_json,
};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};

use crate::catalog::SqeCatalog;
use crate::error::{Result, SqeError, ice_to_df, to_df};
use crate::scan::{arrow_schema, conform};

type Builder =
    DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;
type PlainWriter =
    DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// Writes batches into new data files of one table (not yet committed).
pub struct TableWriter {
    schema: SchemaRef,
    inner: Inner,
    rows: u64,
}

enum Inner {
    Plain(Box<PlainWriter>),
    Partitioned(Box<PartitionedWriter>),
}

struct PartitionedWriter {
    splitter: RecordBatchPartitionSplitter,
    writer: FanoutWriter<Builder>,
}

impl TableWriter {
    pub async fn try_new(table: &Table) -> Result<Self> {
        let metadata = table.metadata();
        let props = metadata.table_properties()?;
        let format: DataFileFormat = props.write_format_default.parse()?;
        if format != DataFileFormat::Parquet {
            return Err(SqeError::not_supported(format!(
                "writing {format} data files; SQE writes Parquet"
            )));
        }
        let iceberg_schema = Arc::clone(metadata.current_schema());
        let parquet =
            ParquetWriterBuilder::from_table_properties(&props, Arc::clone(&iceberg_schema))
                .with_match_mode(FieldMatchMode::Name);
        let rolling = RollingFileWriterBuilder::new(
            parquet,
            props.write_target_file_size_bytes,
            table.file_io().clone(),
            DefaultLocationGenerator::new(metadata)?,
            // a fresh prefix per writer: file names never collide across writers or statements
            DefaultFileNameGenerator::new(
                uuid::Uuid::new_v4().to_string(),
                None,
                DataFileFormat::Parquet,
            ),
        );
        let builder = DataFileWriterBuilder::new(rolling);
        let spec = Arc::clone(metadata.default_partition_spec());
        let inner = if spec.is_unpartitioned() {
            Inner::Plain(Box::new(builder.build(None).await?))
        } else {
            Inner::Partitioned(Box::new(PartitionedWriter {
                splitter: RecordBatchPartitionSplitter::try_new_with_computed_values(
                    iceberg_schema,
                    spec,
                )?,
                writer: FanoutWriter::new(builder),
            }))
        };
        let schema = arrow_schema(table).map_err(SqeError::from)?;
        Ok(Self {
            schema,
            inner,
            rows: 0,
        })
    }

    /// Writes one batch; its columns are matched to the table's by name and cast if needed.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = conform(batch, &self.schema).map_err(SqeError::from)?;
        self.rows += batch.num_rows() as u64;
        match &mut self.inner {
            Inner::Plain(w) => w.write(batch).await?,
            Inner::Partitioned(p) => {
                for (key, part) in p.splitter.split(&batch)? {
                    p.writer.write(key, part).await?;
                }
            }
        }
        Ok(())
    }

    pub async fn close(self) -> Result<(Vec<DataFile>, u64)> {
        let files = match self.inner {
            Inner::Plain(mut w) => w.close().await?,
            Inner::Partitioned(p) => p.writer.close().await?,
        };
        Ok((files, self.rows))
    }
}

/// Commits new data files as one append snapshot and returns the new table version.
pub async fn commit_append(
    catalog: &SqeCatalog,
    table: &Table,
    files: Vec<DataFile>,
) -> Result<Table> {
    if files.is_empty() {
        return Ok(table.clone());
    }
    let tx = Transaction::new(table);
    let tx = tx.fast_append().add_data_files(files).apply(tx)?;
    let committed = tx.commit(catalog.iceberg().as_ref()).await?;
    catalog.remember(committed.clone());
    Ok(committed)
}

/// Appends a stream of batches to a table in one commit; returns the rows written. Nothing is
/// visible unless the whole stream was written.
pub async fn append_stream(
    catalog: &SqeCatalog,
    table: &Table,
    stream: impl futures::Stream<Item = Result<RecordBatch>>,
) -> Result<u64> {
    let mut writer = TableWriter::try_new(table).await?;
    let mut stream = std::pin::pin!(stream);
    while let Some(batch) = stream.next().await {
        writer.write(batch?).await?;
    }
    let (files, rows) = writer.close().await?;
    commit_append(catalog, table, files).await?;
    Ok(rows)
}

/// The physical plan of `INSERT INTO` and `CREATE TABLE AS SELECT`: every input partition
/// writes its own data files ([`IcebergWriteExec`], on workers in distributed mode), and the
/// coordinator commits them all once ([`IcebergCommitExec`]).
pub fn append_plan(
    catalog: Arc<SqeCatalog>,
    table: Table,
    input: Arc<dyn ExecutionPlan>,
) -> Arc<dyn ExecutionPlan> {
    let ident = table.identifier().clone();
    Arc::new(IcebergCommitExec::new(
        catalog,
        ident,
        Arc::new(IcebergWriteExec::new(table, input)),
    ))
}

pub fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

/// What [`IcebergWriteExec`] reports per data file it wrote: the partition spec it was written
/// for and the file as Iceberg's JSON form.
pub fn written_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("spec_id", DataType::Int32, false),
        Field::new("data_file", DataType::Utf8, false),
    ]))
}

/// Everything an [`IcebergWriteExec`] is made of, for shipping it to a worker.
#[derive(Debug, Clone)]
pub struct WriteParts {
    pub ident: TableIdent,
    pub metadata: TableMetadata,
    pub metadata_location: Option<String>,
    /// The table FileIO's properties (endpoint, region, credentials).
    pub file_io_props: Vec<(String, String)>,
}

/// Writes each input partition into new data files of a table (not committed) and emits one
/// row per file: `(spec_id, data_file)`.
pub struct IcebergWriteExec {
    table: Table,
    file_io_props: Vec<(String, String)>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for IcebergWriteExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IcebergWriteExec({})", self.table.identifier())
    }
}

impl IcebergWriteExec {
    pub fn new(table: Table, input: Arc<dyn ExecutionPlan>) -> Self {
        let props = crate::scan::file_io_props(table.file_io());
        Self::with_props(table, props, input)
    }

    fn with_props(
        table: Table,
        file_io_props: Vec<(String, String)>,
        input: Arc<dyn ExecutionPlan>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(written_schema()),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            table,
            file_io_props,
            input,
            properties,
        }
    }

    pub fn parts(&self) -> WriteParts {
        WriteParts {
            ident: self.table.identifier().clone(),
            metadata: self.table.metadata().clone(),
            metadata_location: self.table.metadata_location().map(str::to_string),
            file_io_props: self.file_io_props.clone(),
        }
    }

    /// The exec a worker rebuilds from shipped parts (it writes with its own FileIO).
    pub fn from_parts(parts: WriteParts, input: Arc<dyn ExecutionPlan>) -> DFResult<Self> {
        let mut builder = Table::builder()
            .identifier(parts.ident)
            .metadata(parts.metadata)
            .file_io(crate::scan::file_io_from_props(parts.file_io_props.clone()))
            // the worker's runtime: the decoded plan is built inside a task it runs
            .runtime(iceberg::Runtime::try_current().map_err(ice_to_df)?);
        if let Some(location) = parts.metadata_location {
            builder = builder.metadata_location(location);
        }
        let table = builder.build().map_err(ice_to_df)?;
        Ok(Self::with_props(table, parts.file_io_props, input))
    }
}

impl DisplayAs for IcebergWriteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IcebergWriteExec: table={}", self.table.identifier())
    }
}

impl ExecutionPlan for IcebergWriteExec {
    fn name(&self) -> &str {
        "IcebergWriteExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![true]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self::with_props(
                self.table.clone(),
                self.file_io_props.clone(),
                input,
            ))),
            _ => Err(DataFusionError::Internal(
                "IcebergWriteExec takes exactly one input".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let mut stream = self.input.execute(partition, context)?;
        let table = self.table.clone();
        let fut = async move {
            let mut writer = TableWriter::try_new(&table).await.map_err(to_df)?;
            while let Some(batch) = stream.next().await {
                writer.write(batch?).await.map_err(to_df)?;
            }
            let (files, _rows) = writer.close().await.map_err(to_df)?;
            let metadata = table.metadata();
            let spec = metadata.default_partition_spec();
            let partition_type = spec
                .partition_type(metadata.current_schema())
                .map_err(ice_to_df)?;
            let json = files
                .into_iter()
                .map(|f| serialize_data_file_to_json(f, &partition_type, metadata.format_version()))
                .collect::<iceberg::Result<Vec<_>>>()
                .map_err(ice_to_df)?;
            let specs = Int32Array::from(vec![spec.spec_id(); json.len()]);
            Ok(RecordBatch::try_new(
                written_schema(),
                vec![Arc::new(specs), Arc::new(StringArray::from(json))],
            )?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            written_schema(),
            futures::stream::once(fut),
        )))
    }
}

/// Commits what its input ([`IcebergWriteExec`]) wrote as one append snapshot and returns a
/// single `count` row. Runs on the coordinator: it alone talks to the catalog.
pub struct IcebergCommitExec {
    catalog: Arc<SqeCatalog>,
    ident: TableIdent,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for IcebergCommitExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IcebergCommitExec({})", self.ident)
    }
}

impl IcebergCommitExec {
    pub fn new(catalog: Arc<SqeCatalog>, ident: TableIdent, input: Arc<dyn ExecutionPlan>) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            catalog,
            ident,
            input,
            properties,
        }
    }
}

impl DisplayAs for IcebergCommitExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IcebergCommitExec: table={}", self.ident)
    }
}

impl ExecutionPlan for IcebergCommitExec {
    fn name(&self) -> &str {
        "IcebergCommitExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        // one stream of written files: in distributed mode the planner puts the boundary
        // between the workers' writes and this commit here
        vec![Distribution::SinglePartition]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self::new(
                Arc::clone(&self.catalog),
                self.ident.clone(),
                input,
            ))),
            _ => Err(DataFusionError::Internal(
                "IcebergCommitExec takes exactly one input".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "IcebergCommitExec has one output partition, asked for {partition}"
            )));
        }
        let catalog = Arc::clone(&self.catalog);
        let ident = self.ident.clone();
        // a plan built without the optimizer may still have several written streams
        let streams = (0..self.input.output_partitioning().partition_count())
            .map(|i| self.input.execute(i, Arc::clone(&context)))
            .collect::<DFResult<Vec<_>>>()?;
        let fut = async move {
            let written = futures::future::try_join_all(
                streams
                    .into_iter()
                    .map(|s| SpawnedTask::spawn(s.collect::<Vec<_>>()).join()),
            )
            .await
            .map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))?;
            let table = catalog
                .iceberg()
                .load_table(&ident)
                .await
                .map_err(ice_to_df)?;
            let mut files = Vec::new();
            for batch in written.into_iter().flatten() {
                files.extend(data_files(&table, &batch?)?);
            }
            let rows = files.iter().map(|f| f.record_count()).sum::<u64>();
            commit_append(&catalog, &table, files)
                .await
                .map_err(to_df)?;
            Ok(RecordBatch::try_new(
                count_schema(),
                vec![Arc::new(UInt64Array::from(vec![rows]))],
            )?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            futures::stream::once(fut),
        )))
    }
}

/// The data files in one batch of [`written_schema`] rows, read against the table they go to.
fn data_files(table: &Table, batch: &RecordBatch) -> DFResult<Vec<DataFile>> {
    let column = |i: usize| batch.column(i).as_any();
    let (Some(specs), Some(json)) = (
        column(0).downcast_ref::<Int32Array>(),
        column(1).downcast_ref::<StringArray>(),
    ) else {
        return Err(DataFusionError::Internal(
            "IcebergCommitExec: its input is not what IcebergWriteExec writes".into(),
        ));
    };
    let metadata = table.metadata();
    let schema = metadata.current_schema();
    (0..batch.num_rows())
        .map(|i| {
            let spec_id = specs.value(i);
            let spec = metadata.partition_spec_by_id(spec_id).ok_or_else(|| {
                DataFusionError::Execution(format!(
                    "table {} has no partition spec {spec_id} any more: it changed while the \
                     statement ran; nothing was committed",
                    table.identifier()
                ))
            })?;
            let partition_type = spec.partition_type(schema).map_err(ice_to_df)?;
            deserialize_data_file_from_json(json.value(i), spec_id, &partition_type, schema)
                .map_err(ice_to_df)
        })
        .collect()
}

/// Sums the `count` column DataFusion and SQE return for DML.
pub fn count_from(batches: &[RecordBatch]) -> u64 {
    batches
        .iter()
        .filter_map(|b| b.column_by_name("count"))
        .filter_map(|c| c.as_any().downcast_ref::<UInt64Array>())
        .map(|a| {
            (0..a.len())
                .filter(|i| a.is_valid(*i))
                .map(|i| a.value(i))
                .sum::<u64>()
        })
        .sum()
}
