//! Helpers the github connector's tests share: the payload examples, GitHub's
//! signature, and a one-request HTTP client.

#![allow(dead_code, reason = "each test file uses a different part")]

pub mod fake_github;

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// One payload example: `testdata/payloads/<folder>/<file>`.
pub struct Sample {
    /// The `X-GitHub-Event` it is delivered as.
    pub folder: String,
    pub file: String,
    pub bytes: Vec<u8>,
    pub json: Value,
}

impl Sample {
    /// `<folder>` or `<folder>.<action>`.
    pub fn expected_name(&self) -> String {
        match self.json["action"].as_str() {
            Some(a) => format!("{}.{a}", self.folder),
            None => self.folder.clone(),
        }
    }

    /// `folder/file`, for messages.
    pub fn label(&self) -> String {
        format!("{}/{}", self.folder, self.file)
    }
}

pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn connector_yaml_path() -> PathBuf {
    crate_dir().join("connector.yaml")
}

/// Every payload example, sorted by folder and file name.
pub fn samples() -> Vec<Sample> {
    let root = crate_dir().join("testdata/payloads");
    let mut out = Vec::new();
    let mut folders: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    for folder in folders {
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            let json = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            out.push(Sample {
                folder: name(&folder),
                file: name(&file),
                bytes,
                json,
            });
        }
    }
    out
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, as GitHub signs.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// An HTTP answer (the harness's).
pub use e2e::HttpAnswer as Answer;

/// One HTTP/1.1 POST on a fresh connection (blocking).
pub fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    e2e::http_post(addr, path, headers, body)
}

/// A GitHub delivery's headers for `event`, `delivery` and `signature`.
pub fn github_headers<'a>(
    event: &'a str,
    delivery: &'a str,
    signature: &'a str,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("Content-Type", "application/json"),
        ("User-Agent", "GitHub-Hookshot/test"),
        ("X-GitHub-Event", event),
        ("X-GitHub-Delivery", delivery),
        ("X-Hub-Signature-256", signature),
    ]
}
