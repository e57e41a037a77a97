//! The client session a Trino client carries in `X-Trino-*` request headers, and the session
//! changes SQE sends back in response headers (`X-Trino-Set-Schema`, `X-Trino-Added-Prepare`, ...).
//!
//! Trino keeps no session on the server: every request repeats the user, catalog, schema,
//! session properties and prepared statements, so this is a pure function of the headers.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sqe_core::error::{ErrorKind, Result, SqeError};

use crate::types::TypeOptions;

pub const USER: &str = "x-trino-user";
pub const SOURCE: &str = "x-trino-source";
pub const CATALOG: &str = "x-trino-catalog";
pub const SCHEMA: &str = "x-trino-schema";
pub const TIME_ZONE: &str = "x-trino-time-zone";
pub const SESSION: &str = "x-trino-session";
pub const PREPARED_STATEMENT: &str = "x-trino-prepared-statement";
pub const CLIENT_CAPABILITIES: &str = "x-trino-client-capabilities";
pub const TRANSACTION_ID: &str = "x-trino-transaction-id";

/// Characters left as they are in header values; everything else is percent-encoded, as the
/// Trino clients do (`URLEncoder`, `urllib.parse.quote_plus`).
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'*');

/// What one request says about its session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientSession {
    pub user: Option<String>,
    pub source: Option<String>,
    pub catalog: Option<String>,
    pub schema: Option<String>,
    pub time_zone: Option<String>,
    /// `X-Trino-Session` properties, in order of name.
    pub properties: BTreeMap<String, String>,
    /// Prepared statements by name (`X-Trino-Prepared-Statement`).
    pub prepared: BTreeMap<String, String>,
    pub types: TypeOptions,
    pub transaction_id: Option<String>,
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

fn one(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn decode(text: &str) -> Result<String> {
    // `+` is a space in form encoding (the Python client's quote_plus)
    let text = text.replace('+', " ");
    percent_decode_str(&text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| SqeError::semantic(format!("header value {text:?} is not UTF-8")))
}

pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, ENCODE).to_string()
}

/// `k=v,k2=v2` pairs from every occurrence of a header (one header with commas, as the Python
/// client sends them, or one header per pair, as the JDBC driver does).
fn pairs(headers: &HeaderMap, name: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for value in header_values(headers, name) {
        for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                SqeError::new(
                    ErrorKind::InvalidSetting,
                    format!("{name}: expected name=value, got {pair:?}"),
                )
            })?;
            out.insert(decode(k.trim())?, decode(v.trim())?);
        }
    }
    Ok(out)
}

impl ClientSession {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self> {
        let capabilities = header_values(headers, CLIENT_CAPABILITIES).join(",");
        let parametric_datetime = capabilities
            .split(',')
            .any(|c| c.trim().eq_ignore_ascii_case("PARAMETRIC_DATETIME"));
        Ok(Self {
            user: one(headers, USER),
            source: one(headers, SOURCE),
            catalog: one(headers, CATALOG),
            schema: one(headers, SCHEMA),
            time_zone: one(headers, TIME_ZONE),
            properties: pairs(headers, SESSION)?,
            prepared: pairs(headers, PREPARED_STATEMENT)?,
            types: TypeOptions {
                parametric_datetime,
            },
            transaction_id: one(headers, TRANSACTION_ID)
                .filter(|t| !t.eq_ignore_ascii_case("NONE")),
        })
    }
}

/// Session changes a statement made, sent back as response headers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionUpdate {
    pub set_catalog: Option<String>,
    pub set_schema: Option<String>,
    pub set_session: Vec<(String, String)>,
    pub clear_session: Vec<String>,
    pub added_prepare: Vec<(String, String)>,
    pub deallocated_prepare: Vec<String>,
    pub started_transaction: Option<String>,
    pub clear_transaction: bool,
}

