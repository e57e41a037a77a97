//! Rendering query results as an aligned table, CSV or JSON Lines.
//!
//! Rendering is pure (results in, bytes out) so it can be unit tested; the
//! caller writes the bytes to stdout.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use comfy_table::{Cell, CellAlignment, Table, TableComponent};

/// The output format chosen with `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table followed by a row count.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per row (JSON Lines).
    Json,
}

/// The complete result of one statement.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Renders `result` in `format`. A result without columns renders as nothing
/// except, for the table format, the row count line.
pub fn render(format: Format, result: &QueryResult) -> Result<Vec<u8>, ArrowError> {
    match format {
        Format::Table => render_table(result).map(String::into_bytes),
        Format::Csv => render_csv(result),
        Format::Json => render_json(result),
    }
}

/// `(1 row)`, `(3 rows)`.
pub fn row_count_line(rows: usize) -> String {
    if rows == 1 {
        "(1 row)".to_string()
    } else {
        format!("({rows} rows)")
    }
}

/// `Time: 12.345 ms` below one second, `Time: 1.234 s` above.
pub fn elapsed_line(elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs < 1.0 {
        format!("Time: {:.3} ms", secs * 1000.0)
    } else {
        format!("Time: {secs:.3} s")
    }
}

fn render_table(result: &QueryResult) -> Result<String, ArrowError> {
    let mut out = String::new();
    if !result.schema.fields().is_empty() {
        out.push_str(&build_table(result)?.to_string());
        out.push('\n');
    }
    out.push_str(&row_count_line(result.num_rows()));
    out.push('\n');
    Ok(out)
}

fn build_table(result: &QueryResult) -> Result<Table, ArrowError> {
    let mut table = Table::new();
    // The same ASCII style as arrow's pretty printer (and datafusion-cli).
    table.load_preset("||--+-++|    ++++++");
    let fields = result.schema.fields();
    table.set_header(
        fields
            .iter()
            .map(|field| Cell::new(field.name()).set_alignment(CellAlignment::Left)),
    );
    for (index, field) in fields.iter().enumerate() {
        if field.data_type().is_numeric()
            && let Some(column) = table.column_mut(index)
        {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }

    let options = FormatOptions::default()
        .with_null("NULL")
        .with_display_error(true);
    for batch in &result.batches {
        if batch.num_columns() != fields.len() {
            return Err(ArrowError::InvalidArgumentError(format!(
                "the server sent a batch with {} columns for a result with {} columns",
                batch.num_columns(),
                fields.len()
            )));
        }
        let formatters = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            table.add_row(
                formatters
                    .iter()
                    .map(|formatter| Cell::new(formatter.value(row))),
            );
        }
    }
    if result.num_rows() == 0 {
        // Otherwise the line under the header would be drawn twice.
        for component in [
            TableComponent::BottomBorder,
            TableComponent::BottomBorderIntersections,
            TableComponent::BottomLeftCorner,
            TableComponent::BottomRightCorner,
        ] {
            table.remove_style(component);
        }
    }
    Ok(table)
}

fn render_csv(result: &QueryResult) -> Result<Vec<u8>, ArrowError> {
    let mut out = Vec::new();
    if result.schema.fields().is_empty() {
        return Ok(out);
    }
    {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        // An empty batch first, so the header is written even without rows.
        writer.write(&RecordBatch::new_empty(Arc::clone(&result.schema)))?;
        for batch in &result.batches {
            writer.write(batch)?;
        }
    }
    Ok(out)
}

fn render_json(result: &QueryResult) -> Result<Vec<u8>, ArrowError> {
    let mut out = Vec::new();
    if result.schema.fields().is_empty() {
        return Ok(out);
    }
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(&mut out);
    for batch in &result.batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn sample() -> QueryResult {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("price", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![1, 20])),
                Arc::new(StringArray::from(vec![Some("apple, red"), None])),
                Arc::new(Float64Array::from(vec![Some(1.5), Some(10.25)])),
            ],
        )
        .expect("valid test batch");
        QueryResult {
            schema,
            batches: vec![batch],
        }
    }

    fn empty(schema: SchemaRef) -> QueryResult {
        QueryResult {
            schema,
            batches: vec![],
        }
    }

    fn rendered(format: Format, result: &QueryResult) -> String {
        let bytes = render(format, result).expect("render");
        String::from_utf8(bytes).expect("utf-8 output")
    }

    #[test]
    fn table_is_aligned_with_row_count() {
        let expected = "\
+----+------------+-------+
| id | name       | price |
+----+------------+-------+
|  1 | apple, red |   1.5 |
| 20 | NULL       | 10.25 |
+----+------------+-------+
(2 rows)
";
        assert_eq!(rendered(Format::Table, &sample()), expected);
    }

    #[test]
    fn table_without_rows_keeps_the_header() {
        let expected = "\
+----+------+-------+
| id | name | price |
+----+------+-------+
(0 rows)
";
        assert_eq!(rendered(Format::Table, &empty(sample().schema)), expected);
    }

    #[test]
    fn zero_columns_print_only_the_row_count() {
        let result = empty(Arc::new(Schema::empty()));
        assert_eq!(rendered(Format::Table, &result), "(0 rows)\n");
        assert_eq!(rendered(Format::Csv, &result), "");
        assert_eq!(rendered(Format::Json, &result), "");
    }

    #[test]
    fn csv_has_header_and_quotes() {
        assert_eq!(
            rendered(Format::Csv, &sample()),
            "id,name,price\n1,\"apple, red\",1.5\n20,,10.25\n"
        );
        assert_eq!(
            rendered(Format::Csv, &empty(sample().schema)),
            "id,name,price\n"
        );
    }

    #[test]
    fn json_is_one_object_per_line_with_nulls() {
        assert_eq!(
            rendered(Format::Json, &sample()),
            "{\"id\":1,\"name\":\"apple, red\",\"price\":1.5}\n\
             {\"id\":20,\"name\":null,\"price\":10.25}\n"
        );
        assert_eq!(rendered(Format::Json, &empty(sample().schema)), "");
    }

    #[test]
    fn row_count_and_elapsed_lines() {
        assert_eq!(row_count_line(0), "(0 rows)");
        assert_eq!(row_count_line(1), "(1 row)");
        assert_eq!(row_count_line(3), "(3 rows)");
        assert_eq!(
            elapsed_line(Duration::from_micros(12_345)),
            "Time: 12.345 ms"
        );
        assert_eq!(elapsed_line(Duration::from_millis(1_234)), "Time: 1.234 s");
    }
}
