//! `sqe-cli`: the command line client for SQE.
//!
//! This crate owns the user-facing shell: command line flags, connecting and
//! authenticating to a server over Arrow Flight SQL, splitting input into
//! statements, running them, and printing results (table, CSV or JSON Lines)
//! and errors. It runs statements from `-e`, from `-f`, from piped stdin, or
//! interactively in a REPL when stdin is a terminal.

#![forbid(unsafe_code)]

mod error;
mod output;
mod repl;
mod session;
mod split;

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use tokio::runtime::Runtime;

use crate::error::CliError;
use crate::output::{Format, QueryResult, elapsed_line, render, row_count_line};
use crate::session::{Auth, ConnectOptions, Session};
use crate::split::script_statements;

/// Command line client for SQE, a SQL engine served over Arrow Flight SQL.
///
/// Runs the statements given with -e or -f (or piped on stdin) and exits;
/// without them, on a terminal, starts an interactive shell.
#[derive(Debug, Parser)]
#[command(name = "sqe-cli", version)]
struct Args {
    /// Server host name or IP address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,

    /// Server port.
    #[arg(long, default_value_t = 50051)]
    port: u16,

    /// User name; logs in with a Flight handshake (Basic auth).
    #[arg(short = 'u', long)]
    user: Option<String>,

    /// Password for --user; prompted for on the terminal if not given.
    #[arg(long, env = "SQE_PASSWORD", hide_env_values = true)]
    password: Option<String>,

    /// Bearer token to send instead of logging in with --user and --password.
    #[arg(long, conflicts_with = "user")]
    token: Option<String>,

    /// Run these statements (separated by ';') and exit.
    #[arg(short = 'e', long, value_name = "SQL", conflicts_with = "file")]
    execute: Option<String>,

    /// Run the statements in this file ('-' for stdin) and exit.
    #[arg(short = 'f', long, value_name = "FILE")]
    file: Option<PathBuf>,

    /// Output format: an aligned table, CSV with a header, or one JSON object per row.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args_os()) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`sqe-cli ... | head`): nothing left to say.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            report_error(&e);
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line. Clap treats a value from `SQE_PASSWORD` like one
/// given on the command line, so the conflict of `--token` with `--password`
/// is checked here, where the two can be told apart: an exported
/// `SQE_PASSWORD` must not make `--token` unusable.
fn parse_args<I, T>(argv: I) -> Result<Args, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut command = Args::command();
    let matches = command.try_get_matches_from_mut(argv)?;
    if matches.contains_id("token")
        && matches.value_source("password") == Some(ValueSource::CommandLine)
    {
        return Err(command.error(
            ErrorKind::ArgumentConflict,
            "the argument '--token <TOKEN>' cannot be used with '--password <PASSWORD>'",
        ));
    }
    Args::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
}

/// Where the statements come from.
enum Input {
    Script(String),
    Interactive,
}

fn run(args: Args) -> Result<(), CliError> {
    let input = read_input(&args)?;
    let options = ConnectOptions {
        host: args.host.clone(),
        port: args.port,
        auth: resolve_auth(&args)?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(format!("could not start the async runtime: {e}")))?;
    let session = runtime.block_on(Session::connect(&options))?;
    let mut runner = Runner {
        session,
        format: args.format,
        printed_any: false,
    };
    match input {
        Input::Script(sql) => runner.run_script(&runtime, &sql),
        Input::Interactive => repl::run(&runtime, &mut runner, &options.target()),
    }
}

fn read_input(args: &Args) -> Result<Input, CliError> {
    if let Some(sql) = &args.execute {
        return Ok(Input::Script(sql.clone()));
    }
    match &args.file {
        Some(path) if path.as_os_str() == "-" => read_stdin().map(Input::Script),
        Some(path) => std::fs::read_to_string(path)
            .map(Input::Script)
            .map_err(|e| CliError::Other(format!("could not read {}: {e}", path.display()))),
        None if std::io::stdin().is_terminal() => Ok(Input::Interactive),
        None => read_stdin().map(Input::Script),
    }
}

fn read_stdin() -> Result<String, CliError> {
    let mut sql = String::new();
    std::io::stdin()
        .read_to_string(&mut sql)
        .map_err(|e| CliError::Other(format!("could not read stdin: {e}")))?;
    Ok(sql)
}

