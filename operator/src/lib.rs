//! The SQE operator: reconciles `SqeCluster` resources into running SQE clusters.
//!
//! ```text
//!   watch SqeCluster + owned objects + referenced Secrets
//!     └─▶ reconcile: read ─▶ validate (pure) ─▶ build (pure) ─▶ decide (pure) ─▶ apply ─▶ status
//! ```
//!
//! `validate`, `build`, `rollout::decide`, `status::compute` and `announce::announcements` take
//! data and return data; only
//! `reconcile` (and `leader`) talk to the API server.

#![forbid(unsafe_code)]

pub mod announce;
pub mod build;
pub mod crd;
pub mod drift;
pub mod engine_config;
pub mod labels;
pub mod leader;
pub mod reconcile;
pub mod rollout;
pub mod status;
pub mod telemetry;
pub mod validate;
