//! The engine's error: a protocol-free [`ErrorKind`], a message for people, and where in the
//! statement the problem is ([`SqlLocation`]).
//!
//! Each protocol maps the kind to its own codes with an exhaustive `match` (Flight SQL: a gRPC
//! code; Trino: an error name, code and type), so adding a kind is a compile error in every
//! protocol until it is mapped. `Internal` is reserved for bugs in SQE.

use std::fmt;

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;

pub type Result<T, E = SqeError> = std::result::Result<T, E>;

/// What went wrong, independent of any protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The statement does not parse.
    Syntax,
    /// The statement parses but does not make sense (wrong arguments, ambiguous names, ...).
    Semantic,
    /// Operand or argument types that do not fit together.
    TypeMismatch,
    ColumnNotFound,
    TableNotFound,
    SchemaNotFound,
    CatalogNotFound,
    FunctionNotFound,
    /// A prepared statement that does not exist.
    StatementNotFound,
    TableAlreadyExists,
    SchemaAlreadyExists,
    /// A value that is wrong for the operation, found while running (a function argument).
    InvalidArgument,
    /// A value that cannot be cast to the requested type.
    InvalidCast,
    DivisionByZero,
    /// A result that does not fit its type.
    NumericOverflow,
    /// Valid SQL that SQE does not support.
    NotSupported,
    /// A session property or setting that does not exist or has a bad value.
    InvalidSetting,
    Unauthenticated,
    PermissionDenied,
    /// The client cancelled the query (or abandoned it).
    Cancelled,
    /// The server is draining and takes no new queries.
    ShuttingDown,
    /// A memory or resource limit was hit.
    ResourceExhausted,
    /// Distributed mode: no worker could take the query's tasks in time.
    NoWorkers,
    /// A concurrent commit won; running the statement again may succeed.
    CommitConflict,
    /// The catalog or the object store failed or could not be reached.
    External,
    /// The configuration is invalid (reported at start-up).
    Config,
    /// A bug in SQE.
    Internal,
}

impl ErrorKind {
    /// Whether the caller caused it (bad SQL, a missing table, ...) rather than the server or
    /// its dependencies. User errors are not logged as errors of the server.
    pub fn is_user_error(self) -> bool {
        !matches!(
            self,
            ErrorKind::ShuttingDown
                | ErrorKind::NoWorkers
                | ErrorKind::ResourceExhausted
                | ErrorKind::External
                | ErrorKind::Config
                | ErrorKind::Internal
        )
    }

    /// The error's name in SQE's SQL vocabulary, which is Trino's standard error names
    /// (`system.runtime.queries.error_code`, the Trino protocol's `errorName`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "SYNTAX_ERROR",
            ErrorKind::Semantic => "GENERIC_USER_ERROR",
            ErrorKind::TypeMismatch => "TYPE_MISMATCH",
            ErrorKind::ColumnNotFound => "COLUMN_NOT_FOUND",
            ErrorKind::TableNotFound => "TABLE_NOT_FOUND",
            ErrorKind::SchemaNotFound => "SCHEMA_NOT_FOUND",
            ErrorKind::CatalogNotFound => "CATALOG_NOT_FOUND",
            ErrorKind::FunctionNotFound => "FUNCTION_NOT_FOUND",
            ErrorKind::StatementNotFound => "NOT_FOUND",
            ErrorKind::TableAlreadyExists => "TABLE_ALREADY_EXISTS",
            ErrorKind::SchemaAlreadyExists => "SCHEMA_ALREADY_EXISTS",
            ErrorKind::InvalidArgument => "INVALID_FUNCTION_ARGUMENT",
            ErrorKind::InvalidCast => "INVALID_CAST_ARGUMENT",
            ErrorKind::DivisionByZero => "DIVISION_BY_ZERO",
            ErrorKind::NumericOverflow => "NUMERIC_VALUE_OUT_OF_RANGE",
            ErrorKind::NotSupported => "NOT_SUPPORTED",
            ErrorKind::InvalidSetting => "INVALID_SESSION_PROPERTY",
            ErrorKind::Unauthenticated | ErrorKind::PermissionDenied => "PERMISSION_DENIED",
            ErrorKind::Cancelled => "USER_CANCELED",
            ErrorKind::CommitConflict => "TRANSACTION_CONFLICT",
            ErrorKind::ShuttingDown => "SERVER_SHUTTING_DOWN",
            ErrorKind::NoWorkers => "NO_NODES_AVAILABLE",
            ErrorKind::Config => "CONFIGURATION_INVALID",
            ErrorKind::Internal => "GENERIC_INTERNAL_ERROR",
            ErrorKind::ResourceExhausted => "EXCEEDED_LOCAL_MEMORY_LIMIT",
            ErrorKind::External => "ICEBERG_CATALOG_ERROR",
        }
    }

    /// Every kind, for exhaustive table tests in the protocol crates.
    pub const ALL: [ErrorKind; 27] = [
        ErrorKind::Syntax,
        ErrorKind::Semantic,
        ErrorKind::TypeMismatch,
        ErrorKind::ColumnNotFound,
        ErrorKind::TableNotFound,
        ErrorKind::SchemaNotFound,
        ErrorKind::CatalogNotFound,
        ErrorKind::FunctionNotFound,
        ErrorKind::StatementNotFound,
        ErrorKind::TableAlreadyExists,
        ErrorKind::SchemaAlreadyExists,
        ErrorKind::InvalidArgument,
        ErrorKind::InvalidCast,
        ErrorKind::DivisionByZero,
        ErrorKind::NumericOverflow,
        ErrorKind::NotSupported,
        ErrorKind::InvalidSetting,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::Cancelled,
        ErrorKind::ShuttingDown,
        ErrorKind::NoWorkers,
        ErrorKind::ResourceExhausted,
        ErrorKind::CommitConflict,
        ErrorKind::External,
        ErrorKind::Config,
        ErrorKind::Internal,
    ];

    /// The `outcome` label used in metrics and query records.
    pub fn outcome(self) -> &'static str {
        match self {
            ErrorKind::Cancelled => "cancelled",
            _ => "error",
        }
    }
}