impl SessionUpdate {
    /// The response headers, as Trino names and encodes them.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        if let Some(c) = &self.set_catalog {
            out.push(("x-trino-set-catalog", c.clone()));
        }
        if let Some(s) = &self.set_schema {
            out.push(("x-trino-set-schema", s.clone()));
        }
        for (k, v) in &self.set_session {
            out.push(("x-trino-set-session", format!("{k}={}", encode(v))));
        }
        for k in &self.clear_session {
            out.push(("x-trino-clear-session", k.clone()));
        }
        for (name, sql) in &self.added_prepare {
            out.push((
                "x-trino-added-prepare",
                format!("{}={}", encode(name), encode(sql)),
            ));
        }
        for name in &self.deallocated_prepare {
            out.push(("x-trino-deallocated-prepare", encode(name)));
        }
        if let Some(t) = &self.started_transaction {
            out.push(("x-trino-started-transaction-id", t.clone()));
        }
        if self.clear_transaction {
            out.push(("x-trino-clear-transaction-id", "true".into()));
        }
        out.into_iter()
            .filter_map(|(k, v)| {
                Some((HeaderName::from_static(k), HeaderValue::from_str(&v).ok()?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn session_properties_come_in_one_header_or_many() {
        let python = headers(&[("x-trino-session", "a=1,b=x%20y")]);
        let jdbc = headers(&[("x-trino-session", "a=1"), ("x-trino-session", "b=x+y")]);
        for h in [python, jdbc] {
            let s = ClientSession::from_headers(&h).unwrap();
            assert_eq!(
                s.properties.into_iter().collect::<Vec<_>>(),
                [("a".into(), "1".into()), ("b".into(), "x y".into())]
            );
        }
    }

    #[test]
    fn prepared_statements_are_url_decoded() {
        let h = headers(&[(
            "x-trino-prepared-statement",
            "st1=SELECT+%2A+FROM+t+WHERE+a+%3D+%3F,st2=SELECT+1",
        )]);
        let s = ClientSession::from_headers(&h).unwrap();
        assert_eq!(s.prepared["st1"], "SELECT * FROM t WHERE a = ?");
        assert_eq!(s.prepared["st2"], "SELECT 1");
    }

    #[test]
    fn user_catalog_schema_and_capabilities() {
        let h = headers(&[
            ("x-trino-user", "ann"),
            ("x-trino-catalog", "sqe"),
            ("x-trino-schema", "tpch"),
            ("x-trino-transaction-id", "NONE"),
            (
                "x-trino-client-capabilities",
                "NUMBER,PARAMETRIC_DATETIME,SESSION_AUTHORIZATION",
            ),
        ]);
        let s = ClientSession::from_headers(&h).unwrap();
        assert_eq!(s.user.as_deref(), Some("ann"));
        assert_eq!(
            (s.catalog.as_deref(), s.schema.as_deref()),
            (Some("sqe"), Some("tpch"))
        );
        assert!(s.types.parametric_datetime);
        assert_eq!(s.transaction_id, None);
        assert!(
            !ClientSession::from_headers(&HeaderMap::new())
                .unwrap()
                .types
                .parametric_datetime
        );
    }

    #[test]
    fn a_malformed_session_header_names_the_header() {
        let h = headers(&[("x-trino-session", "novalue")]);
        let e = ClientSession::from_headers(&h).unwrap_err();
        assert!(e.to_string().contains("x-trino-session"), "{e}");
    }

    #[test]
    fn updates_become_trinos_response_headers() {
        let u = SessionUpdate {
            set_schema: Some("tpch".into()),
            added_prepare: vec![("st1".into(), "SELECT ?".into())],
            set_session: vec![("a".into(), "x y".into())],
            ..Default::default()
        };
        let h: Vec<(String, String)> = u
            .headers()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            h,
            [
                ("x-trino-set-schema".into(), "tpch".into()),
                ("x-trino-set-session".into(), "a=x%20y".into()),
                ("x-trino-added-prepare".into(), "st1=SELECT%20%3F".into()),
            ]
        );
    }
}
