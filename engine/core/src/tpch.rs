//! TPC-H data: the eight tables generated with `tpchgen`, as Arrow record batches.
//!
//! Rows are formatted as CSV by `tpchgen` and parsed by `arrow-csv` against the standard
//! TPC-H column types (keys BIGINT, money DECIMAL(15,2), dates DATE). Generation is split
//! into parts so memory stays bounded at any scale factor; parts run on all cores.

use std::fmt::Write as _;
use std::io::Cursor;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::{StreamExt, TryStreamExt};
use tpchgen::csv::{
    CustomerCsv, LineItemCsv, NationCsv, OrderCsv, PartCsv, PartSuppCsv, RegionCsv, SupplierCsv,
};
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};

use crate::error::{Result, SqeError};

pub const TABLES: [&str; 8] = [
    "nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
];

/// Rows per generated part (bounded memory per part).
const ROWS_PER_PART: f64 = 200_000.0;

fn money() -> DataType {
    DataType::Decimal128(15, 2)
}

pub fn schema(table: &str) -> Result<SchemaRef> {
    use DataType::{Date32, Int32, Int64, Utf8};
    let f = |name: &str, t: DataType| Field::new(name, t, false);
    let fields = match table {
        "nation" => vec![
            f("n_nationkey", Int64),
            f("n_name", Utf8),
            f("n_regionkey", Int64),
            f("n_comment", Utf8),
        ],
        "region" => vec![
            f("r_regionkey", Int64),
            f("r_name", Utf8),
            f("r_comment", Utf8),
        ],
        "part" => vec![
            f("p_partkey", Int64),
            f("p_name", Utf8),
            f("p_mfgr", Utf8),
            f("p_brand", Utf8),
            f("p_type", Utf8),
            f("p_size", Int32),
            f("p_container", Utf8),
            f("p_retailprice", money()),
            f("p_comment", Utf8),
        ],
        "supplier" => vec![
            f("s_suppkey", Int64),
            f("s_name", Utf8),
            f("s_address", Utf8),
            f("s_nationkey", Int64),
            f("s_phone", Utf8),
            f("s_acctbal", money()),
            f("s_comment", Utf8),
        ],
        "partsupp" => vec![
            f("ps_partkey", Int64),
            f("ps_suppkey", Int64),
            f("ps_availqty", Int32),
            f("ps_supplycost", money()),
            f("ps_comment", Utf8),
        ],
        "customer" => vec![
            f("c_custkey", Int64),
            f("c_name", Utf8),
            f("c_address", Utf8),
            f("c_nationkey", Int64),
            f("c_phone", Utf8),
            f("c_acctbal", money()),
            f("c_mktsegment", Utf8),
            f("c_comment", Utf8),
        ],
        "orders" => vec![
            f("o_orderkey", Int64),
            f("o_custkey", Int64),
            f("o_orderstatus", Utf8),
            f("o_totalprice", money()),
            f("o_orderdate", Date32),
            f("o_orderpriority", Utf8),
            f("o_clerk", Utf8),
            f("o_shippriority", Int32),
            f("o_comment", Utf8),
        ],
        "lineitem" => vec![
            f("l_orderkey", Int64),
            f("l_partkey", Int64),
            f("l_suppkey", Int64),
            f("l_linenumber", Int32),
            f("l_quantity", money()),
            f("l_extendedprice", money()),
            f("l_discount", money()),
            f("l_tax", money()),
            f("l_returnflag", Utf8),
            f("l_linestatus", Utf8),
            f("l_shipdate", Date32),
            f("l_commitdate", Date32),
            f("l_receiptdate", Date32),
            f("l_shipinstruct", Utf8),
            f("l_shipmode", Utf8),
            f("l_comment", Utf8),
        ],
        other => {
            return Err(SqeError::semantic(format!("{other} is not a TPC-H table")));
        }
    };
    Ok(Arc::new(Schema::new(fields)))
}

/// Approximate rows of a table at a scale factor (for choosing the number of parts).
fn approx_rows(table: &str, sf: f64) -> f64 {
    match table {
        "nation" => 25.0,
        "region" => 5.0,
        "part" => 200_000.0 * sf,
        "supplier" => 10_000.0 * sf,
        "partsupp" => 800_000.0 * sf,
        "customer" => 150_000.0 * sf,
        "orders" => 1_500_000.0 * sf,
        _ => 6_000_000.0 * sf,
    }
}

/// How many parts a table is generated in.
pub fn part_count(table: &str, sf: f64) -> i32 {
    ((approx_rows(table, sf) / ROWS_PER_PART).ceil() as i32).max(1)
}

