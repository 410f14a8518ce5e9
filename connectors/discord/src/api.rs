//! The Discord HTTP API calls the operations make, and how Discord's
//! answers map to failure classes.
//!
//! A followup's URL holds the interaction token and `createMessage` sends
//! the bot token in `Authorization`, so no URL or header is ever logged or
//! put in an error: reqwest errors are stripped of their URL.

use std::fmt;
use std::sync::Once;
use std::time::Duration;

use connector_sdk::{OperationError, OperationOk};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde_json::{Value, json};

/// The public API this connector talks to when `API_BASE` is not set.
pub const DEFAULT_API_BASE: &str = "https://discord.com/api/v10";

/// Used when a 429 says nothing about when to come back.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A client for one API base; `Debug` shows no token.
#[derive(Clone)]
pub struct DiscordApi {
    client: reqwest::Client,
    base: String,
    bot_token: Option<String>,
}

impl fmt::Debug for DiscordApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordApi")
            .field("base", &self.base)
            .field("bot_token", &self.bot_token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The client could not be built (TLS setup).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the discord http client: {0}")]
pub struct ClientError(String);

impl DiscordApi {
    /// A client for `base` (no trailing `/`), with the bot token when there is one.
    pub fn new(base: &str, bot_token: Option<String>) -> Result<Self, ClientError> {
        static PROVIDER: Once = Once::new();
        // reqwest is built without a default crypto provider (no aws-lc): use ring.
        PROVIDER.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!(
                "DiscordBot (connector-discord, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .build()
            .map_err(|e| ClientError(e.without_url().to_string()))?;
        Ok(DiscordApi {
            client,
            base: base.trim_end_matches('/').to_owned(),
            bot_token,
        })
    }

    /// `POST /webhooks/{application_id}/{token}`: a followup message to an
    /// interaction (the token is the credential; no bot token is sent).
    pub async fn followup(
        &self,
        application_id: &str,
        token: &str,
        body: &Value,
        within: Duration,
    ) -> Result<OperationOk, OperationError> {
        let url = format!("{}/webhooks/{application_id}/{token}", self.base);
        let request = self.client.post(url);
        self.send("followup", request, body, within).await
    }

    /// `POST /channels/{channel_id}/messages` with `Authorization: Bot <token>`.
    pub async fn create_message(
        &self,
        channel_id: &str,
        body: &Value,
        within: Duration,
    ) -> Result<OperationOk, OperationError> {
        let Some(token) = &self.bot_token else {
            return Err(OperationError::permanent(
                "createMessage needs the secret BOT_TOKEN: set it in the Connection's spec.secrets",
            ));
        };
        let url = format!("{}/channels/{channel_id}/messages", self.base);
        let request = self
            .client
            .post(url)
            .header(AUTHORIZATION, format!("Bot {token}"));
        self.send("createMessage", request, body, within).await
    }

    async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
        body: &Value,
        within: Duration,
    ) -> Result<OperationOk, OperationError> {
        let response = request
            .header(CONTENT_TYPE, "application/json")
            .timeout(within)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| transport(what, e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await.map_err(|e| transport(what, e))?;
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        answer(what, status, retry_after.as_deref(), &json)
    }
}

/// Discord's answer as the operation's result: a message object on 2xx
/// (`messageId`, `channelId`), else a classified error.
pub fn answer(
    what: &str,
    status: u16,
    retry_after_header: Option<&str>,
    body: &Value,
) -> Result<OperationOk, OperationError> {
    if (200..300).contains(&status) {
        let id = body["id"].as_str().unwrap_or_default();
        let channel = body["channel_id"].as_str().unwrap_or_default();
        return Ok(
            OperationOk::new(json!({"messageId": id, "channelId": channel}))
                .provider_status(status),
        );
    }
    let message = body["message"].as_str().unwrap_or("no error message");
    let mut text = format!("{what}: discord answered {status}: {message}");
    if let Some(code) = body["code"].as_u64().filter(|c| *c != 0) {
        text.push_str(&format!(" (code {code})"));
    }
    let e = match status {
        429 => {
            let secs = body["retry_after"]
                .as_f64()
                .or_else(|| retry_after_header.and_then(|h| h.trim().parse().ok()))
                .filter(|s: &f64| s.is_finite() && *s >= 0.0);
            let wait = secs.map_or(DEFAULT_RETRY_AFTER, Duration::from_secs_f64);
            if body["global"] == true {
                text.push_str(" (global rate limit)");
            }
            OperationError::quota_exceeded(text, wait)
        }
        500..=599 => OperationError::transient(text),
        _ => OperationError::permanent(text),
    };
    Err(e.provider_status(status))
}

/// A request that got no answer: transient, described without its URL.
fn transport(what: &str, e: reqwest::Error) -> OperationError {
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut text = format!("{what}: no answer from discord: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if timeout {
        text.push_str(" (timed out)");
    }
    OperationError::transient(text)
}

#[cfg(test)]
mod tests {
    use connector_sdk::ipc_proto::FailureClass;

    use super::*;

    #[test]
    fn statuses_map_to_classes() {
        let ok = answer(
            "followup",
            200,
            None,
            &json!({"id": "9", "channel_id": "4"}),
        )
        .unwrap();
        assert_eq!(ok.data, json!({"messageId": "9", "channelId": "4"}));
        assert_eq!(ok.provider_status, Some(200));

        let limited =
            json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false});
        let e = answer("followup", 429, Some("7"), &limited).unwrap_err();
        assert_eq!(e.class, FailureClass::QuotaExceeded);
        assert_eq!(
            e.retry_after,
            Some(Duration::from_millis(1500)),
            "the body's retry_after wins"
        );
        assert_eq!(e.provider_status, Some(429));
        let e = answer("followup", 429, Some("2"), &Value::Null).unwrap_err();
        assert_eq!(
            e.retry_after,
            Some(Duration::from_secs(2)),
            "else Retry-After"
        );

        let e = answer("createMessage", 502, None, &Value::Null).unwrap_err();
        assert_eq!(e.class, FailureClass::Transient);
        assert_eq!(e.provider_status, Some(502));

        let unknown = json!({"message": "Unknown Channel", "code": 10003});
        let e = answer("createMessage", 404, None, &unknown).unwrap_err();
        assert_eq!(e.class, FailureClass::Permanent);
        assert_eq!(
            e.message,
            "createMessage: discord answered 404: Unknown Channel (code 10003)"
        );
    }

    #[test]
    fn debug_hides_the_bot_token() {
        let api = DiscordApi::new("http://127.0.0.1:1/", Some("bot-secret".into())).unwrap();
        let shown = format!("{api:?}");
        assert!(!shown.contains("bot-secret"), "{shown}");
        assert!(shown.contains("http://127.0.0.1:1\""), "{shown}");
    }
}
