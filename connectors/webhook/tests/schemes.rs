//! Every signature scheme through the real binary: the shared signature
//! vectors (with a replay window wide enough for their old timestamps),
//! then each scheme signed now, forged, replayed late, and Discord's PING.

mod common;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Webhook, spawn_post, start};
use connector_sdk::ipc_proto::{Audit, EmitAck, FromConnector};
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Request headers, owned.
type Headers = Vec<(String, String)>;

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The Discord application's key pair in these tests.
fn discord_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// Headers that sign `body` by `scheme` with `secret`, timestamped `ts` where the scheme signs one.
fn sign(scheme: &str, secret: &str, ts: u64, id: &str, body: &[u8]) -> Vec<(String, String)> {
    let t = ts.to_string();
    match scheme {
        "github" => {
            let sig = format!("sha256={}", hex::encode(hmac(secret.as_bytes(), &[body])));
            h(&[("X-Hub-Signature-256", &sig), ("X-GitHub-Delivery", id)])
        }
        "notion" => {
            let sig = format!("sha256={}", hex::encode(hmac(secret.as_bytes(), &[body])));
            h(&[("X-Notion-Signature", &sig)])
        }
        "stripe" => {
            let v1 = hex::encode(hmac(secret.as_bytes(), &[t.as_bytes(), b".", body]));
            h(&[("Stripe-Signature", &format!("t={t},v1={v1}"))])
        }
        "slack" => {
            let v0 = hex::encode(hmac(secret.as_bytes(), &[b"v0:", t.as_bytes(), b":", body]));
            h(&[
                ("X-Slack-Request-Timestamp", &t),
                ("X-Slack-Signature", &format!("v0={v0}")),
            ])
        }
        "standard-webhooks" => {
            let key = STANDARD
                .decode(secret.strip_prefix("whsec_").unwrap())
                .unwrap();
            let tag = hmac(&key, &[id.as_bytes(), b".", t.as_bytes(), b".", body]);
            h(&[
                ("webhook-id", id),
                ("webhook-timestamp", &t),
                ("webhook-signature", &format!("v1,{}", STANDARD.encode(tag))),
            ])
        }
        "discord" => {
            let sig = discord_key().sign(&[t.as_bytes(), body].concat());
            h(&[
                ("X-Signature-Ed25519", &hex::encode(sig.to_bytes())),
                ("X-Signature-Timestamp", &t),
            ])
        }
        "hmac-sha256" => {
            let tag = STANDARD.encode(hmac(secret.as_bytes(), &[body]));
            h(&[("X-Acme-Signature", &format!("sha256={tag}"))])
        }
        other => panic!("no signer for {other}"),
    }
}

/// Each scheme's secret (Discord: the public key) and extra config.
fn setup(scheme: &str) -> (String, Vec<(&'static str, &'static str)>) {
    match scheme {
        "standard-webhooks" => ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(), vec![]),
        "discord" => (
            hex::encode(discord_key().verifying_key().to_bytes()),
            vec![],
        ),
        "hmac-sha256" => (
            "an acme secret".into(),
            vec![
                ("SIGNATURE_HEADER", "X-Acme-Signature"),
                ("SIGNATURE_ENCODING", "base64"),
                ("SIGNATURE_PREFIX", "sha256="),
            ],
        ),
        _ => ("s3cret".into(), vec![]),
    }
}

fn rejected(scheme: &str, reason: &str) -> FromConnector {
    FromConnector::Audit(Audit {
        kind: "signature_rejected".into(),
        scheme: Some(scheme.into()),
        reason: Some(reason.into()),
    })
}

/// Posts, expects one emit, acks it; returns the emit's dedupe key and the HTTP answer.
async fn accepted(
    w: &mut Webhook,
    headers: Vec<(String, String)>,
    body: &[u8],
) -> (Option<String>, Value) {
    let post = spawn_post(w.addr, headers, body.to_vec());
    let emit = w.next_emit().await;
    let ack = EmitAck {
        seq: emit.seq,
        duplicate: None,
    };
    w.orch.send(ack).await.unwrap();
    let a = post.await.unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    (emit.dedupe_key, a.json())
}

