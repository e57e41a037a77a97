//! SQE: a SQL engine on Apache DataFusion over Apache Iceberg tables, served over Arrow
//! Flight SQL.
//!
//! ```text
//!   clients ─▶ flight (auth, sessions) ─▶ engine (parse, DDL, plan) ─▶ DataFusion
//!                                                │                       │
//!                                          catalog (TTL cache) ◀── table (scan, append)
//!                                                │                       │
//!                                        Iceberg catalog (SQL / REST)   Parquet files (local / S3)
//! ```

#![forbid(unsafe_code)]

pub mod auth;
pub mod catalog;
pub mod ddl;
pub mod engine;
pub mod error;
pub mod flight;
pub mod http;
pub mod metrics;
pub mod scan;
pub mod server;
pub mod sql;
pub mod table;
pub mod tpch;
pub mod write;
