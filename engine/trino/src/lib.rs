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
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::Rng;
use serde_json::json;
use sqe_config::AuthMode;
use sqe_core::auth::{ANONYMOUS, Authenticator};
use sqe_core::engine::Engine;
use sqe_core::error::{ErrorKind, SqeError};
use sqe_core::session::Protocol;
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

    /// The caller's tracked query: another user's, or a wrong slug, is not found.
    fn find(&self, id: &str, slug: &str, user: &str) -> Option<Arc<TrinoQuery>> {
        lock(&self.queries)
            .get(id)
            .filter(|q| q.slug == slug && q.user == user)
            .cloned()
    }
}

/// The user a request acts as; extracting it answers 401/403 for the handler. With
/// `auth.mode = "none"` that is `X-Trino-User`; otherwise the credentials' user, which
/// `X-Trino-User` may repeat but not change.
struct Caller(String);

impl FromRequestParts<Arc<TrinoService>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<TrinoService>,
    ) -> Result<Self, Response> {
        let headers = &parts.headers;
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let claimed = headers
            .get(headers::USER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|u| !u.is_empty());
        if service.auth.mode() == AuthMode::None && authorization.is_none() {
            return claimed
                .map(|u| Caller(u.to_string()))
                .ok_or_else(|| unauthorized("Missing X-Trino-User (or Authorization) header"));
        }
        let principal = service
            .auth
            .authenticate(authorization)
            .map_err(|e| unauthorized(e.message()))?;
        let user = if principal.user == ANONYMOUS {
            claimed.unwrap_or(ANONYMOUS).to_string()
        } else {
            principal.user
        };
        match claimed {
            Some(c) if c != user => Err((
                StatusCode::FORBIDDEN,
                format!("Access Denied: User {user} cannot impersonate user {c}"),
            )
                .into_response()),
            _ => Ok(Caller(user)),
        }
    }
}

/// A `nextUri` request: `/v1/statement/{phase}/{id}/{slug}/{token}` of a query the caller
/// owns. Extracting it answers 401/403, and 404 for a query that is not (or no longer) tracked.
struct PageRequest {
    query: Arc<TrinoQuery>,
    token: u64,
}

impl FromRequestParts<Arc<TrinoService>> for PageRequest {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<TrinoService>,
    ) -> Result<Self, Response> {
        let Caller(user) = Caller::from_request_parts(parts, service).await?;
        let Path((_phase, id, slug, token)) =
            Path::<(String, String, String, u64)>::from_request_parts(parts, service)
                .await
                .map_err(IntoResponse::into_response)?;
        match service.find(&id, &slug, &user) {
            Some(query) => Ok(Self { query, token }),
            None => Err(not_found(&id)),
        }
    }
}

fn not_found(id: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("Query not found: {id}")).into_response()
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
    Caller(user): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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

/// Applies the request's catalog, schema, time zone and session properties to the engine
/// session.
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
    // Trino's session zone is the client's (the JDBC driver always sends the JVM's), else
    // the server's: the engine's default, UTC
    if let Some(zone) = &client.time_zone {
        session.set_time_zone(zone)?;
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

async fn next_page(page: PageRequest, headers: HeaderMap) -> Response {
    let PageRequest { query, token } = page;
    match query.respond(token, &base_url(&headers), MAX_WAIT).await {
        Ok(served) => json_response(served),
        Err(DeliveryError::BadToken) => (
            StatusCode::GONE,
            format!(
                "Query {}: token {token} is neither the current nor the next page",
                query.id
            ),
        )
            .into_response(),
        Err(DeliveryError::Gone) => (
            StatusCode::GONE,
            format!("Query {} has no more pages", query.id),
        )
            .into_response(),
    }
}

/// `DELETE nextUri`: Trino answers 204 whether or not the query was still running.
async fn cancel(page: Result<PageRequest, Response>) -> Response {
    match page {
        Ok(page) => {
            page.query.cancel(SqeError::new(
                ErrorKind::Cancelled,
                "Query was canceled by the client",
            ));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) if r.status() == StatusCode::NOT_FOUND => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r,
    }
}

async fn heartbeat(_page: PageRequest) -> StatusCode {
    StatusCode::OK
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
        "nodeVersion": {"version": sqe_core::version()},
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
    Caller(user): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(entry) = service.engine.registry.get(&id).filter(|e| e.user == user) else {
        return not_found(&id);
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
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Response {
    let tracked = lock(&service.queries).get(&id).cloned();
    match tracked {
        Some(q) if q.user == user => {
            q.cancel(SqeError::new(ErrorKind::Cancelled, "Query killed"));
            StatusCode::NO_CONTENT.into_response()
        }
        _ => match service.engine.registry.cancel(&id, Some(&user)) {
            sqe_core::registry::CancelOutcome::Cancelling => StatusCode::NO_CONTENT.into_response(),
            _ => not_found(&id),
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
