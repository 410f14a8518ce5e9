//! The `send` operation: an HTTP `POST` of the input's `body` as JSON to
//! the configured `OUTBOUND_URL`, and only there (the input cannot name a
//! URL, and redirects are not followed), optionally signed the Standard
//! Webhooks way with the `OUTBOUND_SECRET` (`whsec_…`) so the receiver can
//! verify it: `webhook-id`, `webhook-timestamp`, and `webhook-signature:
//! v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`.

use std::fmt;
use std::sync::{Arc, Once};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use connector_sdk::{
    Clock, ConfigError, Context, OperationCall, OperationError, OperationOk, Secrets,
};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::settings::Settings;

/// Config: where `send` posts.
pub const OUTBOUND_URL: &str = "OUTBOUND_URL";
/// Secret: the `whsec_` key `send` signs with; unsigned without it.
pub const OUTBOUND_SECRET: &str = "OUTBOUND_SECRET";

/// At most this much of a refusing receiver's body goes into the error.
const MAX_ERROR_TEXT: usize = 500;
/// At most this much of the receiver's answer is returned as `response`.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Used when a 429 has no usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Decodes a `whsec_` secret with or without its base64 padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What `send` needs, checked at start.
#[derive(Clone)]
pub struct Outbound {
    url: Option<String>,
    key: Option<Arc<Vec<u8>>>,
    client: reqwest::Client,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("url", &self.url)
            .field("signed", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// Reads `OUTBOUND_URL` (an http(s) URL, optional: without it `send`
    /// fails `permanent`) and the `OUTBOUND_SECRET` secret (a `whsec_` key).
    pub fn from_settings(settings: &Settings<'_>, secrets: &Secrets) -> Result<Self, ConfigError> {
        let url = settings.get(OUTBOUND_URL).map(str::to_owned);
        if let Some(u) = &url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(ConfigError::new(format!(
                    "{OUTBOUND_URL}: '{u}' is not an http(s) URL"
                )));
            }
            reqwest::Url::parse(u).map_err(|e| {
                ConfigError::new(format!("{OUTBOUND_URL}: '{u}' is not a URL: {e}"))
            })?;
        }
        let key = match secrets.get(OUTBOUND_SECRET).map(str::trim) {
            None | Some("") => None,
            Some(secret) => {
                Some(Arc::new(whsec_key(secret).map_err(|e| {
                    ConfigError::new(format!("secret {OUTBOUND_SECRET}: {e}"))
                })?))
            }
        };
        static PROVIDER: Once = Once::new();
        // reqwest is built without a default crypto provider (no aws-lc): use ring.
        PROVIDER.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Never elsewhere than OUTBOUND_URL: a redirect is an answer, not a new target.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("connector-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::new(format!("cannot build the http client: {e}")))?;
        Ok(Outbound { url, key, client })
    }

    /// Serves `send` on `ctx`.
    pub fn register(self, ctx: &Context) {
        let clock = ctx.clock();
        ctx.operations().on("send", move |call: OperationCall| {
            let out = self.clone();
            let clock = clock.clone();
            async move { out.send(&clock, call).await }
        });
    }

    async fn send(
        &self,
        clock: &Clock,
        call: OperationCall,
    ) -> Result<OperationOk, OperationError> {
        let Some(url) = &self.url else {
            return Err(OperationError::permanent(
                "send needs OUTBOUND_URL in the Connection's spec.config",
            ));
        };
        let Some(input) = call.input.as_object() else {
            return Err(OperationError::validation(
                "the input of send must be an object",
            ));
        };
        if let Some(other) = input.keys().find(|k| *k != "body") {
            return Err(OperationError::validation(format!(
                "send takes only input.body (the URL is the Connection's OUTBOUND_URL), not input.{other}"
            )));
        }
        let Some(body) = input.get("body") else {
            return Err(OperationError::validation("send needs input.body"));
        };
        let body = body.to_string();
        let id = message_id(&call);
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(call.remaining());
        if let Some(key) = &self.key {
            let ts = clock
                .now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .to_string();
            request = request
                .header("webhook-id", &id)
                .header("webhook-timestamp", &ts)
                .header("webhook-signature", sign(key, &id, &ts, body.as_bytes()));
        }
        let response = request.body(body).send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let bytes = response.bytes().await.map_err(transport)?;
        classify(status, retry_after, &bytes, &id)
    }
}

