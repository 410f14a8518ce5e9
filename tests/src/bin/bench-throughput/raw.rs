//! The raw baseline: framed writes between two processes over a socketpair,
//! with nothing else (a reference for what the machine's IPC can carry).

use std::io::{BufReader, BufWriter, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, ExitCode, Stdio};

use connector_sdk::ipc_proto::{self, Emit, Event, FromConnector, Message};
use e2e::bin;

use crate::{PAYLOAD, now_ns};

/// The bytes on the wire of one measured `emit` (4-byte length + bincode body).
pub fn emit_frame_bytes() -> usize {
    let event = Event {
        name: "item".into(),
        message: Some(Message::text("x".repeat(PAYLOAD))),
        properties: [("t".to_string(), now_ns().to_string())].into(),
        instance_key: Some("k12".into()),
        payload: None,
    };
    let emit = FromConnector::Emit(Emit {
        seq: 123_456,
        event,
        dedupe_key: None,
    });
    4 + ipc_proto::frame::encode_body(&emit)
        .expect("encode an emit")
        .len()
}

/// The reader half: reads frames from stdin (a Unix socket) until EOF; prints
/// `<frames> <end ns>`.
pub fn raw_reader() -> ExitCode {
    let stdin = std::io::stdin();
    let mut r = BufReader::with_capacity(256 << 10, stdin.lock());
    let mut len = [0u8; 4];
    let mut body = vec![0u8; 1 << 16];
    let mut frames = 0u64;
    while r.read_exact(&mut len).is_ok() {
        let n = u32::from_be_bytes(len) as usize;
        if body.len() < n {
            body.resize(n, 0);
        }
        if r.read_exact(&mut body[..n]).is_err() {
            break;
        }
        frames += 1;
    }
    println!("{frames} {}", now_ns());
    ExitCode::SUCCESS
}

/// Frames/s from this process to a reader process over a socketpair:
/// written through a 256 KiB buffer, or with one `write(2)` per frame.
pub fn raw_baseline(frame_bytes: usize, frames: u64, buffered: bool) -> f64 {
    let (mine, theirs) = UnixStream::pair().expect("socketpair");
    // Not current_exe(): the build at start may just have replaced this binary.
    let child = Command::new(bin("bench-throughput"))
        .arg("--raw-reader")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the raw reader");
    let body_len = frame_bytes - 4;
    let mut frame = Vec::with_capacity(frame_bytes);
    frame.extend_from_slice(&(body_len as u32).to_be_bytes());
    frame.extend((0..body_len).map(|i| i as u8));
    let start = now_ns();
    if buffered {
        let mut w = BufWriter::with_capacity(256 << 10, &mine);
        for _ in 0..frames {
            w.write_all(&frame).expect("write a frame");
        }
        w.flush().expect("flush");
    } else {
        let mut w = &mine;
        for _ in 0..frames {
            w.write_all(&frame).expect("write a frame");
        }
    }
    drop(mine);
    let out = child.wait_with_output().expect("raw reader");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let got: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let end: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    assert_eq!(got, frames, "the reader got every frame");
    frames as f64 / ((end - start) as f64 / 1e9)
}
