//! SQL functions of SQE's dialect (Trino's) that DataFusion lacks or names differently:
//! `date_add`, `date_diff`, `nan()`, `infinity()`, `version()` (SQE's version),
//! `current_user` (the session's user) and `current_timestamp`/`now()` (in the session's zone).
//! Functions Trino has and SQE does not are reported as `NOT_SUPPORTED` naming the function
//! ([`unsupported`]), not as unknown.

use std::any::Any;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, TimestampMicrosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, Datelike, Months, NaiveDateTime};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers the dialect's functions on a session of `user`.
pub fn register(ctx: &SessionContext, user: &str) {
    ctx.register_udf(ScalarUDF::new_from_impl(StringConstant::new(
        "version",
        crate::version(),
    )));
    ctx.register_udf(ScalarUDF::new_from_impl(StringConstant::new(
        "current_user",
        user,
    )));
    ctx.register_udf(ScalarUDF::new_from_impl(FloatConstant::new(
        "nan",
        f64::NAN,
    )));
    ctx.register_udf(ScalarUDF::new_from_impl(FloatConstant::new(
        "infinity",
        f64::INFINITY,
    )));
    ctx.register_udf(ScalarUDF::new_from_impl(DateAdd::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(DateDiff::new()));
    let current_timestamp = CurrentTimestamp::new(ctx.state_ref().read().config_options());
    ctx.register_udf(ScalarUDF::new_from_impl(current_timestamp));
}

/// Trino functions SQE does not have yet: calling one is `NOT_SUPPORTED`, not unknown.
const TRINO_ONLY: &[&str] = &[
    "format_datetime",
    "parse_datetime",
    "date_format",
    "date_parse",
    "json_extract",
    "json_extract_scalar",
    "json_format",
    "json_parse",
    "json_size",
    "json_array_length",
    "json_array_get",
    "url_extract_host",
    "url_extract_path",
    "url_extract_parameter",
    "regexp_extract",
    "regexp_extract_all",
    "approx_percentile",
    "approx_set",
    "merge",
    "map_agg",
    "histogram",
    "transform",
    "filter",
    "reduce",
    "zip_with",
    "sequence",
    "from_iso8601_timestamp",
    "to_iso8601",
    "at_timezone",
    "with_timezone",
    "week_of_year",
    "year_of_week",
    "day_of_week",
    "day_of_year",
    "last_day_of_month",
    "hamming_distance",
    "typeof",
    "uuid",
];

/// The `NOT_SUPPORTED` error for a Trino function SQE lacks, if `name` is one.
pub fn unsupported(name: &str) -> Option<String> {
    TRINO_ONLY
        .iter()
        .any(|f| f.eq_ignore_ascii_case(name))
        .then(|| format!("Function '{name}' is a Trino function that SQE does not support yet"))
}

/// `current_timestamp` and `now()` as Trino has them: `timestamp(3) with time zone` in the
/// session's zone (`datafusion.execution.time_zone`, which SQE sets to `+00:00`), the same
/// value wherever it appears in a statement (DataFusion's is `timestamp(9)`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentTimestamp {
    zone: Arc<str>,
    aliases: Vec<String>,
    signature: Signature,
}