fn csv_part(table: &str, sf: f64, part: i32, parts: i32) -> String {
    let mut out = String::new();
    macro_rules! rows {
        ($gen:ident, $csv:ident) => {
            for row in $gen::new(sf, part, parts).iter() {
                let _ = writeln!(out, "{}", $csv::new(row));
            }
        };
    }
    match table {
        "nation" => rows!(NationGenerator, NationCsv),
        "region" => rows!(RegionGenerator, RegionCsv),
        "part" => rows!(PartGenerator, PartCsv),
        "supplier" => rows!(SupplierGenerator, SupplierCsv),
        "partsupp" => rows!(PartSuppGenerator, PartSuppCsv),
        "customer" => rows!(CustomerGenerator, CustomerCsv),
        "orders" => rows!(OrderGenerator, OrderCsv),
        _ => rows!(LineItemGenerator, LineItemCsv),
    }
    out
}

/// Generates one part (1-based) of a table as record batches.
pub fn generate_part(table: &str, sf: f64, part: i32, parts: i32) -> Result<Vec<RecordBatch>> {
    let schema = schema(table)?;
    let text = csv_part(table, sf, part, parts);
    let reader = arrow::csv::ReaderBuilder::new(schema)
        .with_header(false)
        .with_batch_size(65_536)
        .build(Cursor::new(text.into_bytes()))
        .map_err(|e| SqeError::internal(format!("TPC-H {table}: {e}")))?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| SqeError::internal(format!("TPC-H {table}: {e}")))
}

/// Creates schema `<schema>` with the eight TPC-H tables at scale factor `sf` and fills them,
/// one append commit per table. Returns the total rows loaded.
pub async fn load_into_catalog(
    catalog: &crate::catalog::SqeCatalog,
    schema_name: &str,
    sf: f64,
) -> Result<u64> {
    use iceberg::TableIdent;
    let ns = crate::catalog::namespace(schema_name);
    if !catalog.iceberg().namespace_exists(&ns).await? {
        catalog
            .iceberg()
            .create_namespace(&ns, std::collections::HashMap::new())
            .await?;
        catalog.schema_created(&ns);
    }
    let mut total = 0;
    for table in TABLES {
        let arrow = schema(table)?;
        let ident = TableIdent::new(ns.clone(), table.to_string());
        let parts = part_count(table, sf);
        let generated = futures::stream::iter(1..=parts).then(move |part| async move {
            let t = table.to_string();
            tokio::task::spawn_blocking(move || generate_part(&t, sf, part, parts))
                .await
                .map_err(|e| SqeError::internal(format!("TPC-H generator: {e}")))?
        });
        let batches = generated
            .map_ok(|batches| futures::stream::iter(batches.into_iter().map(Ok)))
            .try_flatten();
        let rows = crate::ddl::create_and_fill(
            catalog,
            &ident,
            &arrow,
            Default::default(),
            |t| async move { crate::write::append_stream(catalog, &t, batches).await },
        )
        .await?;
        total += rows;
    }
    Ok(total)
}

/// Writes the eight tables as Parquet files `<dir>/<table>.parquet` (for comparison engines).
pub fn write_parquet(dir: &std::path::Path, sf: f64) -> Result<()> {
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;
    std::fs::create_dir_all(dir)
        .map_err(|e| SqeError::external(format!("{}: {e}", dir.display())))?;
    for table in TABLES {
        let path = dir.join(format!("{table}.parquet"));
        let file = std::fs::File::create(&path)
            .map_err(|e| SqeError::external(format!("{}: {e}", path.display())))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let mut writer = ArrowWriter::try_new(file, schema(table)?, Some(props))
            .map_err(|e| SqeError::external(format!("{}: {e}", path.display())))?;
        let parts = part_count(table, sf);
        for part in 1..=parts {
            for batch in generate_part(table, sf, part, parts)? {
                writer
                    .write(&batch)
                    .map_err(|e| SqeError::external(format!("{}: {e}", path.display())))?;
            }
        }
        writer
            .close()
            .map_err(|e| SqeError::external(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nation_and_region_are_complete() {
        let rows: usize = generate_part("nation", 0.01, 1, 1)
            .unwrap()
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        assert_eq!(rows, 25);
        let rows: usize = generate_part("region", 0.01, 1, 1)
            .unwrap()
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        assert_eq!(rows, 5);
    }

    #[test]
    fn lineitem_parts_add_up() {
        let total: usize = (1..=2)
            .map(|p| {
                generate_part("lineitem", 0.01, p, 2)
                    .unwrap()
                    .iter()
                    .map(RecordBatch::num_rows)
                    .sum::<usize>()
            })
            .sum();
        assert_eq!(total, 60_175);
    }
}
