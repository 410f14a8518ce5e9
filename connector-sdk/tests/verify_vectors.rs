//! The published signature vectors (tests/data, see its README): each one
//! verifies with its own secret and clock, and negative twins of each fail
//! with the error that names what is wrong.

#[path = "verify_vectors/cases.rs"]
mod cases;

use std::time::Duration;

use connector_sdk::verify::{self, Scheme, VerifyError, Window};
use serde_json::Value;

use cases::{VECTORS, at, cases};

#[test]
fn verify_every_vector_passes() {
    let cases = cases();
    let schemes: Vec<&str> = cases.iter().map(|c| c.scheme.name()).collect();
    assert_eq!(
        schemes,
        [
            "standard-webhooks",
            "standard-webhooks",
            "github",
            "stripe",
            "slack"
        ]
    );
    for c in &cases {
        assert_eq!(
            c.run_headers(&c.headers),
            Ok(c.expect.clone()),
            "{}",
            c.name
        );
    }
}

#[test]
fn verify_dispatch_matches_the_scheme_functions() {
    for c in &cases() {
        let (h, body, key, now, w) = (
            &c.headers,
            &c.body,
            c.secret.as_bytes(),
            c.now,
            Window::DEFAULT,
        );
        let direct = match c.scheme {
            Scheme::StandardWebhooks => verify::standard_webhooks(&c.secret, h, body, now, w),
            Scheme::Github => verify::github(key, h, body),
            Scheme::Stripe => verify::stripe(key, h, body, now, w),
            Scheme::Slack => verify::slack(key, h, body, now, w),
            ref other => panic!("no vector for {other}"),
        };
        assert_eq!(direct, c.run_headers(h), "{}", c.name);
    }
}

#[test]
fn verify_vectors_with_one_body_byte_changed_fail() {
    for c in &cases() {
        for i in [0, c.body.len() / 2, c.body.len() - 1] {
            let mut body = c.body.clone();
            body[i] ^= 0x01;
            let got = c.run(&c.headers, &body, &c.secret, c.now);
            c.fails(&format!("body byte {i} changed"), got, "bad_signature");
        }
        let mut longer = c.body.clone();
        longer.push(b' ');
        c.fails(
            "body extended",
            c.run(&c.headers, &longer, &c.secret, c.now),
            "bad_signature",
        );
    }
}

#[test]
fn verify_vectors_with_a_wrong_secret_fail() {
    for c in &cases() {
        let got = c.run(&c.headers, &c.body, &c.wrong_secret, c.now);
        c.fails("wrong secret", got, "bad_signature");
    }
}

#[test]
fn verify_vectors_outside_the_replay_window_fail() {
    for c in &cases() {
        let Some((_, ts)) = c.signed_timestamp else {
            // GitHub signs no timestamp: a delivery verifies at any time.
            assert_eq!(
                c.run(&c.headers, &c.body, &c.secret, at(4_000_000_000)),
                Ok(c.expect.clone())
            );
            continue;
        };
        for (now, skew_secs) in [(ts + 301, 301), (ts - 301, -301)] {
            let e = c.fails(
                "clock past the window",
                c.run(&c.headers, &c.body, &c.secret, at(now)),
                "timestamp_outside_window",
            );
            assert_eq!(
                e,
                VerifyError::TimestampOutsideWindow { skew_secs },
                "{}",
                c.name
            );
        }
        for edge in [ts + 300, ts - 300] {
            assert!(
                c.run(&c.headers, &c.body, &c.secret, at(edge)).is_ok(),
                "{}: edge of the window",
                c.name
            );
        }
        let narrow = Window::new(Duration::from_secs(60));
        let got = verify::verify(
            &c.scheme,
            &c.secret,
            &c.headers,
            &c.body,
            at(ts + 61),
            narrow,
        );
        c.fails("narrow window", got, "timestamp_outside_window");
    }
}

#[test]
fn verify_vectors_with_a_moved_timestamp_fail() {
    for c in &cases() {
        let Some((header, ts)) = c.signed_timestamp else {
            continue;
        };
        // Moving the timestamp back into the window without re-signing breaks the signature.
        let old = c.header(header).to_string();
        let moved = old.replacen(&ts.to_string(), &(ts + 1).to_string(), 1);
        assert_ne!(moved, old);
        let got = c.run_headers(&c.with_header(header, moved));
        c.fails("timestamp header edited", got, "bad_signature");
    }
}

