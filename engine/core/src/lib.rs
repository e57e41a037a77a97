//! SQE's protocol-neutral core: everything a client protocol (Flight SQL, Trino HTTP) or a
//! worker needs, and nothing about any wire format.
//!
//! ```text
//!  protocol crate ─▶ QueryRegistry::begin (id, user, SQL, protocol) ─▶ Engine::run(session, SQL)
//!                                                 │                      │
//!          system.runtime.* ◀── query records ◀───┘     DDL, SHOW, USE ──┤── DataFusion plan
//!                                                                        ▼
//!                          catalog (TTL cache) ◀── table (scan, append) ── Iceberg (SQL / REST)
//! ```
//!
//! Errors carry a protocol-free [`error::ErrorKind`] and the SQL position; each protocol crate
//! maps kinds to its own codes exhaustively.

#![forbid(unsafe_code)]

pub mod auth;
pub mod bootstrap;
pub mod catalog;
pub mod ddl;
pub mod distribution;
pub mod engine;
pub mod error;
mod execution;
pub mod functions;
pub mod membership;
pub mod memory;
pub mod metrics;
pub mod probe;
pub mod process;
pub mod provider;
pub mod registry;
pub mod relations;
pub mod scan;
pub mod session;
pub mod sql;
pub mod sql_types;
pub mod system;
pub mod table;
pub mod tasks;
pub mod tpch;
pub mod write;

pub mod version;

pub use version::version;
