//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.

use std::borrow::Cow;

use super::{Headers, Verified, VerifyError, mac};

const SIGNATURE: Cow<'static, str> = Cow::Borrowed("X-Hub-Signature-256");
const DELIVERY: &str = "X-GitHub-Delivery";

/// Verifies a GitHub webhook delivery signed with the webhook's `secret`.
///
/// GitHub signs no timestamp, so there is no replay window: replays are
/// stopped by deduplicating the `X-GitHub-Delivery` GUID, returned as
/// `delivery_id` when present. That header is not signed; deduplicating on
/// it drops GitHub's own redeliveries, not a replay with an edited id.
/// The legacy SHA-1 `X-Hub-Signature` is not accepted.
pub fn github<H: Headers + ?Sized>(
    secret: &[u8],
    headers: &H,
    body: &[u8],
) -> Result<Verified, VerifyError> {
    mac::verify_body_hex(secret, headers, body, SIGNATURE, "sha256=")?;
    let delivery_id = headers
        .get(DELIVERY)
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    Ok(Verified {
        delivery_id,
        timestamp: None,
    })
}
