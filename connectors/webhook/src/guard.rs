//! The signature check in front of every handler: one [`Guard`] per
//! connector, built once from configuration, consulted once per request.
//!
//! A rejection is answered `401`, recorded with `ctx.audit` (kind
//! `signature_rejected`, the scheme and a reason code: never the secret or
//! the signature) and counted; the count is in the warning logged with it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use connector_sdk::verify::{self, Scheme, Verified, Window};
use connector_sdk::{Audit, ConfigError, Context, Secrets};

use crate::answer;
use crate::settings::Settings;

/// The config key that sets the replay window of timestamped schemes.
pub const REPLAY_WINDOW: &str = "REPLAY_WINDOW";

/// Where "now" comes from: the system clock in the binaries, a fixed instant in tests.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The real clock.
pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// Verifies requests by one scheme with one secret, and reports rejections.
pub struct Guard {
    scheme: Scheme,
    secret: String,
    window: Window,
    clock: Clock,
    rejected: AtomicU64,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("scheme", &self.scheme)
            .field("secret", &"<redacted>")
            .field("window", &self.window)
            .field("rejected", &self.rejected)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard for `scheme` keyed by the secret `secret_name`, with the
    /// window from `REPLAY_WINDOW` (default 5 minutes) and the system clock.
    ///
    /// A signed scheme without its secret, or with a secret that cannot key
    /// it (an empty one, a Discord key that is not 64 hex digits), is a
    /// configuration error: failing at start beats rejecting every request.
    pub fn new(
        scheme: Scheme,
        secrets: &Secrets,
        secret_name: &str,
        settings: &Settings<'_>,
    ) -> Result<Self, ConfigError> {
        let window = Window::new(settings.duration(REPLAY_WINDOW, Duration::from_secs(300))?);
        let secret = if scheme.is_unsigned() {
            String::new()
        } else {
            let secret = secrets.get(secret_name).unwrap_or("");
            if secret.is_empty() {
                return Err(ConfigError::new(format!(
                    "the {} scheme needs the secret {secret_name}: set it in the Connection's spec.secrets",
                    scheme.name()
                )));
            }
            scheme.check_secret(secret).map_err(|e| {
                ConfigError::new(format!(
                    "secret {secret_name} cannot be used by the {} scheme: {e}",
                    scheme.name()
                ))
            })?;
            secret.to_owned()
        };
        Ok(Guard {
            scheme,
            secret,
            window,
            clock: system_clock(),
            rejected: AtomicU64::new(0),
        })
    }

    /// The same guard reading time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The scheme requests are checked by.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// How many requests were rejected so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Verifies one request; on failure reports it (audit, count, log) and
    /// gives the `401` to answer.
    pub fn check(
        &self,
        ctx: &Context,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Verified, Unauthorized> {
        let now = (self.clock)();
        verify::verify(&self.scheme, &self.secret, headers, body, now, self.window).map_err(|e| {
            let count = self.rejected.fetch_add(1, Ordering::Relaxed) + 1;
            let scheme = self.scheme.name();
            ctx.audit(Audit {
                kind: "signature_rejected".into(),
                scheme: Some(scheme.into()),
                reason: Some(e.reason().into()),
            });
            // The error names a header at most, never a value.
            ctx.warn(format!(
                "rejected a request, {scheme} signature: {e} ({count} rejected since start)"
            ));
            Unauthorized
        })
    }
}

/// A request whose signature was rejected (and already reported): answered `401`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unauthorized;

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        answer::unauthorized()
    }
}

/// The first steps of every signed webhook request, shared by the webhook,
/// GitHub and Slack handlers: only `POST` (`405`), the body within `limit`
/// (`413`) and readable (`400`), and a good signature (`401`, audited).
/// `Ok` hands back the body and what the verification found.
#[allow(clippy::result_large_err)] // the refusal is the handler's own answer, returned as is
pub fn admit(
    guard: &Guard,
    ctx: &Context,
    method: &axum::http::Method,
    headers: &HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    limit: usize,
) -> Result<(axum::body::Bytes, Verified), axum::response::Response> {
    use axum::response::IntoResponse;
    if method != axum::http::Method::POST {
        return Err(crate::answer::post_only());
    }
    let body = body.map_err(|e| crate::answer::unreadable(&e, limit))?;
    let verified = guard
        .check(ctx, headers, &body)
        .map_err(|u| u.into_response())?;
    Ok((body, verified))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn guard(scheme: &str, secret: Option<&str>, config: &[(&str, &str)]) -> Result<Guard, String> {
        let secrets = Secrets(
            secret
                .map(|s| BTreeMap::from([("WEBHOOK_SECRET".to_string(), s.to_string())]))
                .unwrap_or_default(),
        );
        let config: BTreeMap<String, String> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Guard::new(
            scheme.parse().unwrap(),
            &secrets,
            "WEBHOOK_SECRET",
            &Settings::new(&config),
        )
        .map_err(|e| e.0)
    }

    #[test]
    fn signed_schemes_need_a_usable_secret() {
        let e = guard("github", None, &[]).unwrap_err();
        assert!(e.contains("needs the secret WEBHOOK_SECRET"), "{e}");
        let e = guard("stripe", Some(""), &[]).unwrap_err();
        assert!(e.contains("needs the secret"), "{e}");
        let e = guard("discord", Some("not-a-key"), &[]).unwrap_err();
        assert!(e.contains("cannot be used by the discord scheme"), "{e}");
        assert!(!e.contains("not-a-key"), "never quotes the secret: {e}");
        assert!(guard("none", None, &[]).is_ok());
        let g = guard("slack", Some("s3cret"), &[(REPLAY_WINDOW, "15m")]).unwrap();
        assert_eq!(g.window, Window::new(Duration::from_secs(900)));
        assert!(!format!("{g:?}").contains("s3cret"));
        let e = guard("slack", Some("s"), &[(REPLAY_WINDOW, "later")]).unwrap_err();
        assert!(e.starts_with("REPLAY_WINDOW: 'later'"), "{e}");
    }
}
