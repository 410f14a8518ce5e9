//! The tokio-util codecs: framing, limits, and recovery after a bad message.

use bytes::{BufMut, BytesMut};
use ipc_proto::codec::{FrameCodec, JsonlCodec};
use ipc_proto::*;
use tokio_util::codec::{Decoder, Encoder};

type OrchSide = FrameCodec<FromConnector, ToConnector>;
type ChildSide = FrameCodec<ToConnector, FromConnector>;

fn emit(seq: u64) -> FromConnector {
    FromConnector::Emit(Emit {
        seq,
        event: Event {
            name: "user_message".into(),
            message: Some(Message::text("hi")),
            ..Default::default()
        },
        dedupe_key: None,
    })
}

#[test]
fn frames_round_trip_many_messages_in_one_buffer() {
    let mut child = ChildSide::new(DEFAULT_MAX_FRAME_BYTES);
    let mut orch = OrchSide::new(DEFAULT_MAX_FRAME_BYTES);
    let mut buf = BytesMut::new();
    for seq in 1..=100 {
        child.encode(emit(seq), &mut buf).unwrap();
    }
    // The first 4 bytes are the big-endian body length.
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    assert_eq!(len, frame::encode_body(&emit(1)).unwrap().len());
    for seq in 1..=100 {
        assert_eq!(orch.decode(&mut buf).unwrap().unwrap().unwrap(), emit(seq));
    }
    assert!(orch.decode(&mut buf).unwrap().is_none());
}

#[test]
fn frames_partial_input_waits() {
    let mut child = ChildSide::new(1024);
    let mut orch = OrchSide::new(1024);
    let mut all = BytesMut::new();
    child.encode(emit(1), &mut all).unwrap();
    let mut buf = BytesMut::new();
    for (i, b) in all.iter().enumerate() {
        buf.put_u8(*b);
        let got = orch.decode(&mut buf).unwrap();
        if i + 1 < all.len() {
            assert!(got.is_none());
        } else {
            assert_eq!(got.unwrap().unwrap(), emit(1));
        }
    }
}

#[test]
fn frames_oversized_length_is_one_error_item_then_the_stream_ends() {
    let mut orch = OrchSide::new(64);
    let mut child = ChildSide::new(1 << 20);
    let mut buf = BytesMut::new();
    // A peer announcing 4 GiB: nothing of it is waited for.
    buf.put_u32(u32::MAX);
    buf.extend_from_slice(&[0xAB; 10]);
    let first = orch.decode(&mut buf).unwrap().unwrap();
    assert!(
        matches!(first, Err(DecodeError::TooLarge { len, max: 64 }) if len == u32::MAX as usize),
        "{first:?}"
    );
    // Whatever follows, even a valid frame, is not read: the channel is over.
    child.encode(emit(2), &mut buf).unwrap();
    let after = orch.decode(&mut buf);
    assert!(
        after
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::InvalidData),
        "{after:?}"
    );
}

#[test]
fn frames_garbage_body_is_one_error_item() {
    let mut orch = OrchSide::new(1024);
    let mut child = ChildSide::new(1024);
    let mut buf = BytesMut::new();
    buf.put_u32(3);
    buf.extend_from_slice(&[0xFF, 0xFF, 0xFF]);
    child.encode(emit(3), &mut buf).unwrap();
    assert!(orch.decode(&mut buf).unwrap().unwrap().is_err());
    assert_eq!(orch.decode(&mut buf).unwrap().unwrap().unwrap(), emit(3));
}

#[test]
fn frames_encoder_refuses_oversized_messages() {
    let mut child = ChildSide::new(16);
    let mut buf = BytesMut::new();
    assert!(child.encode(emit(1), &mut buf).is_err());
    assert!(buf.is_empty(), "nothing half-written");
}

#[test]
fn jsonl_bad_line_then_good_line() {
    let mut orch = JsonlCodec::<FromConnector, ToConnector>::new(1024);
    let mut buf = BytesMut::from(&b"not json\n\n{\"type\":\"ready\"}\n"[..]);
    let bad = orch.decode(&mut buf).unwrap().unwrap();
    assert!(matches!(bad, Err(DecodeError::Json { .. })), "{bad:?}");
    assert_eq!(
        orch.decode(&mut buf).unwrap().unwrap().unwrap(),
        FromConnector::Ready(Ready::default())
    );
}

#[test]
fn jsonl_long_line_is_one_error_then_recovers() {
    let mut orch = JsonlCodec::<FromConnector, ToConnector>::new(32);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[b'x'; 100]);
    buf.extend_from_slice(b"\n{\"type\":\"pong\",\"nonce\":5}\n");
    let bad = orch.decode(&mut buf).unwrap().unwrap();
    assert!(matches!(bad, Err(DecodeError::TooLarge { .. })), "{bad:?}");
    assert_eq!(
        orch.decode(&mut buf).unwrap().unwrap().unwrap(),
        FromConnector::Pong(Pong { nonce: 5 })
    );
}

