//! `IcebergScanExec`: reads a planned set of Iceberg data files as N DataFusion partitions.
//!
//! ```text
//!  TableProvider::scan ── plan_files(projection, predicate) ──▶ [FileScanTask; n]
//!        ├─ split_files: large files become byte ranges (whole row groups each)
//!        └─ split_tasks(tasks, target_partitions) ──▶ groups, balanced by bytes
//!  execute(i) ── ArrowReader over group i (row-group pruning, row filter) ──▶ batches
//! ```
//!
//! File pruning (partition values and column statistics in manifests) happens at planning
//! time, so `EXPLAIN` already shows how many files a query reads; `EXPLAIN ANALYZE` adds the
//! files and bytes each partition actually read.
//!
//! The exec holds only what a worker needs to run it ([`ScanParts`]: the file tasks, the
//! FileIO properties, the schema), so distributed mode ships it to workers as it is.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::stats::{ColumnStatistics, Precision, Statistics};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use iceberg::expr::Predicate;
use iceberg::io::{FileIO, FileIOBuilder};
use iceberg::scan::FileScanTask;
use iceberg::table::Table;
use iceberg_storage_opendal::OpenDalResolvingStorageFactory;

use crate::error::ice_to_df;

/// The table's current schema as Arrow, without Iceberg's field-id metadata.
pub fn arrow_schema(table: &Table) -> DFResult<SchemaRef> {
    let with_ids = iceberg::arrow::schema_to_arrow_schema(table.metadata().current_schema())
        .map_err(ice_to_df)?;
    let fields: Vec<Field> = with_ids
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_metadata(Default::default()))
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// The smallest and the largest piece [`split_files`] cuts.
const MIN_SPLIT_BYTES: u64 = 16 << 20;
const MAX_SPLIT_BYTES: u64 = 128 << 20;

/// The rows `tasks` hold, when every task knows its count and has no deletes.
pub fn known_rows(tasks: &[FileScanTask]) -> Option<u64> {
    tasks
        .iter()
        .map(|t| t.record_count.filter(|_| t.deletes.is_empty()))
        .sum()
}

/// Cuts large data files into contiguous byte ranges, so one big file still spreads over the
/// partitions (and, distributed, over the workers): pieces of about
/// `total / (2 × partitions)` bytes, 16 to 128 MiB. The reader gives each piece the row groups
/// whose middle lies in its range, so every row group is read exactly once. Files with deletes
/// and files below 1.5 pieces stay whole; pieces carry no row count.
pub fn split_files(tasks: Vec<FileScanTask>, partitions: usize) -> Vec<FileScanTask> {
    let total: u64 = tasks.iter().map(|t| t.length).sum();
    let target = (total / (2 * partitions.max(1) as u64)).clamp(MIN_SPLIT_BYTES, MAX_SPLIT_BYTES);
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        let whole = task.start != 0 || !task.deletes.is_empty() || task.length < target * 3 / 2;
        if whole {
            out.push(task);
            continue;
        }
        let pieces = task.length.div_ceil(target);
        let size = task.length.div_ceil(pieces);
        let mut start = 0;
        while start < task.length {
            let mut piece = task.clone();
            piece.start = start;
            piece.length = size.min(task.length - start);
            piece.record_count = None;
            start += piece.length;
            out.push(piece);
        }
    }
    out
}

/// Splits tasks into at most `partitions` groups of similar byte size (largest first, each to
/// the lightest group), keeping at least one group so the plan always has a partition.
pub fn split_tasks(mut tasks: Vec<FileScanTask>, partitions: usize) -> Vec<Vec<FileScanTask>> {
    let groups = partitions.max(1).min(tasks.len().max(1));
    tasks.sort_by(|a, b| {
        b.length
            .cmp(&a.length)
            .then_with(|| a.data_file_path.cmp(&b.data_file_path))
    });
    let mut out: Vec<(u64, Vec<FileScanTask>)> = (0..groups).map(|_| (0, Vec::new())).collect();
    for task in tasks {
        let idx = out
            .iter()
            .enumerate()
            .min_by_key(|(_, (bytes, files))| (*bytes, files.len()))
            .map(|(i, _)| i)
            .unwrap_or(0);
        out[idx].0 += task.length;
        out[idx].1.push(task);
    }
    out.into_iter().map(|(_, files)| files).collect()
}

