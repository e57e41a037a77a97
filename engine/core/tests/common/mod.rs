//! The sqllogictest runner the engine's SQL suites share: `tests/slt/*.slt` against a real
//! engine on a fresh embedded catalog (one per file), built by the caller (hybrid here, a
//! coordinator with in-process workers in `sqe-server`'s distributed suite).
//! `SQE_SLT_COMPLETE=1` rewrites the expected results in place; `SQE_SLT_FILTER=name` runs
//! only files whose name contains `name`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use sqe_core::engine::{Engine, Output};
use sqe_core::error::SqeError;
use sqe_core::session::Protocol;
use sqe_core::session::SqeSession;
use sqllogictest::{DBOutput, DefaultColumnType};

/// An engine for one file, and whatever must live as long as it (in-process workers).
pub type Built = (Arc<Engine>, Box<dyn std::any::Any>);

/// Makes the engine a file runs on, from its config (data dir, sample data set).
pub type Build =
    dyn Fn(sqe_config::SqeConfig) -> Pin<Box<dyn Future<Output = Result<Built, String>>>>;

struct SqeDb {
    engine: Arc<Engine>,
    session: SqeSession,
}

fn column_type(t: &DataType) -> DefaultColumnType {
    if t.is_integer() {
        DefaultColumnType::Integer
    } else if t.is_floating() || matches!(t, DataType::Decimal128(_, _)) {
        DefaultColumnType::FloatingPoint
    } else if matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        DefaultColumnType::Text
    } else {
        DefaultColumnType::Any
    }
}

fn rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, SqeError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SqeError::internal(e.to_string()))?;
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| {
                    let v = f.value(row).to_string();
                    if v.is_empty() {
                        "(empty)".to_string()
                    } else {
                        v
                    }
                })
                .collect();
            // a multi-line cell (EXPLAIN) becomes one result line per text line
            if cells.iter().any(|c| c.contains('\n')) {
                let mut first = Vec::new();
                let mut rest = Vec::new();
                for c in &cells {
                    let mut lines = c.lines().map(str::trim_end);
                    first.push(lines.next().unwrap_or_default().to_string());
                    rest.extend(lines.map(|l| vec![l.to_string()]));
                }
                out.push(first);
                out.extend(rest);
            } else {
                out.push(cells);
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl sqllogictest::AsyncDB for SqeDb {
    type Error = SqeError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let output = self.engine.run(&self.session, sql, None).await?;
        let is_query = matches!(output, Output::Query { .. });
        let schema = output.schema();
        let count = output.update_count();
        let mut stream = self.engine.stream(output)?;
        let mut batches = Vec::new();
        while let Some(b) = futures::StreamExt::next(&mut stream).await {
            batches.push(b?);
        }
        if !is_query && schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(count.max(0) as u64));
        }
        Ok(DBOutput::Rows {
            types: schema
                .fields()
                .iter()
                .map(|f| column_type(f.data_type()))
                .collect(),
            rows: rows(&batches)?,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "sqe"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

async fn run_file(
    path: &Path,
    complete: bool,
    build: &Build,
    labels: &[&str],
) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config = sqe_config::SqeConfig::default();
    config.coordinator.data_dir = dir.path().display().to_string();
    config.coordinator.sample_data = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("tpch"));
    config.coordinator.target_partitions = 4;
    let (engine, _keep) = build(config).await?;
    let make = move || {
        let engine = Arc::clone(&engine);
        async move {
            let session = engine.new_session("slt", Protocol::FlightSql);
            Ok::<_, SqeError>(SqeDb { engine, session })
        }
    };
    let mut runner = sqllogictest::Runner::new(make);
    for label in labels {
        runner.add_label(label);
    }
    if complete {
        runner
            .update_test_file(
                path,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::default_column_validator,
            )
            .await
            .map_err(|e| e.to_string())
    } else {
        runner
            .run_file_async(path)
            .await
            .map_err(|e| e.display(true).to_string())
    }
}

/// Runs every `.slt` file on `runtime` with engines from `build`; exits 1 if any fails.
/// `labels` name the mode for `skipif` / `onlyif` records (e.g. `distributed`).
pub fn run_all(runtime: &tokio::runtime::Runtime, build: &Build, labels: &[&str]) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/slt");
    let filter = std::env::var("SQE_SLT_FILTER").ok();
    let complete = std::env::var("SQE_SLT_COMPLETE").is_ok_and(|v| v == "1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "slt"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if let Some(f) = &filter {
        files.retain(|p| p.to_string_lossy().contains(f.as_str()));
    }
    let mode = labels.first().copied().unwrap_or("hybrid");
    let mut failed = 0;
    for file in &files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let started = std::time::Instant::now();
        match runtime.block_on(run_file(file, complete, build, labels)) {
            Ok(()) => println!(
                "ok    {name} [{mode}] ({} ms)",
                started.elapsed().as_millis()
            ),
            Err(e) => {
                failed += 1;
                println!("FAIL  {name} [{mode}]\n{e}");
            }
        }
    }
    if files.is_empty() {
        println!("no .slt files under {}", root.display());
        std::process::exit(1);
    }
    if failed > 0 {
        println!(
            "{failed} of {} sqllogictest files failed [{mode}]",
            files.len()
        );
        std::process::exit(1);
    }
    println!("{} sqllogictest files passed [{mode}]", files.len());
}
