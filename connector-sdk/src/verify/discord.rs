//! Discord interactions: Ed25519 over `<X-Signature-Timestamp><body>`.

use std::borrow::Cow;
use std::time::SystemTime;

use ed25519_dalek::{Signature, VerifyingKey};

use super::{Headers, Verified, VerifyError, Window, parse_unix, required};

const SIGNATURE: Cow<'static, str> = Cow::Borrowed("X-Signature-Ed25519");
const TIMESTAMP: Cow<'static, str> = Cow::Borrowed("X-Signature-Timestamp");

/// Verifies a Discord interaction with the application's public key (64 hex digits).
///
/// The signature (128 hex digits) covers the timestamp header's text
/// followed by the body; the timestamp must also be within `window` of
/// `now`. The interaction `id` to deduplicate on is in the body.
pub fn discord<H: Headers + ?Sized>(
    public_key_hex: &str,
    headers: &H,
    body: &[u8],
    now: SystemTime,
    window: Window,
) -> Result<Verified, VerifyError> {
    let key = public_key(public_key_hex)?;
    let ts_text = required(headers, TIMESTAMP)?;
    let timestamp = parse_unix(TIMESTAMP, ts_text)?;
    let mut signature = [0u8; 64];
    hex::decode_to_slice(required(headers, SIGNATURE)?, &mut signature)
        .map_err(|_| VerifyError::malformed(SIGNATURE, "expected 128 hex digits"))?;
    let mut message = Vec::with_capacity(ts_text.len() + body.len());
    message.extend_from_slice(ts_text.as_bytes());
    message.extend_from_slice(body);
    key.verify_strict(&message, &Signature::from_bytes(&signature))
        .map_err(|_| VerifyError::BadSignature)?;
    window.check(timestamp, now)?;
    Ok(Verified {
        delivery_id: None,
        timestamp: Some(timestamp),
    })
}

/// The application's public key from its hex form.
pub(super) fn public_key(public_key_hex: &str) -> Result<VerifyingKey, VerifyError> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(public_key_hex.trim(), &mut bytes)
        .map_err(|_| VerifyError::BadKey("the public key is not 64 hex digits".into()))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| VerifyError::BadKey("the public key is not an Ed25519 point".into()))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    const BODY: &[u8] = br#"{"id":"1","type":1,"application_id":"2","token":"t","version":1}"#;
    const T: u64 = 1_700_000_000;

    /// A fixed keypair: the same seed gives the same key in every run.
    fn signing_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn headers(key: &SigningKey, ts: &str, body: &[u8]) -> Vec<(&'static str, String)> {
        let message = [ts.as_bytes(), body].concat();
        vec![
            (
                "X-Signature-Ed25519",
                hex::encode(key.sign(&message).to_bytes()),
            ),
            ("X-Signature-Timestamp", ts.to_string()),
        ]
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn public_hex(key: &SigningKey) -> String {
        hex::encode(key.verifying_key().to_bytes())
    }

    #[test]
    fn verify_discord_accepts_a_fresh_signature() {
        let key = signing_key(7);
        let h = headers(&key, &T.to_string(), BODY);
        let ok = discord(&public_hex(&key), &h, BODY, at(T + 5), Window::DEFAULT).unwrap();
        assert_eq!(ok.timestamp, Some(T as i64));
        assert_eq!(ok.delivery_id, None);
        // Upper-case hex works too.
        let upper = public_hex(&key).to_uppercase();
        assert!(discord(&upper, &h, BODY, at(T), Window::DEFAULT).is_ok());
    }

    #[test]
    fn verify_discord_rejects_forgeries_and_replays() {
        let key = signing_key(7);
        let public = public_hex(&key);
        let h = headers(&key, &T.to_string(), BODY);
        let check = |pk: &str, h: &[(&str, String)], body: &[u8], now| {
            discord(pk, h, body, now, Window::DEFAULT)
        };
        let mut changed = BODY.to_vec();
        changed[3] ^= 1;
        assert_eq!(
            check(&public, &h, &changed, at(T)),
            Err(VerifyError::BadSignature)
        );
        let stranger = public_hex(&signing_key(8));
        assert_eq!(
            check(&stranger, &h, BODY, at(T)),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check(&public, &h, BODY, at(T + 301)),
            Err(VerifyError::TimestampOutsideWindow { skew_secs: 301 })
        );
        // The timestamp is signed: moving it breaks the signature.
        let mut moved = h.clone();
        moved[1].1 = (T + 1).to_string();
        assert_eq!(
            check(&public, &moved, BODY, at(T)),
            Err(VerifyError::BadSignature)
        );
        for (i, name) in [(0, SIGNATURE), (1, TIMESTAMP)] {
            let mut missing = h.clone();
            missing.remove(i);
            assert_eq!(
                check(&public, &missing, BODY, at(T)),
                Err(VerifyError::MissingHeader(name.clone()))
            );
            let mut garbage = h.clone();
            garbage[i].1 = "garbage".into();
            assert_eq!(
                check(&public, &garbage, BODY, at(T)).map_err(|e| e.reason()),
                Err("malformed_header")
            );
        }
    }

    #[test]
    fn verify_discord_rejects_unusable_keys() {
        let key = signing_key(7);
        let h = headers(&key, &T.to_string(), BODY);
        let short = &public_hex(&key)[..62];
        for bad in ["", "zz", short] {
            assert!(matches!(
                discord(bad, &h, BODY, at(T), Window::DEFAULT),
                Err(VerifyError::BadKey(_))
            ));
        }
    }
}
