//! The emit window: an orchestrator that holds its acks (`overflow: wait`)
//! holds the connector at the window, instead of letting every emit out.

mod common;

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use common::{Fake, pair, within};
use connector_sdk::{
    Accepted, Context, DEFAULT_EMIT_WINDOW, EmitError, Event, Message, NackKind, Secrets,
};
use ipc_proto::{
    ConnectorInit, EmitAck, EmitNack, FromConnector, NackError, PROTOCOL_VERSION, Ping, Pong,
    ToConnector,
};

type Orch = Fake<FromConnector, ToConnector>;

async fn connect() -> (Context, Orch) {
    let (transport, mut orch) = pair();
    let ctx = tokio::spawn(Context::connect(transport));
    orch.send(ConnectorInit {
        protocol: PROTOCOL_VERSION,
        connector: "burst".into(),
        connection: "burst".into(),
        config: BTreeMap::new(),
        secrets: Secrets::default(),
        state_dir: "/nonexistent".into(),
    })
    .await;
    let ctx = within(ctx).await.unwrap().expect("handshake");
    (ctx, orch)
}

fn event(text: &str) -> Event {
    Event {
        name: "user_message".into(),
        message: Some(Message::text(text)),
        ..Event::default()
    }
}

/// The next emit's seq and text.
async fn next_emit(orch: &mut Orch) -> (u64, String) {
    match orch.recv().await {
        FromConnector::Emit(e) => {
            let text = match e.event.message {
                Some(Message::Text(t)) => t.text,
                other => panic!("expected a text message, got {other:?}"),
            };
            (e.seq, text)
        }
        other => panic!("expected an emit, got {other:?}"),
    }
}

/// Proves nothing else was queued before now: the writer is first in,
/// first out, so a ping's pong comes before anything queued after it and
/// after everything queued before it.
async fn nothing_more_sent(orch: &mut Orch, nonce: u64) {
    orch.send(Ping { nonce }).await;
    assert_eq!(orch.recv().await, FromConnector::Pong(Pong { nonce }));
}

fn window(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

#[tokio::test]
async fn emits_past_the_window_wait_for_answers_in_call_order() {
    let (ctx, mut orch) = connect().await;
    let emitter = ctx.emitter();
    assert_eq!(emitter.window(), DEFAULT_EMIT_WINDOW);
    emitter.set_window(window(3));

    // Ten emits at once, each awaited in its own task.
    let answers: Vec<_> = (1..=10)
        .map(|i| tokio::spawn(emitter.emit(event(&i.to_string()))))
        .collect();
    assert_eq!((emitter.in_flight(), emitter.waiting()), (3, 7));

    assert!(matches!(orch.recv().await, FromConnector::Ready(_)));
    for want in 1..=3 {
        assert_eq!(next_emit(&mut orch).await, (want, want.to_string()));
    }
    // The orchestrator holds its acks: the other seven stay in the connector.
    nothing_more_sent(&mut orch, 1).await;

    // Each answer, ack or nack, in any order, lets exactly one more out.
    orch.send(EmitAck {
        seq: 2,
        duplicate: None,
    })
    .await;
    assert_eq!(next_emit(&mut orch).await, (4, "4".into()));
    nothing_more_sent(&mut orch, 2).await;
    orch.send(EmitNack {
        seq: 1,
        error: NackError {
            kind: NackKind::Overloaded,
            message: "queue full".into(),
        },
    })
    .await;
    assert_eq!(next_emit(&mut orch).await, (5, "5".into()));
    nothing_more_sent(&mut orch, 3).await;
    assert_eq!((emitter.in_flight(), emitter.waiting()), (3, 5));

    // The rest, acked as they come.
    let mut next_ack = [3, 4, 5]
        .into_iter()
        .collect::<std::collections::VecDeque<_>>();
    let mut sent = 5;
    while let Some(seq) = next_ack.pop_front() {
        orch.send(EmitAck {
            seq,
            duplicate: None,
        })
        .await;
        if sent < 10 {
            sent += 1;
            assert_eq!(next_emit(&mut orch).await, (sent, sent.to_string()));
            next_ack.push_back(sent);
        }
        assert!(emitter.in_flight() <= 3);
    }
    let mut results = Vec::new();
    for a in answers {
        results.push(within(a).await.unwrap());
    }
    assert!(matches!(
        results[0],
        Err(EmitError::Nacked {
            kind: NackKind::Overloaded,
            ..
        })
    ));
    assert!(
        results[1..]
            .iter()
            .all(|r| *r == Ok(Accepted { duplicate: false })),
        "{results:?}"
    );
    assert_eq!((emitter.in_flight(), emitter.waiting()), (0, 0));
}

#[tokio::test]
async fn a_waiting_emit_dropped_is_never_sent_and_a_wider_window_lets_others_go() {
    let (ctx, mut orch) = connect().await;
    let emitter = ctx.emitter();
    emitter.set_window(window(1));
    let first = emitter.emit(event("first"));
    let dropped = emitter.emit(event("dropped"));
    let third = emitter.emit(event("third"));
    let fourth = emitter.emit(event("fourth"));
    drop(dropped);
    assert_eq!((emitter.in_flight(), emitter.waiting()), (1, 2));

    assert!(matches!(orch.recv().await, FromConnector::Ready(_)));
    assert_eq!(next_emit(&mut orch).await, (1, "first".into()));
    nothing_more_sent(&mut orch, 1).await;
    orch.send(EmitAck {
        seq: 1,
        duplicate: Some(true),
    })
    .await;
    assert_eq!(within(first).await, Ok(Accepted { duplicate: true }));
    // The withdrawn event left no gap: the next one takes seq 2.
    assert_eq!(next_emit(&mut orch).await, (2, "third".into()));

    emitter.set_window(window(2));
    assert_eq!(next_emit(&mut orch).await, (3, "fourth".into()));
    // The channel closes: every emit in flight or waiting fails, none hangs.
    let fifth = emitter.emit(event("fifth"));
    assert_eq!(emitter.waiting(), 1);
    drop(orch);
    assert_eq!(within(third).await, Err(EmitError::Closed));
    assert_eq!(within(fourth).await, Err(EmitError::Closed));
    assert_eq!(within(fifth).await, Err(EmitError::Closed));
}