impl CurrentTimestamp {
    fn new(options: &ConfigOptions) -> Self {
        let zone = options.execution.time_zone.as_deref().unwrap_or("UTC");
        Self {
            zone: Arc::from(zone),
            aliases: vec!["now".to_string()],
            signature: Signature::nullary(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for CurrentTimestamp {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn name(&self) -> &str {
        "current_timestamp"
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Timestamp(
            TimeUnit::Millisecond,
            Some(Arc::clone(&self.zone)),
        ))
    }
    fn with_updated_config(&self, options: &ConfigOptions) -> Option<ScalarUDF> {
        Some(ScalarUDF::new_from_impl(Self::new(options)))
    }
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> DFResult<ExprSimplifyResult> {
        let Some(start) = info.query_execution_start_time() else {
            return Ok(ExprSimplifyResult::Original(args));
        };
        Ok(ExprSimplifyResult::Simplified(Expr::Literal(
            ScalarValue::TimestampMillisecond(
                Some(start.timestamp_millis()),
                Some(Arc::clone(&self.zone)),
            ),
            None,
        )))
    }
    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        exec_err!("current_timestamp is replaced by its value when the statement is planned")
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct StringConstant {
    name: String,
    value: String,
    signature: Signature,
}

impl StringConstant {
    fn new(name: &str, value: &str) -> Self {
        Self {
            name: name.to_string(),
            value: value.to_string(),
            signature: Signature::nullary(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for StringConstant {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            self.value.clone(),
        ))))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FloatConstant {
    name: &'static str,
    bits: u64,
    signature: Signature,
}

impl FloatConstant {
    fn new(name: &'static str, value: f64) -> Self {
        Self {
            name,
            bits: value.to_bits(),
            signature: Signature::nullary(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FloatConstant {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Float64(Some(
            f64::from_bits(self.bits),
        ))))
    }
}

/// A calendar unit of `date_add` / `date_diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Fixed(i64),
    Months(u32),
}

const MICROS: i64 = 1_000_000;

fn unit(name: &str) -> DFResult<Unit> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "millisecond" => Unit::Fixed(1000),
        "second" => Unit::Fixed(MICROS),
        "minute" => Unit::Fixed(60 * MICROS),
        "hour" => Unit::Fixed(3600 * MICROS),
        "day" => Unit::Fixed(86_400 * MICROS),
        "week" => Unit::Fixed(7 * 86_400 * MICROS),
        "month" => Unit::Months(1),
        "quarter" => Unit::Months(3),
        "year" => Unit::Months(12),
        other => {
            return plan_err!(
                "'{other}' is not a valid unit; use millisecond, second, minute, hour, day, week, month, quarter or year"
            );
        }
    })
}

fn unit_argument(args: &[ColumnarValue], function: &str) -> DFResult<Unit> {
    match &args[0] {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(u))
            | ScalarValue::LargeUtf8(Some(u))
            | ScalarValue::Utf8View(Some(u)),
        ) => unit(u),
        _ => exec_err!("{function}: the unit must be a string literal such as 'day'"),
    }
}

fn is_datetime(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
    )
}

/// The values as microseconds since the epoch (UTC).
fn micros(value: &ColumnarValue, rows: usize) -> DFResult<TimestampMicrosecondArray> {
    let array = value.to_array(rows)?;
    let tz = match array.data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let as_micros = cast(&array, &DataType::Timestamp(TimeUnit::Microsecond, tz))?;
    let utc = cast(
        &as_micros,
        &DataType::Timestamp(TimeUnit::Microsecond, None),
    )?;
    Ok(utc
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .cloned()
        .unwrap_or_else(|| TimestampMicrosecondArray::from(vec![None::<i64>; rows])))
}

fn naive(us: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_micros(us).map(|d| d.naive_utc())
}

fn add_months(us: i64, months: i64) -> Option<i64> {
    let t = naive(us)?;
    let m = Months::new(u32::try_from(months.unsigned_abs()).ok()?);
    let moved = if months >= 0 {
        t.checked_add_months(m)?
    } else {
        t.checked_sub_months(m)?
    };
    Some(moved.and_utc().timestamp_micros())
}