#[test]
fn verify_vectors_with_a_header_removed_fail() {
    for c in &cases() {
        for name in &c.required {
            let e = c.fails(
                &format!("{name} removed"),
                c.run_headers(&c.without_header(name)),
                "missing_header",
            );
            let VerifyError::MissingHeader(got) = e else {
                unreachable!()
            };
            assert!(
                got.eq_ignore_ascii_case(name),
                "{}: {got} for {name}",
                c.name
            );
        }
    }
}

#[test]
fn verify_vectors_with_a_garbage_header_fail() {
    for c in &cases() {
        let mut targets = vec![c.signature_header];
        if let Some((header, _)) = c.signed_timestamp
            && header != c.signature_header
        {
            targets.push(header);
        }
        for name in targets {
            for garbage in ["garbage", "sha256=not-hex", "v1,%%%", "t=yesterday,v1=00"] {
                let got = c.run_headers(&c.with_header(name, garbage.to_string()));
                let e = c.fails(&format!("{name}: {garbage}"), got, "malformed_header");
                let VerifyError::MalformedHeader { header, .. } = e else {
                    unreachable!()
                };
                assert!(
                    header.eq_ignore_ascii_case(name),
                    "{}: {header} for {name}",
                    c.name
                );
            }
        }
    }
}

#[test]
fn verify_vectors_own_negative_cases_fail() {
    let cases = cases();
    let mut seen = 0;
    for c in &cases {
        for (field, signature) in &c.own_negatives {
            let got = c.run_headers(&c.with_header(c.signature_header, signature.clone()));
            c.fails(field, got, "bad_signature");
            seen += 1;
        }
    }
    assert_eq!(seen, 2, "the two Standard Webhooks negatives");

    let raw: Vec<Value> = serde_json::from_str(VECTORS).unwrap();
    let field = |i: usize, k: &str| raw[i][k].as_str().unwrap().to_string();

    // Stripe: "now=t+400 fails" at the default tolerance of 300 s.
    let stripe = &cases[3];
    assert!(field(3, "tolerance_tests").contains("now=t+400 fails"));
    let got = stripe.run(
        &stripe.headers,
        &stripe.body,
        &stripe.secret,
        at(1_533_204_620 + 400),
    );
    let e = stripe.fails("t+400", got, "timestamp_outside_window");
    assert_eq!(e, VerifyError::TimestampOutsideWindow { skew_secs: 400 });

    // Stripe: v0 is ignored, so the header's v0 alone is not a signature.
    let full = field(3, "expected_header");
    let v0_only: Vec<&str> = full.split(',').filter(|p| !p.starts_with("v1=")).collect();
    let got = stripe.run_headers(&stripe.with_header("Stripe-Signature", v0_only.join(",")));
    stripe.fails("v0 only", got, "malformed_header");

    // GitHub: the legacy SHA-1 X-Hub-Signature is no substitute for X-Hub-Signature-256.
    let github = &cases[2];
    let legacy = field(2, "sha1_legacy_X-Hub-Signature_computed_not_published");
    let mut headers = github.without_header("X-Hub-Signature-256");
    headers.push(("X-Hub-Signature".into(), legacy));
    let e = github.fails("sha1 only", github.run_headers(&headers), "missing_header");
    assert_eq!(e, VerifyError::MissingHeader("X-Hub-Signature-256".into()));
}

#[test]
fn verify_vectors_header_names_ignore_case() {
    for c in &cases() {
        for change in [str::to_ascii_uppercase, str::to_ascii_lowercase] {
            let headers: Vec<(String, String)> = c
                .headers
                .iter()
                .map(|(k, v)| (change(k), v.clone()))
                .collect();
            assert_eq!(c.run_headers(&headers), Ok(c.expect.clone()), "{}", c.name);
        }
    }
}

#[test]
fn verify_github_vector_returns_the_delivery_header() {
    let cases = cases();
    let github = &cases[2];
    let id = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let headers = github.with_header("X-GitHub-Delivery", id.into());
    let got = github.run_headers(&headers).unwrap();
    assert_eq!(got.delivery_id.as_deref(), Some(id));
    assert_eq!(got.timestamp, None);
}
