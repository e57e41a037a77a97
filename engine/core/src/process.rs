//! What every SQE process does the same way: its logging set-up and the signal that starts
//! its drain.

use sqe_config::{LogFormat, SqeConfig};
use tracing::info;

/// Logs to stderr with `SQE_LOG` or `coordinator.log_level` as the filter, in
/// `coordinator.log_format`.
pub fn init_logging(config: &SqeConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SQE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.coordinator.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.coordinator.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => info!("received SIGTERM"),
                _ = int.recv() => info!("received SIGINT"),
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
