//! The Trino HTTP client protocol (port 8080) over `sqe-core`: what the Trino JDBC driver, the
//! Trino CLI, the `trino` Python client (DB-API, SQLAlchemy, pandas), dbt-trino and dashboards
//! talk to.
//!
//! ```text
//!  POST /v1/statement (SQL, X-Trino-* headers) ─▶ QueryRegistry::begin ─▶ producer on the query
//!       │  runtime: session statements here, the rest via Engine::run ─▶ pages (bounded channel)
//!       └▶ QUEUED + nextUri ─▶ GET nextUri (≤ 1 s wait) ─▶ columns, data … ─▶ FINISHED, no nextUri
//!  DELETE nextUri ─▶ cancel (204)   GET /v1/info   GET /v1/query/{id}
//! ```
//!
//! Authentication follows the engine's rules: with `auth.mode = "none"` (loopback only) the
//! user is whatever `X-Trino-User` says; with `password`, every request carries HTTP Basic
//! credentials of a configured user (a Flight SQL bearer token is accepted too), and
//! `X-Trino-User`, when sent, must name the same user.

#![forbid(unsafe_code)]

mod error;
mod execute;
mod headers;
mod query;
mod statement;
mod types;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::Rng;
use serde_json::json;
use sqe_config::AuthMode;
use sqe_core::auth::{ANONYMOUS, Authenticator};
use sqe_core::engine::Engine;
use sqe_core::error::{ErrorKind, SqeError};
use sqe_core::registry::Protocol;
use tokio::sync::mpsc;
use tracing::warn;

pub use error::{error_json, trino_code};
pub use types::{TrinoType, TypeOptions, trino_type};

use crate::execute::Statement;
use crate::headers::ClientSession;
use crate::query::{DeliveryError, MAX_WAIT, PAGE_BUFFER, Served, TrinoQuery};

/// How long a finished query stays answerable (retries of its last page, `/v1/query/{id}`).
const FINISHED_LINGER: Duration = Duration::from_secs(60);

/// The Trino endpoint's state: the engine, who may call, and the queries in progress.
pub struct TrinoService {
    engine: Arc<Engine>,
    auth: Arc<Authenticator>,
    queries: Mutex<HashMap<String, Arc<TrinoQuery>>>,
    client_timeout: Duration,
    started: Instant,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TrinoService {
    pub fn new(engine: Arc<Engine>, auth: Arc<Authenticator>) -> Arc<Self> {
        let client_timeout =
            Duration::from_secs(engine.config().coordinator.trino_client_timeout_secs);
        Arc::new(Self {
            engine,
            auth,
            queries: Mutex::new(HashMap::new()),
            client_timeout,
            started: Instant::now(),
        })
    }

    /// The HTTP routes of the protocol.
    pub fn router(self: &Arc<Self>) -> Router {
        let statement = "/v1/statement/{phase}/{id}/{slug}/{token}";
        Router::new()
            .route("/v1/statement", post(submit))
            .route(statement, get(next_page).delete(cancel).head(heartbeat))
            .route("/v1/info", get(info))
            .route("/v1/info/state", get(info_state))
            .route("/v1/query/{id}", get(query_info).delete(kill))
            .with_state(Arc::clone(self))
    }

    /// Cancels queries whose client stopped polling and forgets finished ones; run it every
    /// few seconds.
    pub fn sweep(&self) {
        let mut abandoned = Vec::new();
        lock(&self.queries).retain(|_, q| {
            if q.is_abandoned(self.client_timeout) {
                abandoned.push(Arc::clone(q));
                false
            } else {
                !q.is_expired(FINISHED_LINGER)
            }
        });
        for q in abandoned {
            warn!(query_id = %q.id, user = %q.user, timeout_secs = self.client_timeout.as_secs(), "cancelling an abandoned Trino query: its client stopped polling");
            q.cancel(SqeError::new(
                ErrorKind::Cancelled,
                format!(
                    "Query abandoned: the client did not poll for {} s (coordinator.trino_client_timeout_secs)",
                    self.client_timeout.as_secs()
                ),
            ));
        }
    }

    /// Queries the endpoint is tracking (running, or finished within the last minute).
    pub fn tracked(&self) -> usize {
        lock(&self.queries).len()
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<String, Box<Response>> {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let claimed = headers
            .get(headers::USER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|u| !u.is_empty());
        if self.auth.mode() == AuthMode::None && authorization.is_none() {
            return match claimed {
                Some(u) => Ok(u.to_string()),
                None => Err(Box::new(unauthorized(
                    "Missing X-Trino-User (or Authorization) header",
                ))),
            };
        }
        let principal = self
            .auth
            .authenticate(authorization)
            .map_err(|e| Box::new(unauthorized(e.message())))?;
        let user = if principal.user == ANONYMOUS {
            claimed.unwrap_or(ANONYMOUS).to_string()
        } else {
            principal.user
        };
        if let Some(c) = claimed
            && c != user
        {
            return Err(Box::new(
                (
                    StatusCode::FORBIDDEN,
                    format!("Access Denied: User {user} cannot impersonate user {c}"),
                )
                    .into_response(),
            ));
        }
        Ok(user)
    }

    fn find(&self, id: &str, slug: &str, user: &str) -> Result<Arc<TrinoQuery>, Box<Response>> {
        let q = lock(&self.queries).get(id).cloned();
        match q {
            Some(q) if q.slug == slug && q.user == user => Ok(q),
            _ => Err(Box::new(
                (StatusCode::NOT_FOUND, format!("Query not found: {id}")).into_response(),
            )),
        }
    }
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"SQE\"")],
        message.to_string(),
    )
        .into_response()
}

