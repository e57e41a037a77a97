//! SQE's own plan nodes on the wire, and how a stage that scans Iceberg is split into tasks.
//!
//! ```text
//!  coordinator: IcebergScanExec ─ try_encode ─▶ b'I' + JSON(ScanWire: file tasks, FileIO
//!                                                props, projected schema as Arrow IPC)
//!  worker:      try_decode ─▶ IcebergScanExec::from_parts (reads with its own FileIO)
//!  IcebergWriteExec ─▶ b'W' + JSON(WriteWire: table metadata, FileIO props) ─▶ the worker
//!               writes data files and streams them back (as JSON) to the coordinator's commit
//!  planner:     a scan stage wants one task per file (dd caps it at the worker count); each
//!               task's scan gets its share of the files through PartitionIsolatorExec
//! ```

use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow::ipc::convert::{IpcSchemaEncoder, fb_to_schema};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_distributed::{PartitionIsolatorExec, TaskEstimation, TaskEstimator};
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use iceberg::TableIdent;
use iceberg::scan::FileScanTask;
use iceberg::spec::{Literal, NameMapping, PartitionSpec, TableMetadata, Type};
use serde::{Deserialize, Serialize};
use sqe_core::scan::{IcebergScanExec, ScanParts};
use sqe_core::write::{IcebergWriteExec, WriteParts};

const ICEBERG_SCAN: u8 = b'I';
const ICEBERG_WRITE: u8 = b'W';

/// [`IcebergWriteExec`] as it travels: the table's metadata (the worker writes files for the
/// schema and partition spec the statement was planned with) and its FileIO properties.
#[derive(Serialize, Deserialize)]
struct WriteWire {
    ident: TableIdent,
    metadata: TableMetadata,
    metadata_location: Option<String>,
    file_io_props: Vec<(String, String)>,
}

/// A file task as it travels: iceberg-rust refuses to serialize a task's partition values,
/// spec and name mapping, so they go beside it (the values as Iceberg's JSON single-value form).
#[derive(Serialize, Deserialize)]
struct TaskWire {
    task: FileScanTask,
    partition: Option<serde_json::Value>,
    partition_spec: Option<PartitionSpec>,
    name_mapping: Option<NameMapping>,
}

impl TaskWire {
    fn encode(task: &FileScanTask) -> Result<Self> {
        let mut bare = task.clone();
        let partition = bare.partition.take();
        let spec = bare.partition_spec.take();
        let name_mapping = bare.name_mapping.take().map(|m| m.as_ref().clone());
        let partition = match (partition, &spec) {
            (Some(values), Some(spec)) => {
                let ty = Type::Struct(
                    spec.partition_type(&task.schema)
                        .map_err(|e| wire_err("partition type", e))?,
                );
                Some(
                    Literal::Struct(values)
                        .try_into_json(&ty)
                        .map_err(|e| wire_err("partition values", e))?,
                )
            }
            // an unpartitioned table's tasks carry an empty struct and no spec: nothing to ship
            (Some(_), None) => None,
            (None, _) => None,
        };
        Ok(Self {
            task: bare,
            partition,
            partition_spec: spec.map(|s| s.as_ref().clone()),
            name_mapping,
        })
    }

    fn decode(self) -> Result<FileScanTask> {
        let mut task = self.task;
        if let (Some(json), Some(spec)) = (self.partition, &self.partition_spec) {
            let ty = Type::Struct(
                spec.partition_type(&task.schema)
                    .map_err(|e| wire_err("partition type", e))?,
            );
            task.partition = match Literal::try_from_json(json, &ty)
                .map_err(|e| wire_err("partition values", e))?
            {
                Some(Literal::Struct(values)) => Some(values),
                _ => return Err(wire_err("partition values", "not a struct")),
            };
        }
        task.partition_spec = self.partition_spec.map(Arc::new);
        task.name_mapping = self.name_mapping.map(Arc::new);
        Ok(task)
    }
}

/// [`IcebergScanExec`] as it travels.
#[derive(Serialize, Deserialize)]
struct ScanWire {
    table_name: String,
    predicate: Option<String>,
    groups: Vec<Vec<TaskWire>>,
    limit: Option<usize>,
    batch_size: usize,
    file_io_props: Vec<(String, String)>,
    /// The projected schema as an Arrow IPC `Schema` flatbuffer.
    schema: Vec<u8>,
    rows: Option<u64>,
}

fn wire_err(what: &str, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Internal(format!("SQE plan codec: {what}: {e}"))
}

/// Encodes and decodes SQE's plan nodes for datafusion-distributed.
#[derive(Debug, Default)]
pub struct SqeCodec;

