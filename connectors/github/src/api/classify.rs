//! A GitHub answer that is not a success, as an [`OperationError`] of the
//! class OPERATIONS.md gives it.
//!
//! GitHub's rate limits (its "best practices" for REST): a `retry-after`
//! header says how long to wait; else `x-ratelimit-remaining: 0` with
//! `x-ratelimit-reset` (epoch seconds) says until when; else a 429, or a 403
//! whose message names a rate limit, means wait at least a minute. Those are
//! `quota_exceeded` with `retryAfterMs`. 5xx is `transient`; any other 4xx
//! is `permanent` with GitHub's own `message` (and its `errors`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use connector_sdk::operations::OperationError;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// How long to wait when GitHub says "rate limit" without saying how long.
pub const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// The longest text of a non-JSON answer kept in a message.
const MAX_TEXT: usize = 300;

/// The failure for `status` answered to `what` (e.g. `POST /repos/o/r/issues/1/comments`).
pub fn failure(
    what: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> OperationError {
    let message = format!(
        "{what}: github answered {status}: {}",
        github_message(status, body)
    );
    if (status == 429 || status == 403)
        && let Some(wait) = rate_limit_wait(status, headers, &message, now)
    {
        return OperationError::quota_exceeded(message, wait).provider_status(status);
    }
    let e = if status >= 500 {
        OperationError::transient(message)
    } else {
        OperationError::permanent(message)
    };
    e.provider_status(status)
}

/// How long GitHub asks to wait, if this answer is a rate limit.
fn rate_limit_wait(
    status: u16,
    headers: &HeaderMap,
    message: &str,
    now: SystemTime,
) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(secs) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs.max(1)));
    }
    if header("x-ratelimit-remaining") == Some("0")
        && let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok())
    {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
    }
    let said_so = message.to_ascii_lowercase().contains("rate limit");
    (status == 429 || said_so).then_some(DEFAULT_RATE_LIMIT_WAIT)
}

/// GitHub's `message` and the `message`/`code` of each of its `errors`;
/// else the body's text (cut short); else the status's reason.
fn github_message(status: u16, body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<Value>(body)
        && let Some(m) = json["message"].as_str()
    {
        let details: Vec<String> = json["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| match e {
                Value::String(s) => Some(s.clone()),
                e => e["message"].as_str().or(e["code"].as_str()).map(|s| {
                    match e["field"].as_str() {
                        Some(f) => format!("{f}: {s}"),
                        None => s.to_owned(),
                    }
                }),
            })
            .collect();
        return if details.is_empty() {
            m.to_owned()
        } else {
            format!("{m} ({})", details.join("; "))
        };
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no reason given")
            .to_owned();
    }
    match text.char_indices().nth(MAX_TEXT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A request that got no HTTP answer (connect, TLS, timeout, a broken body):
/// `transient`, with the error's causes (reqwest's URL left out).
pub fn network(what: &str, e: reqwest::Error) -> OperationError {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    OperationError::transient(format!("{what}: no answer from github: {text}"))
}

#[cfg(test)]
mod tests {
    use connector_sdk::FailureClass;
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    const NOW: u64 = 1_700_000_000;

    fn at(status: u16, h: &[(&'static str, &'static str)], body: &str) -> OperationError {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        failure("POST /x", status, &headers(h), body.as_bytes(), now)
    }

    #[test]
    fn rate_limits_are_quota_exceeded_with_the_wait_github_asks_for() {
        let e = at(
            403,
            &[("retry-after", "30")],
            r#"{"message":"You have exceeded a secondary rate limit"}"#,
        );
        assert_eq!(e.class, FailureClass::QuotaExceeded);
        assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
        assert_eq!(e.provider_status, Some(403));
        let e = at(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1700000090"),
            ],
            r#"{"message":"API rate limit exceeded"}"#,
        );
        assert_eq!(e.retry_after, Some(Duration::from_secs(90)));
        let e = at(429, &[], "");
        assert_eq!(e.class, FailureClass::QuotaExceeded);
        assert_eq!(e.retry_after, Some(DEFAULT_RATE_LIMIT_WAIT));
        let e = at(
            403,
            &[],
            r#"{"message":"You have exceeded a secondary rate limit."}"#,
        );
        assert_eq!(e.retry_after, Some(DEFAULT_RATE_LIMIT_WAIT));
    }

    #[test]
    fn other_answers_are_transient_or_permanent_with_githubs_message() {
        let e = at(
            403,
            &[("x-ratelimit-remaining", "4999")],
            r#"{"message":"Resource not accessible by integration"}"#,
        );
        assert_eq!(e.class, FailureClass::Permanent);
        assert_eq!(
            e.message,
            "POST /x: github answered 403: Resource not accessible by integration"
        );
        let e = at(
            422,
            &[],
            r#"{"message":"Validation Failed","errors":[{"resource":"Label","field":"name","code":"invalid"}]}"#,
        );
        assert_eq!(e.class, FailureClass::Permanent);
        assert!(
            e.message.ends_with("Validation Failed (name: invalid)"),
            "{}",
            e.message
        );
        let e = at(502, &[], "<html>bad gateway</html>");
        assert_eq!(e.class, FailureClass::Transient);
        assert_eq!(e.provider_status, Some(502));
        assert!(e.message.ends_with("<html>bad gateway</html>"));
        let e = at(404, &[], "");
        assert!(e.message.ends_with("404: Not Found"), "{}", e.message);
    }
}
