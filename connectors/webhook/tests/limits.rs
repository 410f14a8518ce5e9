//! The connection limits of the shared HTTP plumbing, attacked over real
//! sockets against the real binary: a client sending its headers a byte at a
//! time, a body that stalls, a kept-alive connection left idle, and more
//! connections than `MAX_CONNECTIONS`. Each test configures short limits and
//! waits for the close with a deadline; nothing asserts a duration.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{DEADLINE, Webhook, start};
use connector_sdk::ipc_proto::FromConnector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough never to fire during a test.
const NEVER: &str = "1h";

/// What a client sees when it waits for the server: bytes it received before
/// the server closed the connection (`None` if it did not close by the deadline).
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(DEADLINE, read_all).await.ok()?;
    Some(got)
}

/// Reads one response on a kept-alive connection: its status and body.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                if raw.len() >= end + 4 + len {
                    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                    let body = String::from_utf8_lossy(&raw[end + 4..end + 4 + len]).into_owned();
                    return (status, body);
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed mid-response: {}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(DEADLINE, read).await.unwrap()
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
const HEALTHZ_CLOSE: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";

/// A kept-alive connection that has been answered once.
async fn served_connection(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut s).await, (200, r#"{"ok":true}"#.into()));
    s
}

async fn webhook(limits: &[(&str, &str)]) -> Webhook {
    let mut config = vec![("SIGNATURE", "none")];
    config.extend_from_slice(limits);
    start(&config, None).await
}

#[tokio::test]
async fn headers_sent_a_byte_at_a_time_are_cut_at_the_header_timeout() {
    let w = webhook(&[
        ("HEADER_TIMEOUT", "300ms"),
        ("BODY_TIMEOUT", NEVER),
        ("IDLE_TIMEOUT", NEVER),
    ])
    .await;
    let stream = TcpStream::connect(w.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // The slowloris: a header that never ends, one byte every 20 ms, for as
    // long as the server lets it.
    let drip = tokio::spawn(async move {
        let head = b"POST / HTTP/1.1\r\nHost: test\r\nX-Slow: ";
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut got = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, reader.read_to_end(&mut got)).await;
    assert!(
        closed.is_ok(),
        "the connection is still open after {DEADLINE:?}"
    );
    assert!(!String::from_utf8_lossy(&got).contains(" 200 "), "{got:?}");
    drip.abort();
    // The server is fine for everyone else.
    drop(served_connection(w.addr).await);
    w.stop().await;
}

#[tokio::test]
async fn a_client_that_connects_and_sends_nothing_is_cut_too() {
    let w = webhook(&[("HEADER_TIMEOUT", "300ms"), ("IDLE_TIMEOUT", NEVER)]).await;
    let mut s = TcpStream::connect(w.addr).await.unwrap();
    assert_eq!(read_until_closed(&mut s).await, Some(vec![]));
    w.stop().await;
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_and_cut() {
    let mut w = webhook(&[
        ("HEADER_TIMEOUT", NEVER),
        ("BODY_TIMEOUT", "300ms"),
        ("IDLE_TIMEOUT", NEVER),
    ])
    .await;
    let mut s = TcpStream::connect(w.addr).await.unwrap();
    s.write_all(b"POST /hook HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n{\"half\":")
        .await
        .unwrap();
    // ... and nothing more.
    let got = read_until_closed(&mut s)
        .await
        .expect("the connection is closed");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("BODY_TIMEOUT"), "{text}");
    // Nothing was emitted: the next message from the connector is the
    // answer to a request that completes.
    let ok = common::spawn_post(w.addr, vec![], br#"{"whole":true}"#.to_vec());
    let emit = w.next_emit().await;
    assert_eq!(emit.event.name, "webhook");
    w.orch
        .send(connector_sdk::ipc_proto::EmitAck {
            seq: emit.seq,
            duplicate: None,
        })
        .await
        .unwrap();
    assert_eq!(ok.await.unwrap().status, 200);
    w.stop().await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_at_the_idle_timeout() {
    let w = webhook(&[
        // The header timer does not close an idle connection: only IDLE_TIMEOUT does.
        ("HEADER_TIMEOUT", NEVER),
        ("IDLE_TIMEOUT", "300ms"),
    ])
    .await;
    let mut s = served_connection(w.addr).await;
    // A second request on the same connection: keep-alive works.
    s.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    assert_eq!(read_until_closed(&mut s).await, Some(vec![]));
    w.stop().await;
}

#[tokio::test]
async fn over_max_connections_the_next_is_refused_until_one_closes() {
    const MAX: usize = 3;
    let mut w = webhook(&[
        ("MAX_CONNECTIONS", "3"),
        ("HEADER_TIMEOUT", NEVER),
        ("IDLE_TIMEOUT", NEVER),
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..MAX {
        held.push(served_connection(w.addr).await);
    }
    // One more: accepted by the kernel, closed by the connector at once,
    // before a byte of an answer.
    let mut extra = TcpStream::connect(w.addr).await.unwrap();
    let _ = extra.write_all(HEALTHZ).await;
    assert_eq!(read_until_closed(&mut extra).await, Some(vec![]));
    // Counted and logged.
    let log = loop {
        match w.orch.recv_within(DEADLINE).await.unwrap() {
            Some(FromConnector::Log(l)) if l.message.contains("refused") => break l.message,
            Some(_) => continue,
            None => panic!("the connector closed the channel"),
        }
    };
    assert_eq!(
        log,
        "refused a connection: 3 open, the MAX_CONNECTIONS cap (1 refused since start)"
    );
    // The held ones still work.
    for s in &mut held {
        s.write_all(HEALTHZ).await.unwrap();
        assert_eq!(read_response(s).await.0, 200);
    }
    // One closes: its slot frees once the connector sees the close, and a
    // new client gets in (retried until then, within the deadline).
    drop(held.pop());
    let answered = tokio::time::timeout(DEADLINE, async {
        loop {
            let mut s = TcpStream::connect(w.addr).await.unwrap();
            let _ = s.write_all(HEALTHZ_CLOSE).await;
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got).await;
            if !got.is_empty() {
                return String::from_utf8_lossy(&got).into_owned();
            }
        }
    })
    .await
    .expect("a new connection is served once one closed");
    assert!(answered.starts_with("HTTP/1.1 200 "), "{answered}");
    drop(held);
    w.stop().await;
}
