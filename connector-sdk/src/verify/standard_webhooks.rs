//! Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> …`,
//! or the same as Svix sends them by default: `svix-id`, `svix-timestamp`, `svix-signature`.

use std::borrow::Cow;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

use super::{Headers, Verified, VerifyError, Window, mac, parse_unix, required};

const ID: Cow<'static, str> = Cow::Borrowed("webhook-id");
const TIMESTAMP: Cow<'static, str> = Cow::Borrowed("webhook-timestamp");
const SIGNATURE: Cow<'static, str> = Cow::Borrowed("webhook-signature");
const SVIX_ID: Cow<'static, str> = Cow::Borrowed("svix-id");
const SVIX_TIMESTAMP: Cow<'static, str> = Cow::Borrowed("svix-timestamp");
const SVIX_SIGNATURE: Cow<'static, str> = Cow::Borrowed("svix-signature");

/// Base64 with or without its `=` padding: a `whsec_` secret copied without
/// it is accepted, as the Standard Webhooks libraries accept it.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The three header names of one family.
struct Names {
    id: Cow<'static, str>,
    timestamp: Cow<'static, str>,
    signature: Cow<'static, str>,
}

/// The `webhook-*` names, unless the request has no `webhook-id` but a
/// `svix-id` (Svix's default names): then the `svix-*` ones. One family is
/// read whole, never mixed.
fn names<H: Headers + ?Sized>(headers: &H) -> Names {
    if headers.get(&ID).is_none() && headers.get(&SVIX_ID).is_some() {
        Names {
            id: SVIX_ID,
            timestamp: SVIX_TIMESTAMP,
            signature: SVIX_SIGNATURE,
        }
    } else {
        Names {
            id: ID,
            timestamp: TIMESTAMP,
            signature: SIGNATURE,
        }
    }
}

/// Verifies a Standard Webhooks message (symmetric, `v1`) with a `whsec_<base64>` secret.
///
/// The signed content is `<webhook-id>.<webhook-timestamp>.<body>`. The
/// signature header is a space-separated list; any `v1` entry may match,
/// and other versions (such as the asymmetric `v1a`) are skipped. The
/// timestamp must be within `window` of `now`. `delivery_id` is the signed
/// `webhook-id`, the idempotency key the specification asks consumers to
/// deduplicate on. An id containing `.` is refused: it would make the
/// boundary between id and timestamp ambiguous. A request without
/// `webhook-id` but with `svix-id` is read from the `svix-*` headers, as
/// Svix's own libraries do.
pub fn standard_webhooks<H: Headers + ?Sized>(
    secret: &str,
    headers: &H,
    body: &[u8],
    now: SystemTime,
    window: Window,
) -> Result<Verified, VerifyError> {
    let mac = mac::keyed(&key(secret)?)?;
    let names = names(headers);
    let id = required(headers, names.id.clone())?;
    if id.contains('.') {
        return Err(VerifyError::malformed(names.id, "contains '.'"));
    }
    let ts_text = required(headers, names.timestamp.clone())?;
    let timestamp = parse_unix(names.timestamp, ts_text)?;
    let candidates = v1_signatures(required(headers, names.signature.clone())?, names.signature)?;
    let tag = mac::tag(mac, &[id.as_bytes(), b".", ts_text.as_bytes(), b".", body]);
    if !mac::any_matches(&tag, candidates.iter().map(Vec::as_slice)) {
        return Err(VerifyError::BadSignature);
    }
    window.check(timestamp, now)?;
    Ok(Verified {
        delivery_id: Some(id.to_owned()),
        timestamp: Some(timestamp),
    })
}

/// The HMAC key: the base64 after the `whsec_` prefix (the prefix is
/// optional, and so is the base64 padding).
pub(super) fn key(secret: &str) -> Result<Vec<u8>, VerifyError> {
    let encoded = secret.trim();
    let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
    let key = LENIENT.decode(encoded).map_err(|_| {
        VerifyError::BadKey("the secret is not base64 after its whsec_ prefix".into())
    })?;
    if key.is_empty() {
        return Err(VerifyError::BadKey("the secret is empty".into()));
    }
    Ok(key)
}

