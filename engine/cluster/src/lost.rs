//! Telling a lost worker from a failing query: a query is worth running again only when it
//! failed because a worker, or the connection to it, went away. Pure, with table tests.
//!
//! ```text
//!  the error and its sources ─▶ tonic Status (Unavailable, Cancelled, Aborted, Unknown,
//!                               Internal from the transport)            ─▶ lost
//!                            ─▶ transport / I/O errors (refused, reset, broken pipe, EOF) ─▶ lost
//!                            ─▶ text relayed by another worker (its own lost peer)        ─▶ lost
//!                            ─▶ anything else (a DataFusionError the worker sent back:
//!                               the query's own failure, e.g. division by zero)           ─▶ not
//! ```

use std::error::Error;

use arrow_flight::error::FlightError;
use datafusion::error::DataFusionError;
use tonic::Code;

/// The words of errors that mean a connection or a peer went away, as they read once another
/// worker relayed them as text (`datafusion-distributed` sends errors across as strings).
const LOST_WORDS: [&str; 9] = [
    "transport error",
    "connection refused",
    "connection reset",
    "broken pipe",
    "h2 protocol error",
    "error trying to connect",
    "error reading a body from connection",
    "unexpected end of file",
    "code: unavailable",
];

/// Whether `error` says a worker or the way to it was lost.
pub fn worker_lost(error: &DataFusionError) -> bool {
    let mut next: Option<&(dyn Error + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(lost) = says_lost(e) {
            return lost;
        }
        next = e.source();
    }
    false
}

/// What one error in the chain says: `Some(true)` lost, `Some(false)` the query's own
/// failure (stop looking), `None` look at its source.
fn says_lost(e: &(dyn Error + 'static)) -> Option<bool> {
    if let Some(status) = e.downcast_ref::<tonic::Status>() {
        return Some(status_lost(status));
    }
    if let Some(FlightError::Tonic(status)) = e.downcast_ref::<FlightError>() {
        return Some(status_lost(status));
    }
    if e.downcast_ref::<tonic::transport::Error>().is_some() {
        return Some(true);
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind::*;
        if matches!(
            io.kind(),
            ConnectionRefused | ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
        ) {
            return Some(true);
        }
    }
    if e.source().is_none() && text_says_lost(&e.to_string()) {
        return Some(true);
    }
    None
}

fn status_lost(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::Cancelled | Code::Aborted | Code::Unknown => true,
        // a DataFusionError the worker encoded is the query's own error, unless it relays a
        // lost peer of that worker; other Internal statuses come from the HTTP/2 transport
        Code::Internal if status.message() == "DataFusionError" => false,
        Code::Internal => true,
        _ => text_says_lost(status.message()),
    }
}

fn text_says_lost(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    LOST_WORDS.iter().any(|w| text.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn external(e: impl Error + Send + Sync + 'static) -> DataFusionError {
        DataFusionError::External(Box::new(e))
    }

    #[test]
    fn lost_workers_and_failing_queries() {
        let io = |kind| std::io::Error::new(kind, "x");
        let cases: Vec<(&str, DataFusionError, bool)> = vec![
            (
                "unavailable",
                external(tonic::Status::unavailable("connection refused")),
                true,
            ),
            (
                "stream cut",
                external(tonic::Status::unknown("error reading a body")),
                true,
            ),
            ("cancelled", external(tonic::Status::cancelled("")), true),
            (
                "h2 internal",
                external(tonic::Status::internal("h2 protocol error")),
                true,
            ),
            (
                "the worker's own DataFusionError",
                external(tonic::Status::internal("DataFusionError")),
                false,
            ),
            (
                "refused by the guard",
                external(tonic::Status::unauthenticated("internal credential")),
                false,
            ),
            (
                "flight-wrapped",
                external(FlightError::Tonic(Box::new(tonic::Status::unavailable("")))),
                true,
            ),
            (
                "reset",
                DataFusionError::IoError(io(std::io::ErrorKind::ConnectionReset)),
                true,
            ),
            (
                "not found",
                DataFusionError::IoError(io(std::io::ErrorKind::NotFound)),
                false,
            ),
            (
                "in context",
                DataFusionError::Context(
                    "stage 1".into(),
                    Box::new(external(tonic::Status::unavailable(""))),
                ),
                true,
            ),
            (
                "relayed by another worker",
                DataFusionError::Execution(
                    "status: Unavailable, message: \"tcp connect error: Connection refused\""
                        .into(),
                ),
                true,
            ),
            (
                "division by zero",
                DataFusionError::ArrowError(Box::new(arrow::error::ArrowError::DivideByZero), None),
                false,
            ),
            (
                "plan error",
                DataFusionError::Plan("table not found".into()),
                false,
            ),
            (
                "memory",
                DataFusionError::ResourcesExhausted("limit".into()),
                false,
            ),
        ];
        for (name, error, lost) in cases {
            assert_eq!(worker_lost(&error), lost, "{name}: {error}");
        }
    }
}
