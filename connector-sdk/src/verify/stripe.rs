//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…][,v0=…]` over `<t>.<body>`.

use std::borrow::Cow;
use std::time::SystemTime;

use super::{Headers, Verified, VerifyError, Window, mac, parse_unix, required};

const SIGNATURE: Cow<'static, str> = Cow::Borrowed("Stripe-Signature");

/// Verifies a Stripe event with the endpoint's signing secret (`whsec_…`, used as is, not decoded).
///
/// Any `v1` signature may match (Stripe sends one per active secret while
/// one is rolled); `v0` and unknown schemes are ignored. `t` must be within
/// `window` of `now` (Stripe's libraries default to 300 s). The event id to
/// deduplicate on is the body's `id`, so `delivery_id` is `None`.
pub fn stripe<H: Headers + ?Sized>(
    secret: &[u8],
    headers: &H,
    body: &[u8],
    now: SystemTime,
    window: Window,
) -> Result<Verified, VerifyError> {
    let mac = mac::keyed(secret)?;
    let parsed = parse(required(headers, SIGNATURE)?)?;
    let tag = mac::tag(mac, &[parsed.t_text.as_bytes(), b".", body]);
    if !mac::any_matches(&tag, parsed.v1.iter().map(Vec::as_slice)) {
        return Err(VerifyError::BadSignature);
    }
    window.check(parsed.t, now)?;
    Ok(Verified {
        delivery_id: None,
        timestamp: Some(parsed.t),
    })
}

/// The parts of a `Stripe-Signature` value that are checked.
struct Parsed<'a> {
    t_text: &'a str,
    t: i64,
    v1: Vec<Vec<u8>>,
}

fn parse(value: &str) -> Result<Parsed<'_>, VerifyError> {
    let mut t_text = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        let Some((key, val)) = item.trim().split_once('=') else {
            return Err(VerifyError::malformed(
                SIGNATURE,
                "an item is not key=value",
            ));
        };
        match key {
            "t" if t_text.is_some() => {
                return Err(VerifyError::malformed(SIGNATURE, "more than one t="));
            }
            "t" => t_text = Some(val),
            "v1" => v1.push(mac::hex32(SIGNATURE, val)?),
            _ => {}
        }
    }
    let t_text = t_text.ok_or_else(|| VerifyError::malformed(SIGNATURE, "no t= timestamp"))?;
    if v1.is_empty() {
        return Err(VerifyError::malformed(SIGNATURE, "no v1= signature"));
    }
    Ok(Parsed {
        t_text,
        t: parse_unix(SIGNATURE, t_text)?,
        v1,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use hmac::Mac;

    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;
    const T: u64 = 1_700_000_000;

    /// Self-computed: hex HMAC-SHA256 of `<t>.<body>` under `secret`, via the hmac crate.
    fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
        let mut m = mac::HmacSha256::new_from_slice(secret).unwrap();
        m.update(format!("{t}.").as_bytes());
        m.update(body);
        hex::encode(m.finalize().into_bytes())
    }

    fn check(header: &str) -> Result<Verified, VerifyError> {
        let now = UNIX_EPOCH + Duration::from_secs(T + 10);
        stripe(
            SECRET,
            &[("stripe-signature", header)],
            BODY,
            now,
            Window::DEFAULT,
        )
    }

    #[test]
    fn verify_stripe_rotation_second_v1_matches() {
        let old = sign(b"whsec_old_secret", T, BODY);
        let new = sign(SECRET, T, BODY);
        let ok = Verified {
            delivery_id: None,
            timestamp: Some(T as i64),
        };
        assert_eq!(check(&format!("t={T},v1={old},v1={new}")), Ok(ok.clone()));
        // Order and unknown schemes do not matter.
        assert_eq!(
            check(&format!("v1={old}, v0={old}, t={T}, v9=x, v1={new}")),
            Ok(ok)
        );
        assert_eq!(
            check(&format!("t={T},v1={old},v1={old}")),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn verify_stripe_v0_alone_is_not_enough() {
        let good = sign(SECRET, T, BODY);
        let e = check(&format!("t={T},v0={good}")).unwrap_err();
        assert_eq!(e.reason(), "malformed_header");
        assert!(!e.to_string().contains(&good));
    }

    #[test]
    fn verify_stripe_rejects_malformed_headers() {
        let good = sign(SECRET, T, BODY);
        for header in [
            format!("v1={good}"),
            format!("t={T},t={T},v1={good}"),
            format!("t=soon,v1={good}"),
            format!("t={T},v1=zz{good}"),
            format!("t={T};v1={good}"),
            "garbage".to_string(),
        ] {
            let e = check(&header).unwrap_err();
            assert_eq!(e.reason(), "malformed_header", "{header}");
            assert!(!e.to_string().contains(&good));
        }
    }
}