/// A position in the statement text, 1-based, as sqlparser and Trino count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLocation {
    pub line: u64,
    pub column: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqeError {
    kind: ErrorKind,
    message: String,
    location: Option<SqlLocation>,
}

impl fmt::Display for SqeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.location) {
            (ErrorKind::Internal, _) => write!(f, "internal error: {}", self.message),
            (_, Some(l)) => write!(
                f,
                "{} at Line: {}, Column: {}",
                self.message, l.line, l.column
            ),
            (_, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for SqeError {}

impl SqeError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let (message, location) = split_location(message.into());
        Self {
            kind,
            message,
            location,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the location.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn location(&self) -> Option<SqlLocation> {
        self.location
    }

    pub fn with_location(mut self, location: Option<SqlLocation>) -> Self {
        if location.is_some() {
            self.location = location;
        }
        self
    }

    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn outcome(&self) -> &'static str {
        self.kind.outcome()
    }

    pub fn syntax(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Syntax, m)
    }
    pub fn semantic(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Semantic, m)
    }
    pub fn not_supported(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotSupported, m)
    }
    pub fn unauthenticated(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, m)
    }
    pub fn permission_denied(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, m)
    }
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "query cancelled")
    }
    pub fn shutting_down(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::ShuttingDown, m)
    }
    pub fn external(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::External, m)
    }
    pub fn config(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, m)
    }
}

/// Takes sqlparser's ` at Line: L, Column: C` suffix off a message.
fn split_location(message: String) -> (String, Option<SqlLocation>) {
    let Some(at) = message.rfind(" at Line: ") else {
        return (message, None);
    };
    let rest = &message[at + " at Line: ".len()..];
    let parsed = rest.split_once(", Column: ").and_then(|(line, column)| {
        let column: String = column.chars().take_while(char::is_ascii_digit).collect();
        let tail = &rest[line.len() + ", Column: ".len() + column.len()..];
        Some((line.parse().ok()?, column.parse().ok()?, tail))
    });
    match parsed {
        Some((line, column, tail)) => {
            let mut text = message[..at].to_string();
            text.push_str(tail);
            (text, Some(SqlLocation { line, column }))
        }
        None => (message, None),
    }
}

impl From<iceberg::Error> for SqeError {
    fn from(e: iceberg::Error) -> Self {
        use iceberg::ErrorKind as K;
        let message = e.to_string();
        let kind = match e.kind() {
            K::NamespaceNotFound => ErrorKind::SchemaNotFound,
            K::TableNotFound => ErrorKind::TableNotFound,
            K::NamespaceAlreadyExists => ErrorKind::SchemaAlreadyExists,
            K::TableAlreadyExists => ErrorKind::TableAlreadyExists,
            K::CatalogCommitConflicts => ErrorKind::CommitConflict,
            K::DataInvalid | K::PreconditionFailed => ErrorKind::Semantic,
            K::FeatureUnsupported => ErrorKind::NotSupported,
            _ if is_forbidden(&message) => ErrorKind::PermissionDenied,
            _ => ErrorKind::External,
        };
        SqeError::new(kind, message)
    }
}

