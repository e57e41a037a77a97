//! Engine errors as Trino reports them: `errorName`, `errorCode` and `errorType` from Trino's
//! standard error codes (one exhaustive `match`), `errorLocation` as Trino counts it, and the
//! message prefixed with the position the way Trino writes it (`line 1:15: ...`).

use serde_json::{Value, json};
use sqe_core::error::{ErrorKind, SqeError};

/// Trino's `errorName`, `errorCode` and `errorType` for an error kind.
pub fn trino_code(kind: ErrorKind) -> (&'static str, i64, &'static str) {
    const USER: &str = "USER_ERROR";
    const INTERNAL: &str = "INTERNAL_ERROR";
    const RESOURCES: &str = "INSUFFICIENT_RESOURCES";
    const EXTERNAL: &str = "EXTERNAL";
    match kind {
        ErrorKind::Syntax => ("SYNTAX_ERROR", 1, USER),
        ErrorKind::Semantic => ("GENERIC_USER_ERROR", 0, USER),
        ErrorKind::TypeMismatch => ("TYPE_MISMATCH", 58, USER),
        ErrorKind::ColumnNotFound => ("COLUMN_NOT_FOUND", 47, USER),
        ErrorKind::TableNotFound => ("TABLE_NOT_FOUND", 46, USER),
        ErrorKind::SchemaNotFound => ("SCHEMA_NOT_FOUND", 45, USER),
        ErrorKind::CatalogNotFound => ("CATALOG_NOT_FOUND", 44, USER),
        ErrorKind::FunctionNotFound => ("FUNCTION_NOT_FOUND", 6, USER),
        ErrorKind::StatementNotFound => ("NOT_FOUND", 5, USER),
        ErrorKind::TableAlreadyExists => ("TABLE_ALREADY_EXISTS", 50, USER),
        ErrorKind::SchemaAlreadyExists => ("SCHEMA_ALREADY_EXISTS", 49, USER),
        ErrorKind::InvalidArgument => ("INVALID_FUNCTION_ARGUMENT", 7, USER),
        ErrorKind::InvalidCast => ("INVALID_CAST_ARGUMENT", 9, USER),
        ErrorKind::DivisionByZero => ("DIVISION_BY_ZERO", 8, USER),
        ErrorKind::NumericOverflow => ("NUMERIC_VALUE_OUT_OF_RANGE", 19, USER),
        ErrorKind::NotSupported => ("NOT_SUPPORTED", 13, USER),
        ErrorKind::InvalidSetting => ("INVALID_SESSION_PROPERTY", 14, USER),
        // Trino answers bad credentials with HTTP 401; inside a query it is a denial
        ErrorKind::Unauthenticated | ErrorKind::PermissionDenied => ("PERMISSION_DENIED", 4, USER),
        ErrorKind::Cancelled => ("USER_CANCELED", 3, USER),
        ErrorKind::CommitConflict => ("TRANSACTION_CONFLICT", 17, USER),
        ErrorKind::ShuttingDown => ("SERVER_SHUTTING_DOWN", 65545, INTERNAL),
        ErrorKind::NoWorkers => ("NO_NODES_AVAILABLE", 65541, INTERNAL),
        ErrorKind::Config => ("CONFIGURATION_INVALID", 65559, INTERNAL),
        ErrorKind::Internal => ("GENERIC_INTERNAL_ERROR", 65536, INTERNAL),
        ErrorKind::ResourceExhausted => ("EXCEEDED_LOCAL_MEMORY_LIMIT", 131079, RESOURCES),
        // the first code of the range Trino leaves to connectors: the catalog or storage failed
        ErrorKind::External => ("ICEBERG_CATALOG_ERROR", 16_777_216, EXTERNAL),
    }
}

/// The message as Trino words it: the position first, as `line L:C: `.
pub fn trino_message(e: &SqeError) -> String {
    match e.location() {
        Some(l) => format!("line {}:{}: {}", l.line, l.column, e.message()),
        None => e.message().to_string(),
    }
}

