//! Secret values, fetched only when a child is about to start. The caller
//! hands in how to read the environment and files, so this stays testable
//! and the values never pass through anything that could log them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::model::{Agent, Bundle, Connection, SecretSource, ValueSource};

/// Why one of a Connection's secrets (or config values) could not be
/// resolved. Nothing in it holds a value: only names of things the operator
/// can go and fix.
#[derive(Debug, thiserror::Error)]
#[error("{owner}: {what} {key}")]
struct SecretError {
    /// `Connection/<name>` or `Agent/<name>`.
    owner: String,
    what: &'static str,
    key: String,
    #[source]
    cause: Cause,
}

#[derive(Debug, thiserror::Error)]
enum Cause {
    #[error("environment variable {0} is not set")]
    EnvUnset(String),
    #[error("Secret/{secret} has no key {key}")]
    NoKey { secret: String, key: String },
    #[error("Secret/{secret} key {key}")]
    InSecret {
        secret: String,
        key: String,
        #[source]
        cause: Box<Cause>,
    },
    #[error("cannot read {}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The value of every `spec.secrets` entry of `connection`, or every reason
/// some could not be had (joined by "; ").
pub fn resolve_secrets(
    bundle: &Bundle,
    connection: &Connection,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<BTreeMap<String, String>, String> {
    let owner = format!("Connection/{}", connection.name);
    resolve_all(
        bundle,
        &owner,
        "secret",
        &connection.secrets,
        env,
        read_file,
    )
}

/// The value of every `spec.secrets` entry of `agent` (its own credentials,
/// sent in its instances' `init`), or every reason some could not be had.
pub fn resolve_agent_secrets(
    bundle: &Bundle,
    agent: &Agent,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<BTreeMap<String, String>, String> {
    let owner = format!("Agent/{}", agent.name);
    resolve_all(bundle, &owner, "secret", &agent.secrets, env, read_file)
}

/// The value of every `spec.config` entry of `connection` (inline, or from
/// the environment or a Secret), or every reason some could not be had.
pub fn resolve_config(
    bundle: &Bundle,
    connection: &Connection,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<BTreeMap<String, String>, String> {
    let owner = format!("Connection/{}", connection.name);
    resolve_all(bundle, &owner, "config", &connection.config, env, read_file)
}

fn resolve_all(
    bundle: &Bundle,
    owner: &str,
    what: &'static str,
    sources: &BTreeMap<String, ValueSource>,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut values = BTreeMap::new();
    let mut errors = Vec::new();
    for (key, source) in sources {
        match resolve_one(bundle, source, env, read_file) {
            Ok(v) => {
                values.insert(key.clone(), v);
            }
            Err(cause) => {
                let e = SecretError {
                    owner: owner.to_owned(),
                    what,
                    key: key.clone(),
                    cause,
                };
                errors.push(chain(&e));
            }
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors.join("; "))
    }
}

/// "outer: inner: io error", the whole `source` chain on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

fn resolve_one(
    bundle: &Bundle,
    source: &ValueSource,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<String, Cause> {
    let (secret, key) = match source {
        ValueSource::Value(v) => return Ok(v.clone()),
        ValueSource::Env(var) => return env(var).ok_or_else(|| Cause::EnvUnset(var.clone())),
        ValueSource::SecretRef { secret, key } => (secret, key),
    };
    let no_key = || Cause::NoKey {
        secret: secret.clone(),
        key: key.clone(),
    };
    let data = bundle
        .secrets
        .get(secret)
        .and_then(|s| s.data.get(key))
        .ok_or_else(no_key)?;
    let value = match data {
        SecretSource::Env(var) => env(var).ok_or_else(|| Cause::EnvUnset(var.clone())),
        SecretSource::File(file) => {
            let path = bundle.root.join(file);
            read_file(&path)
                .map(trim_newline)
                .map_err(|source| Cause::File { path, source })
        }
    };
    value.map_err(|cause| Cause::InSecret {
        secret: secret.clone(),
        key: key.clone(),
        cause: Box::new(cause),
    })
}

/// Files written by editors and `echo` end in a newline that is not part of the secret.
fn trim_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}