/// The URL clients reach this server at: `X-Forwarded-Proto/Host` behind a proxy, else `Host`.
fn base_url(headers: &HeaderMap) -> String {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let proto = get("x-forwarded-proto").unwrap_or_else(|| "http".into());
    let host = get("x-forwarded-host")
        .or_else(|| get("host"))
        .unwrap_or_else(|| "localhost".into());
    format!("{proto}://{host}")
}

fn json_response(served: Served) -> Response {
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        served.body,
    )
        .into_response();
    for (k, v) in served.headers {
        response.headers_mut().append(k, v);
    }
    response
}

fn slug() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let s: String = (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("y{s}")
}

async fn submit(
    State(service): State<Arc<TrinoService>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let user = match service.authenticate(&headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let sql = match String::from_utf8(body.to_vec()) {
        Ok(s) => s,
        Err(_) => {
            return (StatusCode::BAD_REQUEST, "the statement is not UTF-8").into_response();
        }
    };
    if sql.trim().is_empty() {
        return (StatusCode::BAD_REQUEST, "SQL statement is empty").into_response();
    }
    let engine = &service.engine;
    let client = ClientSession::from_headers(&headers);
    let session = engine
        .new_session(&user, Protocol::Trino)
        .with_source(client.as_ref().ok().and_then(|c| c.source.clone()))
        .with_trino_dialect(true);
    let handle = match engine.begin_query(&session, &sql) {
        Ok(h) => h,
        Err(e) => {
            // draining: Trino clients retry on 503
            return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response();
        }
    };
    let (tx, rx) = mpsc::channel(PAGE_BUFFER);
    let update_type = client
        .as_ref()
        .ok()
        .and_then(|c| execute::announced_update_type(&sql, c));
    let query = Arc::new(TrinoQuery::new(handle, slug(), update_type, rx));
    lock(&service.queries).insert(query.id.clone(), Arc::clone(&query));

    let prepared = client.and_then(|c| apply_session(&session, &c).map(|()| c));
    let entry = Arc::clone(&query.entry);
    match prepared {
        Ok(client) => {
            let statement = Statement {
                engine: Arc::clone(engine),
                session: Arc::new(session),
                client,
                sql,
            };
            let started = engine.spawn(execute::produce(statement, entry, tx));
            if let Err(e) = started {
                query.cancel(e);
            }
        }
        Err(e) => {
            // a bad header fails the query the way Trino fails it: a FAILED page
            let _ = tx.try_send(query::Item::Done(Err(e)));
        }
    }
    let base = base_url(&headers);
    match query.respond(0, &base, Duration::ZERO).await {
        Ok(served) => json_response(served),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "query vanished").into_response(),
    }
}

/// Applies the request's catalog, schema and session properties to the engine session.
fn apply_session(
    session: &sqe_core::session::SqeSession,
    client: &ClientSession,
) -> Result<(), SqeError> {
    if let Some(c) = &client.catalog {
        session.set_catalog(c);
    }
    if let Some(s) = &client.schema {
        session.set_schema(s);
    }
    for (k, v) in &client.properties {
        if !k.starts_with("datafusion.") {
            return Err(SqeError::new(
                ErrorKind::InvalidSetting,
                format!("Session property '{k}' does not exist"),
            ));
        }
        session
            .set_option(k, v)
            .map_err(|e| SqeError::new(ErrorKind::InvalidSetting, e.message().to_string()))?;
    }
    Ok(())
}

