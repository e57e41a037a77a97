//! `sqe-worker`: executes plan fragments for an SQE coordinator in distributed mode.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    sqe_worker::cli::main()
}
