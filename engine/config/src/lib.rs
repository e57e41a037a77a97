//! The SQE configuration schema: what `sqe.toml` may contain, its defaults, and how it is loaded.
//!
//! One type, [`SqeConfig`], is shared by the engine (which parses it) and the operator (which
//! renders it), so both halves agree on every key. Loading is a small pipeline:
//!
//! ```text
//!   sqe.toml (optional) ──parse──▶ toml table ─┐
//!   SQE_<SECTION>__<KEY> env vars ─────────────┴─merge (env wins)─▶ deserialize ─▶ validate
//! ```
//!
//! Every failure names the key and where its value came from (the file or the variable).
//! This crate must stay free of DataFusion, Iceberg and any I/O beyond reading the file.

#![forbid(unsafe_code)]

mod error;
mod load;
pub mod ports;
mod schema;

pub use error::{ConfigError, Origin};
pub use load::{ENV_PREFIX, env_var_name, load, load_from_str};
pub use schema::*;
