//! Webhook signature verification: pure functions over the raw body and the headers.
//!
//! # Theory of operation
//!
//! One function per scheme ([`github`](fn@github), [`stripe`](fn@stripe),
//! [`slack`](fn@slack), [`standard_webhooks`](fn@standard_webhooks),
//! [`notion`](fn@notion), [`discord`](fn@discord),
//! [`hmac_sha256`](fn@hmac_sha256)), and
//! [`verify`] to pick one by a [`Scheme`] parsed from configuration. Each
//! takes the secret (or Discord's public key), the request [`Headers`] and
//! the body exactly as received: verify before parsing, since a re-encoded
//! JSON body no longer matches its signature.
//!
//! A check runs in this order: the key is usable ([`VerifyError::BadKey`]),
//! the headers are present and parse ([`VerifyError::MissingHeader`],
//! [`VerifyError::MalformedHeader`]), a signature matches
//! ([`VerifyError::BadSignature`]), and, for schemes that sign a timestamp,
//! that timestamp is within the replay [`Window`] of `now`
//! ([`VerifyError::TimestampOutsideWindow`]). The window comes last, so that
//! error only ever describes an authentic request: a replay or clock skew,
//! not a forgery. The window is symmetric (5 minutes by default), refusing
//! timestamps from the future as well as old ones.
//!
//! The clock is injected: timestamped schemes take `now: SystemTime` and
//! never read the system clock themselves, so tests pin time and a
//! connector passes `SystemTime::now()`. HMAC tags are compared in constant
//! time (`subtle`), every candidate of a rotated-key header included, so a
//! mismatch reveals nothing about how much of a guess was right. Ed25519
//! (Discord) is checked with `verify_strict`.
//!
//! On success a [`Verified`] carries what the connector needs next: the
//! signed timestamp, and a delivery id where the scheme has one (the
//! `webhook-id` of Standard Webhooks; GitHub's `X-GitHub-Delivery`, which is
//! not signed). Deduplicating on that id is the caller's job, as is what to
//! answer the sender; nothing here keeps state.
//!
//! What it never does: log, store or return a secret, a key or a signature.
//! Error values and messages name the header at fault and never quote a
//! header value. [`Scheme::None`] accepts every request; it exists so that
//! "unsigned" is an explicit configuration choice, never a default.

mod discord;
mod error;
mod github;
mod headers;
mod hmac_sha256;
mod mac;
mod notion;
mod scheme;
mod slack;
mod standard_webhooks;
mod stripe;

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use self::discord::discord;
pub use self::error::VerifyError;
pub use self::github::github;
pub use self::headers::Headers;
pub use self::hmac_sha256::{Encoding, HmacSpec, hmac_sha256};
pub use self::notion::notion;
pub use self::scheme::{ParseNameError, Scheme, verify};
pub use self::slack::slack;
pub use self::standard_webhooks::standard_webhooks;
pub use self::stripe::stripe;

/// What a verified request carries that the connector needs afterwards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// The sender's id for this delivery, the same on every retry: a deduplication key.
    pub delivery_id: Option<String>,
    /// The signed timestamp (unix seconds), for schemes that sign one.
    pub timestamp: Option<i64>,
}

/// How far a signed timestamp may be from `now`, either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The largest accepted `|now - timestamp|`, counted in whole seconds.
    pub tolerance: Duration,
}

impl Window {
    /// Five minutes, what Stripe, Slack and Standard Webhooks recommend.
    pub const DEFAULT: Window = Window {
        tolerance: Duration::from_secs(300),
    };

    /// A window of `tolerance` either side of `now`.
    pub const fn new(tolerance: Duration) -> Self {
        Window { tolerance }
    }

    /// Whether `timestamp` (unix seconds) is within the window around `now`.
    pub fn check(&self, timestamp: i64, now: SystemTime) -> Result<(), VerifyError> {
        let skew_secs = unix_secs(now).saturating_sub(timestamp);
        if skew_secs.unsigned_abs() > self.tolerance.as_secs() {
            return Err(VerifyError::TimestampOutsideWindow { skew_secs });
        }
        Ok(())
    }
}

impl Default for Window {
    fn default() -> Self {
        Window::DEFAULT
    }
}

/// `t` as unix seconds, negative before 1970.
fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// The trimmed value of a header the scheme cannot do without.
fn required<'h, H: Headers + ?Sized>(
    headers: &'h H,
    name: Cow<'static, str>,
) -> Result<&'h str, VerifyError> {
    let Some(value) = headers.get(&name) else {
        return Err(VerifyError::MissingHeader(name));
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(VerifyError::malformed(name, "empty value"));
    }
    Ok(value)
}

/// Parses unix seconds: ASCII digits only, so the text signed is the number checked.
fn parse_unix(header: Cow<'static, str>, text: &str) -> Result<i64, VerifyError> {
    let digits = !text.is_empty() && text.len() <= 18 && text.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| text.parse().ok())
        .flatten()
        .ok_or_else(|| VerifyError::malformed(header, "timestamp is not unix seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn verify_window_is_inclusive_and_symmetric() {
        let w = Window::default();
        assert_eq!(w.check(1_000, at(1_300)), Ok(()));
        assert_eq!(w.check(1_600, at(1_300)), Ok(()));
        assert_eq!(
            w.check(1_000, at(1_301)),
            Err(VerifyError::TimestampOutsideWindow { skew_secs: 301 })
        );
        assert_eq!(
            w.check(1_601, at(1_300)),
            Err(VerifyError::TimestampOutsideWindow { skew_secs: -301 })
        );
        let narrow = Window::new(Duration::from_secs(10));
        assert!(narrow.check(1_000, at(1_011)).is_err());
    }

    #[test]
    fn verify_window_survives_extreme_values() {
        let w = Window::default();
        let before_epoch = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(unix_secs(before_epoch), -10);
        assert!(w.check(i64::MAX, before_epoch).is_err());
        assert!(w.check(0, at(u64::MAX / 2)).is_err());
    }

    #[test]
    fn verify_timestamps_are_plain_digits() {
        let h = Cow::Borrowed("t");
        assert_eq!(parse_unix(h.clone(), "1531420618"), Ok(1_531_420_618));
        for bad in [
            "",
            "+1",
            "-1",
            " 1",
            "1.5",
            "yesterday",
            "9999999999999999999",
        ] {
            assert!(
                matches!(
                    parse_unix(h.clone(), bad),
                    Err(VerifyError::MalformedHeader { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn verify_required_header_must_be_present_and_non_empty() {
        let h = Cow::Borrowed("X-A");
        assert_eq!(required(&[("x-a", " v ")], h.clone()), Ok("v"));
        assert_eq!(
            required(&[("x-b", "v")], h.clone()),
            Err(VerifyError::MissingHeader(h.clone()))
        );
        assert!(matches!(
            required(&[("x-a", " ")], h),
            Err(VerifyError::MalformedHeader { .. })
        ));
    }
}
