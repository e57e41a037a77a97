//! Who is calling: password users (argon2 hashes from config or a users file) and the bearer
//! tokens a Flight SQL Handshake hands out.
//!
//! A bearer token is signed, not remembered: `base64(user, expiry, nonce) . base64(HMAC-SHA256)`.
//! Every coordinator that holds the same key accepts it, so a client keeps working when a
//! rolling upgrade moves its connection to a new coordinator pod. The key is derived from the
//! cluster's internal credential (`worker.internal_token`, which the operator generates and
//! gives every pod); without one (a single local process) it is random per process. A token
//! names its session; it lapses at its expiry (`auth.token_ttl_secs`) and when its user is no
//! longer configured.
//!
//! Every call but the Handshake carries `authorization: Bearer <token>` (or, for clients that
//! never handshake, `Basic`); [`Authenticator::authenticate`] turns it into a [`Principal`].
//! With `auth.mode = "none"` (allowed only on loopback) every caller is `anonymous`, but a
//! Handshake still issues a token so the caller gets a session of its own.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use rand::RngCore;
use sqe_config::{AuthMode, SqeConfig, check_password_hash};

#[cfg(test)]
use crate::error::ErrorKind;
use crate::error::{Result, SqeError};

pub const ANONYMOUS: &str = "anonymous";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    /// The bearer token the call carried, which also names its session.
    pub token: Option<String>,
}

type HmacSha256 = Hmac<Sha256>;

/// What the signing key of bearer tokens is derived for (domain separation from the internal
/// credential it comes from).
const TOKEN_KEY_CONTEXT: &[u8] = b"sqe.auth.bearer-token.v1";

