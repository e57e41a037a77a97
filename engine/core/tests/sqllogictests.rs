//! Runs the SQL behaviour tests in `tests/slt/*.slt` on a hybrid engine (the runner is in
//! `common`; `sqe-server` runs the same files in distributed mode).

mod common;

use std::sync::Arc;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the tests");
    let build: Box<common::Build> = Box::new(|config| {
        Box::pin(async move {
            let coordinator = sqe_core::bootstrap::build(config, None)
                .await
                .map_err(|e| format!("cannot start the engine: {e}"))?;
            let keep: Box<dyn std::any::Any> = Box::new(());
            Ok((Arc::clone(&coordinator.engine), keep))
        })
    });
    common::run_all(&runtime, &build, &[]);
    runtime.shutdown_background();
}
