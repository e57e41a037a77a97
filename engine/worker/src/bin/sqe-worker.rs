//! `sqe-worker`: executes plan fragments for an SQE coordinator in distributed mode.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "sqe-worker",
    version,
    about = "SQE worker: runs query stages for a coordinator in distributed mode"
)]
struct Args {
    /// The configuration file (sqe.toml); every key can also be set as SQE_<SECTION>__<KEY>.
    #[arg(long, short = 'c', env = "SQE_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match sqe_config::load(args.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sqe-worker: {e}");
            return ExitCode::from(2);
        }
    };
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
    let result = runtime.block_on(sqe_worker::run(config));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "sqe-worker failed");
            eprintln!("sqe-worker: {e}");
            ExitCode::from(2)
        }
    }
}
