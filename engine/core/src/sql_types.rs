//! SQE's SQL names for Arrow types, which are Trino's (`bigint`, `decimal(15, 2)`,
//! `timestamp(6) with time zone`, `array(integer)`), and the JDBC facts about each type that
//! `system.jdbc.columns` and `system.jdbc.types` report.

use arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};

/// Fractional-second digits of a time unit.
pub fn unit_precision(unit: &TimeUnit) -> u32 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// The key and value fields of a map's entries.
pub fn map_fields(entries: &Field) -> (&DataType, &DataType) {
    match entries.data_type() {
        DataType::Struct(kv) if kv.len() == 2 => (kv[0].data_type(), kv[1].data_type()),
        other => (other, other),
    }
}

/// The SQL name of a type. `parametric` names date-time precisions (`timestamp(6)`); without
/// it they are left out (`timestamp`), as Trino does for clients that lack
/// `PARAMETRIC_DATETIME`.
pub fn type_name(data_type: &DataType, parametric: bool) -> String {
    let datetime = |raw: &str, suffix: &str, unit: &TimeUnit| {
        if parametric {
            format!("{raw}({}){suffix}", unit_precision(unit))
        } else {
            format!("{raw}{suffix}")
        }
    };
    match data_type {
        DataType::Null => "unknown".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("decimal({p}, {s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "varbinary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Time32(unit) | DataType::Time64(unit) => datetime("time", "", unit),
        DataType::Timestamp(unit, None) => datetime("timestamp", "", unit),
        DataType::Timestamp(unit, Some(_)) => datetime("timestamp", " with time zone", unit),
        DataType::Interval(IntervalUnit::YearMonth) => "INTERVAL YEAR TO MONTH".into(),
        DataType::Interval(_) | DataType::Duration(_) => "INTERVAL DAY TO SECOND".into(),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _) => {
            format!("array({})", type_name(f.data_type(), parametric))
        }
        DataType::Map(entries, _) => {
            let (k, v) = map_fields(entries);
            format!(
                "map({}, {})",
                type_name(k, parametric),
                type_name(v, parametric)
            )
        }
        DataType::Struct(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|f| format!("{} {}", f.name(), type_name(f.data_type(), parametric)))
                .collect();
            format!("row({})", parts.join(", "))
        }
        DataType::Dictionary(_, v) => type_name(v, parametric),
        DataType::RunEndEncoded(_, f) => type_name(f.data_type(), parametric),
        DataType::Union(_, _) => "json".into(),
    }
}

/// `java.sql.Types` of a type, as Trino's JDBC tables report it.
pub fn jdbc_type(data_type: &DataType) -> i64 {
    match data_type {
        DataType::Boolean => 16,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => -5,
        DataType::Int32 | DataType::UInt16 => 4,
        DataType::Int16 | DataType::UInt8 => 5,
        DataType::Int8 => -6,
        DataType::Float16 | DataType::Float32 => 7,
        DataType::Float64 => 8,
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => 3,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => 12,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => -3,
        DataType::Date32 | DataType::Date64 => 91,
        DataType::Time32(_) | DataType::Time64(_) => 92,
        DataType::Timestamp(_, None) => 93,
        DataType::Timestamp(_, Some(_)) => 2014,
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(_, _) => 2003,
        DataType::Dictionary(_, v) => jdbc_type(v),
        _ => 2000,
    }
}

/// Longest time-zone id Trino allows for (`America/Argentina/ComodRivadavia`).
const MAX_ZONE_LENGTH: i64 = 32;

