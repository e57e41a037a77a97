//! Arrow types and values as the Trino protocol writes them: the `type` string and
//! `typeSignature` of each column, and each value as JSON text exactly as Trino encodes it
//! (decimals as strings, NaN and infinities as strings, varbinary as base64, dates and times as
//! Trino formats them, rows as arrays, maps as objects).
//!
//! ```text
//!  Arrow DataType ─▶ TrinoType { display, signature } ─▶ "columns" entry
//!  Arrow array ─▶ ColumnEncoder ─▶ JSON text appended to the page being built
//! ```

use std::fmt::Write as _;

use arrow::array::timezone::Tz;
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, GenericBinaryArray, GenericStringArray, OffsetSizeTrait,
};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, DurationMicrosecondType,
    DurationMillisecondType, DurationNanosecondType, DurationSecondType, Field, Float16Type,
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, IntervalDayTimeType,
    IntervalMonthDayNanoType, IntervalUnit, IntervalYearMonthType, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use base64::Engine as _;
use serde_json::{Value, json};
use sqe_core::sql_types::{map_fields, type_name, unit_precision};

/// Unbounded varchar, as Trino writes it in type signatures.
const VARCHAR_MAX: i64 = 2_147_483_647;

/// How the client wants date-time types named (`X-Trino-Client-Capabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TypeOptions {
    /// `PARAMETRIC_DATETIME`: `timestamp(6)` rather than `timestamp` (rounded to millis).
    pub parametric_datetime: bool,
}

/// A Trino type: the display string (`decimal(15,2)`) and its `typeSignature` JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct TrinoType {
    pub display: String,
    pub signature: Value,
}

fn long(v: i64) -> Value {
    json!({"kind": "LONG", "value": v})
}

fn simple(raw: &str) -> Value {
    json!({"rawType": raw, "arguments": []})
}

fn with_longs(raw: &str, args: &[i64]) -> Value {
    json!({"rawType": raw, "arguments": args.iter().map(|a| long(*a)).collect::<Vec<_>>()})
}

fn datetime(raw: &str, unit: &TimeUnit, options: TypeOptions) -> Value {
    if options.parametric_datetime {
        with_longs(raw, &[i64::from(unit_precision(unit))])
    } else {
        simple(raw)
    }
}

fn of(t: &DataType, options: TypeOptions) -> Value {
    json!({"kind": "TYPE", "value": signature(t, options)})
}

/// The Trino type of an Arrow type: its name (SQE's SQL name, see `sqe_core::sql_types`) and
/// its `typeSignature`.
pub fn trino_type(data_type: &DataType, options: TypeOptions) -> TrinoType {
    TrinoType {
        display: type_name(data_type, options.parametric_datetime),
        signature: signature(data_type, options),
    }
}

/// The `typeSignature` JSON of a type.
pub fn signature(data_type: &DataType, options: TypeOptions) -> Value {
    match data_type {
        DataType::Null => simple("unknown"),
        DataType::Boolean => simple("boolean"),
        DataType::Int8 => simple("tinyint"),
        DataType::Int16 | DataType::UInt8 => simple("smallint"),
        DataType::Int32 | DataType::UInt16 => simple("integer"),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => simple("bigint"),
        DataType::Float16 | DataType::Float32 => simple("real"),
        DataType::Float64 => simple("double"),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => with_longs("decimal", &[i64::from(*p), i64::from(*s)]),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            with_longs("varchar", &[VARCHAR_MAX])
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => simple("varbinary"),
        DataType::Date32 | DataType::Date64 => simple("date"),
        DataType::Time32(unit) | DataType::Time64(unit) => datetime("time", unit, options),
        DataType::Timestamp(unit, None) => datetime("timestamp", unit, options),
        DataType::Timestamp(unit, Some(_)) => datetime("timestamp with time zone", unit, options),
        DataType::Interval(IntervalUnit::YearMonth) => simple("interval year to month"),
        DataType::Interval(_) | DataType::Duration(_) => simple("interval day to second"),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _) => {
            json!({"rawType": "array", "arguments": [of(f.data_type(), options)]})
        }
        DataType::Map(entries, _) => {
            let (k, v) = map_fields(entries);
            json!({"rawType": "map", "arguments": [of(k, options), of(v, options)]})
        }
        DataType::Struct(fields) => {
            let args: Vec<Value> = fields
                .iter()
                .map(|f| {
                    json!({"kind": "NAMED_TYPE", "value": {
                        "fieldName": {"name": f.name()},
                        "typeSignature": signature(f.data_type(), options),
                    }})
                })
                .collect();
            json!({"rawType": "row", "arguments": args})
        }
        DataType::Dictionary(_, v) => signature(v, options),
        DataType::RunEndEncoded(_, f) => signature(f.data_type(), options),
        DataType::Union(_, _) => simple("json"),
    }
}