/// The receiver's answer as the result: 2xx succeeds with `status`,
/// `webhookId` and `response` (its JSON, else its text, cut to 64 KiB).
pub fn classify(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    id: &str,
) -> Result<OperationOk, OperationError> {
    if (200..300).contains(&status) {
        let cut = &body[..body.len().min(MAX_RESPONSE_BYTES)];
        let response = serde_json::from_slice::<Value>(cut)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(cut).into_owned()));
        let data = json!({"status": status, "webhookId": id, "response": response});
        return Ok(OperationOk::new(data).provider_status(status));
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_TEXT)]);
    let message = format!("send: OUTBOUND_URL answered {status}: {}", text.trim());
    let e = match status {
        429 => OperationError::quota_exceeded(message, retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
        408 | 500..=599 => OperationError::transient(message),
        300..=399 => OperationError::permanent(format!("{message} (redirects are not followed)")),
        _ => OperationError::permanent(message),
    };
    Err(e.provider_status(status))
}

/// The `webhook-id`: from the invoke's idempotency key when there is one
/// (so the orchestrator's retries carry the same id and the receiver can
/// deduplicate), else from the call id; no `.` (it separates the signed parts).
fn message_id(call: &OperationCall) -> String {
    let base = call.idempotency_key.as_deref().unwrap_or(&call.id);
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    format!("msg_{clean}")
}

/// `v1,<base64 HMAC-SHA256(key, "<id>.<ts>.<body>")>`.
pub fn sign(key: &[u8], id: &str, ts: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    for part in [id.as_bytes(), b".", ts.as_bytes(), b".", body] {
        mac.update(part);
    }
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The key of a `whsec_<base64>` secret (the prefix optional, padding optional).
fn whsec_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = LENIENT
        .decode(encoded)
        .map_err(|_| "not base64 after its whsec_ prefix".to_owned())?;
    if key.is_empty() {
        return Err("empty".into());
    }
    Ok(key)
}

/// A request that got no answer: transient, without the URL.
fn transport(e: reqwest::Error) -> OperationError {
    let e = e.without_url();
    let mut text = format!("send: no answer from OUTBOUND_URL: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    OperationError::transient(text)
}

#[cfg(test)]
mod tests {
    use connector_sdk::ipc_proto::FailureClass;

    use super::*;

    #[test]
    fn answers_map_to_classes() {
        let ok = classify(202, None, br#"{"ok":true}"#, "msg_1").unwrap();
        assert_eq!(
            ok.data,
            json!({"status": 202, "webhookId": "msg_1", "response": {"ok": true}})
        );
        let text = classify(200, None, b"fine", "msg_1").unwrap();
        assert_eq!(text.data["response"], "fine");
        let e = classify(429, Some(Duration::from_secs(3)), b"slow down", "m").unwrap_err();
        assert_eq!(
            (e.class, e.retry_after),
            (FailureClass::QuotaExceeded, Some(Duration::from_secs(3)))
        );
        let e = classify(429, None, b"", "m").unwrap_err();
        assert_eq!(e.retry_after, Some(DEFAULT_RETRY_AFTER));
        for (status, class) in [
            (500, FailureClass::Transient),
            (503, FailureClass::Transient),
            (408, FailureClass::Transient),
            (400, FailureClass::Permanent),
            (404, FailureClass::Permanent),
            (302, FailureClass::Permanent),
        ] {
            let e = classify(status, None, b"why", "m").unwrap_err();
            assert_eq!(
                (e.class, e.provider_status),
                (class, Some(status)),
                "{status}"
            );
            assert!(
                e.message.contains(&format!("answered {status}: why")),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn whsec_keys_with_or_without_padding() {
        let padded = whsec_key("whsec_c2VjcmV0IQ==").unwrap();
        assert_eq!(padded, b"secret!");
        assert_eq!(whsec_key("whsec_c2VjcmV0IQ").unwrap(), padded);
        assert!(whsec_key("whsec_").is_err());
        assert!(whsec_key("whsec_!!").is_err());
    }
}