/// A FileIO's properties (endpoint, region, credentials): what a worker needs to rebuild it.
pub fn file_io_props(file_io: &FileIO) -> Vec<(String, String)> {
    file_io
        .config()
        .props()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A FileIO for the same storage as one whose properties are `props` (a worker rebuilding
/// the coordinator's table FileIO; local paths, S3 and vended credentials alike).
pub fn file_io_from_props(props: impl IntoIterator<Item = (String, String)>) -> FileIO {
    FileIOBuilder::new(Arc::new(OpenDalResolvingStorageFactory::new()))
        .with_props(props)
        .build()
}

/// Everything an [`IcebergScanExec`] is made of, for shipping it to a worker.
#[derive(Debug, Clone)]
pub struct ScanParts {
    pub table_name: String,
    /// Output schema (the projected columns, in projection order).
    pub schema: SchemaRef,
    /// The pushed-down filter as `EXPLAIN` shows it (each file task carries its bound form).
    pub predicate: Option<String>,
    pub groups: Vec<Vec<FileScanTask>>,
    pub limit: Option<usize>,
    pub batch_size: usize,
    /// The table FileIO's properties (endpoint, region, credentials).
    pub file_io_props: Vec<(String, String)>,
    /// The rows of all files when every one is known and has no deletes (byte-range pieces
    /// of a file carry no row count of their own).
    pub rows: Option<u64>,
}

pub struct IcebergScanExec {
    file_io: FileIO,
    parts: ScanParts,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl fmt::Debug for IcebergScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IcebergScanExec")
            .field("table", &self.parts.table_name)
            .field("partitions", &self.parts.groups.len())
            .finish()
    }
}

impl IcebergScanExec {
    /// A scan of `tasks` in `partitions` partitions (large files cut into byte ranges).
    pub fn new(
        table: &Table,
        schema: SchemaRef,
        predicate: Option<Predicate>,
        tasks: Vec<FileScanTask>,
        partitions: usize,
        limit: Option<usize>,
        batch_size: usize,
    ) -> Self {
        let rows = known_rows(&tasks);
        let groups = split_tasks(split_files(tasks, partitions), partitions);
        let file_io_props = file_io_props(table.file_io());
        let parts = ScanParts {
            table_name: table.identifier().to_string(),
            schema,
            predicate: predicate.map(|p| p.to_string()),
            groups,
            limit,
            batch_size,
            file_io_props,
            rows,
        };
        Self::with_file_io(parts, table.file_io().clone())
    }

    /// The exec a worker rebuilds from shipped parts.
    pub fn from_parts(parts: ScanParts) -> Self {
        let file_io = file_io_from_props(parts.file_io_props.clone());
        Self::with_file_io(parts, file_io)
    }

    fn with_file_io(parts: ScanParts, file_io: FileIO) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&parts.schema)),
            Partitioning::UnknownPartitioning(parts.groups.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            file_io,
            parts,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    pub fn parts(&self) -> &ScanParts {
        &self.parts
    }

    /// The same scan with its files regrouped into `partitions` groups (a distributed stage
    /// running it in several tasks gives each task a share of the groups).
    pub fn regrouped(&self, partitions: usize) -> Self {
        let tasks: Vec<FileScanTask> = self.parts.groups.iter().flatten().cloned().collect();
        let parts = ScanParts {
            groups: split_tasks(tasks, partitions),
            ..self.parts.clone()
        };
        Self::with_file_io(parts, self.file_io.clone())
    }

    /// The data files it reads.
    pub fn file_count(&self) -> usize {
        let mut paths: Vec<&str> = self
            .parts
            .groups
            .iter()
            .flatten()
            .map(|t| t.data_file_path.as_str())
            .collect();
        paths.sort_unstable();
        paths.dedup();
        paths.len()
    }

    /// The files and file pieces it reads (what a stage can spread over tasks).
    pub fn task_count(&self) -> usize {
        self.parts.groups.iter().map(Vec::len).sum()
    }

    fn exact_rows(&self, total: Option<u64>) -> Precision<usize> {
        match total {
            Some(n) if self.parts.predicate.is_none() => match self.parts.limit {
                Some(l) => Precision::Exact((n as usize).min(l)),
                None => Precision::Exact(n as usize),
            },
            Some(n) => Precision::Inexact(n as usize),
            None => Precision::Absent,
        }
    }
}