/// The `error` object of a failed query.
pub fn error_json(e: &SqeError) -> Value {
    let (name, code, kind) = trino_code(e.kind());
    let message = trino_message(e);
    let mut error = json!({
        "message": message,
        "errorCode": code,
        "errorName": name,
        "errorType": kind,
        "failureInfo": {
            "type": failure_type(e.kind()),
            "message": message,
            "suppressed": [],
            "stack": [],
        },
    });
    if let Some(l) = e.location() {
        let location = json!({"lineNumber": l.line, "columnNumber": l.column});
        error["errorLocation"] = location.clone();
        error["failureInfo"]["errorLocation"] = location;
    }
    error
}

/// The Java exception class Trino would name in `failureInfo.type`.
fn failure_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Syntax => "io.trino.sql.parser.ParsingException",
        ErrorKind::Internal => "java.lang.RuntimeException",
        _ => "io.trino.spi.TrinoException",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_get_trinos_names_codes_and_types() {
        let cases = [
            (ErrorKind::Syntax, "SYNTAX_ERROR", 1, "USER_ERROR"),
            (
                ErrorKind::TableNotFound,
                "TABLE_NOT_FOUND",
                46,
                "USER_ERROR",
            ),
            (
                ErrorKind::ColumnNotFound,
                "COLUMN_NOT_FOUND",
                47,
                "USER_ERROR",
            ),
            (
                ErrorKind::SchemaNotFound,
                "SCHEMA_NOT_FOUND",
                45,
                "USER_ERROR",
            ),
            (
                ErrorKind::CatalogNotFound,
                "CATALOG_NOT_FOUND",
                44,
                "USER_ERROR",
            ),
            (
                ErrorKind::DivisionByZero,
                "DIVISION_BY_ZERO",
                8,
                "USER_ERROR",
            ),
            (ErrorKind::NotSupported, "NOT_SUPPORTED", 13, "USER_ERROR"),
            (
                ErrorKind::PermissionDenied,
                "PERMISSION_DENIED",
                4,
                "USER_ERROR",
            ),
            (
                ErrorKind::FunctionNotFound,
                "FUNCTION_NOT_FOUND",
                6,
                "USER_ERROR",
            ),
            (ErrorKind::Cancelled, "USER_CANCELED", 3, "USER_ERROR"),
            (
                ErrorKind::Internal,
                "GENERIC_INTERNAL_ERROR",
                65536,
                "INTERNAL_ERROR",
            ),
            (
                ErrorKind::ShuttingDown,
                "SERVER_SHUTTING_DOWN",
                65545,
                "INTERNAL_ERROR",
            ),
            (
                ErrorKind::NoWorkers,
                "NO_NODES_AVAILABLE",
                65541,
                "INTERNAL_ERROR",
            ),
            (
                ErrorKind::ResourceExhausted,
                "EXCEEDED_LOCAL_MEMORY_LIMIT",
                131079,
                "INSUFFICIENT_RESOURCES",
            ),
            (
                ErrorKind::External,
                "ICEBERG_CATALOG_ERROR",
                16_777_216,
                "EXTERNAL",
            ),
        ];
        for (kind, name, code, kind_name) in cases {
            assert_eq!(trino_code(kind), (name, code, kind_name), "{kind:?}");
        }
    }

    #[test]
    fn every_kind_has_the_engines_name() {
        for kind in ErrorKind::ALL {
            assert_eq!(trino_code(kind).0, kind.name(), "{kind:?}");
        }
    }

    #[test]
    fn the_location_leads_the_message_and_is_reported() {
        let e = SqeError::new(
            ErrorKind::TableNotFound,
            "Table 'sqe.tpch.nope' does not exist at Line: 1, Column: 15",
        );
        let j = error_json(&e);
        assert_eq!(
            j["message"],
            "line 1:15: Table 'sqe.tpch.nope' does not exist"
        );
        assert_eq!(
            j["errorLocation"],
            json!({"lineNumber": 1, "columnNumber": 15})
        );
        assert_eq!(j["errorName"], "TABLE_NOT_FOUND");
        let j = error_json(&SqeError::internal("boom"));
        assert!(j.get("errorLocation").is_none());
        assert_eq!(j["errorType"], "INTERNAL_ERROR");
    }
}