async fn next_page(
    State(service): State<Arc<TrinoService>>,
    Path((_phase, id, slug, token)): Path<(String, String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    let user = match service.authenticate(&headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let query = match service.find(&id, &slug, &user) {
        Ok(q) => q,
        Err(r) => return *r,
    };
    match query.respond(token, &base_url(&headers), MAX_WAIT).await {
        Ok(served) => json_response(served),
        Err(DeliveryError::BadToken) => (
            StatusCode::GONE,
            format!("Query {id}: token {token} is neither the current nor the next page"),
        )
            .into_response(),
        Err(DeliveryError::Gone) => {
            (StatusCode::GONE, format!("Query {id} has no more pages")).into_response()
        }
    }
}

async fn cancel(
    State(service): State<Arc<TrinoService>>,
    Path((_phase, id, slug, _token)): Path<(String, String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    let user = match service.authenticate(&headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    if let Ok(q) = service.find(&id, &slug, &user) {
        q.cancel(SqeError::new(
            ErrorKind::Cancelled,
            "Query was canceled by the client",
        ));
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn heartbeat(
    State(service): State<Arc<TrinoService>>,
    Path((_phase, id, slug, _token)): Path<(String, String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    let user = match service.authenticate(&headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    match service.find(&id, &slug, &user) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(r) => *r,
    }
}

/// Trino's uptime format: `5.00m`, `1.50h`, `12.00s`.
fn uptime(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.2}s")
    } else if s < 3600.0 {
        format!("{:.2}m", s / 60.0)
    } else if s < 86_400.0 {
        format!("{:.2}h", s / 3600.0)
    } else {
        format!("{:.2}d", s / 86_400.0)
    }
}

async fn info(State(service): State<Arc<TrinoService>>) -> Response {
    let body = json!({
        "nodeVersion": {"version": sqe_core::VERSION},
        "environment": "sqe",
        "coordinator": true,
        "starting": false,
        "uptime": uptime(service.started.elapsed()),
    });
    axum::Json(body).into_response()
}

async fn info_state(State(service): State<Arc<TrinoService>>) -> Response {
    let state = if service.engine.registry.is_draining() {
        "SHUTTING_DOWN"
    } else {
        "ACTIVE"
    };
    axum::Json(json!(state)).into_response()
}

async fn query_info(
    State(service): State<Arc<TrinoService>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let user = match service.authenticate(&headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let Some(entry) = service.engine.registry.get(&id).filter(|e| e.user == user) else {
        return (StatusCode::NOT_FOUND, format!("Query not found: {id}")).into_response();
    };
    let r = entry.record();
    let millis = |t: Option<std::time::SystemTime>| {
        t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
    };
    let mut body = json!({
        "queryId": r.id,
        "state": r.state.name(),
        "query": r.sql,
        "self": format!("{}/v1/query/{}", base_url(&headers), r.id),
        "session": {"user": r.user, "source": r.source},
        "queryStats": {
            "createTime": millis(Some(r.created)),
            "executionStartTime": millis(r.started),
            "endTime": millis(r.ended),
            "elapsedTimeMillis": r.elapsed.as_millis() as u64,
            "queuedTimeMillis": r.queued.as_millis() as u64,
            "processedRows": r.rows,
            "processedBytes": r.bytes,
        },
    });
    if let Some(e) = &r.error {
        body["failureInfo"] = error_json(e)["failureInfo"].clone();
        let (name, code, kind) = trino_code(e.kind());
        body["errorCode"] = json!({"code": code, "name": name, "type": kind});
    }
    axum::Json(body).into_response()
}

async fn kill(
    State(service): State<Arc<TrinoService>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let user = match service.authenticate(&headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let tracked = lock(&service.queries).get(&id).cloned();
    match tracked {
        Some(q) if q.user == user => {
            q.cancel(SqeError::new(ErrorKind::Cancelled, "Query killed"));
            StatusCode::NO_CONTENT.into_response()
        }
        _ => match service.engine.registry.cancel(&id, Some(&user)) {
            sqe_core::registry::CancelOutcome::Cancelling => StatusCode::NO_CONTENT.into_response(),
            _ => (StatusCode::NOT_FOUND, format!("Query not found: {id}")).into_response(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_honours_proxy_headers() {
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:8080".parse().unwrap());
        assert_eq!(base_url(&h), "http://127.0.0.1:8080");
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        h.insert(
            "x-forwarded-host",
            "sqe.example.com, proxy".parse().unwrap(),
        );
        assert_eq!(base_url(&h), "https://sqe.example.com");
    }

    #[test]
    fn uptime_reads_like_trinos() {
        assert_eq!(uptime(Duration::from_secs(12)), "12.00s");
        assert_eq!(uptime(Duration::from_secs(300)), "5.00m");
        assert_eq!(uptime(Duration::from_secs(5400)), "1.50h");
    }
}
