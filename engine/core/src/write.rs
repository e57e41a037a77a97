//! Appending to Iceberg tables: Parquet data files per input partition, one commit per statement.
//!
//! ```text
//!  input partition 0 ─▶ TableWriter (split by partition spec, roll files) ─▶ [DataFile] ─┐
//!  input partition 1 ─▶ TableWriter ─────────────────────────────────────▶ [DataFile] ─┼─▶ fast_append commit
//!  ...                                                                                  ┘   (one snapshot)
//! ```
//!
//! Used by `INSERT`, `CREATE TABLE AS SELECT`, Flight SQL bulk ingest and the sample loader.
//! Nothing is visible to readers until the single commit succeeds; a failed statement leaves
//! only unreferenced files behind.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::runtime::SpawnedTask;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use futures::StreamExt;
use iceberg::TableIdent;
use iceberg::arrow::{FieldMatchMode, RecordBatchPartitionSplitter};
use iceberg::spec::{DataFile, DataFileFormat};
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

/// The physical plan of `INSERT INTO <iceberg table>`: writes every input partition in
/// parallel, commits once, and returns a single `count` row.
pub struct IcebergAppendExec {
    catalog: Arc<SqeCatalog>,
    ident: TableIdent,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for IcebergAppendExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IcebergAppendExec({})", self.ident)
    }
}

pub fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

impl IcebergAppendExec {
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

impl DisplayAs for IcebergAppendExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IcebergAppendExec: table={}", self.ident)
    }
}

impl ExecutionPlan for IcebergAppendExec {
    fn name(&self) -> &str {
        "IcebergAppendExec"
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
                "IcebergAppendExec takes exactly one input".into(),
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
                "IcebergAppendExec has one output partition, asked for {partition}"
            )));
        }
        let catalog = Arc::clone(&self.catalog);
        let ident = self.ident.clone();
        let input = Arc::clone(&self.input);
        let fut = async move {
            let table = catalog
                .iceberg()
                .load_table(&ident)
                .await
                .map_err(ice_to_df)?;
            let partitions = input.output_partitioning().partition_count();
            let mut tasks = Vec::with_capacity(partitions);
            for i in 0..partitions {
                let mut stream = input.execute(i, Arc::clone(&context))?;
                let table = table.clone();
                tasks.push(SpawnedTask::spawn(async move {
                    let mut writer = TableWriter::try_new(&table).await.map_err(to_df)?;
                    while let Some(batch) = stream.next().await {
                        writer.write(batch?).await.map_err(to_df)?;
                    }
                    writer.close().await.map_err(to_df)
                }));
            }
            let mut files = Vec::new();
            let mut rows = 0;
            for task in tasks {
                let (f, r) = task
                    .join()
                    .await
                    .map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))??;
                files.extend(f);
                rows += r;
            }
            commit_append(&catalog, &table, files)
                .await
                .map_err(to_df)?;
            let batch = RecordBatch::try_new(
                count_schema(),
                vec![Arc::new(UInt64Array::from(vec![rows]))],
            )?;
            Ok(batch)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            futures::stream::once(fut),
        )))
    }
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