/// The column entry of a Trino response.
pub fn column_json(field: &Field, options: TypeOptions) -> Value {
    let t = trino_type(field.data_type(), options);
    json!({"name": field.name(), "type": t.display, "typeSignature": t.signature})
}

// ---------------------------------------------------------------------------------------------
// values

/// Appends one value as JSON text. `column` must match the type the column was described with.
pub fn write_value(out: &mut String, array: &ArrayRef, row: usize, options: TypeOptions) {
    if array.is_null(row) {
        out.push_str("null");
        return;
    }
    let precision_of = |unit: &TimeUnit| {
        if options.parametric_datetime {
            unit_precision(unit)
        } else {
            3
        }
    };
    match array.data_type() {
        DataType::Null => out.push_str("null"),
        DataType::Boolean => {
            let a: &BooleanArray = array.as_boolean();
            out.push_str(if a.value(row) { "true" } else { "false" });
        }
        DataType::Int8 => push_int(out, array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => push_int(out, array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => push_int(out, array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => push_int(out, array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => push_int(out, array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => push_int(out, array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => push_int(out, array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => push_int(out, array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float16 => push_float(
            out,
            f64::from(array.as_primitive::<Float16Type>().value(row).to_f32()),
            true,
        ),
        DataType::Float32 => push_float(
            out,
            f64::from(array.as_primitive::<Float32Type>().value(row)),
            true,
        ),
        DataType::Float64 => push_float(out, array.as_primitive::<Float64Type>().value(row), false),
        DataType::Decimal128(_, s) => {
            let v = array.as_primitive::<Decimal128Type>().value(row);
            push_string(out, &format_decimal(&v.to_string(), *s));
        }
        DataType::Decimal256(_, s) => {
            let v = array.as_primitive::<Decimal256Type>().value(row);
            push_string(out, &format_decimal(&v.to_string(), *s));
        }
        DataType::Decimal32(_, s) => {
            let v = array
                .as_primitive::<arrow::datatypes::Decimal32Type>()
                .value(row);
            push_string(out, &format_decimal(&v.to_string(), *s));
        }
        DataType::Decimal64(_, s) => {
            let v = array
                .as_primitive::<arrow::datatypes::Decimal64Type>()
                .value(row);
            push_string(out, &format_decimal(&v.to_string(), *s));
        }
        DataType::Utf8 => push_string(out, string_value::<i32>(array, row)),
        DataType::LargeUtf8 => push_string(out, string_value::<i64>(array, row)),
        DataType::Utf8View => push_string(out, array.as_string_view().value(row)),
        DataType::Binary => push_base64(out, binary_value::<i32>(array, row)),
        DataType::LargeBinary => push_base64(out, binary_value::<i64>(array, row)),
        DataType::BinaryView => push_base64(out, array.as_binary_view().value(row)),
        DataType::FixedSizeBinary(_) => push_base64(out, array.as_fixed_size_binary().value(row)),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            push_string(out, &format_date(i64::from(days)));
        }
        DataType::Date64 => {
            let ms = array.as_primitive::<Date64Type>().value(row);
            push_string(out, &format_date(ms.div_euclid(86_400_000)));
        }
        DataType::Time32(unit) | DataType::Time64(unit) => {
            let nanos = match unit {
                TimeUnit::Second => {
                    i64::from(array.as_primitive::<Time32SecondType>().value(row)) * 1_000_000_000
                }
                TimeUnit::Millisecond => {
                    i64::from(array.as_primitive::<Time32MillisecondType>().value(row)) * 1_000_000
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<Time64MicrosecondType>().value(row) * 1_000
                }
                TimeUnit::Nanosecond => array.as_primitive::<Time64NanosecondType>().value(row),
            };
            push_string(out, &format_time(nanos, precision_of(unit)));
        }
        DataType::Timestamp(unit, tz) => {
            let (secs, nanos) = match unit {
                TimeUnit::Second => (array.as_primitive::<TimestampSecondType>().value(row), 0),
                TimeUnit::Millisecond => split(
                    array.as_primitive::<TimestampMillisecondType>().value(row),
                    1_000,
                    1_000_000,
                ),
                TimeUnit::Microsecond => split(
                    array.as_primitive::<TimestampMicrosecondType>().value(row),
                    1_000_000,
                    1_000,
                ),
                TimeUnit::Nanosecond => split(
                    array.as_primitive::<TimestampNanosecondType>().value(row),
                    1_000_000_000,
                    1,
                ),
            };
            let text = format_timestamp(secs, nanos, precision_of(unit), tz.as_deref());
            push_string(out, &text);
        }
        DataType::Interval(IntervalUnit::YearMonth) => {
            let months = array.as_primitive::<IntervalYearMonthType>().value(row);
            push_string(out, &format_year_month(i64::from(months)));
        }
        DataType::Interval(IntervalUnit::DayTime) => {
            let v = array.as_primitive::<IntervalDayTimeType>().value(row);
            let millis = i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds);
            push_string(out, &format_day_second(millis));
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = array.as_primitive::<IntervalMonthDayNanoType>().value(row);
            let millis = (i64::from(v.months) * 30 + i64::from(v.days)) * 86_400_000
                + v.nanoseconds / 1_000_000;
            push_string(out, &format_day_second(millis));
        }
        DataType::Duration(unit) => {
            let millis = match unit {
                TimeUnit::Second => array.as_primitive::<DurationSecondType>().value(row) * 1000,
                TimeUnit::Millisecond => array.as_primitive::<DurationMillisecondType>().value(row),
                TimeUnit::Microsecond => {
                    array.as_primitive::<DurationMicrosecondType>().value(row) / 1000
                }
                TimeUnit::Nanosecond => {
                    array.as_primitive::<DurationNanosecondType>().value(row) / 1_000_000
                }
            };
            push_string(out, &format_day_second(millis));
        }
        DataType::List(_) => {
            let values = array.as_list::<i32>().value(row);
            write_list(out, &values, options);
        }
        DataType::LargeList(_) => {
            let values = array.as_list::<i64>().value(row);
            write_list(out, &values, options);
        }
        DataType::FixedSizeList(_, _) => {
            let values = array.as_fixed_size_list().value(row);
            write_list(out, &values, options);
        }
        DataType::Map(_, _) => {
            let entries = array.as_map().value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            out.push('{');
            for i in 0..entries.len() {
                if i > 0 {
                    out.push(',');
                }
                // JSON object keys are strings: write the key's value, then quote it if needed
                let mut key = String::new();
                write_value(&mut key, keys, i, options);
                if key.starts_with('"') {
                    out.push_str(&key);
                } else {
                    push_string(out, &key);
                }
                out.push(':');
                write_value(out, values, i, options);
            }
            out.push('}');
        }
        DataType::Struct(_) => {
            let s = array.as_struct();
            out.push('[');
            for (i, column) in s.columns().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, column, row, options);
            }
            out.push(']');
        }
        DataType::Dictionary(_, _) => {
            let d = array.as_any_dictionary();
            let key = d.normalized_keys()[row];
            write_value(out, d.values(), key, options);
        }
        _ => {
            // list views, run-end encoding, unions: shown as their text, never dropped
            let formatter =
                arrow::util::display::ArrayFormatter::try_new(array.as_ref(), &Default::default());
            match formatter {
                Ok(f) => push_string(out, &f.value(row).to_string()),
                Err(_) => out.push_str("null"),
            }
        }
    }
}

fn write_list(out: &mut String, values: &ArrayRef, options: TypeOptions) {
    out.push('[');
    for i in 0..values.len() {
        if i > 0 {
            out.push(',');
        }
        write_value(out, values, i, options);
    }
    out.push(']');
}

fn string_value<O: OffsetSizeTrait>(array: &ArrayRef, row: usize) -> &str {
    let a: &GenericStringArray<O> = array.as_string::<O>();
    a.value(row)
}

fn binary_value<O: OffsetSizeTrait>(array: &ArrayRef, row: usize) -> &[u8] {
    let a: &GenericBinaryArray<O> = array.as_binary::<O>();
    a.value(row)
}

fn push_int(out: &mut String, v: impl std::fmt::Display) {
    let _ = write!(out, "{v}");
}

/// Doubles as JSON numbers; NaN and the infinities as the strings Trino writes.
fn push_float(out: &mut String, v: f64, real: bool) {
    if v.is_nan() {
        out.push_str("\"NaN\"");
    } else if v == f64::INFINITY {
        out.push_str("\"Infinity\"");
    } else if v == f64::NEG_INFINITY {
        out.push_str("\"-Infinity\"");
    } else if real {
        // shortest text that reads back as the same f32
        let _ = write!(out, "{}", v as f32);
        if v.fract() == 0.0 && v.abs() < 1e16 {
            out.push_str(".0");
        }
    } else {
        let _ = write!(out, "{v}");
        if v.fract() == 0.0 && v.abs() < 1e16 {
            out.push_str(".0");
        }
    }
}

/// A JSON string literal.
pub fn push_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_base64(out: &mut String, bytes: &[u8]) {
    out.push('"');
    base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
    out.push('"');
}

/// An unscaled decimal's digits with the point put back: ("-1234", 2) → "-12.34".
pub fn format_decimal(digits: &str, scale: i8) -> String {
    if scale <= 0 {
        let zeros = "0".repeat(usize::from(scale.unsigned_abs()));
        return format!("{digits}{zeros}");
    }
    let scale = usize::from(scale.unsigned_abs());
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", digits),
    };
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits.to_string()
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

fn split(v: i64, per_second: i64, nanos_per_unit: i64) -> (i64, u32) {
    let secs = v.div_euclid(per_second);
    let rem = v.rem_euclid(per_second);
    (secs, (rem * nanos_per_unit) as u32)
}

/// Days since the epoch as `YYYY-MM-DD`.
pub fn format_date(days: i64) -> String {
    let date = chrono::DateTime::from_timestamp(days * 86_400, 0)
        .map(|d| d.date_naive().format("%Y-%m-%d").to_string());
    date.unwrap_or_else(|| days.to_string())
}

fn fraction(nanos: u32, precision: u32) -> String {
    if precision == 0 {
        return String::new();
    }
    let digits = format!("{nanos:09}");
    format!(".{}", &digits[..precision.min(9) as usize])
}

/// Nanoseconds since midnight as `HH:MM:SS[.fff]`.
pub fn format_time(nanos: i64, precision: u32) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000) as u32;
    format!(
        "{:02}:{:02}:{:02}{}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        fraction(frac, precision)
    )
}

/// A timestamp as Trino writes it; with a zone, the local time there and the zone after it:
/// `UTC` for a zero offset, `+05:30` for another offset, a region name as it is.
pub fn format_timestamp(secs: i64, nanos: u32, precision: u32, tz: Option<&str>) -> String {
    let Some(utc) = chrono::DateTime::from_timestamp(secs, nanos) else {
        return secs.to_string();
    };
    let local = match tz.map(str::parse::<Tz>) {
        Some(Ok(zone)) => utc.with_timezone(&zone).naive_local(),
        _ => utc.naive_utc(),
    };
    let mut text = format!(
        "{}{}",
        local.format("%Y-%m-%d %H:%M:%S"),
        fraction(nanos, precision)
    );
    if let Some(zone) = tz {
        text.push(' ');
        text.push_str(&zone_name(zone));
    }
    text
}

/// A zone as Trino names it.
pub fn zone_name(zone: &str) -> String {
    match zone.parse::<chrono::FixedOffset>() {
        Ok(offset) if offset.local_minus_utc() == 0 => "UTC".to_string(),
        Ok(offset) => offset.to_string(),
        Err(_) if ["utc", "z", "etc/utc", "zulu"].contains(&zone.to_ascii_lowercase().as_str()) => {
            "UTC".to_string()
        }
        Err(_) => zone.to_string(),
    }
}

/// Months as Trino's `interval year to month` text: `1-2`, `-0-3`.
pub fn format_year_month(months: i64) -> String {
    let sign = if months < 0 { "-" } else { "" };
    let m = months.unsigned_abs();
    format!("{sign}{}-{}", m / 12, m % 12)
}

/// Milliseconds as Trino's `interval day to second` text: `2 03:04:05.006`.
pub fn format_day_second(millis: i64) -> String {
    let sign = if millis < 0 { "-" } else { "" };
    let ms = millis.unsigned_abs();
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    format!(
        "{sign}{days} {:02}:{:02}:{:02}.{:03}",
        rest / 3_600_000,
        (rest / 60_000) % 60,
        (rest / 1000) % 60,
        rest % 1000
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        BinaryArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int32Array,
        ListArray, StringArray, StructArray, Time64MicrosecondArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::Fields;

    use super::*;

    const P: TypeOptions = TypeOptions {
        parametric_datetime: true,
    };

    fn encoded(array: ArrayRef) -> Vec<String> {
        (0..array.len())
            .map(|i| {
                let mut s = String::new();
                write_value(&mut s, &array, i, P);
                s
            })
            .collect()
    }

    #[test]
    fn type_names_and_signatures_are_trinos() {
        let cases = [
            (
                DataType::Boolean,
                "boolean",
                json!({"rawType": "boolean", "arguments": []}),
            ),
            (
                DataType::Int8,
                "tinyint",
                json!({"rawType": "tinyint", "arguments": []}),
            ),
            (
                DataType::Int64,
                "bigint",
                json!({"rawType": "bigint", "arguments": []}),
            ),
            (
                DataType::Float32,
                "real",
                json!({"rawType": "real", "arguments": []}),
            ),
            (
                DataType::Decimal128(15, 2),
                "decimal(15, 2)",
                json!({"rawType": "decimal", "arguments": [{"kind": "LONG", "value": 15}, {"kind": "LONG", "value": 2}]}),
            ),
            (
                DataType::Utf8,
                "varchar",
                json!({"rawType": "varchar", "arguments": [{"kind": "LONG", "value": 2147483647}]}),
            ),
            (
                DataType::Binary,
                "varbinary",
                json!({"rawType": "varbinary", "arguments": []}),
            ),
            (
                DataType::Date32,
                "date",
                json!({"rawType": "date", "arguments": []}),
            ),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "timestamp(6)",
                json!({"rawType": "timestamp", "arguments": [{"kind": "LONG", "value": 6}]}),
            ),
            (
                DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
                "timestamp(3) with time zone",
                json!({"rawType": "timestamp with time zone", "arguments": [{"kind": "LONG", "value": 3}]}),
            ),
            (
                DataType::Time64(TimeUnit::Microsecond),
                "time(6)",
                json!({"rawType": "time", "arguments": [{"kind": "LONG", "value": 6}]}),
            ),
            (
                DataType::Null,
                "unknown",
                json!({"rawType": "unknown", "arguments": []}),
            ),
            (
                DataType::Interval(IntervalUnit::MonthDayNano),
                "INTERVAL DAY TO SECOND",
                json!({"rawType": "interval day to second", "arguments": []}),
            ),
        ];
        for (dt, display, signature) in cases {
            let t = trino_type(&dt, P);
            assert_eq!(t.display, display, "{dt}");
            assert_eq!(t.signature, signature, "{dt}");
        }
        let old = trino_type(
            &DataType::Timestamp(TimeUnit::Microsecond, None),
            TypeOptions::default(),
        );
        assert_eq!(old.display, "timestamp");
    }

    #[test]
    fn nested_types_name_their_parts() {
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
        assert_eq!(trino_type(&list, P).display, "array(integer)");
        let row = DataType::Struct(Fields::from(vec![
            Field::new("x", DataType::Int32, true),
            Field::new("y", DataType::Utf8, true),
        ]));
        let t = trino_type(&row, P);
        assert_eq!(t.display, "row(x integer, y varchar)");
        assert_eq!(t.signature["arguments"][0]["kind"], "NAMED_TYPE");
        assert_eq!(
            t.signature["arguments"][0]["value"]["fieldName"]["name"],
            "x"
        );
    }

    #[test]
    fn values_are_encoded_as_trino_encodes_them() {
        assert_eq!(
            encoded(Arc::new(Float64Array::from(vec![
                Some(1.5),
                Some(f64::NAN),
                Some(f64::INFINITY),
                Some(f64::NEG_INFINITY),
                Some(2.0),
                None
            ]))),
            [
                "1.5",
                "\"NaN\"",
                "\"Infinity\"",
                "\"-Infinity\"",
                "2.0",
                "null"
            ]
        );
        assert_eq!(encoded(Arc::new(Float32Array::from(vec![0.1f32]))), ["0.1"]);
        assert_eq!(
            encoded(Arc::new(
                Decimal128Array::from(vec![12345, -5, 0])
                    .with_precision_and_scale(10, 2)
                    .unwrap()
            )),
            ["\"123.45\"", "\"-0.05\"", "\"0.00\""]
        );
        assert_eq!(
            encoded(Arc::new(StringArray::from(vec!["a\"b\n", "ü"]))),
            ["\"a\\\"b\\n\"", "\"ü\""]
        );
        assert_eq!(
            encoded(Arc::new(BinaryArray::from_vec(vec![b"\x01\xff"]))),
            ["\"Af8=\""]
        );
        assert_eq!(
            encoded(Arc::new(Date32Array::from(vec![0, 18262, -1]))),
            ["\"1970-01-01\"", "\"2020-01-01\"", "\"1969-12-31\""]
        );
        assert_eq!(
            encoded(Arc::new(Time64MicrosecondArray::from(vec![
                (3600 + 2 * 60 + 3) * 1_000_000 + 4
            ]))),
            ["\"01:02:03.000004\""]
        );
        assert_eq!(
            encoded(Arc::new(TimestampMicrosecondArray::from(vec![
                1_577_836_800_123_456
            ]))),
            ["\"2020-01-01 00:00:00.123456\""]
        );
        assert_eq!(
            encoded(Arc::new(
                TimestampMicrosecondArray::from(vec![1_577_836_800_000_000])
                    .with_timezone("+00:00")
            )),
            ["\"2020-01-01 00:00:00.000000 UTC\""]
        );
        assert_eq!(
            encoded(Arc::new(
                TimestampMicrosecondArray::from(vec![1_577_836_800_000_000])
                    .with_timezone("+01:00")
            )),
            ["\"2020-01-01 01:00:00.000000 +01:00\""]
        );
        assert_eq!(
            encoded(Arc::new(
                TimestampMicrosecondArray::from(vec![1_593_561_600_000_000])
                    .with_timezone("America/New_York")
            )),
            ["\"2020-06-30 20:00:00.000000 America/New_York\""]
        );
        assert_eq!(
            encoded(Arc::new(TimestampMicrosecondArray::from(vec![-1]))),
            ["\"1969-12-31 23:59:59.999999\""]
        );
    }

    #[test]
    fn nested_values_are_arrays_and_objects() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None, Some(3)]),
            None,
        ]);
        assert_eq!(encoded(Arc::new(list)), ["[1,null,3]", "null"]);
        let s = StructArray::from(vec![
            (
                Arc::new(Field::new("x", DataType::Int32, true)),
                Arc::new(Int32Array::from(vec![7])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("y", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec!["b"])) as ArrayRef,
            ),
        ]);
        assert_eq!(encoded(Arc::new(s)), ["[7,\"b\"]"]);
    }

    #[test]
    fn intervals_and_decimals_format_like_trino() {
        assert_eq!(format_year_month(14), "1-2");
        assert_eq!(format_year_month(-3), "-0-3");
        assert_eq!(
            format_day_second(2 * 86_400_000 + 3_723_004),
            "2 01:02:03.004"
        );
        assert_eq!(format_decimal("5", 3), "0.005");
        assert_eq!(format_decimal("-1234", 2), "-12.34");
        assert_eq!(format_decimal("12", 0), "12");
        assert_eq!(format_decimal("12", -2), "1200");
    }
}
