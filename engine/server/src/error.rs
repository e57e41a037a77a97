//! The engine's error type and its exhaustive mapping to gRPC status codes.
//!
//! Every error a user can cause has its own kind, so a client sees `InvalidArgument` for bad
//! SQL, `NotFound` for a missing table and `Unauthenticated` for bad credentials; `Internal`
//! is reserved for bugs in SQE.

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use tonic::{Code, Status};

pub type Result<T, E = SqeError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum SqeError {
    /// The statement does not parse or does not plan (unknown column, type mismatch, ...).
    #[error("{0}")]
    InvalidSql(String),
    /// The statement is valid SQL that SQE does not support.
    #[error("{0}")]
    Unsupported(String),
    /// A schema, table or prepared statement that does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// The query was cancelled by the client.
    #[error("query cancelled")]
    Cancelled,
    /// The server is draining and takes no new queries.
    #[error("{0}")]
    Unavailable(String),
    /// A memory or resource limit was hit.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A concurrent commit won; retrying the statement may succeed.
    #[error("{0}")]
    Conflict(String),
    /// The catalog or the object store failed.
    #[error("{0}")]
    External(String),
    /// A bug in SQE.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SqeError {
    pub fn code(&self) -> Code {
        match self {
            SqeError::InvalidSql(_) => Code::InvalidArgument,
            SqeError::Unsupported(_) => Code::Unimplemented,
            SqeError::NotFound(_) => Code::NotFound,
            SqeError::AlreadyExists(_) => Code::AlreadyExists,
            SqeError::Unauthenticated(_) => Code::Unauthenticated,
            SqeError::PermissionDenied(_) => Code::PermissionDenied,
            SqeError::Cancelled => Code::Cancelled,
            SqeError::Unavailable(_) => Code::Unavailable,
            SqeError::ResourceExhausted(_) => Code::ResourceExhausted,
            SqeError::Conflict(_) => Code::Aborted,
            SqeError::External(_) => Code::Unavailable,
            SqeError::Internal(_) => Code::Internal,
        }
    }

    /// The outcome label used in metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            SqeError::Cancelled => "cancelled",
            _ => "error",
        }
    }
}

impl From<SqeError> for Status {
    fn from(e: SqeError) -> Self {
        Status::new(e.code(), e.to_string())
    }
}

impl From<iceberg::Error> for SqeError {
    fn from(e: iceberg::Error) -> Self {
        use iceberg::ErrorKind as K;
        let message = e.to_string();
        match e.kind() {
            K::NamespaceNotFound | K::TableNotFound => SqeError::NotFound(message),
            K::NamespaceAlreadyExists | K::TableAlreadyExists => SqeError::AlreadyExists(message),
            K::CatalogCommitConflicts => SqeError::Conflict(message),
            K::DataInvalid | K::PreconditionFailed => SqeError::InvalidSql(message),
            K::FeatureUnsupported => SqeError::Unsupported(message),
            K::Unexpected => SqeError::External(message),
            _ => SqeError::External(message),
        }
    }
}

impl From<DataFusionError> for SqeError {
    fn from(e: DataFusionError) -> Self {
        let position = e.diagnostic().and_then(|d| d.span).map(|s| s.start);
        let with_position = |message: String| match position {
            Some(p) if !message.contains("Line:") => {
                format!("{message} at Line: {}, Column: {}", p.line, p.column)
            }
            _ => message,
        };
        match e.find_root() {
            DataFusionError::SQL(err, _) => SqeError::InvalidSql(match err.as_ref() {
                ParserError::ParserError(m) | ParserError::TokenizerError(m) => {
                    format!("SQL syntax error: {m}")
                }
                ParserError::RecursionLimitExceeded => {
                    "SQL syntax error: the statement is nested too deeply".to_string()
                }
            }),
            DataFusionError::Plan(m) => {
                if m.starts_with("table '") && m.ends_with("' not found") {
                    SqeError::NotFound(format!("Table {}", &m["table ".len()..]))
                } else {
                    SqeError::InvalidSql(with_position(format!("Error during planning: {m}")))
                }
            }
            DataFusionError::SchemaError(err, _) => {
                SqeError::InvalidSql(with_position(format!("Schema error: {err}")))
            }
            DataFusionError::NotImplemented(m) => {
                SqeError::Unsupported(format!("Not supported: {m}"))
            }
            DataFusionError::ResourcesExhausted(m) => SqeError::ResourceExhausted(m.clone()),
            DataFusionError::Execution(m) => SqeError::InvalidSql(format!("Execution error: {m}")),
            DataFusionError::ArrowError(err, _) => {
                SqeError::InvalidSql(format!("Arrow error: {err}"))
            }
            DataFusionError::External(inner) => match inner.downcast_ref::<iceberg::Error>() {
                Some(ice) => SqeError::from(clone_iceberg_error(ice)),
                None => match inner.downcast_ref::<SqeError>() {
                    Some(sqe) => sqe.clone_kind(),
                    None => SqeError::External(inner.to_string()),
                },
            },
            DataFusionError::IoError(err) => SqeError::External(format!("I/O error: {err}")),
            DataFusionError::ObjectStore(err) => SqeError::External(format!("object store: {err}")),
            DataFusionError::ParquetError(err) => SqeError::External(format!("Parquet: {err}")),
            DataFusionError::Configuration(m) => {
                SqeError::InvalidSql(format!("Invalid setting: {m}"))
            }
            DataFusionError::Substrait(m) => SqeError::InvalidSql(m.clone()),
            DataFusionError::Internal(m) => SqeError::Internal(m.clone()),
            DataFusionError::Context(_, _)
            | DataFusionError::Diagnostic(_, _)
            | DataFusionError::Shared(_)
            | DataFusionError::Collection(_) => SqeError::Internal(e.to_string()),
            DataFusionError::ExecutionJoin(err) => SqeError::Internal(err.to_string()),
            DataFusionError::Ffi(m) => SqeError::Internal(m.clone()),
        }
    }
}

fn clone_iceberg_error(e: &iceberg::Error) -> iceberg::Error {
    iceberg::Error::new(e.kind(), e.to_string())
}

impl SqeError {
    fn clone_kind(&self) -> SqeError {
        let m = self.to_string();
        match self {
            SqeError::InvalidSql(_) => SqeError::InvalidSql(m),
            SqeError::Unsupported(_) => SqeError::Unsupported(m),
            SqeError::NotFound(_) => SqeError::NotFound(m),
            SqeError::AlreadyExists(_) => SqeError::AlreadyExists(m),
            SqeError::Unauthenticated(_) => SqeError::Unauthenticated(m),
            SqeError::PermissionDenied(_) => SqeError::PermissionDenied(m),
            SqeError::Cancelled => SqeError::Cancelled,
            SqeError::Unavailable(_) => SqeError::Unavailable(m),
            SqeError::ResourceExhausted(_) => SqeError::ResourceExhausted(m),
            SqeError::Conflict(_) => SqeError::Conflict(m),
            SqeError::External(_) => SqeError::External(m),
            SqeError::Internal(_) => SqeError::Internal(m),
        }
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
