//! GitHub's REST API as the operations use it: one [`Http`] client that
//! sends GitHub's headers (`Accept: application/vnd.github+json`,
//! `X-GitHub-Api-Version`, a bearer token) to `API_BASE`, and turns every
//! answer that is not a success into a classified [`OperationError`].

pub mod classify;

use std::fmt;
use std::sync::Once;
use std::time::{Duration, SystemTime};

use connector_sdk::operations::OperationError;
use reqwest::Method;
use serde_json::Value;

use crate::secret::Secret;

/// Where the API is unless `API_BASE` says otherwise.
pub const DEFAULT_API_BASE: &str = "https://api.github.com";

/// The REST API version every request asks for.
pub const API_VERSION: &str = "2022-11-28";

/// The media type GitHub recommends.
pub const ACCEPT: &str = "application/vnd.github+json";

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("github http client: {0}")]
pub struct ClientError(String);

/// A successful answer: its status and JSON body (`null` when empty).
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status (2xx).
    pub status: u16,
    /// The body.
    pub json: Value,
}

/// An HTTP client for one API base. Holds no credentials: each request is
/// given its token.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    base: String,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http").field("base", &self.base).finish()
    }
}

impl Http {
    /// A client for `base` (e.g. `https://api.github.com`, no trailing slash needed).
    pub fn new(base: &str) -> Result<Self, ClientError> {
        static PROVIDER: Once = Once::new();
        // reqwest is built without a default crypto provider (no aws-lc): use ring.
        PROVIDER.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("connector-github/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError(e.without_url().to_string()))?;
        Ok(Http {
            client,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// The API base.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method path` (`path` starts with `/`) with `token` as the
    /// bearer and `body` as JSON, giving up after `timeout`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: &Secret,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Reply, OperationError> {
        let what = format!("{method} {path}");
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .timeout(timeout.max(Duration::from_millis(1)))
            .header(reqwest::header::ACCEPT, ACCEPT)
            .header("X-GitHub-Api-Version", API_VERSION)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", token.expose()),
            );
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body)
                .map_err(|e| OperationError::validation(format!("{what}: body: {e}")))?;
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let response = request
            .send()
            .await
            .map_err(|e| classify::network(&what, e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| classify::network(&what, e))?;
        if !(200..300).contains(&status) {
            return Err(classify::failure(
                &what,
                status,
                &headers,
                &bytes,
                SystemTime::now(),
            ));
        }
        let json = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                OperationError::transient(format!(
                    "{what}: github answered {status} with a body that is not JSON: {e}"
                ))
                .provider_status(status)
            })?
        };
        Ok(Reply { status, json })
    }
}
