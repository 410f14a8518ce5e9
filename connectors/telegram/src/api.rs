//! The Bot API over HTTP: `getUpdates` for the poller, any other method for
//! the operations, and file downloads.
//!
//! The token is part of every URL (`<base>/bot<token>/<method>`,
//! `<base>/file/bot<token>/<path>`), so no URL is ever logged or put in an
//! error: reqwest errors are stripped of theirs, and Telegram's own
//! `description` is scrubbed of the token in case it ever echoes it.

use std::fmt;
use std::sync::Once;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;

/// Extra time on top of the long-poll timeout before a request counts as hung.
const SLACK: Duration = Duration::from_secs(15);

/// Why a Bot API request did not return a result. No variant carries a URL.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No HTTP answer: connect, TLS, timeout or a broken body.
    #[error("request failed: {0}")]
    Transport(String),
    /// An HTTP error status, or `"ok": false`.
    #[error("HTTP {status}: {description}")]
    Http {
        /// The HTTP status (or the body's `error_code`).
        status: u16,
        /// Telegram's `description`, when it sent one.
        description: String,
        /// `parameters.retry_after` (seconds), on 429.
        retry_after: Option<u64>,
    },
    /// A 2xx answer that is not what the method returns.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// A file download went over the cap.
    #[error("the file is over {cap} bytes")]
    TooLarge {
        /// The cap, `MAX_FILE_BYTES`.
        cap: u64,
    },
}

/// The body of a Bot API answer.
#[derive(Deserialize)]
struct Reply {
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct GetUpdates<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    timeout: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_updates: Option<&'a [String]>,
}

/// A Bot API client for one bot. Its `Debug` hides the token.
pub struct BotApi {
    client: reqwest::Client,
    base: String,
    token: String,
    poll_timeout: Duration,
    allowed_updates: Option<Vec<String>>,
}

impl fmt::Debug for BotApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BotApi")
            .field("base", &self.base)
            .field("poll_timeout", &self.poll_timeout)
            .finish_non_exhaustive()
    }
}

impl BotApi {
    /// A client for `config`'s bot and API base.
    pub fn new(config: &Config) -> Result<Self, ApiError> {
        static PROVIDER: Once = Once::new();
        // reqwest is built without a default crypto provider (no aws-lc): use ring.
        PROVIDER.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        // No client-wide timeout: each request sets its own.
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("connector-telegram/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
        Ok(BotApi {
            client,
            base: config.api_base.clone(),
            token: config.token.clone(),
            poll_timeout: config.poll_timeout,
            allowed_updates: config.allowed_updates.clone(),
        })
    }

    /// Long-polls for the updates from `offset` on (all unconfirmed ones without it).
    pub async fn get_updates(&self, offset: Option<i64>) -> Result<Vec<Value>, ApiError> {
        let body = GetUpdates {
            offset,
            timeout: self.poll_timeout.as_secs(),
            allowed_updates: self.allowed_updates.as_deref(),
        };
        let body = serde_json::to_value(&body).map_err(|e| ApiError::Decode(e.to_string()))?;
        match self
            .call("getUpdates", &body, self.poll_timeout + SLACK)
            .await?
        {
            Value::Array(updates) => Ok(updates),
            other => Err(ApiError::Decode(format!(
                "\"result\" is {}, not a list of updates",
                kind(&other)
            ))),
        }
    }

    /// Calls `method` with a JSON body; its `result` on success.
    pub async fn call(
        &self,
        method: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let url = format!("{}/bot{}/{method}", self.base, self.token);
        let response = self
            .client
            .post(&url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).map_err(|e| ApiError::Decode(e.to_string()))?)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        let reply: Option<Reply> = serde_json::from_slice(&bytes).ok();
        match reply {
            Some(r) if r.ok && status.is_success() => r
                .result
                .ok_or_else(|| ApiError::Decode("the answer has no \"result\"".into())),
            Some(r) => Err(ApiError::Http {
                status: if status.is_success() {
                    r.error_code.unwrap_or(status.as_u16())
                } else {
                    status.as_u16()
                },
                description: self.scrub(r.description.unwrap_or_default()),
                retry_after: r.parameters.and_then(|p| p.retry_after),
            }),
            None if status.is_success() => {
                Err(ApiError::Decode("the body is not a Bot API reply".into()))
            }
            None => Err(ApiError::Http {
                status: status.as_u16(),
                description: status.canonical_reason().unwrap_or("").to_owned(),
                retry_after: None,
            }),
        }
    }

    /// The bytes of the file at `file_path` (from `getFile`), at most `cap` of them.
    pub async fn download(
        &self,
        file_path: &str,
        cap: u64,
        timeout: Duration,
    ) -> Result<Vec<u8>, ApiError> {
        let url = format!("{}/file/bot{}/{file_path}", self.base, self.token);
        let mut response = self
            .client
            .get(&url)
            .timeout(timeout)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ApiError::Http {
                status: status.as_u16(),
                description: format!(
                    "file download: {}",
                    status.canonical_reason().unwrap_or("failed")
                ),
                retry_after: None,
            });
        }
        if response.content_length().is_some_and(|n| n > cap) {
            return Err(ApiError::TooLarge { cap });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if (bytes.len() + chunk.len()) as u64 > cap {
                return Err(ApiError::TooLarge { cap });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// `text` without the token, should Telegram (or a proxy) ever echo it.
    fn scrub(&self, text: String) -> String {
        if text.contains(&self.token) {
            text.replace(&self.token, "<token>")
        } else {
            text
        }
    }
}

/// The error and its causes, without the URL (it holds the token).
fn transport(e: reqwest::Error) -> ApiError {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    ApiError::Transport(text)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use connector_sdk::Secrets;

    use super::*;

    #[test]
    fn neither_debug_nor_a_description_holds_the_token() {
        let secrets = Secrets(BTreeMap::from([(
            "BOT_TOKEN".to_owned(),
            "123:s3cr3t".to_owned(),
        )]));
        let config = Config::parse(&BTreeMap::new(), &secrets).unwrap();
        let api = BotApi::new(&config).unwrap();
        assert!(!format!("{api:?}").contains("s3cr3t"));
        assert_eq!(
            api.scrub("Not Found: /bot123:s3cr3t/sendMessage".into()),
            "Not Found: /bot<token>/sendMessage"
        );
    }
}