pub struct Authenticator {
    mode: AuthMode,
    users: HashMap<String, String>,
    token_ttl: Duration,
    signing_key: [u8; 32],
    /// Recently verified Basic credentials (keyed by a keyed hash, never the password).
    verified: Mutex<HashMap<u64, Instant>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Authenticator {
    pub fn from_config(config: &SqeConfig) -> Result<Self> {
        let mut users: HashMap<String, String> = config
            .auth
            .users
            .iter()
            .map(|u| (u.name.clone(), u.password_hash.clone()))
            .collect();
        if let Some(path) = &config.auth.users_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                SqeError::config(format!("auth.users_file {path}: cannot read it: {e}"))
            })?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (name, hash) = line.split_once(':').ok_or_else(|| {
                    SqeError::config(format!(
                        "auth.users_file {path} line {}: expected `name:$argon2id$…`",
                        n + 1
                    ))
                })?;
                check_password_hash(hash).map_err(|why| {
                    SqeError::config(format!(
                        "auth.users_file {path} line {} (user {name}): the hash {why}",
                        n + 1
                    ))
                })?;
                users.insert(name.to_string(), hash.to_string());
            }
        }
        for (name, hash) in &users {
            PasswordHash::new(hash).map_err(|e| {
                SqeError::config(format!(
                    "the password hash of user {name} does not parse: {e}"
                ))
            })?;
        }
        Ok(Self {
            mode: config.auth.mode,
            users,
            token_ttl: Duration::from_secs(config.auth.token_ttl_secs),
            signing_key: signing_key(config.worker.internal_token.as_ref().map(|t| t.expose())),
            verified: Mutex::new(HashMap::new()),
            hasher: std::collections::hash_map::RandomState::new(),
        })
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Checks a user's password (slow by design: argon2).
    pub fn verify_password(&self, user: &str, password: &str) -> Result<()> {
        let bad = || SqeError::unauthenticated("invalid user name or password");
        if self.mode == AuthMode::None {
            return Ok(());
        }
        let hash = self.users.get(user).ok_or_else(bad)?;
        let parsed = PasswordHash::new(hash).map_err(|_| bad())?;
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .map_err(|_| bad())
    }

    /// Verifies a password and issues a bearer token for the user.
    pub fn login(&self, user: &str, password: &str) -> Result<String> {
        self.verify_password(user, password)?;
        let user = if self.mode == AuthMode::None && user.is_empty() {
            ANONYMOUS
        } else {
            user
        };
        Ok(self.issue(user))
    }

    fn issue(&self, user: &str) -> String {
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        let expires = unix_now().saturating_add(self.token_ttl.as_secs());
        let payload = format!("{user}\n{expires}\n{}", URL_SAFE_NO_PAD.encode(nonce));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length: new_from_slice cannot fail
        HmacSha256::new_from_slice(&self.signing_key).unwrap_or_else(|_| unreachable!())
    }

    /// The user a bearer token was issued to, if it is ours, unexpired, and its user still
    /// exists.
    fn token_user(&self, token: &str) -> Option<String> {
        let (payload, tag) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&tag).ok()?;
        let payload = String::from_utf8(payload).ok()?;
        let mut parts = payload.split('\n');
        let user = parts.next()?;
        let expires: u64 = parts.next()?.parse().ok()?;
        if expires <= unix_now() {
            return None;
        }
        let known = self.mode == AuthMode::None || self.users.contains_key(user);
        known.then(|| user.to_string())
    }

    /// A handle that carries `data` for `user`, signed with the token key: any coordinator of
    /// the cluster can open it again (a prepared statement whose connection moved to another
    /// coordinator during a rolling upgrade still executes). A random nonce keeps two handles
    /// of the same data apart.
    pub fn seal(&self, user: &str, data: &[u8]) -> Vec<u8> {
        let mut body = [0u8; 16].to_vec();
        rand::rng().fill_bytes(&mut body);
        body.extend_from_slice(data);
        let mut mac = self.mac();
        mac.update(b"sealed\n");
        mac.update(user.as_bytes());
        mac.update(b"\n");
        mac.update(&body);
        format!(
            "sqe1.{}.{}",
            URL_SAFE_NO_PAD.encode(&body),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
        .into_bytes()
    }

    /// The data of a handle from [`Authenticator::seal`], if it was sealed for `user` with this
    /// cluster's key.
    pub fn unseal(&self, user: &str, handle: &[u8]) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(handle).ok()?.strip_prefix("sqe1.")?;
        let (body, tag) = text.split_once('.')?;
        let body = URL_SAFE_NO_PAD.decode(body).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut mac = self.mac();
        mac.update(b"sealed\n");
        mac.update(user.as_bytes());
        mac.update(b"\n");
        mac.update(&body);
        mac.verify_slice(&tag).ok()?;
        body.get(16..).map(<[u8]>::to_vec)
    }

    /// Authenticates a call from its `authorization` header value, if any.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal> {
        match authorization.map(str::trim) {
            Some(h) if starts_with_ignore_case(h, "bearer ") => {
                let token = h[7..].trim();
                match self.token_user(token) {
                    Some(user) => Ok(Principal {
                        user,
                        token: Some(token.to_string()),
                    }),
                    None => Err(SqeError::unauthenticated(
                        "the bearer token is unknown or expired; authenticate again",
                    )),
                }
            }
            Some(h) if starts_with_ignore_case(h, "basic ") => {
                let (user, password) = decode_basic(&h[6..])?;
                self.verify_basic_cached(&user, &password)?;
                Ok(Principal { user, token: None })
            }
            Some(_) => Err(SqeError::unauthenticated(
                "unsupported authorization scheme; use Basic or Bearer",
            )),
            None if self.mode == AuthMode::None => Ok(Principal {
                user: ANONYMOUS.into(),
                token: None,
            }),
            None => Err(SqeError::unauthenticated(
                "authentication required: send Basic credentials (Handshake) or a Bearer token",
            )),
        }
    }

    fn verify_basic_cached(&self, user: &str, password: &str) -> Result<()> {
        let key = self.hasher.hash_one((user, password));
        let now = Instant::now();
        if let Ok(v) = self.verified.lock()
            && v.get(&key).is_some_and(|t| *t > now)
        {
            return Ok(());
        }
        self.verify_password(user, password)?;
        if let Ok(mut v) = self.verified.lock() {
            v.retain(|_, t| *t > now);
            v.insert(key, now + Duration::from_secs(60));
        }
        Ok(())
    }
}

