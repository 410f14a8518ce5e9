//! ipc-proto frames, all four directions: a frame body decodes to a message
//! or an error, never a panic; a decoded message re-encodes and decodes to
//! itself; the length-prefixed stream codec survives any bytes in any chunks.
//!
//! Input: one byte picking the direction (and the chunk size for the
//! stream), then the bytes.

use bytes::BytesMut;
use ipc_proto::codec::FrameCodec;
use ipc_proto::{FromAgent, FromConnector, ToAgent, ToConnector, frame};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder};

/// A small limit, so the fuzzer reaches the over-the-limit path.
const MAX: usize = 4096;

fn check<T>(body: &[u8], chunk: usize)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    // One body, as `decode_body` sees it after the codec took the length.
    if let Ok(msg) = frame::decode_body::<T>(body) {
        let again = frame::encode_body(&msg).expect("a decoded message encodes");
        let back = frame::decode_body::<T>(&again).expect("a re-encoded message decodes");
        assert_eq!(back, msg, "frame round trip");
    }
    // The same bytes as a stream with length prefixes, fed in chunks.
    let mut codec = FrameCodec::<T, T>::new(MAX);
    let mut buf = BytesMut::new();
    let mut closed = false;
    for piece in body.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(Ok(msg))) => {
                    let mut out = BytesMut::new();
                    let mut enc = FrameCodec::<T, T>::new(MAX);
                    enc.encode(msg, &mut out)
                        .expect("a decoded message fits again");
                    let back = enc.decode(&mut out).expect("no i/o error");
                    assert!(matches!(back, Some(Ok(_))), "re-encoded frame decodes");
                    assert!(out.is_empty(), "one frame, wholly consumed");
                }
                Ok(Some(Err(_))) => {}
                Ok(None) => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
            assert!(
                buf.len() < before || buf.is_empty(),
                "decode makes progress"
            );
        }
        if closed {
            break;
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
