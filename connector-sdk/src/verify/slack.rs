//! Slack: `X-Slack-Signature: v0=<hex>` over `v0:<X-Slack-Request-Timestamp>:<body>`.

use std::borrow::Cow;
use std::time::SystemTime;

use super::{Headers, Verified, VerifyError, Window, mac, parse_unix, required};

const SIGNATURE: Cow<'static, str> = Cow::Borrowed("X-Slack-Signature");
const TIMESTAMP: Cow<'static, str> = Cow::Borrowed("X-Slack-Request-Timestamp");

/// Verifies a Slack request with the app's signing secret; the timestamp must be within `window` of `now`.
///
/// Slack sends no delivery id header (Events API payloads carry `event_id`
/// in the body).
pub fn slack<H: Headers + ?Sized>(
    signing_secret: &[u8],
    headers: &H,
    body: &[u8],
    now: SystemTime,
    window: Window,
) -> Result<Verified, VerifyError> {
    let mac = mac::keyed(signing_secret)?;
    let ts_text = required(headers, TIMESTAMP)?;
    let timestamp = parse_unix(TIMESTAMP, ts_text)?;
    let signature = mac::prefixed_hex(SIGNATURE, required(headers, SIGNATURE)?, "v0=")?;
    let tag = mac::tag(mac, &[b"v0:", ts_text.as_bytes(), b":", body]);
    if !mac::any_matches(&tag, [signature.as_slice()]) {
        return Err(VerifyError::BadSignature);
    }
    window.check(timestamp, now)?;
    Ok(Verified {
        delivery_id: None,
        timestamp: Some(timestamp),
    })
}
