//! Notion: `X-Notion-Signature: sha256=<hex HMAC-SHA256(verification_token, body)>`.

use std::borrow::Cow;

use super::{Headers, Verified, VerifyError, mac};

const SIGNATURE: Cow<'static, str> = Cow::Borrowed("X-Notion-Signature");

/// Verifies a Notion webhook with the subscription's `verification_token`.
///
/// Notion signs no timestamp and sends no delivery id header; the event's
/// `id` is in the body.
pub fn notion<H: Headers + ?Sized>(
    verification_token: &[u8],
    headers: &H,
    body: &[u8],
) -> Result<Verified, VerifyError> {
    mac::verify_body_hex(verification_token, headers, body, SIGNATURE, "sha256=")?;
    Ok(Verified::default())
}

#[cfg(test)]
mod tests {
    use hmac::Mac;

    use super::*;

    const TOKEN: &[u8] = b"secret_notion_verification_token";
    const BODY: &[u8] = br#"{"id":"367cba44-b6f3-4c92-81e7-6a2e9659efd4","type":"page.created"}"#;

    /// Self-computed: HMAC-SHA256 of BODY under TOKEN, via the hmac crate.
    fn header(token: &[u8], body: &[u8]) -> String {
        let mut m = mac::HmacSha256::new_from_slice(token).unwrap();
        m.update(body);
        format!("sha256={}", hex::encode(m.finalize().into_bytes()))
    }

    #[test]
    fn verify_notion_accepts_its_own_signature() {
        let h = [("x-notion-signature", header(TOKEN, BODY))];
        assert_eq!(notion(TOKEN, &h, BODY), Ok(Verified::default()));
    }

    #[test]
    fn verify_notion_rejects_wrong_token_body_and_shape() {
        let h = [("X-Notion-Signature", header(TOKEN, BODY))];
        assert_eq!(
            notion(b"another token", &h, BODY),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(notion(TOKEN, &h, b"{}"), Err(VerifyError::BadSignature));
        assert_eq!(
            notion(TOKEN, &[("X-Other", "x")], BODY),
            Err(VerifyError::MissingHeader(SIGNATURE))
        );
        let bare = header(TOKEN, BODY).replace("sha256=", "");
        let e = notion(TOKEN, &[("X-Notion-Signature", bare)], BODY).unwrap_err();
        assert_eq!(e.reason(), "malformed_header");
        assert!(matches!(notion(b"", &h, BODY), Err(VerifyError::BadKey(_))));
    }
}
