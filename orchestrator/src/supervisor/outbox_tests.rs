//! The write half of a child's channel: a full channel, a deaf child.

use futures::StreamExt;
use ipc_proto::{EmitAck, FromConnector, ToConnector};
use tokio_util::codec::FramedRead;

use super::*;

type Codec = FrameCodec<ToConnector, FromConnector>;

fn outbox() -> (Outbox<ToConnector>, tokio::net::unix::OwnedReadHalf) {
    let (ours, theirs) = tokio::net::UnixStream::pair().expect("socketpair");
    let (_, write) = ours.into_split();
    let (read, _) = theirs.into_split();
    let encode = Box::new(FrameCodec::<FromConnector, ToConnector>::new(1 << 20));
    (Outbox::new(Box::new(write), encode), read)
}

fn ack(seq: u64) -> ToConnector {
    ToConnector::Ack(EmitAck {
        seq,
        duplicate: None,
    })
}

#[tokio::test]
async fn what_a_full_channel_did_not_take_is_written_in_order_then_it_closes() {
    let (outbox, read) = outbox();
    // 4 MB: far more than a socket buffer holds, fewer messages than
    // OUTBOX. The rest waits for the reader.
    let big = |n: usize| {
        ToConnector::Error(ipc_proto::ProtocolError {
            message: format!("{n:04}{}", "x".repeat(1000)),
        })
    };
    assert!(outbox.send_all((0..4000).map(big)));
    assert!(outbox.send_all((1..=100).map(ack)));
    let reader = tokio::spawn(async move {
        let mut frames = FramedRead::new(read, Codec::new(1 << 20));
        let mut got = Vec::new();
        while let Some(Ok(Ok(msg))) = frames.next().await {
            got.push(match msg {
                ToConnector::Error(e) => e.message[..4].to_string(),
                ToConnector::Ack(a) => format!("ack {}", a.seq),
                other => format!("{other:?}"),
            });
        }
        got
    });
    drop(outbox);
    let got = reader.await.expect("reader");
    let want: Vec<String> = (0..4000)
        .map(|n| format!("{n:04}"))
        .chain((1..=100).map(|n| format!("ack {n}")))
        .collect();
    assert!(
        got == want,
        "all, in order, then EOF ({} messages)",
        got.len()
    );
}

#[tokio::test]
async fn a_child_that_does_not_read_trips_the_stall() {
    let (outbox, _read) = outbox();
    let stalled = outbox.stalled();
    let mut sent = 0u64;
    while outbox.send_all((sent..sent + 1000).map(ack)) {
        sent += 1000;
        assert!(sent < 1_000_000, "never tripped");
    }
    let why = stalled.await;
    assert!(why.contains("messages to it are waiting"), "{why}");
    assert!(!outbox.send(ack(0)), "nothing more is taken");
}
