//! `connector_sdk::verify`: every scheme's header parsing and verification.
//!
//! Input: one byte (bits 0-2: the scheme; bit 3: sign; bit 4: base64 for
//! hmac-sha256), then, separated by 0xFF: the secret, header lines
//! (`name: value`), 8 bytes of clock, the timestamp to sign, hmac-sha256's
//! header name and prefix, and the body.
//!
//! Contract, unsigned: an answer, never a panic; `Ok` only with a timestamp
//! inside the window; no error message or `Debug` quotes a header value.
//! Signed (the harness signs the fuzzed body and timestamp with a known key,
//! the fuzzed headers after its own): the request verifies, with the signed
//! timestamp.

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use connector_sdk::verify::{Encoding, HmacSpec, Scheme, Window, verify};
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "fuzz-signing-secret";
/// `whsec_` + base64 of the Standard Webhooks key.
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn tag(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn scheme(pick: u8, header: &str, prefix: &str) -> Scheme {
    match pick & 7 {
        0 => Scheme::None,
        1 => Scheme::Github,
        2 => Scheme::Stripe,
        3 => Scheme::Slack,
        4 => Scheme::StandardWebhooks,
        5 => Scheme::Notion,
        6 => Scheme::Discord,
        _ => Scheme::HmacSha256(HmacSpec {
            header: if header.is_empty() {
                "X-Signature".into()
            } else {
                header.into()
            },
            encoding: if pick & 16 != 0 {
                Encoding::Base64
            } else {
                Encoding::Hex
            },
            prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
        }),
    }
}

/// The secret and the signature headers for `body` at `ts`, as the sender would make them.
fn sign(scheme: &Scheme, ts: u64, body: &[u8]) -> (String, Vec<(String, String)>) {
    let t = ts.to_string();
    let h = |k: &str, v: String| (k.to_owned(), v);
    match scheme {
        Scheme::None => (SECRET.into(), vec![]),
        Scheme::Github => (
            SECRET.into(),
            vec![h(
                "X-Hub-Signature-256",
                format!("sha256={}", hex::encode(tag(SECRET.as_bytes(), &[body]))),
            )],
        ),
        Scheme::Notion => (
            SECRET.into(),
            vec![h(
                "X-Notion-Signature",
                format!("sha256={}", hex::encode(tag(SECRET.as_bytes(), &[body]))),
            )],
        ),
        Scheme::Stripe => {
            let sig = hex::encode(tag(SECRET.as_bytes(), &[t.as_bytes(), b".", body]));
            (
                SECRET.into(),
                vec![h("Stripe-Signature", format!("t={t},v1={sig}"))],
            )
        }
        Scheme::Slack => {
            let sig = hex::encode(tag(SECRET.as_bytes(), &[b"v0:", t.as_bytes(), b":", body]));
            (
                SECRET.into(),
                vec![
                    h("X-Slack-Request-Timestamp", t.clone()),
                    h("X-Slack-Signature", format!("v0={sig}")),
                ],
            )
        }
        Scheme::StandardWebhooks => {
            let key = STANDARD
                .decode(&WHSEC["whsec_".len()..])
                .expect("the key is base64");
            let id = "msg_fuzz";
            let sig = STANDARD.encode(tag(&key, &[id.as_bytes(), b".", t.as_bytes(), b".", body]));
            (
                WHSEC.into(),
                vec![
                    h("webhook-id", id.into()),
                    h("webhook-timestamp", t.clone()),
                    h("webhook-signature", format!("v1,{sig}")),
                ],
            )
        }
        Scheme::Discord => {
            let key = SigningKey::from_bytes(&[7u8; 32]);
            let mut message = t.clone().into_bytes();
            message.extend_from_slice(body);
            let sig = key.sign(&message);
            (
                hex::encode(key.verifying_key().as_bytes()),
                vec![
                    h("X-Signature-Timestamp", t.clone()),
                    h("X-Signature-Ed25519", hex::encode(sig.to_bytes())),
                ],
            )
        }
        Scheme::HmacSha256(spec) => {
            let raw = tag(SECRET.as_bytes(), &[body]);
            let encoded = match spec.encoding {
                Encoding::Hex => hex::encode(raw),
                Encoding::Base64 => STANDARD.encode(raw),
            };
            let prefix = spec.prefix.as_deref().unwrap_or("");
            (
                SECRET.into(),
                vec![h(&spec.header, format!("{prefix}{encoded}"))],
            )
        }
    }
}

/// Whether an error text could be quoting `value` (digits alone are left
/// out: a skew in seconds is printed, and may equal a timestamp's digits).
fn quotable(value: &str) -> bool {
    value.len() >= 10
        && value.bytes().any(|b| b.is_ascii_digit())
        && !value.bytes().all(|b| b.is_ascii_digit() || b == b'-')
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&pick, rest)) = data.split_first() else {
            return;
        };
        let p = fuzz::parts(rest, 7);
        let (Some(secret), Some(lines), Some(header), Some(prefix)) = (
            fuzz::text(p[0]),
            fuzz::text(p[1]),
            fuzz::text(p[4]),
            fuzz::text(p[5]),
        ) else {
            return;
        };
        let now = fuzz::clock(p[2]);
        let body = p[6];
        let window = Window::new(Duration::from_secs(300));
        // As configuration reads it: trimmed (webhook `Settings`), and only
        // what a header value can hold, or it could never match.
        let prefix = prefix.trim();
        if !prefix
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        {
            return;
        }
        let mut scheme = scheme(pick, header.trim(), prefix);
        if let Scheme::HmacSha256(spec) = &scheme
            && http::HeaderName::from_bytes(spec.header.as_bytes()).is_err()
        {
            // Configuration refuses such a header name before any request.
            scheme = Scheme::HmacSha256(HmacSpec::default());
        }
        let fuzzed = fuzz::headers(lines);

        if pick & 8 != 0 {
            // Signed by the harness at a timestamp within the window of `now`.
            let now_secs = now
                .duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_secs();
            let skew = u64::from(p[3].first().copied().unwrap_or(0)) % 300;
            let ts = now_secs.saturating_sub(skew).max(1);
            let (secret, mut headers) = sign(&scheme, ts, body);
            headers.extend(fuzzed);
            let verified = verify(&scheme, &secret, &headers, body, now, window)
                .unwrap_or_else(|e| panic!("a correctly signed request verifies ({scheme}): {e}"));
            if !matches!(
                scheme,
                Scheme::None | Scheme::Github | Scheme::Notion | Scheme::HmacSha256(_)
            ) {
                assert_eq!(verified.timestamp, Some(ts as i64), "the signed timestamp");
            }
            return;
        }

        match verify(&scheme, secret, &fuzzed, body, now, window) {
            Ok(v) => {
                if let Some(ts) = v.timestamp {
                    assert!(
                        window.check(ts, now).is_ok(),
                        "accepted inside the window only"
                    );
                }
                assert!(
                    !matches!(scheme, Scheme::None) || v == Default::default(),
                    "none verifies nothing"
                );
            }
            Err(e) => {
                let shown = format!("{e} {e:?}");
                for (_, value) in &fuzzed {
                    if quotable(value) && !quotable_in(&scheme, value) {
                        assert!(
                            !shown.contains(value.as_str()),
                            "an error quotes a header value: {shown}"
                        );
                    }
                }
            }
        }
    });
}

/// Whether `value` is also something the message may say on its own (a
/// header name, the configured prefix): then finding it proves nothing.
fn quotable_in(scheme: &Scheme, value: &str) -> bool {
    match scheme {
        Scheme::HmacSha256(spec) => {
            spec.header.contains(value) || spec.prefix.as_deref().is_some_and(|p| p.contains(value))
        }
        _ => false,
    }
}