/// JDBC `COLUMN_SIZE`: digits of numbers, characters of text and date-times.
pub fn column_size(data_type: &DataType) -> Option<i64> {
    let fraction = |unit: &TimeUnit| {
        let p = i64::from(unit_precision(unit));
        p.min(1) + p
    };
    Some(match data_type {
        DataType::Int8 => 3,
        DataType::Int16 | DataType::UInt8 => 5,
        DataType::Int32 | DataType::UInt16 => 10,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => 19,
        DataType::Float16 | DataType::Float32 => 24,
        DataType::Float64 => 53,
        DataType::Decimal32(p, _)
        | DataType::Decimal64(p, _)
        | DataType::Decimal128(p, _)
        | DataType::Decimal256(p, _) => i64::from(*p),
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView => 2_147_483_647,
        DataType::FixedSizeBinary(n) => i64::from(*n),
        DataType::Date32 | DataType::Date64 => 14,
        DataType::Time32(u) | DataType::Time64(u) => 8 + fraction(u),
        DataType::Timestamp(u, None) => 21 + fraction(u),
        DataType::Timestamp(u, Some(_)) => 23 + fraction(u) + MAX_ZONE_LENGTH,
        DataType::Dictionary(_, v) => return column_size(v),
        _ => return None,
    })
}

/// JDBC `DECIMAL_DIGITS`: the scale of decimals, fractional digits of date-times.
pub fn decimal_digits(data_type: &DataType) -> Option<i64> {
    match data_type {
        DataType::Decimal32(_, s)
        | DataType::Decimal64(_, s)
        | DataType::Decimal128(_, s)
        | DataType::Decimal256(_, s) => Some(i64::from(*s)),
        DataType::Time32(u) | DataType::Time64(u) | DataType::Timestamp(u, _) => {
            Some(i64::from(unit_precision(u)))
        }
        _ => None,
    }
}

/// JDBC `NUM_PREC_RADIX`: 10 for integers and decimals, 2 for floating point.
pub fn num_prec_radix(data_type: &DataType) -> Option<i64> {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Some(10),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => Some(2),
        _ => None,
    }
}

/// JDBC `CHAR_OCTET_LENGTH`: the length of text and binary types.
pub fn char_octet_length(data_type: &DataType) -> Option<i64> {
    match data_type {
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView => Some(2_147_483_647),
        DataType::FixedSizeBinary(n) => Some(i64::from(*n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::Fields;

    use super::*;

    #[test]
    fn names_are_trinos() {
        let cases = [
            (DataType::Int64, "bigint"),
            (DataType::Decimal128(15, 2), "decimal(15, 2)"),
            (DataType::Utf8, "varchar"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "timestamp(6)",
            ),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                "timestamp(6) with time zone",
            ),
            (
                DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
                "array(integer)",
            ),
            (
                DataType::Struct(Fields::from(vec![Field::new("x", DataType::Int32, true)])),
                "row(x integer)",
            ),
            (
                DataType::Interval(IntervalUnit::MonthDayNano),
                "INTERVAL DAY TO SECOND",
            ),
        ];
        for (t, name) in cases {
            assert_eq!(type_name(&t, true), name, "{t}");
        }
        assert_eq!(
            type_name(&DataType::Timestamp(TimeUnit::Microsecond, None), false),
            "timestamp"
        );
    }

    #[test]
    fn jdbc_facts_match_trinos_jdbc_tables() {
        // (type, DATA_TYPE, COLUMN_SIZE, DECIMAL_DIGITS, NUM_PREC_RADIX)
        let cases = [
            (DataType::Int64, -5, Some(19), None, Some(10)),
            (DataType::Int32, 4, Some(10), None, Some(10)),
            (DataType::Float64, 8, Some(53), None, Some(2)),
            (DataType::Decimal128(15, 2), 3, Some(15), Some(2), Some(10)),
            (DataType::Utf8, 12, Some(2_147_483_647), None, None),
            (DataType::Date32, 91, Some(14), None, None),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                93,
                Some(28),
                Some(6),
                None,
            ),
            (
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                2014,
                Some(59),
                Some(3),
                None,
            ),
            (DataType::Boolean, 16, None, None, None),
        ];
        for (t, code, size, digits, radix) in cases {
            assert_eq!(
                (
                    jdbc_type(&t),
                    column_size(&t),
                    decimal_digits(&t),
                    num_prec_radix(&t)
                ),
                (code, size, digits, radix),
                "{t}"
            );
        }
    }
}
