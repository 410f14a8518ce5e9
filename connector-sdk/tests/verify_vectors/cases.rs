//! The vectors of `data/vectors/signature_vectors.json` as requests, with
//! what verifying each must give and how to build its negative twins.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use connector_sdk::verify::{self, Scheme, Verified, VerifyError, Window};
use serde_json::Value;

pub const VECTORS: &str = include_str!("../data/vectors/signature_vectors.json");

/// One vector as a request: what to send, and what verifying it must give.
pub struct Case {
    pub name: String,
    pub scheme: Scheme,
    pub secret: String,
    /// A well-formed secret of the same kind that did not sign the vector.
    pub wrong_secret: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub now: SystemTime,
    pub expect: Verified,
    /// Every header the scheme cannot do without.
    pub required: Vec<&'static str>,
    pub signature_header: &'static str,
    /// The header holding the signed timestamp, and its value, for timestamped schemes.
    pub signed_timestamp: Option<(&'static str, i64)>,
    /// The vector's own negative signatures: `(field, signature header value)`.
    pub own_negatives: Vec<(String, String)>,
}

pub fn at(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap())
}

pub fn cases() -> Vec<Case> {
    let raw: Vec<Value> = serde_json::from_str(VECTORS).unwrap();
    raw.iter().map(case).collect()
}

fn case(v: &Value) -> Case {
    let s = |k: &str| -> String {
        v[k].as_str()
            .unwrap_or_else(|| panic!("vector field {k} is not a string"))
            .to_string()
    };
    let scheme_name = s("scheme");
    let own_negatives = v
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("negative_"))
        .map(|(k, x)| (k.clone(), x.as_str().unwrap().to_string()))
        .collect();
    let base = Case {
        name: format!("{scheme_name}: {}", s("name")),
        scheme: scheme_name.parse().unwrap(),
        secret: s("secret"),
        wrong_secret: format!("{}-rotated", s("secret")),
        headers: Vec::new(),
        body: Vec::new(),
        now: UNIX_EPOCH,
        expect: Verified::default(),
        required: Vec::new(),
        signature_header: "",
        signed_timestamp: None,
        own_negatives,
    };
    match scheme_name.as_str() {
        "standard-webhooks" => {
            let ts = v["timestamp"].as_i64().unwrap();
            Case {
                wrong_secret: format!(
                    "whsec_{}",
                    STANDARD.encode(b"a key that signed nothing here")
                ),
                headers: pairs(&[
                    ("webhook-id", &s("msg_id")),
                    ("webhook-timestamp", &ts.to_string()),
                    ("webhook-signature", &s("expected_signature")),
                ]),
                body: s("payload").into_bytes(),
                now: at(ts),
                expect: Verified {
                    delivery_id: Some(s("msg_id")),
                    timestamp: Some(ts),
                },
                required: vec!["webhook-id", "webhook-timestamp", "webhook-signature"],
                signature_header: "webhook-signature",
                signed_timestamp: Some(("webhook-timestamp", ts)),
                ..base
            }
        }
        "github" => {
            let full = s("expected_header");
            let (name, value) = full.split_once(": ").unwrap();
            assert_eq!(value, format!("sha256={}", s("expected_signature")));
            assert_eq!(name, "X-Hub-Signature-256");
            Case {
                headers: pairs(&[(name, value)]),
                body: s("payload").into_bytes(),
                // Nothing is timestamped: any clock will do.
                now: at(1_700_000_000),
                required: vec!["X-Hub-Signature-256"],
                signature_header: "X-Hub-Signature-256",
                ..base
            }
        }
        "stripe" => {
            let t = v["timestamp"].as_i64().unwrap();
            // "../stripe/event_test_signature.json (exact bytes, …)", relative to the vectors.
            let file = s("payload_file");
            let relative = file.split(" (").next().unwrap();
            let path = format!(
                "{}/tests/data/vectors/{relative}",
                env!("CARGO_MANIFEST_DIR")
            );
            let body = std::fs::read(&path).unwrap();
            assert_eq!(body.len(), 484, "{path} must keep its exact bytes");
            assert!(!body.contains(&b'\r') && body.ends_with(b"}\n"));
            // tolerance_tests: "now=t+100 with tolerance 300 succeeds".
            assert!(s("tolerance_tests").contains("now=t+100"));
            Case {
                headers: pairs(&[("Stripe-Signature", &s("expected_header"))]),
                body,
                now: at(t + 100),
                expect: Verified {
                    delivery_id: None,
                    timestamp: Some(t),
                },
                required: vec!["Stripe-Signature"],
                signature_header: "Stripe-Signature",
                signed_timestamp: Some(("Stripe-Signature", t)),
                ..base
            }
        }
        "slack" => {
            let ts_text = s("timestamp");
            let ts: i64 = ts_text.parse().unwrap();
            Case {
                headers: pairs(&[
                    ("X-Slack-Signature", &s("expected_signature")),
                    ("X-Slack-Request-Timestamp", &ts_text),
                ]),
                body: s("payload").into_bytes(),
                now: at(ts),
                expect: Verified {
                    delivery_id: None,
                    timestamp: Some(ts),
                },
                required: vec!["X-Slack-Signature", "X-Slack-Request-Timestamp"],
                signature_header: "X-Slack-Signature",
                signed_timestamp: Some(("X-Slack-Request-Timestamp", ts)),
                ..base
            }
        }
        other => panic!("no test mapping for vector scheme {other}"),
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Case {
    pub fn run(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        secret: &str,
        now: SystemTime,
    ) -> Result<Verified, VerifyError> {
        verify::verify(&self.scheme, secret, headers, body, now, Window::DEFAULT)
    }

    pub fn run_headers(&self, headers: &[(String, String)]) -> Result<Verified, VerifyError> {
        self.run(headers, &self.body, &self.secret, self.now)
    }

    pub fn with_header(&self, name: &str, value: String) -> Vec<(String, String)> {
        let mut h = self.without_header(name);
        h.push((name.to_string(), value));
        h
    }

    pub fn without_header(&self, name: &str) -> Vec<(String, String)> {
        let mut h = self.headers.clone();
        h.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        h
    }

    pub fn header(&self, name: &str) -> &str {
        verify::Headers::get(&self.headers, name).unwrap()
    }

    /// Asserts `got` failed with `reason`, and that the error quotes no secret or signature.
    pub fn fails(
        &self,
        what: &str,
        got: Result<Verified, VerifyError>,
        reason: &str,
    ) -> VerifyError {
        let e = got.expect_err(&format!("{}: {what} must fail", self.name));
        assert_eq!(e.reason(), reason, "{}: {what}: {e}", self.name);
        let shown = format!("{e} {e:?}");
        let signature_value = self.header(self.signature_header);
        let tokens = signature_value
            .split([',', ' ', '='])
            .filter(|t| t.len() >= 16);
        for sensitive in tokens.chain([self.secret.as_str(), self.wrong_secret.as_str()]) {
            assert!(!shown.contains(sensitive), "{}: {what}: {shown}", self.name);
        }
        e
    }
}