impl PhysicalExtensionCodec for SqeCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match buf.split_first() {
            Some((&ICEBERG_SCAN, body)) => {
                if !inputs.is_empty() {
                    return Err(wire_err("IcebergScanExec", "a leaf with inputs"));
                }
                let wire: ScanWire =
                    serde_json::from_slice(body).map_err(|e| wire_err("IcebergScanExec", e))?;
                let schema = arrow::ipc::root_as_schema(&wire.schema)
                    .map(fb_to_schema)
                    .map_err(|e| wire_err("IcebergScanExec schema", e))?;
                Ok(Arc::new(IcebergScanExec::from_parts(ScanParts {
                    table_name: wire.table_name,
                    schema: Arc::new(schema),
                    predicate: wire.predicate,
                    groups: wire
                        .groups
                        .into_iter()
                        .map(|g| g.into_iter().map(TaskWire::decode).collect())
                        .collect::<Result<_>>()?,
                    limit: wire.limit,
                    batch_size: wire.batch_size,
                    file_io_props: wire.file_io_props,
                    rows: wire.rows,
                })))
            }
            Some((&ICEBERG_WRITE, body)) => {
                let [input] = inputs else {
                    return Err(wire_err("IcebergWriteExec", "takes exactly one input"));
                };
                let wire: WriteWire =
                    serde_json::from_slice(body).map_err(|e| wire_err("IcebergWriteExec", e))?;
                let parts = WriteParts {
                    ident: wire.ident,
                    metadata: wire.metadata,
                    metadata_location: wire.metadata_location,
                    file_io_props: wire.file_io_props,
                };
                Ok(Arc::new(IcebergWriteExec::from_parts(
                    parts,
                    Arc::clone(input),
                )?))
            }
            Some((tag, _)) => Err(wire_err("unknown node", format!("tag {tag}"))),
            None => Err(wire_err("unknown node", "empty")),
        }
    }

    fn try_encode(&self, node: Arc<dyn ExecutionPlan>, buf: &mut Vec<u8>) -> Result<()> {
        if let Some(write) = node.as_any().downcast_ref::<IcebergWriteExec>() {
            let p = write.parts();
            let wire = WriteWire {
                ident: p.ident,
                metadata: p.metadata,
                metadata_location: p.metadata_location,
                file_io_props: p.file_io_props,
            };
            buf.push(ICEBERG_WRITE);
            return serde_json::to_writer(buf, &wire).map_err(|e| wire_err("IcebergWriteExec", e));
        }
        let Some(scan) = node.as_any().downcast_ref::<IcebergScanExec>() else {
            return Err(DataFusionError::NotImplemented(format!(
                "{} cannot run on a worker",
                node.name()
            )));
        };
        let p = scan.parts();
        let schema: &Schema = &p.schema;
        let ipc = IpcSchemaEncoder::new().schema_to_fb(schema);
        let wire = ScanWire {
            table_name: p.table_name.clone(),
            predicate: p.predicate.clone(),
            groups: p
                .groups
                .iter()
                .map(|g| g.iter().map(TaskWire::encode).collect())
                .collect::<Result<_>>()?,
            limit: p.limit,
            batch_size: p.batch_size,
            file_io_props: p.file_io_props.clone(),
            schema: ipc.finished_data().to_vec(),
            rows: p.rows,
        };
        buf.push(ICEBERG_SCAN);
        serde_json::to_writer(buf, &wire).map_err(|e| wire_err("IcebergScanExec", e))
    }
}

/// How many tasks a stage scanning Iceberg gets, and each task's share of the files.
#[derive(Debug, Default)]
pub struct ScanTasks;

impl TaskEstimator for ScanTasks {
    fn task_estimation(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        _cfg: &ConfigOptions,
    ) -> Option<TaskEstimation> {
        let scan = plan.as_any().downcast_ref::<IcebergScanExec>()?;
        // one task per file (or piece of a large file) at most; the planner caps it at the
        // number of workers
        Some(TaskEstimation::desired(scan.task_count().max(1)))
    }

    fn scale_up_leaf_node(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        task_count: usize,
        cfg: &ConfigOptions,
    ) -> Option<Arc<dyn ExecutionPlan>> {
        let scan = plan.as_any().downcast_ref::<IcebergScanExec>()?;
        if task_count <= 1 {
            return Some(Arc::clone(plan));
        }
        let per_task = cfg.execution.target_partitions.max(1);
        let regrouped = Arc::new(scan.regrouped(per_task * task_count));
        Some(Arc::new(PartitionIsolatorExec::new(regrouped, task_count)))
    }
}
