//! Helpers the github connector's tests share: the payload examples, GitHub's
//! signature, and a one-request HTTP client.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The header lines, lower-cased.
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 POST on a fresh connection (blocking).
pub fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    // A server may answer (413) and close before reading all of a large body.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {raw:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
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
