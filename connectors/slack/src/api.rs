//! Slack over HTTP, outbound: Web API methods with the bot token
//! (`Authorization: Bearer`), a slash command's or an interaction's
//! `response_url`, and file downloads.
//!
//! The token is only ever in a header: no error, log line or `Debug`
//! output holds it. Files are downloaded with it only from Slack's own hosts
//! (`slack.com` and its subdomains, over https) or from `API_BASE`'s origin.

use std::fmt;
use std::sync::Once;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde_json::Value;

/// The public Web API.
pub const DEFAULT_API_BASE: &str = "https://slack.com/api";

/// Why a Slack request did not succeed. No variant holds the token.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No HTTP answer: connect, TLS, timeout or a broken body.
    #[error("no answer: {0}")]
    Transport(String),
    /// An HTTP error status; `body` is the start of the answer.
    #[error("HTTP {status}: {body}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The body, cut to 300 bytes.
        body: String,
        /// `Retry-After` (seconds), on 429.
        retry_after: Option<u64>,
    },
    /// `"ok": false` with Slack's `error` code.
    #[error("{error}")]
    Slack {
        /// Slack's `error`, e.g. `channel_not_found`.
        error: String,
        /// The HTTP status (200 for most).
        status: u16,
    },
    /// A 2xx answer that is not what the method returns.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// A download went over the cap.
    #[error("the file is over {cap} bytes")]
    TooLarge {
        /// `MAX_FILE_BYTES`.
        cap: u64,
    },
    /// A request the connector will not make: no bot token, a foreign download host.
    #[error("{0}")]
    Refused(String),
}

/// A Web API client for one app. Its `Debug` hides the token.
pub struct SlackApi {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackApi")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl SlackApi {
    /// A client for `base` (no trailing `/`), with the bot token when there is one.
    pub fn new(base: String, token: Option<String>) -> Result<Self, ApiError> {
        static PROVIDER: Once = Once::new();
        // reqwest is built without a default crypto provider (no aws-lc): use ring.
        PROVIDER.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("connector-slack/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(transport)?;
        Ok(SlackApi {
            client,
            base,
            token,
        })
    }

    fn bearer(&self) -> Result<String, ApiError> {
        self.token
            .as_ref()
            .map(|t| format!("Bearer {t}"))
            .ok_or_else(|| ApiError::Refused("the secret BOT_TOKEN is not set".into()))
    }

    /// POSTs `body` as JSON to the Web API `method`; the whole answer when `ok`.
    pub async fn call(
        &self,
        method: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let response = self
            .client
            .post(format!("{}/{method}", self.base))
            .timeout(timeout)
            .header(AUTHORIZATION, self.bearer()?)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .map_err(transport)?;
        web_api_answer(response).await
    }

    /// GETs the Web API `method` with form-encoded `query`; the whole answer when `ok`.
    pub async fn get(
        &self,
        method: &str,
        query: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        let response = self
            .client
            .get(format!("{}/{method}?{query}", self.base))
            .timeout(timeout)
            .header(AUTHORIZATION, self.bearer()?)
            .send()
            .await
            .map_err(transport)?;
        web_api_answer(response).await
    }

    /// POSTs `body` to a `response_url` (no token: the URL is the credential).
    pub async fn respond(
        &self,
        url: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        let response = self
            .client
            .post(url)
            .timeout(timeout)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(ApiError::Http {
                status: status.as_u16(),
                body: cut(&bytes),
                retry_after,
            });
        }
        // Slack answers `ok`, or JSON; `"ok": false` is a refusal.
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) if v["ok"] == false => Err(ApiError::Slack {
                error: v["error"].as_str().unwrap_or("unknown_error").to_owned(),
                status: status.as_u16(),
            }),
            _ => Ok(()),
        }
    }

    /// The bytes at `url` (a file's `url_private_download`), with the token, at most `cap`.
    pub async fn download(
        &self,
        url: &str,
        cap: u64,
        timeout: Duration,
    ) -> Result<Vec<u8>, ApiError> {
        if !self.may_download(url) {
            return Err(ApiError::Refused(
                "the file's URL is not on a Slack host (https://*.slack.com) nor API_BASE: \
                 the bot token is not sent there"
                    .into(),
            ));
        }
        let mut response = self
            .client
            .get(url)
            .timeout(timeout)
            .header(AUTHORIZATION, self.bearer()?)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ApiError::Http {
                status: status.as_u16(),
                body: format!(
                    "file download: {}",
                    status.canonical_reason().unwrap_or("failed")
                ),
                retry_after: retry_after(response.headers()),
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

    /// https on slack.com or a subdomain, or the origin of `API_BASE`.
    fn may_download(&self, url: &str) -> bool {
        let origin = |u: &str| -> Option<String> {
            let (scheme, rest) = u.split_once("://")?;
            let host = rest.split(['/', '?', '#']).next()?;
            Some(format!("{scheme}://{host}"))
        };
        let Some(target) = origin(url) else {
            return false;
        };
        if origin(&self.base).is_some_and(|base| base == target) {
            return true;
        }
        target
            .strip_prefix("https://")
            .map(|host| host.split(':').next().unwrap_or(host))
            .is_some_and(|host| host == "slack.com" || host.ends_with(".slack.com"))
    }
}

/// A Web API answer: 2xx with `"ok": true`, or the failure it is.
async fn web_api_answer(response: reqwest::Response) -> Result<Value, ApiError> {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let bytes = response.bytes().await.map_err(transport)?;
    if !status.is_success() {
        return Err(ApiError::Http {
            status: status.as_u16(),
            body: cut(&bytes),
            retry_after,
        });
    }
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::Decode(format!("the body is not JSON: {e}")))?;
    if v["ok"] == true {
        Ok(v)
    } else {
        Err(ApiError::Slack {
            error: v["error"].as_str().unwrap_or("unknown_error").to_owned(),
            status: status.as_u16(),
        })
    }
}

fn retry_after(headers: &HeaderMap) -> Option<u64> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()
}

fn cut(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut end = text.len().min(300);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim().to_owned()
}

/// The error and its causes, without the URL (a response_url is a credential).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_to_slack_or_api_base() {
        let api = SlackApi::new("http://127.0.0.1:9000/api".into(), Some("xoxb-1".into())).unwrap();
        assert!(api.may_download("https://files.slack.com/files-pri/T1-F1/download/a.png"));
        assert!(api.may_download("https://slack.com/x"));
        assert!(api.may_download("http://127.0.0.1:9000/files/F1"));
        assert!(
            !api.may_download("http://files.slack.com/x"),
            "not over http"
        );
        assert!(!api.may_download("https://evil.com/?slack.com"));
        assert!(!api.may_download("https://slack.com.evil.com/x"));
        assert!(!api.may_download("http://127.0.0.1:9001/files/F1"));
        assert!(!format!("{api:?}").contains("xoxb-1"));
    }
}
