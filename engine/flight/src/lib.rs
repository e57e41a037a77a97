//! SQE's Arrow Flight SQL service (port 50051) over `sqe-core`: what ADBC, the Flight SQL JDBC
//! driver, pyarrow and `sqe-cli` talk to.

#![forbid(unsafe_code)]

mod error;
mod metadata;
mod service;
mod session_options;

pub use error::status;
pub use metadata::SERVER_NAME;
pub use service::{PENDING_TTL, SqeFlightService};
