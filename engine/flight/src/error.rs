//! Engine errors as gRPC statuses: one exhaustive `match`, so every kind has a deliberate code
//! and a user's bad SQL is `InvalidArgument`, never `Internal`.

use sqe_core::error::{ErrorKind, SqeError};
use tonic::{Code, Status};

/// The gRPC code a Flight SQL client sees for an error kind.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::Syntax
        | ErrorKind::Semantic
        | ErrorKind::TypeMismatch
        | ErrorKind::ColumnNotFound
        | ErrorKind::FunctionNotFound
        | ErrorKind::InvalidArgument
        | ErrorKind::InvalidCast
        | ErrorKind::DivisionByZero
        | ErrorKind::NumericOverflow
        | ErrorKind::InvalidSetting => Code::InvalidArgument,
        ErrorKind::TableNotFound
        | ErrorKind::SchemaNotFound
        | ErrorKind::CatalogNotFound
        | ErrorKind::StatementNotFound => Code::NotFound,
        ErrorKind::TableAlreadyExists | ErrorKind::SchemaAlreadyExists => Code::AlreadyExists,
        ErrorKind::NotSupported => Code::Unimplemented,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::Cancelled => Code::Cancelled,
        // retrying elsewhere (another coordinator) or later helps
        ErrorKind::ShuttingDown | ErrorKind::External | ErrorKind::NoWorkers => Code::Unavailable,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::CommitConflict => Code::Aborted,
        ErrorKind::Config => Code::FailedPrecondition,
        ErrorKind::Internal => Code::Internal,
    }
}

/// The status for an engine error; its message keeps the SQL position (`at Line: L, Column: C`).
pub fn status(e: SqeError) -> Status {
    Status::new(code(e.kind()), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_codes_clients_act_on() {
        let cases = [
            (ErrorKind::Syntax, Code::InvalidArgument),
            (ErrorKind::ColumnNotFound, Code::InvalidArgument),
            (ErrorKind::DivisionByZero, Code::InvalidArgument),
            (ErrorKind::TableNotFound, Code::NotFound),
            (ErrorKind::SchemaNotFound, Code::NotFound),
            (ErrorKind::TableAlreadyExists, Code::AlreadyExists),
            (ErrorKind::NotSupported, Code::Unimplemented),
            (ErrorKind::Unauthenticated, Code::Unauthenticated),
            // a catalog that refuses SQE's credentials is not worth retrying
            (ErrorKind::PermissionDenied, Code::PermissionDenied),
            (ErrorKind::Cancelled, Code::Cancelled),
            (ErrorKind::ShuttingDown, Code::Unavailable),
            // no worker now: another try later may find one
            (ErrorKind::NoWorkers, Code::Unavailable),
            (ErrorKind::External, Code::Unavailable),
            (ErrorKind::CommitConflict, Code::Aborted),
            (ErrorKind::Internal, Code::Internal),
        ];
        for (kind, expected) in cases {
            assert_eq!(code(kind), expected, "{kind:?}");
        }
    }

    #[test]
    fn the_status_message_keeps_the_position() {
        let s = status(SqeError::syntax(
            "SQL syntax error: x at Line: 1, Column: 8",
        ));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "SQL syntax error: x at Line: 1, Column: 8");
    }
}