#[test]
fn jsonl_not_utf8_is_one_error_then_recovers() {
    let mut orch = JsonlCodec::<FromConnector, ToConnector>::new(1024);
    let mut buf = BytesMut::from(&b"\xff\xfe\n{\"type\":\"ready\"}\n"[..]);
    assert!(matches!(
        orch.decode(&mut buf).unwrap().unwrap(),
        Err(DecodeError::NotUtf8)
    ));
    assert!(orch.decode(&mut buf).unwrap().unwrap().is_ok());
}

#[test]
fn jsonl_encoder_writes_one_line() {
    let mut codec = JsonlCodec::<FromAgent, ToAgent>::new(1024);
    let mut buf = BytesMut::new();
    codec
        .encode(ToAgent::Shutdown(Shutdown { grace_ms: 5000 }), &mut buf)
        .unwrap();
    assert_eq!(&buf[..], b"{\"type\":\"shutdown\",\"graceMs\":5000}\n");
}

#[test]
fn jsonl_leaves_out_absent_fields_but_keeps_nulls_inside_a_payload() {
    let event = ipc_proto::Event {
        name: "message".into(),
        message: None,
        properties: Default::default(),
        instance_key: Some("k".into()),
        payload: Some(ipc_proto::Json(
            serde_json::json!({"a": null, "b": [null, 1]}),
        )),
    };
    let line = ipc_proto::json::encode(&event).unwrap();
    assert_eq!(
        line,
        r#"{"name":"message","properties":{},"instanceKey":"k","payload":{"a":null,"b":[null,1]}}"#
    );
    assert_eq!(
        ipc_proto::json::decode::<ipc_proto::Event>(&line).unwrap(),
        event
    );
}

#[test]
fn a_jsonl_message_over_the_limit_leaves_the_buffer_as_it_was() {
    let mut codec = JsonlCodec::<FromAgent, ToAgent>::new(40);
    let mut buf = BytesMut::new();
    codec
        .encode(ToAgent::Shutdown(Shutdown { grace_ms: 1 }), &mut buf)
        .unwrap();
    let before = buf.clone();
    let big = ToAgent::Shutdown(Shutdown { grace_ms: u64::MAX });
    let mut small = JsonlCodec::<FromAgent, ToAgent>::new(20);
    let err = small.encode(big, &mut buf).unwrap_err();
    assert!(err.to_string().contains("over the limit"), "{err}");
    assert_eq!(buf, before);
}

#[test]
fn jsonl_lines_arriving_in_pieces_decode_once_whole() {
    let mut orch = JsonlCodec::<FromConnector, ToConnector>::new(32);
    let mut buf = BytesMut::new();
    // A long line in three reads is one error; the line after it, split
    // mid-way, decodes once its newline comes; CRLF and blank lines are fine.
    for piece in [&[b'x'; 20][..], &[b'y'; 20][..], b"zz\n{\"type\":\"po"] {
        buf.extend_from_slice(piece);
        if let Some(item) = orch.decode(&mut buf).unwrap() {
            assert!(
                matches!(item, Err(DecodeError::TooLarge { .. })),
                "{item:?}"
            );
        }
    }
    assert!(
        orch.decode(&mut buf).unwrap().is_none(),
        "half a line waits"
    );
    buf.extend_from_slice(b"ng\",\"nonce\":5}\r\n\n  \n{\"type\":\"ready\"}");
    assert_eq!(
        orch.decode(&mut buf).unwrap().unwrap().unwrap(),
        FromConnector::Pong(Pong { nonce: 5 })
    );
    assert!(orch.decode(&mut buf).unwrap().is_none(), "no newline yet");
    assert_eq!(
        orch.decode_eof(&mut buf).unwrap().unwrap().unwrap(),
        FromConnector::Ready(Ready::default()),
        "the last line needs no newline at the end of the stream"
    );
    assert!(orch.decode_eof(&mut buf).unwrap().is_none());
}

#[test]
fn jsonl_long_line_reports_once_even_across_reads() {
    let mut orch = JsonlCodec::<FromConnector, ToConnector>::new(20);
    let mut buf = BytesMut::new();
    let mut errors = 0;
    for _ in 0..10 {
        buf.extend_from_slice(b"aaaaaaa");
        while let Some(item) = orch.decode(&mut buf).unwrap() {
            assert!(
                matches!(item, Err(DecodeError::TooLarge { .. })),
                "{item:?}"
            );
            errors += 1;
        }
    }
    buf.extend_from_slice(b"\n{\"type\":\"ready\"}\n");
    assert_eq!(
        orch.decode(&mut buf).unwrap().unwrap().unwrap(),
        FromConnector::Ready(Ready::default())
    );
    assert_eq!(errors, 1);
    assert!(buf.is_empty());
}
