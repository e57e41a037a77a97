//! `sqe-server`: the SQE coordinator (hybrid mode: it also executes queries; distributed
//! mode: `sqe-worker`s execute the stages it plans).

#![forbid(unsafe_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sqe-server",
    version = sqe_core::version(),
    about = "SQE: SQL on Apache Iceberg over Arrow Flight SQL"
)]
struct Args {
    /// The configuration file (sqe.toml); every key can also be set as SQE_<SECTION>__<KEY>.
    #[arg(long, short = 'c', env = "SQE_CONFIG")]
    config: Option<PathBuf>,
    /// Where the embedded catalog and local tables live (overrides coordinator.data_dir).
    #[arg(long, env = "SQE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Reads a password from stdin and prints its argon2id hash for auth.users.
    HashPassword,
    /// Checks the configuration and prints it as the server would use it (secrets hidden).
    CheckConfig,
    /// Exits 0 when this machine's server answers ready on coordinator.health_addr (for a
    /// container HEALTHCHECK: the images have no shell and no curl).
    Health,
    /// Writes the eight TPC-H tables as Parquet files (for comparison engines).
    GenerateTpch {
        /// Scale factor.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    // The images ship one executable for both roles: started as `sqe-worker` (a symlink), it is
    // the worker, with the worker's own command line.
    if started_as_worker(std::env::args_os().next()) {
        return sqe_worker::cli::main();
    }
    let args = Args::parse();
    match args.command {
        Some(Command::HashPassword) => return hash_password(),
        Some(Command::GenerateTpch { scale, out }) => {
            return match sqe_core::tpch::write_parquet(&out, scale) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sqe-server: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let mut config = match sqe_config::load(args.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sqe-server: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = args.data_dir {
        config.coordinator.data_dir = dir.display().to_string();
    }
    if matches!(args.command, Some(Command::Health)) {
        return sqe_worker::cli::health(&config.coordinator.health_addr);
    }
    if matches!(args.command, Some(Command::CheckConfig)) {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    sqe_core::process::init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_name("sqe-net")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sqe-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let distribution = sqe_server::server::distribution(&config)?;
        let coordinator = sqe_core::bootstrap::build(config, distribution).await?;
        sqe_server::server::run(coordinator).await
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "sqe-server failed");
            eprintln!("sqe-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the process was started under the worker's name (`argv[0]`, e.g. the image's
/// `/usr/local/bin/sqe-worker -> sqe-server`).
fn started_as_worker(argv0: Option<std::ffi::OsString>) -> bool {
    argv0
        .as_deref()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|name| name == "sqe-worker")
}

fn hash_password() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("sqe-server: cannot read the password from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let password = input.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        eprintln!("sqe-server: empty password (pass it on stdin)");
        return ExitCode::FAILURE;
    }
    match sqe_core::auth::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sqe-server: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::started_as_worker;

    #[test]
    fn the_role_follows_the_name_started_under() {
        let cases = [
            (Some("sqe-worker"), true),
            (Some("/usr/local/bin/sqe-worker"), true),
            (Some("./target/release/sqe-server"), false),
            (Some("sqe-server"), false),
            (Some("/opt/sqe-worker/bin/sqe-server"), false),
            (Some("sqe-worker-2"), false),
            (None, false),
        ];
        for (argv0, want) in cases {
            assert_eq!(started_as_worker(argv0.map(Into::into)), want, "{argv0:?}");
        }
    }
}
