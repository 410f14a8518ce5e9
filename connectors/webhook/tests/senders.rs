//! What real senders send, through the real binary: Svix's default header
//! names, a `whsec_` secret whose base64 padding was dropped, and Slack's
//! URL verification through `SIGNATURE: slack`.

mod common;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Webhook, spawn_post, start};
use connector_sdk::ipc_proto::{Audit, EmitAck, FromConnector};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn rejected(scheme: &str, reason: &str) -> FromConnector {
    FromConnector::Audit(Audit {
        kind: "signature_rejected".into(),
        scheme: Some(scheme.into()),
        reason: Some(reason.into()),
    })
}

/// Posts; expects one emit and acks it; returns its dedupe key and the answer status.
async fn accepted(w: &mut Webhook, h: Vec<(String, String)>, body: &[u8]) -> (Option<String>, u16) {
    let post = spawn_post(w.addr, h, body.to_vec());
    let emit = w.next_emit().await;
    let ack = EmitAck {
        seq: emit.seq,
        duplicate: None,
    };
    w.orch.send(ack).await.unwrap();
    (emit.dedupe_key, post.await.unwrap().status)
}

#[tokio::test]
async fn svix_headed_deliveries_verify_with_the_shared_vectors() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../connector-sdk/tests/data/vectors/signature_vectors.json");
    let vectors: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = 0;
    for v in vectors
        .iter()
        .filter(|v| v["scheme"] == "standard-webhooks")
    {
        let (id, ts) = (v["msg_id"].as_str().unwrap(), v["timestamp"].to_string());
        let body = v["payload"].as_str().unwrap().as_bytes();
        let svix = |sig: &str| {
            headers(&[
                ("Content-Type", "application/json"),
                ("svix-id", id),
                ("svix-timestamp", &ts),
                ("svix-signature", sig),
            ])
        };
        // The vectors are years old: a window as wide lets their signatures be judged.
        let config = [
            ("SIGNATURE", "standard-webhooks"),
            ("REPLAY_WINDOW", "30years"),
        ];
        let mut w = start(&config, v["secret"].as_str()).await;
        let good = svix(v["expected_signature"].as_str().unwrap());
        let (key, status) = accepted(&mut w, good, body).await;
        assert_eq!((key.as_deref(), status), (Some(id), 200), "{}", v["name"]);
        let negative = v["negative_signature_one_char_changed"]
            .as_str()
            .or(v["negative_signature_test_no_verify"].as_str())
            .unwrap();
        let post = spawn_post(w.addr, svix(negative), body.to_vec());
        assert_eq!(
            w.next().await,
            rejected("standard-webhooks", "bad_signature")
        );
        assert_eq!(post.await.unwrap().status, 401);
        w.stop().await;
        checked += 1;
    }
    assert_eq!(checked, 2);
}

#[tokio::test]
async fn a_whsec_secret_without_its_padding_is_accepted() {
    // 31 key bytes: the base64 ends in '=', which copies often lose.
    let key = [0x5au8; 31];
    let padded = format!("whsec_{}", STANDARD.encode(key));
    assert!(padded.ends_with('='));
    let unpadded = padded.trim_end_matches('=');
    let mut w = start(&[("SIGNATURE", "standard-webhooks")], Some(unpadded)).await;
    let body = br#"{"type":"ping"}"#;
    let ts = now().to_string();
    let sig = STANDARD.encode(hmac(&key, &[b"msg_p.", ts.as_bytes(), b".", body]));
    let h = headers(&[
        ("webhook-id", "msg_p"),
        ("webhook-timestamp", &ts),
        ("webhook-signature", &format!("v1,{sig}")),
    ]);
    let (key, status) = accepted(&mut w, h, body).await;
    assert_eq!((key.as_deref(), status), (Some("msg_p"), 200));
    w.stop().await;
}

/// Slack's signature over `v0:<ts>:<body>`.
fn slack(secret: &str, ts: u64, body: &[u8]) -> Vec<(String, String)> {
    let ts = ts.to_string();
    let sig = hex::encode(hmac(
        secret.as_bytes(),
        &[b"v0:", ts.as_bytes(), b":", body],
    ));
    headers(&[
        ("Content-Type", "application/json"),
        ("X-Slack-Request-Timestamp", &ts),
        ("X-Slack-Signature", &format!("v0={sig}")),
    ])
}

#[tokio::test]
async fn slack_url_verification_is_answered_with_its_challenge_after_the_signature() {
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let mut w = start(&[("SIGNATURE", "slack")], Some(secret)).await;
    let check = json!({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"});
    let body = check.to_string().into_bytes();
    let a = spawn_post(w.addr, slack(secret, now(), &body), body.clone())
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    // Unsigned, it is refused like any request.
    let post = spawn_post(
        w.addr,
        headers(&[("Content-Type", "application/json")]),
        body,
    );
    assert_eq!(w.next().await, rejected("slack", "missing_header"));
    assert_eq!(post.await.unwrap().status, 401);
    // Nothing was emitted for the check: the next emit is a real callback.
    let callback = br#"{"type":"event_callback","event_id":"Ev1","event":{"type":"message"}}"#;
    let post = spawn_post(w.addr, slack(secret, now(), callback), callback.to_vec());
    let emit = w.next_emit().await;
    assert_eq!(emit.dedupe_key.as_deref(), Some("Ev1"));
    w.orch
        .send(EmitAck {
            seq: emit.seq,
            duplicate: None,
        })
        .await
        .unwrap();
    assert_eq!(post.await.unwrap().status, 200);
    w.stop().await;
}
