//! ipc-proto jsonl, all four directions: a line decodes to a message or an
//! error, never a panic; a decoded message re-encodes and decodes to itself;
//! the line codec survives any bytes in any chunks.
//!
//! Input: one byte picking the direction (and the chunk size for the
//! stream), then the bytes.

use bytes::BytesMut;
use ipc_proto::codec::JsonlCodec;
use ipc_proto::{FromAgent, FromConnector, ToAgent, ToConnector, json};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder};

/// A small limit, so the fuzzer reaches the over-the-limit path.
const MAX: usize = 4096;

fn round_trip<T>(msg: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let line = json::encode_line(msg).expect("a decoded message encodes");
    assert!(
        line.ends_with('\n') && !line[..line.len() - 1].contains('\n'),
        "one line"
    );
    let back = json::decode::<T>(&line).expect("a re-encoded message decodes");
    assert_eq!(&back, msg, "jsonl round trip");
}

fn check<T>(bytes: &[u8], chunk: usize)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(line) = std::str::from_utf8(bytes)
        && let Ok(msg) = json::decode::<T>(line)
    {
        round_trip(&msg);
    }
    let mut codec = JsonlCodec::<T, T>::new(MAX);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Ok(Some(item)) = codec.decode(&mut buf) {
            items.push(item);
        }
    }
    while let Ok(Some(item)) = codec.decode_eof(&mut buf) {
        items.push(item);
        if buf.is_empty() {
            break;
        }
    }
    for msg in items.into_iter().flatten() {
        round_trip(&msg);
        // Re-encoding may come out longer (`1e2` is written `100.0`), so
        // over the limit is an answer here, not a failure.
        let mut out = BytesMut::new();
        if codec.encode(msg, &mut out).is_ok() {
            let line = std::str::from_utf8(&out).expect("jsonl is UTF-8");
            assert!(line.len() <= MAX + 1, "the encoder keeps its limit");
        }
    }
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&pick, body)) = data.split_first() else {
            return;
        };
        let chunk = usize::from(pick >> 2) + 1;
        match pick & 3 {
            0 => check::<ToConnector>(body, chunk),
            1 => check::<FromConnector>(body, chunk),
            2 => check::<ToAgent>(body, chunk),
            _ => check::<FromAgent>(body, chunk),
        }
    });
}
