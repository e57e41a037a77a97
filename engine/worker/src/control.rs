//! The worker's control plane: the heartbeat (a Flight `DoAction` to the coordinator every
//! interval, with the internal credential; the coordinator's registry turns missed beats into
//! GONE) and the health listener (`/healthz`, `/readyz`, the kubelet's probes).
//!
//! Both run on a runtime of their own: tasks that keep every thread of the worker's runtime
//! busy (a CPU-bound stage) must not make a working worker look gone, nor fail its probes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow_flight::Action;
use arrow_flight::flight_service_client::FlightServiceClient;
use futures::StreamExt;
use sqe_core::membership::{HEARTBEAT_ACTION, Heartbeat, HeartbeatReply};
use tonic::transport::{Channel, Endpoint};
use tracing::{info, warn};

use crate::WorkerState;

/// Sends heartbeats to one coordinator.
#[derive(Clone)]
pub struct Reporter {
    client: FlightServiceClient<Channel>,
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl Reporter {
    pub fn connect(url: &str, token: Option<&str>) -> Result<Self, String> {
        let channel = Endpoint::from_shared(url.to_string())
            .map_err(|e| format!("not a URL: {e}"))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        let authorization = token
            .map(|t| {
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| "worker.internal_token cannot be a header".to_string())
            })
            .transpose()?;
        Ok(Self {
            client: FlightServiceClient::new(channel),
            authorization,
        })
    }

    pub async fn send(&self, beat: &Heartbeat) -> Result<HeartbeatReply, String> {
        let body = serde_json::to_vec(beat).map_err(|e| e.to_string())?;
        let mut request = tonic::Request::new(Action {
            r#type: HEARTBEAT_ACTION.into(),
            body: body.into(),
        });
        if let Some(auth) = &self.authorization {
            request.metadata_mut().insert("authorization", auth.clone());
        }
        let mut client = self.client.clone();
        let mut results = client
            .do_action(request)
            .await
            .map_err(|s| format!("{}: {}", s.code(), s.message()))?
            .into_inner();
        let result = results
            .next()
            .await
            .ok_or("the coordinator sent no heartbeat reply")?
            .map_err(|s| format!("{}: {}", s.code(), s.message()))?;
        serde_json::from_slice(&result.body).map_err(|e| format!("heartbeat reply: {e}"))
    }
}

/// The control runtime (one thread): the heartbeat loop, one-off beats (draining, leaving)
/// and the health listener.
pub struct Control {
    runtime: Option<tokio::runtime::Runtime>,
    reporter: Reporter,
    beating: tokio::task::JoinHandle<()>,
}

impl Control {
    /// Starts the runtime and the beats to the coordinator at `url`.
    pub fn start(url: &str, token: Option<&str>, state: Arc<WorkerState>) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sqe-control")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the heartbeat runtime: {e}"))?;
        // the channel's connection task lives on the runtime it is made in
        let reporter = {
            let _inside = runtime.enter();
            Reporter::connect(url, token)?
        };
        let beating = runtime.spawn(run(reporter.clone(), state));
        Ok(Self {
            runtime: Some(runtime),
            reporter,
            beating,
        })
    }

    /// Sends `beat` now (from the heartbeat runtime) and waits for the reply.
    pub async fn send_now(&self, beat: Heartbeat) -> Result<HeartbeatReply, String> {
        let Some(runtime) = &self.runtime else {
            return Err("the heartbeat runtime has stopped".into());
        };
        let reporter = self.reporter.clone();
        runtime
            .spawn(async move { reporter.send(&beat).await })
            .await
            .map_err(|e| format!("heartbeat: {e}"))?
    }

    /// Serves the health router on `listener` until `stop` completes.
    pub fn serve_health(
        &self,
        listener: std::net::TcpListener,
        router: axum::Router,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<tokio::task::JoinHandle<()>, String> {
        let Some(runtime) = &self.runtime else {
            return Err("the control runtime has stopped".into());
        };
        // registered with this runtime's reactor, so a busy query runtime cannot delay it
        let listener = {
            let _inside = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?
        };
        Ok(runtime.spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                warn!(error = %e, "the health listener failed");
            }
        }))
    }

    /// Ends the periodic beats (before the last, leaving one).
    pub fn stop_beating(&self) {
        self.beating.abort();
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Heartbeats until aborted; logs when registration is gained, lost, or not schedulable.
pub async fn run(reporter: Reporter, state: Arc<WorkerState>) {
    let mut tick = tokio::time::interval(state.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_note: Option<String> = None;
    let mut failing = false;
    loop {
        tick.tick().await;
        match reporter.send(&state.beat(false)).await {
            Ok(reply) => {
                if !state.registered.swap(true, Ordering::Relaxed) || failing {
                    info!(
                        coordinator_protocol = reply.coordinator_protocol,
                        schedulable = reply.schedulable,
                        "registered with the coordinator"
                    );
                }
                failing = false;
                if reply.note != last_note {
                    if let Some(note) = &reply.note {
                        warn!(note = %note, "the coordinator schedules no tasks here");
                    }
                    last_note = reply.note;
                }
            }
            Err(e) => {
                state.registered.store(false, Ordering::Relaxed);
                if !failing {
                    warn!(error = %e, "heartbeat to the coordinator failed; retrying every interval");
                }
                failing = true;
            }
        }
    }
}
