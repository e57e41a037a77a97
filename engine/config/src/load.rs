//! Loading: file + `SQE_<SECTION>__<KEY>` environment overrides → a validated [`SqeConfig`].

use std::collections::BTreeMap;
use std::path::Path;

use toml::{Table, Value};

use crate::error::{ConfigError, Origin, Problem};
use crate::schema::SqeConfig;

/// Every override variable starts with this; `__` separates the section from the key.
pub const ENV_PREFIX: &str = "SQE_";

/// The environment variable that overrides `section.key`, e.g. `SQE_AUTH__TOKEN_TTL_SECS`.
pub fn env_var_name(section: &str, key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}__{}",
        section.to_ascii_uppercase(),
        key.to_ascii_uppercase()
    )
}

/// Loads the config from an optional file and the given environment (pass `std::env::vars()`).
/// Variables that start with `SQE_` and contain `__` are overrides; others are ignored.
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<SqeConfig, ConfigError> {
    let (text, origin) = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?;
            (text, Origin::File(p.display().to_string()))
        }
        None => (String::new(), Origin::Default),
    };
    load_from_str(&text, origin, env)
}

/// Like [`load`], with the file's text given.
pub fn load_from_str(
    text: &str,
    file: Origin,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<SqeConfig, ConfigError> {
    let mut table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            origin: file.clone(),
            message: e.to_string(),
        })?;
    // key path ("auth.mode") -> variable that set it
    let mut from_env: BTreeMap<String, String> = BTreeMap::new();
    let mut raw_env: BTreeMap<String, String> = BTreeMap::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        if section.is_empty() || key.is_empty() {
            return Err(ConfigError::Invalid(vec![Problem {
                key: var.clone(),
                message: "must be SQE_<SECTION>__<KEY>".into(),
                origin: Some(Origin::Env(var)),
            }]));
        }
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(section_table) = entry else {
            return Err(ConfigError::Invalid(vec![Problem {
                key: section.clone(),
                message: "is not a section".into(),
                origin: Some(Origin::Env(var)),
            }]));
        };
        section_table.insert(key.clone(), env_value(&value));
        let path = format!("{section}.{key}");
        from_env.insert(path.clone(), var);
        raw_env.insert(path, value);
    }

    // An env value that parsed as a TOML literal may be meant as a string (a secret of digits):
    // when deserializing fails on such a key, retry it as the raw string once.
    let mut retried = BTreeMap::new();
    loop {
        match deserialize(&table) {
            Ok(config) => {
                return config
                    .validated()
                    .map_err(|e| attribute(e, &from_env, &file));
            }
            Err((path, message)) => {
                if let Some(raw) = raw_env.get(&path)
                    && !retried.contains_key(&path)
                    && !matches!(env_value(raw), Value::String(_))
                {
                    retried.insert(path.clone(), ());
                    let (section, key) = path.split_once('.').unwrap_or((&path, ""));
                    if let Some(Value::Table(t)) = table.get_mut(section) {
                        t.insert(key.to_string(), Value::String(raw.clone()));
                    }
                    continue;
                }
                let origin = origin_of(&path, &from_env, &file);
                return Err(ConfigError::Invalid(vec![Problem {
                    key: path,
                    message,
                    origin: Some(origin),
                }]));
            }
        }
    }
}

/// Parses an environment value as a TOML literal (`true`, `42`, `["a"]`), else takes it as text.
fn env_value(raw: &str) -> Value {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Value::String(raw.to_string());
    }
    match format!("v = {trimmed}").parse::<Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| Value::String(raw.to_string())),
        Err(_) => Value::String(raw.to_string()),
    }
}

/// Deserializes, returning the failing key path and message on error.
fn deserialize(table: &Table) -> Result<SqeConfig, (String, String)> {
    let value = Value::Table(table.clone());
    let result: Result<SqeConfig, _> = serde_path_to_error::deserialize(value);
    result.map_err(|e| {
        let mut path = e.path().to_string();
        let message = e.inner().to_string();
        // "unknown field `x`" is reported at the parent; name the key itself.
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            let already_named = path == field || path.ends_with(&format!(".{field}"));
            if !already_named {
                path = if path == "." || path.is_empty() {
                    field.to_string()
                } else {
                    format!("{path}.{field}")
                };
            }
        }
        if path == "." {
            path = String::new();
        }
        (path, message)
    })
}

fn origin_of(path: &str, from_env: &BTreeMap<String, String>, file: &Origin) -> Origin {
    // "auth.users[0].name" belongs to the value of "auth.users"
    // an unknown section set from the environment: "catlog" came from SQE_CATLOG__URI
    if let Some((_, var)) = from_env
        .iter()
        .find(|(key, _)| key.starts_with(&format!("{path}.")))
    {
        return Origin::Env(var.clone());
    }
    let mut candidate = path.to_string();
    loop {
        if let Some(var) = from_env.get(&candidate) {
            return Origin::Env(var.clone());
        }
        match candidate.rfind(['.', '[']) {
            Some(i) => candidate.truncate(i),
            None => return file.clone(),
        }
    }
}