/// A REST catalog or object store that refused SQE's credentials: retrying will not help, so
/// it is not reported as unavailable.
fn is_forbidden(message: &str) -> bool {
    [
        "403",
        "Forbidden",
        "NotAuthorized",
        "AccessDenied",
        "401 Unauthorized",
    ]
    .iter()
    .any(|m| message.contains(m))
}

fn arrow_kind(e: &ArrowError) -> ErrorKind {
    match e {
        ArrowError::DivideByZero => ErrorKind::DivisionByZero,
        ArrowError::ArithmeticOverflow(_) => ErrorKind::NumericOverflow,
        ArrowError::CastError(_) | ArrowError::ParseError(_) => ErrorKind::InvalidCast,
        ArrowError::InvalidArgumentError(_) | ArrowError::ComputeError(_) => {
            ErrorKind::InvalidArgument
        }
        ArrowError::NotYetImplemented(_) => ErrorKind::NotSupported,
        ArrowError::MemoryError(_) => ErrorKind::ResourceExhausted,
        ArrowError::IoError(_, _) | ArrowError::ExternalError(_) => ErrorKind::External,
        _ => ErrorKind::Internal,
    }
}

/// Plan errors are strings in DataFusion; these are the ones clients need told apart.
fn plan_kind(m: &str) -> ErrorKind {
    if m.starts_with("Invalid function") {
        ErrorKind::FunctionNotFound
    } else if m.starts_with("table '") && m.ends_with("' not found") {
        ErrorKind::TableNotFound
    } else if m.contains("Cannot coerce")
        || m.contains("Cannot infer common")
        || m.contains("There isn't a common type")
        || m.contains("No function matches the given name and argument types")
        || m.contains("does not support type")
    {
        ErrorKind::TypeMismatch
    } else {
        ErrorKind::Semantic
    }
}

impl From<DataFusionError> for SqeError {
    fn from(e: DataFusionError) -> Self {
        let location = e
            .diagnostic()
            .and_then(|d| d.span)
            .map(|s| SqlLocation {
                line: s.start.line,
                column: s.start.column,
            })
            .filter(|l| l.line > 0);
        let error = match e.find_root() {
            DataFusionError::SQL(err, _) => match err.as_ref() {
                ParserError::ParserError(m) | ParserError::TokenizerError(m) => {
                    SqeError::syntax(format!("SQL syntax error: {m}"))
                }
                ParserError::RecursionLimitExceeded => {
                    SqeError::syntax("SQL syntax error: the statement is nested too deeply")
                }
            },
            DataFusionError::Plan(m) => match plan_kind(m) {
                ErrorKind::TableNotFound => SqeError::new(
                    ErrorKind::TableNotFound,
                    format!("Table {}", &m["table ".len()..]),
                ),
                kind => SqeError::new(kind, format!("Error during planning: {m}")),
            },
            DataFusionError::SchemaError(err, _) => {
                let kind = match err.as_ref() {
                    datafusion::common::SchemaError::FieldNotFound { .. } => {
                        ErrorKind::ColumnNotFound
                    }
                    _ => ErrorKind::Semantic,
                };
                SqeError::new(kind, format!("Schema error: {err}"))
            }
            DataFusionError::NotImplemented(m) => {
                SqeError::not_supported(format!("Not supported: {m}"))
            }
            DataFusionError::ResourcesExhausted(m) => {
                SqeError::new(ErrorKind::ResourceExhausted, m.clone())
            }
            DataFusionError::Execution(m) => {
                let kind = if m.contains("Divide by zero") || m.contains("Division by zero") {
                    ErrorKind::DivisionByZero
                } else {
                    ErrorKind::InvalidArgument
                };
                SqeError::new(kind, format!("Execution error: {m}"))
            }
            DataFusionError::ArrowError(err, _) => {
                SqeError::new(arrow_kind(err), format!("Arrow error: {err}"))
            }
            DataFusionError::External(inner) => match inner.downcast_ref::<iceberg::Error>() {
                Some(ice) => SqeError::from(iceberg::Error::new(ice.kind(), ice.to_string())),
                None => match inner.downcast_ref::<SqeError>() {
                    Some(sqe) => sqe.clone(),
                    None => match inner.downcast_ref::<ArrowError>() {
                        Some(a) => SqeError::new(arrow_kind(a), format!("Arrow error: {a}")),
                        None => SqeError::external(inner.to_string()),
                    },
                },
            },
            DataFusionError::IoError(err) => SqeError::external(format!("I/O error: {err}")),
            DataFusionError::ObjectStore(err) => SqeError::external(format!("object store: {err}")),
            DataFusionError::ParquetError(err) => SqeError::external(format!("Parquet: {err}")),
            DataFusionError::Configuration(m) => {
                SqeError::new(ErrorKind::InvalidSetting, format!("Invalid setting: {m}"))
            }
            DataFusionError::Substrait(m) => SqeError::semantic(m.clone()),
            DataFusionError::Internal(m) => SqeError::internal(m.clone()),
            DataFusionError::Context(_, _)
            | DataFusionError::Diagnostic(_, _)
            | DataFusionError::Shared(_)
            | DataFusionError::Collection(_) => SqeError::internal(e.to_string()),
            DataFusionError::ExecutionJoin(err) => SqeError::internal(err.to_string()),
            DataFusionError::Ffi(m) => SqeError::internal(m.clone()),
        };
        error.with_location(location)
    }
}