/// Picks the credentials. A password (e.g. from `SQE_PASSWORD`) is only
/// used together with `--user`.
fn resolve_auth(args: &Args) -> Result<Auth, CliError> {
    if let Some(token) = &args.token {
        return Ok(Auth::Token(token.clone()));
    }
    let Some(user) = &args.user else {
        return Ok(Auth::None);
    };
    let password = match &args.password {
        Some(password) => password.clone(),
        None => repl::prompt_password(user)?.ok_or_else(|| {
            CliError::Other(format!(
                "no password for user {user}: use --password or set SQE_PASSWORD"
            ))
        })?,
    };
    Ok(Auth::Basic {
        user: user.clone(),
        password,
    })
}

/// Runs statements on a session and prints their results to stdout.
struct Runner {
    session: Session,
    format: Format,
    /// Whether a result was printed yet (table results get a blank line between them).
    printed_any: bool,
}

impl Runner {
    /// Runs every statement of `sql`, stopping at the first error.
    fn run_script(&mut self, runtime: &Runtime, sql: &str) -> Result<(), CliError> {
        for statement in script_statements(sql) {
            let result = runtime.block_on(self.session.query(&statement))?;
            if self.format == Format::Table && self.printed_any {
                write_stdout(b"\n")?;
            }
            self.print(&result)?;
        }
        Ok(())
    }

    /// Runs one statement typed in the shell; Ctrl-C cancels it. The time
    /// taken (and, for CSV and JSON, the row count) goes to stderr.
    fn run_interactive(&mut self, runtime: &Runtime, sql: &str) -> Result<(), CliError> {
        let started = Instant::now();
        let session = &mut self.session;
        let outcome = runtime.block_on(async {
            tokio::select! {
                result = session.query(sql) => Some(result),
                Ok(()) = tokio::signal::ctrl_c() => None,
            }
        });
        let elapsed = started.elapsed();
        let Some(result) = outcome else {
            report_note("Cancelled.\n");
            return Ok(());
        };
        let result = result?;
        self.print(&result)?;
        let summary = match self.format {
            Format::Table => elapsed_line(elapsed),
            Format::Csv | Format::Json => format!(
                "{} {}",
                row_count_line(result.num_rows()),
                elapsed_line(elapsed)
            ),
        };
        report_note(&format!("{summary}\n"));
        Ok(())
    }

    fn print(&mut self, result: &QueryResult) -> Result<(), CliError> {
        let bytes = render(self.format, result)?;
        write_stdout(&bytes)?;
        self.printed_any = true;
        Ok(())
    }
}

fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}

/// Prints `ERROR: <error>` to stderr.
fn report_error(error: &CliError) {
    // If stderr itself is gone there is nowhere left to complain.
    let _ = writeln!(std::io::stderr(), "ERROR: {error}");
}

/// Prints an informational line to stderr.
fn report_note(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        parse_args(std::iter::once("sqe-cli").chain(argv.iter().copied()))
    }

    #[test]
    fn clap_definition_is_valid() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let args = parse(&[]).expect("no arguments parse");
        assert_eq!(args.host, "127.0.0.1");
        assert_eq!(args.port, 50051);
        assert_eq!(args.format, Format::Table);
    }

    #[test]
    fn parses_flags() {
        let args = parse(&[
            "--host",
            "db",
            "--port",
            "1234",
            "-u",
            "alice",
            "--password",
            "pw",
            "-e",
            "select 1",
            "--format",
            "json",
        ])
        .expect("flags parse");
        assert_eq!(args.host, "db");
        assert_eq!(args.port, 1234);
        assert_eq!(args.user.as_deref(), Some("alice"));
        assert_eq!(args.execute.as_deref(), Some("select 1"));
        assert_eq!(args.format, Format::Json);
        match resolve_auth(&args).expect("auth") {
            Auth::Basic { user, password } => {
                assert_eq!((user.as_str(), password.as_str()), ("alice", "pw"))
            }
            other => panic!("unexpected auth {other:?}"),
        }
    }

    #[test]
    fn rejects_conflicting_flags() {
        assert!(parse(&["-e", "select 1", "-f", "x.sql"]).is_err());
        assert!(parse(&["--format", "xml"]).is_err());
        assert!(parse(&["--port", "70000"]).is_err());
        assert!(parse(&["--token", "t", "-u", "alice"]).is_err());
        assert!(parse(&["--token", "t", "--password", "p"]).is_err());
    }

    #[test]
    fn token_auth() {
        let args = parse(&["--token", "abc"]).expect("parses");
        assert!(matches!(resolve_auth(&args), Ok(Auth::Token(t)) if t == "abc"));
    }
}