/// The key bearer tokens are signed with: derived from the cluster's internal credential, so
/// every coordinator of a cluster shares it; random for a process without one.
fn signing_key(internal_token: Option<&str>) -> [u8; 32] {
    match internal_token {
        Some(secret) => {
            let mut mac =
                HmacSha256::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
            mac.update(TOKEN_KEY_CONTEXT);
            mac.finalize().into_bytes().into()
        }
        None => {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            key
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Splits the payload of a Basic header into user and password.
pub fn decode_basic(encoded: &str) -> Result<(String, String)> {
    let bad = || SqeError::unauthenticated("malformed Basic authorization header");
    // padded (RFC 7617) or not (the Go Flight client sends raw base64)
    let trimmed = encoded.trim();
    let bytes = STANDARD
        .decode(trimmed)
        .or_else(|_| STANDARD_NO_PAD.decode(trimmed.trim_end_matches('=')))
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (user, password) = text.split_once(':').ok_or_else(bad)?;
    Ok((user.to_string(), password.to_string()))
}

/// Makes an argon2id PHC hash for `sqe-server hash-password`.
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| SqeError::internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| SqeError::internal(format!("hashing: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqe_config::UserEntry;

    fn auth_with(user: &str, password: &str) -> Authenticator {
        let mut c = SqeConfig::default();
        c.auth.mode = AuthMode::Password;
        c.auth.users = vec![UserEntry {
            name: user.into(),
            password_hash: hash_password(password).unwrap(),
        }];
        Authenticator::from_config(&c).unwrap()
    }

    #[test]
    fn login_issues_a_token_that_authenticates() {
        let a = auth_with("ann", "s3cret");
        let token = a.login("ann", "s3cret").unwrap();
        let p = a.authenticate(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(p.user, "ann");
        assert!(matches!(
            a.login("ann", "wrong"),
            Err(e) if e.kind() == ErrorKind::Unauthenticated
        ));
        assert!(matches!(
            a.login("bob", "s3cret"),
            Err(e) if e.kind() == ErrorKind::Unauthenticated
        ));
        assert!(matches!(
            a.authenticate(Some("Bearer nope")),
            Err(e) if e.kind() == ErrorKind::Unauthenticated
        ));
        assert!(matches!(
            a.authenticate(None),
            Err(e) if e.kind() == ErrorKind::Unauthenticated
        ));
    }

    #[test]
    fn basic_on_each_call_works() {
        let a = auth_with("ann", "s3cret");
        let header = format!("Basic {}", STANDARD.encode("ann:s3cret"));
        assert_eq!(a.authenticate(Some(&header)).unwrap().user, "ann");
        let unpadded = format!("Basic {}", STANDARD_NO_PAD.encode("ann:s3cret"));
        assert_eq!(a.authenticate(Some(&unpadded)).unwrap().user, "ann");
        let wrong = format!("Basic {}", STANDARD.encode("ann:nope"));
        assert!(a.authenticate(Some(&wrong)).is_err());
    }

    fn cluster_auth(users: &[&str], internal_token: Option<&str>, ttl_secs: u64) -> Authenticator {
        let mut c = SqeConfig::default();
        c.auth.mode = AuthMode::Password;
        c.auth.token_ttl_secs = ttl_secs;
        c.auth.users = users
            .iter()
            .map(|u| UserEntry {
                name: (*u).into(),
                password_hash: hash_password("pw").unwrap(),
            })
            .collect();
        c.worker.internal_token = internal_token.map(sqe_config::Secret::new);
        Authenticator::from_config(&c).unwrap()
    }

    #[test]
    fn tokens_are_accepted_by_every_coordinator_of_the_cluster_and_no_other() {
        let old = cluster_auth(&["ann"], Some("cluster-secret"), 3600);
        let token = old.login("ann", "pw").unwrap();
        let bearer = format!("Bearer {token}");
        // a new coordinator pod of the same cluster (same internal credential)
        let new = cluster_auth(&["ann"], Some("cluster-secret"), 3600);
        assert_eq!(new.authenticate(Some(&bearer)).unwrap().user, "ann");
        assert_eq!(
            new.authenticate(Some(&bearer)).unwrap().token.as_deref(),
            Some(token.as_str())
        );
        // two logins are two sessions
        assert_ne!(old.login("ann", "pw").unwrap(), token);

        let cases: Vec<(&str, Authenticator, String)> = vec![
            (
                "another cluster",
                cluster_auth(&["ann"], Some("other-secret"), 3600),
                bearer.clone(),
            ),
            (
                "a process without a credential",
                cluster_auth(&["ann"], None, 3600),
                bearer.clone(),
            ),
            (
                "a user no longer configured",
                cluster_auth(&["bob"], Some("cluster-secret"), 3600),
                bearer.clone(),
            ),
            (
                "a tampered payload",
                cluster_auth(&["ann", "bob"], Some("cluster-secret"), 3600),
                {
                    let (payload, tag) = token.split_once('.').unwrap();
                    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
                    let forged = URL_SAFE_NO_PAD.encode(text.replacen("ann", "bob", 1));
                    assert_ne!(forged, payload);
                    format!("Bearer {forged}.{tag}")
                },
            ),
            (
                "an expired token",
                cluster_auth(&["ann"], Some("cluster-secret"), 3600),
                {
                    let short = cluster_auth(&["ann"], Some("cluster-secret"), 0);
                    format!("Bearer {}", short.login("ann", "pw").unwrap())
                },
            ),
            (
                "garbage",
                cluster_auth(&["ann"], Some("cluster-secret"), 3600),
                "Bearer a.b.c".into(),
            ),
        ];
        // sealed handles: opened by any coordinator of the cluster, for their user only
        let handle = old.seal("ann", b"SELECT 1");
        assert_ne!(handle, old.seal("ann", b"SELECT 1"));
        assert_eq!(
            new.unseal("ann", &handle).as_deref(),
            Some(&b"SELECT 1"[..])
        );
        assert_eq!(new.unseal("bob", &handle), None);
        assert_eq!(
            cluster_auth(&["ann"], Some("other-secret"), 3600).unseal("ann", &handle),
            None
        );
        assert_eq!(new.unseal("ann", b"8c1e0d6e-uuid"), None);

        for (what, auth, header) in cases {
            assert!(
                matches!(auth.authenticate(Some(&header)), Err(e) if e.kind() == ErrorKind::Unauthenticated),
                "{what}: accepted"
            );
        }
    }
}
