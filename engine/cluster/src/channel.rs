//! The client side of every call to a worker (from the coordinator and between workers): the
//! internal credential and the query's protocol version on each request, one connection per
//! worker reused by every query, and (on the coordinator) each task sent to a worker reported
//! to the query that sent it.
//!
//! ```text
//!  datafusion-distributed ── get_worker_client_for_url(url) ──▶ InternalChannels
//!      └─ cached tonic Channel ─▶ Stamped: authorization: Bearer <token>, x-sqe-protocol: N
//!                                   └─ CoordinatorChannel (SetPlan) ─▶ on_task(stage, task, url)
//! ```

use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::error::DataFusionError;
use datafusion_distributed::{
    BoxCloneSyncChannel, ChannelResolver, DefaultChannelResolver, TaskKey, WorkerServiceClient,
    create_worker_client,
};
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use sqe_core::distribution::RemoteTask;
use tonic::body::Body;
use url::Url;

/// The header that carries the coordinator ↔ worker protocol version of a call.
pub const PROTOCOL_HEADER: &str = "x-sqe-protocol";

/// Called for every task a query sends to a worker.
pub type OnTask = Arc<dyn Fn(RemoteTask) + Send + Sync>;

/// A [`ChannelResolver`] that authenticates as the cluster and speaks one protocol version.
#[derive(Clone)]
pub struct InternalChannels {
    connections: DefaultChannelResolver,
    /// `Bearer <token>`, or nothing when no internal token is configured (loopback tests).
    authorization: Option<http::HeaderValue>,
    protocol: http::HeaderValue,
    on_task: Option<OnTask>,
}

impl InternalChannels {
    pub fn new(token: Option<&str>, protocol: u32) -> Result<Self, String> {
        let authorization = token
            .map(|t| {
                http::HeaderValue::from_str(&format!("Bearer {t}"))
                    .map(|mut v| {
                        v.set_sensitive(true);
                        v
                    })
                    .map_err(|_| {
                        "worker.internal_token has characters a header cannot carry".to_string()
                    })
            })
            .transpose()?;
        Ok(Self {
            connections: DefaultChannelResolver::default(),
            authorization,
            protocol: http::HeaderValue::from(protocol),
            on_task: None,
        })
    }

    /// The same connections, speaking `protocol` (a worker relays the version its query came with).
    pub fn with_protocol(&self, protocol: u32) -> Self {
        Self {
            protocol: http::HeaderValue::from(protocol),
            ..self.clone()
        }
    }

    /// The same connections, reporting every task sent to a worker to `on_task`.
    pub fn observed(&self, on_task: OnTask) -> Self {
        Self {
            on_task: Some(on_task),
            ..self.clone()
        }
    }
}

#[async_trait]
impl ChannelResolver for InternalChannels {
    async fn get_worker_client_for_url(
        &self,
        url: &Url,
    ) -> Result<WorkerServiceClient<BoxCloneSyncChannel>, DataFusionError> {
        let channel = self.connections.get_channel(url).await?;
        let stamped = Stamped {
            inner: channel,
            authorization: self.authorization.clone(),
            protocol: self.protocol.clone(),
            on_task: self.on_task.clone(),
            url: url.to_string(),
        };
        Ok(create_worker_client(BoxCloneSyncChannel::new(stamped)))
    }
}

/// A worker connection that stamps every request.
#[derive(Clone)]
struct Stamped {
    inner: BoxCloneSyncChannel,
    authorization: Option<http::HeaderValue>,
    protocol: http::HeaderValue,
    on_task: Option<OnTask>,
    url: String,
}

impl tower::Service<http::Request<Body>> for Stamped {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let headers = request.headers_mut();
        if let Some(auth) = &self.authorization {
            headers.insert(http::header::AUTHORIZATION, auth.clone());
        }
        headers.insert(PROTOCOL_HEADER, self.protocol.clone());
        // take the service that was made ready, leave a fresh clone behind
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let sets_plan = request.uri().path().ends_with("/CoordinatorChannel");
        match (&self.on_task, sets_plan) {
            (Some(on_task), true) => {
                let on_task = Arc::clone(on_task);
                let url = self.url.clone();
                Box::pin(async move {
                    let (parts, body) = request.into_parts();
                    let bytes = body
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    if let Some(key) = task_key(&bytes) {
                        on_task(RemoteTask {
                            stage: key.stage_id as usize,
                            task: key.task_number as usize,
                            url,
                        });
                    }
                    let request = http::Request::from_parts(
                        parts,
                        Body::new(http_body_util::Full::new(bytes)),
                    );
                    tower::Service::call(&mut inner, request).await
                })
            }
            _ => Box::pin(tower::Service::call(&mut inner, request)),
        }
    }
}

/// The part of datafusion-distributed's `CoordinatorToWorkerMsg` that names the task.
#[derive(Clone, PartialEq, prost::Message)]
struct SetPlanEnvelope {
    #[prost(message, optional, tag = "1")]
    set_plan_request: Option<SetPlanKey>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SetPlanKey {
    #[prost(message, optional, tag = "1")]
    task_key: Option<TaskKey>,
}

/// The task key of the first gRPC message in `body` (5-byte frame header, then the message).
fn task_key(body: &Bytes) -> Option<TaskKey> {
    let header = body.get(..5)?;
    if header[0] != 0 {
        return None; // compressed; we never compress plans
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let message = body.get(5..5 + len)?;
    let envelope: SetPlanEnvelope = prost::Message::decode(message).ok()?;
    envelope.set_plan_request?.task_key
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn reads_the_task_key_of_a_set_plan_frame() {
        let msg = SetPlanEnvelope {
            set_plan_request: Some(SetPlanKey {
                task_key: Some(TaskKey {
                    query_id: vec![1, 2],
                    stage_id: 3,
                    task_number: 1,
                }),
            }),
        };
        let payload = msg.encode_to_vec();
        let mut frame = vec![0u8];
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&payload);
        let key = task_key(&Bytes::from(frame.clone())).unwrap();
        assert_eq!((key.stage_id, key.task_number), (3, 1));
        assert!(task_key(&Bytes::from(frame[..4].to_vec())).is_none());
        frame[0] = 1;
        assert!(task_key(&Bytes::from(frame)).is_none());
        assert!(task_key(&Bytes::new()).is_none());
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_a_config_error() {
        assert!(InternalChannels::new(Some("bad\ntoken"), 1).is_err());
        assert!(InternalChannels::new(Some("good"), 1).is_ok());
    }
}
