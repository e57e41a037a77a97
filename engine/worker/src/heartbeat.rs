//! The worker's heartbeat: a Flight `DoAction` to the coordinator every interval, with the
//! internal credential; the coordinator's registry turns missed beats into GONE.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow_flight::Action;
use arrow_flight::flight_service_client::FlightServiceClient;
use futures::StreamExt;
use sqe_core::membership::{HEARTBEAT_ACTION, Heartbeat, HeartbeatReply, oldest_accepted};
use tonic::transport::{Channel, Endpoint};
use tracing::{info, warn};

use crate::WorkerState;

/// One heartbeat's content, before it is JSON.
pub struct Beat {
    pub node_id: String,
    pub url: String,
    pub protocol: u32,
    pub draining: bool,
    pub leaving: bool,
    pub memory_used_bytes: u64,
    pub memory_limit_bytes: u64,
    pub running_tasks: u32,
    pub max_tasks: u32,
    pub interval: Duration,
}

impl Beat {
    fn message(&self) -> Heartbeat {
        Heartbeat {
            node_id: self.node_id.clone(),
            url: self.url.clone(),
            version: sqe_core::VERSION.to_string(),
            protocol: self.protocol,
            oldest_protocol: oldest_accepted(self.protocol),
            draining: self.draining,
            leaving: self.leaving,
            memory_used_bytes: self.memory_used_bytes,
            memory_limit_bytes: self.memory_limit_bytes,
            running_tasks: self.running_tasks,
            max_tasks: self.max_tasks,
            interval_ms: self.interval.as_millis() as u64,
        }
    }
}

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

    pub async fn send(&self, beat: &Beat) -> Result<HeartbeatReply, String> {
        let body = serde_json::to_vec(&beat.message()).map_err(|e| e.to_string())?;
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