fn months_between(a: i64, b: i64) -> Option<i64> {
    let (x, y) = (naive(a)?, naive(b)?);
    let mut months =
        i64::from(y.year() - x.year()) * 12 + i64::from(y.month()) - i64::from(x.month());
    // only whole months count, as in Trino
    if months > 0 && add_months(a, months)? > b {
        months -= 1;
    } else if months < 0 && add_months(a, months)? < b {
        months += 1;
    }
    Some(months)
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateAdd {
    signature: Signature,
}

impl DateAdd {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DateAdd {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn name(&self) -> &str {
        "date_add"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, types: &[DataType]) -> DFResult<Vec<DataType>> {
        match types {
            [_, v, t] if v.is_integer() && is_datetime(t) => {
                Ok(vec![DataType::Utf8, DataType::Int64, t.clone()])
            }
            _ => plan_err!(
                "date_add(unit, value, timestamp) takes a unit string, an integer and a date or timestamp, got {types:?}"
            ),
        }
    }
    fn return_type(&self, types: &[DataType]) -> DFResult<DataType> {
        Ok(types[2].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let rows = args.number_rows;
        let unit = unit_argument(&args.args, "date_add")?;
        let amounts = args.args[1].to_array(rows)?;
        let amounts = amounts
            .as_any()
            .downcast_ref::<Int64Array>()
            .cloned()
            .unwrap_or_else(|| Int64Array::from(vec![None::<i64>; rows]));
        let times = micros(&args.args[2], rows)?;
        let out: TimestampMicrosecondArray = (0..rows)
            .map(|i| {
                if times.is_null(i) || amounts.is_null(i) {
                    return None;
                }
                let (t, n) = (times.value(i), amounts.value(i));
                match unit {
                    Unit::Fixed(step) => t.checked_add(n.checked_mul(step)?),
                    Unit::Months(m) => add_months(t, n.checked_mul(i64::from(m))?),
                }
            })
            .collect();
        let target = args.return_field.data_type().clone();
        let tz = match &target {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        let out: ArrayRef = Arc::new(out.with_timezone_opt(tz));
        Ok(ColumnarValue::Array(cast(&out, &target)?))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateDiff {
    signature: Signature,
}

impl DateDiff {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DateDiff {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn name(&self) -> &str {
        "date_diff"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, types: &[DataType]) -> DFResult<Vec<DataType>> {
        match types {
            [_, a, b] if is_datetime(a) && is_datetime(b) => {
                Ok(vec![DataType::Utf8, a.clone(), b.clone()])
            }
            _ => plan_err!(
                "date_diff(unit, a, b) takes a unit string and two dates or timestamps, got {types:?}"
            ),
        }
    }
    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let rows = args.number_rows;
        let unit = unit_argument(&args.args, "date_diff")?;
        let (a, b) = (micros(&args.args[1], rows)?, micros(&args.args[2], rows)?);
        let out: Int64Array = (0..rows)
            .map(|i| {
                if a.is_null(i) || b.is_null(i) {
                    return None;
                }
                let (x, y) = (a.value(i), b.value(i));
                match unit {
                    Unit::Fixed(step) => Some((y - x) / step),
                    Unit::Months(m) => months_between(x, y).map(|n| n / i64::from(m)),
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(text: &str) -> i64 {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    }

    #[test]
    fn months_are_calendar_months() {
        assert_eq!(
            add_months(us("2024-01-31 00:00:00"), 1),
            Some(us("2024-02-29 00:00:00"))
        );
        assert_eq!(
            add_months(us("2024-03-31 12:00:00"), -1),
            Some(us("2024-02-29 12:00:00"))
        );
        assert_eq!(
            months_between(us("2024-01-15 00:00:00"), us("2024-03-14 00:00:00")),
            Some(1)
        );
        assert_eq!(
            months_between(us("2024-01-15 00:00:00"), us("2024-03-15 00:00:00")),
            Some(2)
        );
        assert_eq!(
            months_between(us("2024-03-15 00:00:00"), us("2024-01-16 00:00:00")),
            Some(-1)
        );
    }

    #[test]
    fn units_are_checked() {
        assert_eq!(unit("DAY").unwrap(), Unit::Fixed(86_400 * MICROS));
        assert_eq!(unit("quarter").unwrap(), Unit::Months(3));
        assert!(unit("fortnight").is_err());
    }

    #[test]
    fn trino_only_functions_are_named() {
        assert!(unsupported("json_extract_scalar").is_some());
        assert!(unsupported("abs").is_none());
    }
}
