//! The `sqe-worker` command line: shared by the `sqe-worker` binary and by `sqe-server` when it
//! is started under the name `sqe-worker` (the images ship one executable for both roles).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sqe-worker",
    version = sqe_core::version(),
    about = "SQE worker: runs query stages for a coordinator in distributed mode"
)]
struct Args {
    /// The configuration file (sqe.toml); every key can also be set as SQE_<SECTION>__<KEY>.
    #[arg(long, short = 'c', env = "SQE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Exits 0 when this machine's worker answers ready on coordinator.health_addr (for a
    /// container HEALTHCHECK).
    Health,
}

/// Runs the worker (or its `health` check) with the process's arguments.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let config = match sqe_config::load(args.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sqe-worker: {e}");
            return ExitCode::from(2);
        }
    };
    if matches!(args.command, Some(Command::Health)) {
        return health(&config.coordinator.health_addr);
    }
    sqe_core::process::init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_name("sqe-worker")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sqe-worker: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(crate::run(config));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "sqe-worker failed");
            eprintln!("sqe-worker: {e}");
            ExitCode::from(2)
        }
    }
}

/// `health`: GET /readyz on the configured health listener.
pub fn health(health_addr: &str) -> ExitCode {
    let result = sqe_core::probe::probe_addr(health_addr)
        .and_then(|addr| sqe_core::probe::check(addr, "/readyz", Duration::from_secs(3)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}
