//! HMAC-SHA256 and the constant-time comparison every HMAC scheme shares.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use super::{Headers, VerifyError, required};

/// A keyed HMAC-SHA256, ready for the signed content.
pub(super) type HmacSha256 = Hmac<Sha256>;

/// The HMAC for `secret`; an empty secret is a configuration mistake, not a key.
pub(super) fn keyed(secret: &[u8]) -> Result<HmacSha256, VerifyError> {
    if secret.is_empty() {
        return Err(VerifyError::BadKey("the secret is empty".into()));
    }
    HmacSha256::new_from_slice(secret)
        .map_err(|_| VerifyError::BadKey("the secret cannot key HMAC-SHA256".into()))
}

/// The tag over the concatenation of `parts`.
pub(super) fn tag(mut mac: HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether any candidate equals `tag`; each one is compared in full, in constant time.
pub(super) fn any_matches<'a>(
    tag: &[u8; 32],
    candidates: impl IntoIterator<Item = &'a [u8]>,
) -> bool {
    let mut found = Choice::from(0);
    for candidate in candidates {
        found |= tag.as_slice().ct_eq(candidate);
    }
    found.into()
}

/// Decodes the 32-byte hex tag after `prefix` (e.g. `sha256=`) in `value`.
pub(super) fn prefixed_hex(
    header: Cow<'static, str>,
    value: &str,
    prefix: &str,
) -> Result<Vec<u8>, VerifyError> {
    match value.strip_prefix(prefix) {
        Some(digits) => hex32(header, digits),
        None => Err(VerifyError::malformed(
            header,
            format!("expected the {prefix} prefix"),
        )),
    }
}

/// Decodes a 32-byte tag written as 64 hex digits.
pub(super) fn hex32(header: Cow<'static, str>, digits: &str) -> Result<Vec<u8>, VerifyError> {
    match hex::decode(digits) {
        Ok(bytes) if bytes.len() == 32 => Ok(bytes),
        _ => Err(VerifyError::malformed(
            header,
            "expected 64 hex digits of HMAC-SHA256",
        )),
    }
}

/// `<header>: <prefix><hex HMAC-SHA256(secret, body)>`, the GitHub and Notion shape.
pub(super) fn verify_body_hex<H: Headers + ?Sized>(
    secret: &[u8],
    headers: &H,
    body: &[u8],
    header: Cow<'static, str>,
    prefix: &str,
) -> Result<(), VerifyError> {
    let mac = keyed(secret)?;
    let signature = prefixed_hex(header.clone(), required(headers, header)?, prefix)?;
    if any_matches(&tag(mac, &[body]), [signature.as_slice()]) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_any_matches_checks_every_candidate() {
        let t = [7u8; 32];
        let other = [8u8; 32];
        assert!(any_matches(&t, [other.as_slice(), t.as_slice()]));
        assert!(!any_matches(&t, [other.as_slice(), &t[..31]]));
        assert!(!any_matches(&t, std::iter::empty()));
    }

    #[test]
    fn verify_empty_secret_is_a_bad_key() {
        assert!(matches!(keyed(b""), Err(VerifyError::BadKey(_))));
    }
}