#[tokio::test]
async fn every_scheme_accepts_its_signature_and_audits_a_forgery() {
    for scheme in [
        "github",
        "stripe",
        "slack",
        "standard-webhooks",
        "notion",
        "discord",
        "hmac-sha256",
    ] {
        let (secret, extra) = setup(scheme);
        let mut config = vec![("SIGNATURE", scheme)];
        config.extend(extra);
        let mut w = start(&config, Some(&secret)).await;
        let body = json!({"id": "evt_1", "type": 2, "event_id": "Ev1"}).to_string();
        let body = body.as_bytes();

        let headers = sign(scheme, &secret, now(), "msg_1", body);
        let (key, answer) = accepted(&mut w, headers, body).await;
        let want_key = match scheme {
            "github" | "standard-webhooks" => Some("msg_1"),
            "stripe" | "notion" | "discord" => Some("evt_1"),
            "slack" => Some("Ev1"),
            _ => None,
        };
        assert_eq!(key.as_deref(), want_key, "{scheme}: the dedupe key");
        let want_answer = if scheme == "discord" {
            json!({"type": 5})
        } else {
            json!({"accepted": true, "duplicate": false})
        };
        assert_eq!(answer, want_answer, "{scheme}");

        // One byte changed after signing.
        let headers = sign(scheme, &secret, now(), "msg_2", body);
        let mut tampered = body.to_vec();
        tampered[8] ^= 1;
        let post = spawn_post(w.addr, headers, tampered);
        assert_eq!(
            w.next().await,
            rejected(scheme, "bad_signature"),
            "{scheme}"
        );
        assert_eq!(post.await.unwrap().status, 401, "{scheme}");
        // No signature at all.
        let post = spawn_post(w.addr, vec![], body.to_vec());
        assert_eq!(
            w.next().await,
            rejected(scheme, "missing_header"),
            "{scheme}"
        );
        assert_eq!(post.await.unwrap().status, 401, "{scheme}");
        w.stop().await;
    }
}

#[tokio::test]
async fn timestamped_schemes_refuse_late_requests_within_a_configurable_window() {
    for scheme in ["stripe", "slack", "standard-webhooks", "discord"] {
        let (secret, _) = setup(scheme);
        let body = br#"{"id":"evt_2","type":2}"#;
        let ten_minutes_ago = now() - 600;

        let mut w = start(&[("SIGNATURE", scheme)], Some(&secret)).await;
        let post = spawn_post(
            w.addr,
            sign(scheme, &secret, ten_minutes_ago, "m", body),
            body.to_vec(),
        );
        assert_eq!(
            w.next().await,
            rejected(scheme, "timestamp_outside_window"),
            "{scheme}"
        );
        assert_eq!(post.await.unwrap().status, 401);
        w.stop().await;

        let config = [("SIGNATURE", scheme), ("REPLAY_WINDOW", "15m")];
        let mut w = start(&config, Some(&secret)).await;
        accepted(
            &mut w,
            sign(scheme, &secret, ten_minutes_ago, "m", body),
            body,
        )
        .await;
        w.stop().await;
    }
}

