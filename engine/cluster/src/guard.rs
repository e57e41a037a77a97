//! The server side of a worker's listener: every call must carry the cluster's internal
//! credential and a protocol version this worker understands; `ExecuteTask` streams are
//! counted while they run (the heartbeat reports them).
//!
//! ```text
//!  request ─▶ authorization == Bearer <internal token>?   no ─▶ UNAUTHENTICATED
//!          ─▶ x-sqe-protocol in [oldest, current]?         no ─▶ FAILED_PRECONDITION
//!          ─▶ the worker service (ExecuteTask: running += 1 until its stream ends)
//! ```
//!
//! A user's Flight SQL token is not the internal token, so it can never be replayed here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http_body_util::BodyExt;
use tonic::body::Body;

use sqe_core::membership::internal_credential_ok;

use crate::channel::PROTOCOL_HEADER;

/// Why a call was refused, or `Ok` for one the worker serves. Pure, for table tests.
pub fn admit(
    expected_token: Option<&str>,
    authorization: Option<&str>,
    protocol: Option<&str>,
    accepted: (u32, u32),
) -> Result<(), tonic::Status> {
    if !internal_credential_ok(expected_token, authorization) {
        return Err(tonic::Status::unauthenticated(if authorization.is_some() {
            "this is an SQE worker: it takes only the cluster's internal credential"
        } else {
            "this is an SQE worker: calls need the cluster's internal credential"
        }));
    }
    let (oldest, current) = accepted;
    match protocol.map(str::parse::<u32>) {
        Some(Ok(v)) if (oldest..=current).contains(&v) => Ok(()),
        Some(Ok(v)) => Err(tonic::Status::failed_precondition(format!(
            "this worker speaks protocol {oldest}..{current}, the call speaks {v}"
        ))),
        _ => Err(tonic::Status::failed_precondition(format!(
            "calls must name their protocol version ({PROTOCOL_HEADER}); this worker speaks {oldest}..{current}"
        ))),
    }
}

/// What the guard checks, and the count of running tasks it keeps.
#[derive(Clone)]
pub struct Guard {
    token: Option<Arc<str>>,
    accepted: (u32, u32),
    running: Arc<AtomicU32>,
}

impl Guard {
    pub fn new(token: Option<&str>, accepted: (u32, u32)) -> Self {
        Self {
            token: token.map(Arc::from),
            accepted,
            running: Arc::new(AtomicU32::new(0)),
        }
    }

    /// `ExecuteTask` streams running now.
    pub fn running(&self) -> u32 {
        self.running.load(Ordering::Relaxed)
    }
}

impl<S> tower::Layer<S> for Guard {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded {
            inner,
            guard: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    guard: Guard,
}

struct RunningTask(Arc<AtomicU32>);

impl Drop for RunningTask {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S, B> tower::Service<http::Request<B>> for Guarded<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if let Err(status) = admit(
            self.guard.token.as_deref(),
            header(http::header::AUTHORIZATION.as_str()).as_deref(),
            header(PROTOCOL_HEADER).as_deref(),
            self.guard.accepted,
        ) {
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let task = request.uri().path().ends_with("/ExecuteTask").then(|| {
            self.guard.running.fetch_add(1, Ordering::Relaxed);
            RunningTask(Arc::clone(&self.guard.running))
        });
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok(match task {
                // the task runs while its stream is read: count it until the body is dropped
                Some(task) => response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _running = &task;
                        frame
                    }))
                }),
                None => response,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn admits_only_the_internal_credential_and_known_protocols() {
        let t = Some("s3cret");
        // (internal token, authorization header, protocol header, refusal)
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<Code>,
        );
        let cases: &[Case] = &[
            (t, Some("Bearer s3cret"), Some("2"), None),
            (t, Some("Bearer s3cret"), Some("1"), None),
            (t, None, Some("2"), Some(Code::Unauthenticated)),
            (
                t,
                Some("Bearer wrong"),
                Some("2"),
                Some(Code::Unauthenticated),
            ),
            (
                t,
                Some("Bearer s3cre"),
                Some("2"),
                Some(Code::Unauthenticated),
            ),
            (
                t,
                Some("Basic czNjcmV0"),
                Some("2"),
                Some(Code::Unauthenticated),
            ),
            (
                t,
                Some("Bearer s3cret"),
                Some("3"),
                Some(Code::FailedPrecondition),
            ),
            (
                t,
                Some("Bearer s3cret"),
                Some("0"),
                Some(Code::FailedPrecondition),
            ),
            (
                t,
                Some("Bearer s3cret"),
                None,
                Some(Code::FailedPrecondition),
            ),
            (
                t,
                Some("Bearer s3cret"),
                Some("x"),
                Some(Code::FailedPrecondition),
            ),
            (None, None, Some("2"), None),
        ];
        for (token, auth, protocol, want) in cases {
            let got = admit(*token, *auth, *protocol, (1, 2))
                .err()
                .map(|s| s.code());
            assert_eq!(got, *want, "{token:?} {auth:?} {protocol:?}");
        }
    }
}