/// The decoded `v1` entries of a `webhook-signature` value.
fn v1_signatures(value: &str, header: Cow<'static, str>) -> Result<Vec<Vec<u8>>, VerifyError> {
    let mut out = Vec::new();
    for entry in value.split(' ').filter(|e| !e.is_empty()) {
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue;
        };
        let sig = STANDARD
            .decode(encoded)
            .map_err(|_| VerifyError::malformed(header.clone(), "a v1 signature is not base64"))?;
        out.push(sig);
    }
    if out.is_empty() {
        return Err(VerifyError::malformed(header, "no v1 signature"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use hmac::Mac;

    use super::*;

    // The Rust library test key of standard-webhooks (see tests/data/README.md).
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID_VALUE: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const T: u64 = 1_649_367_553;

    /// Self-computed: `v1,<base64 HMAC-SHA256>` of `<id>.<t>.<body>`, via the hmac crate.
    fn sign(secret: &str, t: u64) -> String {
        let mut m = mac::HmacSha256::new_from_slice(&key(secret).unwrap()).unwrap();
        m.update(format!("{ID_VALUE}.{t}.").as_bytes());
        m.update(BODY);
        format!("v1,{}", STANDARD.encode(m.finalize().into_bytes()))
    }

    fn check(signature: &str) -> Result<Verified, VerifyError> {
        let t = T.to_string();
        let h = [
            ("webhook-id", ID_VALUE),
            ("webhook-timestamp", &t),
            ("webhook-signature", signature),
        ];
        let now = UNIX_EPOCH + Duration::from_secs(T);
        standard_webhooks(SECRET, &h, BODY, now, Window::DEFAULT)
    }

    #[test]
    fn verify_standard_webhooks_any_of_several_signatures() {
        assert_eq!(
            sign(SECRET, T),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
        let other = sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", T);
        let asym = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";
        let good = sign(SECRET, T);
        let header = format!("{other} {asym}  v2,abc {good} {other}");
        let ok = check(&header).unwrap();
        assert_eq!(ok.delivery_id.as_deref(), Some(ID_VALUE));
        assert_eq!(ok.timestamp, Some(T as i64));
        assert_eq!(
            check(&format!("{other} {asym} {other}")),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn verify_standard_webhooks_needs_a_v1_entry() {
        let asym = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";
        for header in [asym, "garbage", "v1,not base64!"] {
            assert_eq!(check(header).unwrap_err().reason(), "malformed_header");
        }
    }

    #[test]
    fn verify_standard_webhooks_key_parsing() {
        assert_eq!(key(SECRET), key("C2FVsBQIhrscChlQIMV+b5sSYspob7oD"));
        for bad in ["whsec_", "whsec_not base64!", ""] {
            assert!(matches!(key(bad), Err(VerifyError::BadKey(_))), "{bad:?}");
        }
    }

    #[test]
    fn verify_standard_webhooks_accepts_svix_header_names() {
        let t = T.to_string();
        let sig = sign(SECRET, T);
        let now = UNIX_EPOCH + Duration::from_secs(T);
        let svix = [
            ("svix-id", ID_VALUE),
            ("svix-timestamp", t.as_str()),
            ("svix-signature", sig.as_str()),
        ];
        let ok = standard_webhooks(SECRET, &svix, BODY, now, Window::DEFAULT).unwrap();
        assert_eq!(ok.delivery_id.as_deref(), Some(ID_VALUE));
        // Errors name the family in use.
        let e = standard_webhooks(SECRET, &svix[..2], BODY, now, Window::DEFAULT).unwrap_err();
        assert_eq!(e, VerifyError::MissingHeader(SVIX_SIGNATURE));
        let none: [(&str, &str); 0] = [];
        let e = standard_webhooks(SECRET, &none, BODY, now, Window::DEFAULT).unwrap_err();
        assert_eq!(e, VerifyError::MissingHeader(ID));
        // Never mixed: with webhook-id present, the webhook-* names are read.
        let mixed = [
            ("webhook-id", ID_VALUE),
            ("svix-timestamp", t.as_str()),
            ("svix-signature", sig.as_str()),
        ];
        let e = standard_webhooks(SECRET, &mixed, BODY, now, Window::DEFAULT).unwrap_err();
        assert_eq!(e, VerifyError::MissingHeader(TIMESTAMP));
    }

    #[test]
    fn verify_standard_webhooks_secret_without_padding() {
        // 31 bytes: base64 ends in one '='.
        let padded = format!("whsec_{}", STANDARD.encode([7u8; 31]));
        assert!(padded.ends_with('='));
        let unpadded = padded.trim_end_matches('=');
        assert_eq!(key(unpadded).unwrap(), [7u8; 31]);
        assert_eq!(key(unpadded), key(&padded));
        let t = T.to_string();
        let sig = sign(&padded, T);
        let h = [
            ("webhook-id", ID_VALUE),
            ("webhook-timestamp", t.as_str()),
            ("webhook-signature", sig.as_str()),
        ];
        let now = UNIX_EPOCH + Duration::from_secs(T);
        assert!(standard_webhooks(unpadded, &h, BODY, now, Window::DEFAULT).is_ok());
    }

    #[test]
    fn verify_standard_webhooks_refuses_dotted_ids() {
        let t = T.to_string();
        let h = [
            ("webhook-id", "msg.1"),
            ("webhook-timestamp", t.as_str()),
            ("webhook-signature", "v1,AAAA"),
        ];
        let e = standard_webhooks(SECRET, &h, BODY, UNIX_EPOCH, Window::DEFAULT).unwrap_err();
        assert_eq!(e, VerifyError::malformed(ID, "contains '.'"));
    }
}
