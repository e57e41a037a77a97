//! Who is calling: password users (argon2 hashes from config or a users file) and the bearer
//! tokens a Flight SQL Handshake hands out.
//!
//! Every call but the Handshake carries `authorization: Bearer <token>` (or, for clients that
//! never handshake, `Basic`); [`Authenticator::authenticate`] turns it into a [`Principal`].
//! With `auth.mode = "none"` (allowed only on loopback) every caller is `anonymous`, but a
//! Handshake still issues a token so the caller gets a session of its own.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

struct Issued {
    user: String,
    expires: Instant,
}

pub struct Authenticator {
    mode: AuthMode,
    users: HashMap<String, String>,
    token_ttl: Duration,
    tokens: Mutex<HashMap<String, Issued>>,
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
            tokens: Mutex::new(HashMap::new()),
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
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        if let Ok(mut tokens) = self.tokens.lock() {
            let now = Instant::now();
            tokens.retain(|_, t| t.expires > now);
            tokens.insert(
                token.clone(),
                Issued {
                    user: user.to_string(),
                    expires: now + self.token_ttl,
                },
            );
        }
        token
    }

    /// Authenticates a call from its `authorization` header value, if any.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal> {
        match authorization.map(str::trim) {
            Some(h) if starts_with_ignore_case(h, "bearer ") => {
                let token = h[7..].trim();
                let user = self.tokens.lock().ok().and_then(|t| {
                    t.get(token)
                        .filter(|i| i.expires > Instant::now())
                        .map(|i| i.user.clone())
                });
                match user {
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
}
