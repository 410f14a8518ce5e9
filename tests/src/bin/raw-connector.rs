//! `raw-connector`: a frames connector that misbehaves on purpose, written on
//! the bare codec (not connector-sdk) so it can put any bytes on the wire.
//!
//! It takes the socket named by `ORCHESTRATOR_IPC_FD`, reads `init`, sends
//! `ready`, then writes:
//! 1. one garbage frame: a valid 4-byte length and a body that is no message;
//! 2. with config `OVERSIZE=1`, the length prefix of a 4 GiB frame (and a
//!    few bytes of it), which must end the channel;
//! 3. a valid `emit` (seq 1) of event `EVENT_NAME` (default `user_message`)
//!    with text `TEXT` (default `after garbage`), properties from `PROPERTIES`
//!    (a JSON object, default `{}`) and instance key `INSTANCE_KEY` if set;
//!    with `DUP_SEQ=1` that emit twice in one write (two in flight with one
//!    seq), then an emit with seq 2.
//!
//! With `READY_PROTOCOL=N` its `ready` claims protocol version N.
//!
//! Every message it receives is printed to stderr as its type and its JSON
//! (`error {"type":"error",…}`, `ack {…}`); pings are answered. It exits 0
//! on `shutdown` or when the channel closes.

use std::collections::BTreeMap;
use std::os::fd::FromRawFd;

use anyhow::{Context as _, bail};
use futures::{SinkExt, StreamExt};
use ipc_proto::codec::FrameCodec;
use ipc_proto::{
    DEFAULT_MAX_FRAME_BYTES, Emit, Event, FromConnector, IPC_FD_ENV, Message, Pong, Ready,
    ToConnector,
};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{FramedRead, FramedWrite};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let fd: i32 = std::env::var(IPC_FD_ENV)
        .context(IPC_FD_ENV)?
        .parse()
        .context("fd number")?;
    // SAFETY: the orchestrator gave this process the fd to own; nothing else here uses it.
    let std_stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    std_stream.set_nonblocking(true)?;
    let stream = tokio::net::UnixStream::from_std(std_stream)?;
    let (read, write) = stream.into_split();
    let max = DEFAULT_MAX_FRAME_BYTES;
    let mut incoming = FramedRead::new(read, FrameCodec::<ToConnector, FromConnector>::new(max));
    let mut outgoing = FramedWrite::new(write, FrameCodec::<ToConnector, FromConnector>::new(max));

    let init = match incoming.next().await {
        Some(Ok(Ok(ToConnector::Init(init)))) => init,
        other => bail!("expected init, got {other:?}"),
    };
    eprintln!(
        "init {}",
        serde_json::to_string(&ToConnector::Init(init.clone()))?
    );
    let config = |key: &str| init.config.get(key).cloned();

    let protocol = config("READY_PROTOCOL")
        .map(|v| v.parse::<u32>())
        .transpose()
        .context("READY_PROTOCOL")?;
    outgoing
        .send(FromConnector::Ready(Ready {
            protocol,
            features: Vec::new(),
        }))
        .await?;

    // 1. A frame whose length is right and whose body is no message at all.
    let junk: &[u8] = b"\xff\xfe\xfdthis is not bincode";
    let mut frame = (junk.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(junk);
    outgoing.get_mut().write_all(&frame).await?;

    // 2. The head of a frame far over the limit.
    if config("OVERSIZE").as_deref() == Some("1") {
        let mut frame = u32::MAX.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0xAB; 64]);
        outgoing.get_mut().write_all(&frame).await?;
    }
    outgoing.get_mut().flush().await?;

    // 3. A valid emit.
    let properties: BTreeMap<String, String> = match config("PROPERTIES") {
        Some(json) => serde_json::from_str(&json).context("PROPERTIES")?,
        None => BTreeMap::new(),
    };
    let event = Event {
        name: config("EVENT_NAME").unwrap_or_else(|| "user_message".into()),
        message: Some(Message::text(
            config("TEXT").unwrap_or_else(|| "after garbage".into()),
        )),
        properties,
        instance_key: config("INSTANCE_KEY"),
        payload: None,
    };
    let emit = |seq| {
        FromConnector::Emit(Emit {
            seq,
            event: event.clone(),
            dedupe_key: None,
        })
    };
    if config("DUP_SEQ").as_deref() == Some("1") {
        // Fed, then flushed once: both reach the orchestrator before any ack.
        outgoing.feed(emit(1)).await?;
        outgoing.feed(emit(1)).await?;
        outgoing.feed(emit(2)).await?;
        outgoing.flush().await?;
    } else {
        outgoing.send(emit(1)).await?;
    }

    while let Some(item) = incoming.next().await {
        match item? {
            Ok(msg) => {
                eprintln!("{} {}", msg.tag(), serde_json::to_string(&msg)?);
                match msg {
                    ToConnector::Ping(p) => {
                        outgoing
                            .send(FromConnector::Pong(Pong { nonce: p.nonce }))
                            .await?
                    }
                    ToConnector::Shutdown(_) => break,
                    _ => {}
                }
            }
            Err(e) => eprintln!("undecodable message from the orchestrator: {e}"),
        }
    }
    Ok(())
}
