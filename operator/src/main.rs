//! `sqe-operator`: `run` (the controller), `crd` (print the CRD), `render` (offline preview).

#![forbid(unsafe_code)]

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use kube::Client;
use kube::api::Api;
use sqe_operator::build::{self, BuildContext};
use sqe_operator::crd::{self, SqeCluster};
use sqe_operator::leader::LeaderElection;
use sqe_operator::reconcile::{self, Context};
use sqe_operator::telemetry::{self, Metrics};
use sqe_operator::validate::{self, SecretsSeen};
use tracing::{error, info};

#[derive(Parser)]
#[command(name = "sqe-operator", version, about = "The SQE Kubernetes operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster of the current kubeconfig / service account.
    Run(RunArgs),
    /// Print the SqeCluster CustomResourceDefinition (YAML).
    Crd,
    /// Print every object the operator would apply for the SqeCluster(s) in a file, offline.
    Render {
        /// A YAML file with one or more SqeCluster documents (`-` for stdin).
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// Namespace for clusters whose manifest has none.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Namespaces to watch (repeat or comma-separate); all namespaces when empty.
    #[arg(
        long = "namespace",
        env = "SQE_OPERATOR_NAMESPACES",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "SQE_OPERATOR_LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    listen_addr: SocketAddr,
    /// `text` or `json`.
    #[arg(long, env = "SQE_OPERATOR_LOG_FORMAT", default_value = "text")]
    log_format: String,
    /// Take a coordination.k8s.io Lease before reconciling (run two replicas safely).
    #[arg(long, env = "SQE_OPERATOR_LEADER_ELECT")]
    leader_elect: bool,
    #[arg(long, env = "SQE_OPERATOR_LEASE_NAME", default_value = "sqe-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease and in Events (default: the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Clusters reconciled at the same time.
    #[arg(long, env = "SQE_OPERATOR_CONCURRENCY", default_value_t = 4)]
    concurrency: u16,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sqe-operator: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Render { file, namespace } => match render(&file, &namespace) {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sqe-operator: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            telemetry::init_logging(&args.log_format);
            // Both rustls providers are linked in the workspace; the operator's client uses ring.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("sqe-operator: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e}");
                    eprintln!("sqe-operator: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Offline: SqeCluster YAML in, every object out (Secrets are not read).
fn render(file: &PathBuf, namespace: &str) -> Result<String, String> {
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("reading stdin: {e}"))?;
        s
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?
    };
    let mut out = String::from(
        "# Rendered by `sqe-operator render` (offline): referenced Secrets were not read, so\n\
         # checksum/config covers the config only, and the internal Secret (distributed mode)\n\
         # is generated by the operator at apply time.\n",
    );
    let mut found = 0;
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let value = serde_yaml::Value::deserialize_from(doc)
            .map_err(|e| format!("{}: document {}: {e}", file.display(), i + 1))?;
        if value.is_null() {
            continue;
        }
        if value.get("kind").and_then(|k| k.as_str()) != Some("SqeCluster") {
            continue;
        }
        let mut cluster: SqeCluster = serde_yaml::from_value(value)
            .map_err(|e| format!("{}: document {}: {e}", file.display(), i + 1))?;
        if cluster.metadata.namespace.is_none() {
            cluster.metadata.namespace = Some(namespace.to_string());
        }
        let plan = validate::validate(&cluster, &SecretsSeen::default()).map_err(|problems| {
            format!(
                "SqeCluster {}: invalid: {}",
                cluster.metadata.name.clone().unwrap_or_default(),
                validate::describe(&problems)
            )
        })?;
        let desired = build::build(
            &plan,
            &BuildContext {
                internal_token: None,
                service_monitor_api: true,
            },
        );
        out.push_str(&build::to_yaml(&desired).map_err(|e| e.to_string())?);
        found += 1;
    }
    if found == 0 {
        return Err(format!("{}: no SqeCluster in it", file.display()));
    }
    Ok(out)
}

trait DeserializeFrom {
    fn deserialize_from(
        doc: serde_yaml::Deserializer<'_>,
    ) -> Result<serde_yaml::Value, serde_yaml::Error>;
}

impl DeserializeFrom for serde_yaml::Value {
    fn deserialize_from(
        doc: serde_yaml::Deserializer<'_>,
    ) -> Result<serde_yaml::Value, serde_yaml::Error> {
        serde::Deserialize::deserialize(doc)
    }
}

async fn run(args: RunArgs) -> Result<(), String> {
    let metrics = Arc::new(Metrics::new());
    let listener = tokio::net::TcpListener::bind(args.listen_addr)
        .await
        .map_err(|e| format!("--listen-addr {}: cannot listen: {e}", args.listen_addr))?;
    let router = telemetry::router(Arc::clone(&metrics));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let client = Client::try_default().await.map_err(|e| {
        format!("cannot reach the Kubernetes API (kubeconfig or in-cluster config): {e}")
    })?;
    let identity = args.identity.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("sqe-operator-{}", std::process::id()))
    });
    info!(
        version = env!("CARGO_PKG_VERSION"),
        identity = %identity,
        listen = %args.listen_addr,
        namespaces = ?args.namespaces,
        leader_elect = args.leader_elect,
        "sqe-operator starting"
    );

    let election = args.leader_elect.then(|| {
        LeaderElection::new(
            Api::namespaced(client.clone(), &args.lease_namespace),
            &args.lease_name,
            &identity,
        )
    });
    if let Some(election) = &election {
        metrics.set_ready(true); // a standby is healthy and ready to take over
        tokio::select! {
            _ = election.acquire() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        metrics.leader.set(1);
    }
    metrics.set_ready(true);

    let ctx = Arc::new(Context::new(client, Arc::clone(&metrics), &identity));
    let namespaces: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().cloned().map(Some).collect()
    };
    let controllers = futures::future::join_all(
        namespaces
            .into_iter()
            .map(|ns| reconcile::run_controller(Arc::clone(&ctx), ns, args.concurrency)),
    );
    match &election {
        Some(election) => {
            tokio::select! {
                _ = controllers => { election.release().await; Ok(()) }
                _ = election.hold() => {
                    metrics.leader.set(0);
                    Err("lost the leader lease; exiting so a fresh start can stand by".into())
                }
            }
        }
        None => {
            controllers.await;
            Ok(())
        }
    }
}
