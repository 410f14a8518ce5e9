//! Helpers the slack connector's tests share: Slack's signature, the test
//! payloads, and a one-request HTTP client.

#![allow(dead_code, reason = "each test file uses a different part")]

pub mod fake_api;

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn testdata(rel: &str) -> PathBuf {
    crate_dir().join("testdata").join(rel)
}

/// `(file stem, raw bytes, JSON)` of every `testdata/events/*.json`, sorted.
pub fn event_payloads() -> Vec<(String, Vec<u8>, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(testdata("events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let json = serde_json::from_slice(&bytes).unwrap();
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, bytes, json)
        })
        .collect()
}

/// The Slack vector from connector-sdk's copy of the shared signature vectors.
pub fn slack_vector() -> Value {
    let path = crate_dir().join("../../connector-sdk/tests/data/vectors/signature_vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let all: Vec<Value> = serde_json::from_str(&text).unwrap();
    all.into_iter()
        .find(|v| v["scheme"] == "slack")
        .expect("a slack vector")
}

/// `v0=<hex HMAC-SHA256(secret, "v0:<ts>:<body>")>`, as Slack signs.
pub fn sign(secret: &str, ts: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Headers of a signed Slack request (`form`: a slash command).
pub fn slack_headers(secret: &str, ts: &str, body: &[u8], form: bool) -> Vec<(String, String)> {
    let ct = if form {
        "application/x-www-form-urlencoded"
    } else {
        "application/json"
    };
    vec![
        ("Content-Type".into(), ct.into()),
        ("X-Slack-Request-Timestamp".into(), ts.into()),
        ("X-Slack-Signature".into(), sign(secret, ts, body)),
    ]
}

/// An HTTP answer (the harness's).
pub use e2e::HttpAnswer as Answer;

/// One HTTP/1.1 POST to `/slack/events` on a fresh connection (blocking).
pub fn post(addr: &str, headers: &[(String, String)], body: &[u8]) -> Answer {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    e2e::http_post(addr, "/slack/events", &headers, body)
}