impl DisplayAs for IcebergScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.parts;
        write!(
            f,
            "IcebergScanExec: table={}, partitions={}, files={}, projection=[{}]",
            p.table_name,
            p.groups.len(),
            self.file_count(),
            p.schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        if let Some(predicate) = &p.predicate {
            write!(f, ", predicate=[{predicate}]")?;
        }
        if let Some(l) = p.limit {
            write!(f, ", limit={l}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for IcebergScanExec {
    fn name(&self) -> &str {
        "IcebergScanExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "IcebergScanExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let tasks = self
            .parts
            .groups
            .get(partition)
            .cloned()
            .unwrap_or_default();
        let files = MetricBuilder::new(&self.metrics).counter("files_scanned", partition);
        let bytes = MetricBuilder::new(&self.metrics).counter("bytes_scanned", partition);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        files.add(tasks.len());
        bytes.add(tasks.iter().map(|t| t.length as usize).sum());
        let schema = Arc::clone(&self.parts.schema);
        if tasks.is_empty() {
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            )));
        }
        let runtime = iceberg::Runtime::try_current().map_err(ice_to_df)?;
        let reader = iceberg::arrow::ArrowReaderBuilder::new(self.file_io.clone(), runtime)
            .with_batch_size(self.parts.batch_size)
            .with_data_file_concurrency_limit(4)
            .with_row_group_filtering_enabled(true)
            .with_row_selection_enabled(true)
            .build();
        let limit = self.parts.limit;
        let out_schema = Arc::clone(&schema);
        let stream = futures::stream::once(async move {
            let task_stream = futures::stream::iter(tasks.into_iter().map(Ok)).boxed();
            let result = reader.read(task_stream).map_err(ice_to_df)?;
            Ok::<_, DataFusionError>(result.stream().map_err(ice_to_df))
        })
        .try_flatten();
        let mut remaining = limit;
        let stream = stream
            .map(move |batch| {
                let batch = conform(batch?, &out_schema)?;
                output_rows.add(batch.num_rows());
                Ok(batch)
            })
            .try_take_while(move |batch: &RecordBatch| {
                let keep = match remaining {
                    Some(0) => false,
                    Some(n) => {
                        remaining = Some(n.saturating_sub(batch.num_rows()));
                        true
                    }
                    None => true,
                };
                futures::future::ready(Ok(keep))
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn partition_statistics(&self, partition: Option<usize>) -> DFResult<Statistics> {
        let rows = match partition {
            Some(i) => self.exact_rows(known_rows(
                self.parts.groups.get(i).map(Vec::as_slice).unwrap_or(&[]),
            )),
            None => self.exact_rows(self.parts.rows),
        };
        Ok(Statistics {
            num_rows: rows,
            total_byte_size: Precision::Absent,
            column_statistics: vec![
                ColumnStatistics::new_unknown();
                self.parts.schema.fields().len()
            ],
        })
    }
}

/// Gives a batch read from Iceberg exactly the scan's schema (names, types, no field-id
/// metadata), so every operator above sees one schema.
pub fn conform(batch: RecordBatch, schema: &SchemaRef) -> DFResult<RecordBatch> {
    if schema.fields().is_empty() {
        return Ok(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            vec![],
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?);
    }
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = batch
            .column_by_name(field.name())
            .map(Arc::clone)
            .ok_or_else(|| {
                DataFusionError::Execution(format!(
                    "column {} missing from an Iceberg data file batch",
                    field.name()
                ))
            })?;
        if column.data_type() == field.data_type() {
            columns.push(column);
        } else {
            columns.push(cast(&column, field.data_type())?);
        }
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::spec::{DataFileFormat, Schema as IcebergSchema};

    const MIB: u64 = 1 << 20;

    fn task(path: &str, bytes: u64, rows: Option<u64>) -> FileScanTask {
        FileScanTask::builder()
            .with_file_size_in_bytes(bytes)
            .with_start(0)
            .with_length(bytes)
            .with_record_count(rows)
            .with_data_file_path(path.to_string())
            .with_data_file_format(DataFileFormat::Parquet)
            .with_schema(Arc::new(IcebergSchema::builder().build().unwrap()))
            .with_project_field_ids(vec![])
            .with_case_sensitive(true)
            .build()
    }

    fn ranges(tasks: &[FileScanTask]) -> Vec<(&str, u64, u64)> {
        tasks
            .iter()
            .map(|t| (t.data_file_path.as_str(), t.start, t.length))
            .collect()
    }

    #[test]
    fn large_files_become_contiguous_byte_ranges() {
        // one 200 MiB file over 2 partitions: pieces of ~50 MiB, covering every byte once
        let split = split_files(vec![task("a", 200 * MIB, Some(6))], 2);
        assert_eq!(
            ranges(&split),
            vec![
                ("a", 0, 50 * MIB),
                ("a", 50 * MIB, 50 * MIB),
                ("a", 100 * MIB, 50 * MIB),
                ("a", 150 * MIB, 50 * MIB)
            ]
        );
        assert!(split.iter().all(|t| t.record_count.is_none()));

        // an uneven size: the pieces still cover the file exactly; the small file stays whole
        let split = split_files(
            vec![task("b", 100 * MIB + 3, None), task("c", 20 * MIB, None)],
            1,
        );
        assert_eq!(
            ranges(&split),
            vec![
                ("b", 0, 50 * MIB + 2),
                ("b", 50 * MIB + 2, 50 * MIB + 1),
                ("c", 0, 20 * MIB)
            ]
        );
    }

    #[test]
    fn small_files_and_files_with_deletes_stay_whole() {
        let cases: Vec<(&str, Vec<FileScanTask>, usize, usize)> = vec![
            (
                "below the 16 MiB floor",
                vec![task("a", 20 * MIB, None)],
                4,
                1,
            ),
            (
                "many small files",
                (0..8)
                    .map(|i| task(&format!("f{i}"), 4 * MIB, None))
                    .collect(),
                2,
                8,
            ),
            // 128 MiB pieces at most: a 1 GiB file over 1 partition is 8 pieces
            (
                "the 128 MiB ceiling",
                vec![task("a", 1024 * MIB, None)],
                1,
                8,
            ),
        ];
        for (name, tasks, partitions, pieces) in cases {
            assert_eq!(split_files(tasks, partitions).len(), pieces, "{name}");
        }
        let mut with_deletes = task("d", 512 * MIB, Some(1));
        with_deletes.deletes = vec![iceberg::scan::FileScanTaskDeleteFile {
            file_path: "del".into(),
            file_size_in_bytes: 1,
            file_type: iceberg::spec::DataContentType::PositionDeletes,
            partition_spec_id: 0,
            equality_ids: None,
        }];
        assert_eq!(split_files(vec![with_deletes], 2).len(), 1);
    }

    #[test]
    fn row_counts_survive_the_split() {
        let tasks = vec![task("a", 200 * MIB, Some(6)), task("b", MIB, Some(4))];
        assert_eq!(known_rows(&tasks), Some(10));
        assert_eq!(
            known_rows(&split_files(tasks, 2)),
            None,
            "pieces carry no count"
        );
        assert_eq!(known_rows(&[task("c", MIB, None)]), None);
    }
}
