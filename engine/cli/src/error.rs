//! The one error type of the CLI and how it is shown to the user.

use std::error::Error;
use std::fmt;

use arrow::error::ArrowError;
use arrow_flight::error::FlightError;

/// Everything that can go wrong while running statements.
#[derive(Debug)]
pub enum CliError {
    /// An error status sent by the server (or by the gRPC layer on its behalf).
    Status(tonic::Status),
    /// The server at `target` (`host:port`) could not be reached.
    Connect { target: String, detail: String },
    /// Writing results to stdout failed.
    Output(std::io::Error),
    /// Anything else: bad arguments, unreadable files, undecodable data.
    Other(String),
}

impl CliError {
    /// True when stdout was closed by the reader (e.g. `sqe-cli ... | head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Status(status) => format_status(f, status),
            CliError::Connect { target, detail } => {
                write!(f, "could not connect to SQE at {target}: {detail}")
            }
            CliError::Output(e) => write!(f, "could not write output: {e}"),
            CliError::Other(message) => f.write_str(message),
        }
    }
}

/// `Code: message`, e.g. `InvalidArgument: sql parser error: ...`.
fn format_status(f: &mut fmt::Formatter<'_>, status: &tonic::Status) -> fmt::Result {
    if status.message().is_empty() {
        write!(f, "{:?}", status.code())
    } else {
        write!(f, "{:?}: {}", status.code(), status.message())
    }
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        CliError::Status(status)
    }
}

impl From<FlightError> for CliError {
    fn from(error: FlightError) -> Self {
        match error {
            FlightError::Tonic(status) => CliError::Status(*status),
            FlightError::Arrow(e) => CliError::from(e),
            other => CliError::Other(other.to_string()),
        }
    }
}

impl From<ArrowError> for CliError {
    fn from(error: ArrowError) -> Self {
        match error {
            // The stream decoder wraps server errors; keep their gRPC code.
            ArrowError::ExternalError(source) => match source.downcast::<tonic::Status>() {
                Ok(status) => CliError::Status(*status),
                Err(source) => match source.downcast::<FlightError>() {
                    Ok(flight) => CliError::from(*flight),
                    Err(source) => CliError::Other(source.to_string()),
                },
            },
            other => CliError::Other(other.to_string()),
        }
    }
}

/// Joins an error and its sources, skipping repeats: transport errors carry
/// the useful part ("Connection refused") only in their source chain.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_code_and_message() {
        let status = tonic::Status::invalid_argument(
            "sql parser error: Expected: an expression, found: FROMM at Line: 1, Column: 10",
        );
        assert_eq!(
            CliError::from(status).to_string(),
            "InvalidArgument: sql parser error: Expected: an expression, found: FROMM at Line: 1, Column: 10"
        );
        assert_eq!(
            CliError::from(tonic::Status::unauthenticated("")).to_string(),
            "Unauthenticated"
        );
    }

    #[test]
    fn flight_errors_keep_the_status() {
        let flight = FlightError::Tonic(Box::new(tonic::Status::not_found("table t not found")));
        assert_eq!(
            CliError::from(flight).to_string(),
            "NotFound: table t not found"
        );
        let arrow = ArrowError::ExternalError(Box::new(FlightError::Tonic(Box::new(
            tonic::Status::internal("boom"),
        ))));
        assert_eq!(CliError::from(arrow).to_string(), "Internal: boom");
    }

    #[test]
    fn connect_error_names_the_target() {
        let error = CliError::Connect {
            target: "127.0.0.1:50051".to_string(),
            detail: "Connection refused".to_string(),
        };
        assert_eq!(
            error.to_string(),
            "could not connect to SQE at 127.0.0.1:50051: Connection refused"
        );
    }

    #[test]
    fn error_chain_joins_sources() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("transport error")
            }
        }
        impl Error for Outer {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ));
        assert_eq!(error_chain(&error), "transport error: Connection refused");
    }
}
