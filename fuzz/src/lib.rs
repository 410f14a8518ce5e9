//! Helpers shared by the fuzz targets in `src/bin/`: splitting one input
//! into the several values a parser takes, and the contract checks more
//! than one target makes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Separates the parts of one input. 0xFF never occurs in UTF-8, so a
/// seed built from text (JSON, YAML, headers) keeps its parts intact.
pub const SEP: u8 = 0xFF;

/// The first `n - 1` parts of `data` split at [`SEP`], and the rest as the last
/// part (which may contain [`SEP`]); missing parts are empty.
pub fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(n, |b| *b == SEP).collect();
    out.resize(n, &[]);
    out
}

/// `bytes` as text, or `None` when they are not UTF-8 (what every
/// text-taking entry point receives after its own UTF-8 check).
pub fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// Header lines `name: value`, one a line; a line without `:` is a name with
/// an empty value.
pub fn headers(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(':') {
            Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
            None => (l.trim().to_owned(), String::new()),
        })
        .collect()
}

/// The same headers as an `http::HeaderMap`, leaving out the pairs `http`
/// refuses (as a real server would never hand them over).
pub fn header_map(pairs: &[(String, String)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            map.append(k, v);
        }
    }
    map
}

/// A clock reading from up to 8 bytes of input, any time from 1970 to far
/// past 2100 (u32 seconds plus a few more bits).
pub fn clock(bytes: &[u8]) -> SystemTime {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    let secs = u64::from_le_bytes(buf) % (1u64 << 36);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A JSON value from bytes, as a connector's HTTP handler reads a body.
pub fn json(bytes: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(bytes).ok()
}

/// Every event a connector hands the orchestrator must encode in both wire
/// forms and come back equal: a value that does not is lost on the way.
pub fn assert_event_travels(event: &connector_sdk::Event) {
    use ipc_proto::{Emit, FromConnector, frame, json};
    let msg = FromConnector::Emit(Emit {
        seq: 1,
        event: event.clone(),
        dedupe_key: None,
    });
    let line = json::encode(&msg).expect("an event encodes as jsonl");
    let back: FromConnector = json::decode(&line).expect("an encoded event decodes");
    assert_eq!(back, msg, "jsonl round trip of an event");
    let body = frame::encode_body(&msg).expect("an event encodes as a frame");
    let back: FromConnector = frame::decode_body(&body).expect("an encoded frame decodes");
    assert_eq!(back, msg, "frame round trip of an event");
}
