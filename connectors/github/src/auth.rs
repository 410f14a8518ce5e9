//! Which token a request to GitHub carries: the `GITHUB_TOKEN` secret, or a
//! GitHub App's installation token ([`app`]).

pub mod app;

use std::time::Duration;

use connector_sdk::ConfigError;
use connector_sdk::Secrets;
use connector_sdk::operations::OperationError;

use crate::api::Http;
use crate::repo::Repo;
use crate::secret::Secret;

/// The token secret.
pub const TOKEN_SECRET: &str = "GITHUB_TOKEN";

/// The GitHub App's private key (PEM).
pub const KEY_SECRET: &str = "PRIVATE_KEY";

/// How the connector authenticates its calls.
#[derive(Debug)]
pub enum Auth {
    /// A personal access token or any other bearer token.
    Token(Secret),
    /// A GitHub App: installation tokens minted with its key.
    App(Box<app::AppAuth>),
    /// Neither is configured: calls fail `permanent` (events still flow).
    Missing,
}

impl Auth {
    /// From the config (`APP_ID`, `INSTALLATION_ID`) and the secrets
    /// (`GITHUB_TOKEN`, `PRIVATE_KEY`). The App wins when `APP_ID` is set;
    /// half an App (`APP_ID` without `PRIVATE_KEY`, or the reverse) or a key
    /// that is not an RSA key is a configuration error.
    pub fn from_config(
        app_id: Option<&str>,
        installation: Option<u64>,
        secrets: &Secrets,
    ) -> Result<Self, ConfigError> {
        let secret = |name| secrets.get(name).map(str::trim).filter(|v| !v.is_empty());
        match (app_id, secret(KEY_SECRET)) {
            (Some(id), Some(pem)) => Ok(Auth::App(Box::new(app::AppAuth::new(
                id,
                pem,
                installation,
            )?))),
            (Some(_), None) => Err(ConfigError::new(format!(
                "APP_ID is set but the secret {KEY_SECRET} (the app's private key) is missing"
            ))),
            (None, Some(_)) => Err(ConfigError::new(format!(
                "the secret {KEY_SECRET} is set but APP_ID is missing"
            ))),
            (None, None) => Ok(match secret(TOKEN_SECRET) {
                Some(t) => Auth::Token(Secret::new(t)),
                None => Auth::Missing,
            }),
        }
    }

    /// What the log says at start (no secret in it).
    pub fn describe(&self) -> String {
        match self {
            Auth::Token(_) => format!("operations authenticate with the secret {TOKEN_SECRET}"),
            Auth::App(a) => a.describe(),
            Auth::Missing => format!(
                "no credentials ({TOKEN_SECRET}, or APP_ID and {KEY_SECRET}): operations will fail"
            ),
        }
    }

    /// The bearer token for a call on `repo`, within `timeout`.
    pub async fn token(
        &self,
        http: &Http,
        repo: &Repo,
        timeout: Duration,
    ) -> Result<Secret, OperationError> {
        match self {
            Auth::Token(t) => Ok(t.clone()),
            Auth::App(a) => a.token(http, repo, timeout).await,
            Auth::Missing => Err(OperationError::permanent(format!(
                "connector-github has no credentials: set the secret {TOKEN_SECRET}, \
                 or APP_ID and the secret {KEY_SECRET}"
            ))),
        }
    }

    /// GitHub refused `token` (401): forget it, so the next call gets a new one.
    pub async fn refused(&self, token: &Secret) {
        if let Auth::App(a) = self {
            a.forget(token).await;
        }
    }
}
