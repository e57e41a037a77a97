//! SQE's coordinator process: the core wired to its listeners (Flight SQL, Trino HTTP,
//! health, metrics), run until SIGTERM and then drained.

#![forbid(unsafe_code)]

pub mod http;
pub mod server;