fn attribute(err: ConfigError, from_env: &BTreeMap<String, String>, file: &Origin) -> ConfigError {
    match err {
        ConfigError::Invalid(problems) => ConfigError::Invalid(
            problems
                .into_iter()
                .map(|mut p| {
                    p.origin = Some(origin_of(&p.key, from_env, file));
                    p
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{AuthMode, CatalogType};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file() -> Origin {
        Origin::File("sqe.toml".into())
    }

    #[test]
    fn empty_config_is_the_loopback_default() {
        let c = load_from_str("", file(), env(&[])).unwrap();
        assert_eq!(c, SqeConfig::default());
        assert_eq!(c.coordinator.flight_sql_addr, "127.0.0.1:50051");
        assert_eq!(c.auth.mode, AuthMode::None);
    }

    #[test]
    fn env_overrides_the_file() {
        let text = "[catalog]\nmetadata_cache_ttl_secs = 5\n";
        let c = load_from_str(
            text,
            file(),
            env(&[
                ("SQE_CATALOG__METADATA_CACHE_TTL_SECS", "7"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.catalog.metadata_cache_ttl_secs, 7);
    }

    #[test]
    fn env_secret_of_digits_stays_a_string() {
        let c = load_from_str(
            "",
            file(),
            env(&[("SQE_STORAGE__S3_SECRET_ACCESS_KEY", "123456")]),
        )
        .unwrap();
        assert_eq!(
            c.storage.s3_secret_access_key.as_ref().map(|s| s.expose()),
            Some("123456")
        );
        assert_eq!(format!("{:?}", c.storage.s3_secret_access_key), "Some(***)");
    }

    #[test]
    fn unknown_key_in_file_is_named() {
        let err = load_from_str("[auth]\nmood = \"none\"\n", file(), env(&[])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("auth.mood (from sqe.toml)"), "{text}");
        assert!(text.contains("sqe.toml"), "{text}");
    }

    #[test]
    fn unknown_section_from_env_names_the_variable() {
        let err = load_from_str("", file(), env(&[("SQE_CATLOG__URI", "x")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("catlog (from environment variable SQE_CATLOG__URI)"),
            "{text}"
        );
    }

    #[test]
    fn wrong_type_names_key_and_variable() {
        let err =
            load_from_str("", file(), env(&[("SQE_COORDINATOR__BATCH_SIZE", "lots")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("coordinator.batch_size"), "{text}");
        assert!(text.contains("SQE_COORDINATOR__BATCH_SIZE"), "{text}");
    }

    #[test]
    fn bad_value_is_named() {
        let err = load_from_str(
            "[coordinator]\nflight_sql_addr = \"localhost\"\n",
            file(),
            env(&[]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("coordinator.flight_sql_addr"),
            "{err}"
        );
    }

    #[test]
    fn a_url_that_is_not_http_is_named() {
        for (var, key) in [
            (
                "SQE_COORDINATOR__ADVERTISE_URL",
                "coordinator.advertise_url",
            ),
            ("SQE_WORKER__ADVERTISE_URL", "worker.advertise_url"),
            ("SQE_WORKER__COORDINATOR_URL", "worker.coordinator_url"),
        ] {
            let err = load_from_str("", file(), env(&[(var, "10.0.0.5:8080")])).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(key), "{var}: {text}");
            assert!(text.contains("is not an http(s) URL"), "{var}: {text}");
        }
        let c = load_from_str(
            "",
            file(),
            env(&[("SQE_COORDINATOR__ADVERTISE_URL", "http://10.0.0.5:8080")]),
        )
        .unwrap();
        assert_eq!(
            c.coordinator.advertise_url.as_deref(),
            Some("http://10.0.0.5:8080")
        );
    }

    #[test]
    fn no_auth_on_a_public_address_is_refused() {
        let err = load_from_str(
            "[coordinator]\nflight_sql_addr = \"0.0.0.0:50051\"\n",
            file(),
            env(&[]),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("auth.mode"), "{text}");
        assert!(text.contains("loopback"), "{text}");
    }

    #[test]
    fn plain_text_password_is_refused() {
        let text = "[auth]\nmode = \"password\"\n[[auth.users]]\nname = \"ann\"\npassword_hash = \"hunter2\"\n";
        let err = load_from_str(text, file(), env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("auth.users[0].password_hash"),
            "{err}"
        );
    }

    #[test]
    fn rest_catalog_needs_a_uri() {
        let err = load_from_str("[catalog]\ntype = \"rest\"\n", file(), env(&[])).unwrap_err();
        assert!(err.to_string().contains("catalog.uri"), "{err}");
        let c = load_from_str(
            "[catalog]\ntype = \"rest\"\nuri = \"http://127.0.0.1:8181\"\n[catalog.headers]\nX-Tenant = \"a\"\n",
            file(),
            env(&[("SQE_CATALOG__CREDENTIAL", "id:secret")]),
        )
        .unwrap();
        assert_eq!(c.catalog.kind, CatalogType::Rest);
        assert_eq!(
            c.catalog.headers.get("X-Tenant").map(String::as_str),
            Some("a")
        );
    }

    #[test]
    fn syntax_error_names_the_file() {
        let err = load_from_str("[auth\n", file(), env(&[])).unwrap_err();
        assert!(
            err.to_string().starts_with("sqe.toml is not valid TOML"),
            "{err}"
        );
    }

    #[test]
    fn rendering_round_trips() {
        let mut c = SqeConfig::default();
        c.catalog.kind = CatalogType::Rest;
        c.catalog.uri = Some("https://polaris:8181/api/catalog".into());
        let text = c.to_toml().unwrap();
        let back = load_from_str(&text, file(), env(&[])).unwrap();
        assert_eq!(back, c);
    }
}