/// Wraps an SQE error for code paths that must return a DataFusion error (table providers,
/// execution plans); [`SqeError::from`] unwraps it again with its kind intact.
pub fn to_df(e: SqeError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

pub fn ice_to_df(e: iceberg::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_locations_are_split_off_the_message() {
        let cases = [
            (
                "Expected: an SQL statement, found: SELEC at Line: 1, Column: 1",
                "Expected: an SQL statement, found: SELEC",
                Some((1, 1)),
            ),
            ("no location here", "no location here", None),
            (
                "x at Line: 3, Column: 17 and more",
                "x and more",
                Some((3, 17)),
            ),
            ("x at Line: y", "x at Line: y", None),
        ];
        for (input, message, location) in cases {
            let e = SqeError::syntax(input);
            assert_eq!(e.message(), message, "{input}");
            assert_eq!(
                e.location().map(|l| (l.line, l.column)),
                location,
                "{input}"
            );
        }
    }

    #[test]
    fn display_keeps_the_location_for_flight_clients() {
        let e = SqeError::syntax("bad at Line: 2, Column: 5");
        assert_eq!(e.to_string(), "bad at Line: 2, Column: 5");
        assert_eq!(
            SqeError::internal("oops").to_string(),
            "internal error: oops"
        );
    }

    #[test]
    fn datafusion_errors_get_their_kinds() {
        let cases: Vec<(DataFusionError, ErrorKind)> = vec![
            (
                DataFusionError::Plan("table 'sqe.x.y' not found".into()),
                ErrorKind::TableNotFound,
            ),
            (
                DataFusionError::Plan("Invalid function 'nosuch'".into()),
                ErrorKind::FunctionNotFound,
            ),
            (
                DataFusionError::ArrowError(Box::new(ArrowError::DivideByZero), None),
                ErrorKind::DivisionByZero,
            ),
            (
                DataFusionError::ArrowError(Box::new(ArrowError::CastError("x".into())), None),
                ErrorKind::InvalidCast,
            ),
            (
                DataFusionError::NotImplemented("x".into()),
                ErrorKind::NotSupported,
            ),
            (
                DataFusionError::ResourcesExhausted("x".into()),
                ErrorKind::ResourceExhausted,
            ),
            (DataFusionError::Internal("x".into()), ErrorKind::Internal),
            (
                to_df(SqeError::new(ErrorKind::SchemaNotFound, "s")),
                ErrorKind::SchemaNotFound,
            ),
        ];
        for (e, kind) in cases {
            let text = e.to_string();
            assert_eq!(SqeError::from(e).kind(), kind, "{text}");
        }
    }

    #[test]
    fn a_catalog_that_refuses_credentials_is_not_unavailable() {
        let e = iceberg::Error::new(
            iceberg::ErrorKind::Unexpected,
            "Failed to parse response from rest catalog server! status: 403 Forbidden",
        );
        assert_eq!(SqeError::from(e).kind(), ErrorKind::PermissionDenied);
        let e = iceberg::Error::new(iceberg::ErrorKind::Unexpected, "connection refused");
        assert_eq!(SqeError::from(e).kind(), ErrorKind::External);
    }

    #[test]
    fn user_errors_are_told_from_server_errors() {
        assert!(ErrorKind::Syntax.is_user_error());
        assert!(ErrorKind::TableNotFound.is_user_error());
        assert!(!ErrorKind::Internal.is_user_error());
        assert!(!ErrorKind::External.is_user_error());
    }
}
