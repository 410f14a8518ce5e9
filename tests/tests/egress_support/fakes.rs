//! A fake provider API for the example tests, and their edits of an
//! example's copy.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use e2e::{DEADLINE, Harness};

/// A fake provider API on 127.0.0.2: `answer(path, body)` is each
/// request's JSON answer; keeps each request's line, Host header and body.
pub struct FakeApi {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<(String, String, String)>>>,
}

pub type Answer = fn(&str, &str) -> serde_json::Value;

pub fn fake_api(answer: Answer) -> FakeApi {
    let listener = TcpListener::bind("127.0.0.2:0").expect("listen on 127.0.0.2");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let keep = keep.clone();
            std::thread::spawn(move || serve(stream, &keep, answer));
        }
    });
    FakeApi { port, seen }
}

/// One HTTP/1.1 request (line, headers, a Content-Length body).
fn read_request(stream: &std::net::TcpStream) -> Option<(String, String, String)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let (mut host, mut length) = (String::new(), 0usize);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("host:") {
            host = v.trim().to_string();
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    let body = String::from_utf8_lossy(&body).to_string();
    Some((first.trim().to_string(), host, body))
}

fn serve(
    mut stream: std::net::TcpStream,
    seen: &Mutex<Vec<(String, String, String)>>,
    answer: Answer,
) {
    let Some((first, host, body)) = read_request(&stream) else {
        return;
    };
    seen.lock()
        .expect("lock")
        .push((first.clone(), host, body.clone()));
    let path = first.split(' ').nth(1).unwrap_or("");
    let answer = answer(path, &body).to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

/// Rewrites `from` (which must be there) to `to` in the file `path`.
pub fn rewrite(path: &std::path::Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(
        text.contains(from),
        "{}: `{from}` is not there; the example changed, update this test",
        path.display()
    );
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

/// Checks that `target`'s status row shows it confined by the egress proxy,
/// once it counted `allowed` connections; returns the row.
pub fn confined(h: &Harness, target: &str, allowed: u64) -> serde_json::Value {
    let row = h.wait_process("the proxy's counts", target, DEADLINE, |p| {
        p["egress"]["allowed"].as_u64().unwrap_or(0) >= allowed
    });
    let network = row["sandbox"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["limit"] == "network").cloned())
        .expect("network limit");
    assert_eq!(network["enforced"], true, "{network}");
    assert!(
        network["mechanism"]
            .as_str()
            .unwrap_or_default()
            .contains("netns+egress-proxy"),
        "{network}"
    );
    row
}