#[tokio::test]
async fn discord_ping_is_answered_without_an_event() {
    let (secret, _) = setup("discord");
    let mut w = start(&[("SIGNATURE", "discord")], Some(&secret)).await;
    let ping = br#"{"id":"1","type":1,"application_id":"2","token":"t","version":1}"#;
    let a = spawn_post(
        w.addr,
        sign("discord", &secret, now(), "", ping),
        ping.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!((a.status, a.json()), (200, json!({"type": 1})));
    // A component click is emitted, keyed by its interaction id, and deferred.
    let click = br#"{"id":"9","type":3,"data":{"custom_id":"ok"}}"#;
    let headers = sign("discord", &secret, now(), "", click);
    let (key, answer) = accepted(&mut w, headers, click).await;
    assert_eq!(
        key.as_deref(),
        Some("9"),
        "the first emit is the click, not the ping"
    );
    assert_eq!(answer, json!({"type": 6}));
    w.stop().await;
}

#[tokio::test]
async fn dedupe_header_overrides_the_schemes_delivery_id() {
    let mut w = start(
        &[("SIGNATURE", "github"), ("DEDUPE_HEADER", "X-Request-Id")],
        Some("s3cret"),
    )
    .await;
    let body = br#"{"zen":"hi"}"#;
    let mut headers = sign("github", "s3cret", now(), "gh-1", body);
    headers.push(("X-Request-Id".into(), "req-9".into()));
    let (key, _) = accepted(&mut w, headers, body).await;
    assert_eq!(key.as_deref(), Some("req-9"));
    w.stop().await;
}

/// `connector-sdk/tests/data/`: the project's copy of the shared vectors.
fn sdk_data(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../connector-sdk/tests/data")
        .join(rel)
}

#[tokio::test]
async fn the_shared_signature_vectors_pass_and_their_negatives_fail() {
    let text = std::fs::read_to_string(sdk_data("vectors/signature_vectors.json")).unwrap();
    let vectors: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(vectors.len() >= 5);
    for v in &vectors {
        let scheme = v["scheme"].as_str().unwrap();
        let secret = v["secret"].as_str().unwrap();
        let body = match v["payload_file"].as_str() {
            Some(_) => std::fs::read(sdk_data("stripe/event_test_signature.json")).unwrap(),
            None => v["payload"].as_str().unwrap().as_bytes().to_vec(),
        };
        let ts = v["timestamp"].to_string().trim_matches('"').to_owned();
        let (good, bad): (Headers, Option<Headers>) = match scheme {
            "standard-webhooks" => {
                let id = v["msg_id"].as_str().unwrap();
                let base = |sig: &str| {
                    h(&[
                        ("webhook-id", id),
                        ("webhook-timestamp", &ts),
                        ("webhook-signature", sig),
                    ])
                };
                let negative = v["negative_signature_one_char_changed"]
                    .as_str()
                    .or(v["negative_signature_test_no_verify"].as_str());
                (
                    base(v["expected_signature"].as_str().unwrap()),
                    negative.map(base),
                )
            }
            "github" => {
                let sig = format!("sha256={}", v["expected_signature"].as_str().unwrap());
                (h(&[("X-Hub-Signature-256", &sig)]), None)
            }
            "stripe" => {
                let value = v["expected_header"].as_str().unwrap();
                (h(&[("Stripe-Signature", value)]), None)
            }
            "slack" => {
                let sig = v["expected_signature"].as_str().unwrap();
                (
                    h(&[
                        ("X-Slack-Request-Timestamp", &ts),
                        ("X-Slack-Signature", sig),
                    ]),
                    None,
                )
            }
            other => panic!("a vector for {other}: add it here"),
        };
        // The vectors are years old: a window as wide lets their signatures be judged.
        let config = [("SIGNATURE", scheme), ("REPLAY_WINDOW", "30years")];
        let mut w = start(&config, Some(secret)).await;
        let name = v["name"].as_str().unwrap();
        let json_body = serde_json::from_slice::<Value>(&body).is_ok();
        if json_body {
            accepted(&mut w, good.clone(), &body).await;
        } else {
            // Verified, then refused for what it is: not JSON (a 401 would mean the signature failed).
            let a = spawn_post(w.addr, good.clone(), body.clone())
                .await
                .unwrap();
            assert_eq!(a.status, 400, "{name}: {}", a.body);
        }
        // The negative twin: the vector's own, else one byte of the body changed.
        let (headers, forged_body) = match bad {
            Some(bad) => (bad, body.clone()),
            None => {
                let mut b = body.clone();
                b[0] ^= 1;
                (good, b)
            }
        };
        let post = spawn_post(w.addr, headers, forged_body);
        assert_eq!(w.next().await, rejected(scheme, "bad_signature"), "{name}");
        assert_eq!(post.await.unwrap().status, 401, "{name}");
        w.stop().await;
    }
}
