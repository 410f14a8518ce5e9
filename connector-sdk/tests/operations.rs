//! Operations on the connector side, against a fake orchestrator over a real
//! socket pair: each `call` reaches its handler and gets exactly one `callResult`.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{DEADLINE, Fake, pair, within};
use connector_sdk::testing::{TestConfig, run_connector};
use connector_sdk::{
    BoxError, Context, Event, FailureClass, OperationCall, OperationError, OperationOk, Secrets,
};
use ipc_proto::{
    Call, CallError, CallResult, CancelCall, ConnectorInit, EmitAck, FromConnector, Json,
    PROTOCOL_VERSION, Ping, Pong, ToConnector,
};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

type Orch = Fake<FromConnector, ToConnector>;

async fn connect() -> (Context, Orch) {
    let (transport, mut orch) = pair();
    let ctx = tokio::spawn(Context::connect(transport));
    orch.send(ConnectorInit {
        protocol: PROTOCOL_VERSION,
        connector: "chat".into(),
        connection: "chat-prod".into(),
        config: BTreeMap::new(),
        secrets: Secrets(BTreeMap::new()),
        state_dir: "/tmp/state/chat-prod".into(),
    })
    .await;
    let ctx = within(ctx).await.unwrap().expect("handshake");
    (ctx, orch)
}

fn call(id: &str, operation: &str, input: serde_json::Value) -> Call {
    Call {
        id: id.into(),
        operation: operation.into(),
        input: Json(input),
        attempt: 1,
        deadline_ms: 30_000,
        idempotency_key: None,
    }
}

/// The next message that is not `ready` or a log line.
async fn next(orch: &mut Orch) -> FromConnector {
    loop {
        match orch.recv().await {
            FromConnector::Ready(_) | FromConnector::Log(_) => continue,
            other => return other,
        }
    }
}

async fn call_result(orch: &mut Orch) -> CallResult {
    match next(orch).await {
        FromConnector::CallResult(r) => r,
        other => panic!("expected a callResult, got {other:?}"),
    }
}

fn class_of(r: &CallResult) -> Option<FailureClass> {
    r.error.as_ref().map(|e| e.class)
}

#[tokio::test]
async fn a_call_reaches_its_handler_and_its_result_carries_the_data() {
    let (ctx, mut orch) = connect().await;
    ctx.operations()
        .on("sendMessage", |call: OperationCall| async move {
            assert!(call.remaining() > Duration::from_secs(1), "{call:?}");
            assert!(call.remaining() <= Duration::from_millis(4_950));
            Ok(OperationOk::new(json!({
                "echo": call.input,
                "attempt": call.attempt,
                "key": call.idempotency_key,
                "id": call.id,
            }))
            .provider_status(200)
            .warning("slow provider"))
        });
    ctx.ready().await;
    orch.send(Call {
        attempt: 2,
        deadline_ms: 4_950,
        idempotency_key: Some("reply:e1".into()),
        ..call("c-1", "sendMessage", json!({"chatId": "42", "text": "hi"}))
    })
    .await;
    assert_eq!(
        call_result(&mut orch).await,
        CallResult {
            id: "c-1".into(),
            ok: true,
            data: Some(Json(json!({
                "echo": {"chatId": "42", "text": "hi"},
                "attempt": 2,
                "key": "reply:e1",
                "id": "c-1",
            }))),
            provider_status: Some(200),
            warnings: vec!["slow provider".into()],
            error: None,
        }
    );
}

#[tokio::test]
async fn classified_errors_reach_the_orchestrator_as_they_were_made() {
    let (ctx, mut orch) = connect().await;
    ctx.operations()
        .on("limited", |_| async {
            Err(
                OperationError::quota_exceeded("provider answered 429", Duration::from_secs(3))
                    .provider_status(429),
            )
        })
        .on("typed", |call: OperationCall| async move {
            #[derive(serde::Deserialize)]
            #[allow(dead_code)]
            struct Input {
                text: String,
            }
            let _input: Input = call.input_as()?;
            Ok(json!("fine").into())
        });
    assert_eq!(ctx.operations().names(), ["limited", "typed"]);
    orch.send(call("c-1", "limited", json!({}))).await;
    let r = call_result(&mut orch).await;
    assert!(!r.ok);
    assert_eq!(
        r.error,
        Some(CallError {
            class: FailureClass::QuotaExceeded,
            message: "provider answered 429".into(),
            retry_after_ms: Some(3000),
            provider_status: Some(429),
        })
    );
    orch.send(call("c-2", "typed", json!({"text": 5}))).await;
    let r = call_result(&mut orch).await;
    assert_eq!(class_of(&r), Some(FailureClass::ValidationError), "{r:?}");
    orch.send(call("c-3", "typed", json!({"text": "x"}))).await;
    assert_eq!(call_result(&mut orch).await.data, Some(Json(json!("fine"))));
}

#[tokio::test]
async fn slow_calls_run_concurrently_and_hold_up_no_emit_ack_or_ping() {
    let (ctx, mut orch) = connect().await;
    // Both handlers wait until the test lets them go, after the emit went through.
    let gate = Arc::new(Semaphore::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let handler_gate = gate.clone();
    ctx.operations().on("slow", move |call: OperationCall| {
        let (gate, started) = (handler_gate.clone(), started_tx.clone());
        async move {
            started.send(call.id.clone()).unwrap();
            gate.acquire().await.unwrap().forget();
            Ok(OperationOk::new(json!({"done": call.id})))
        }
    });
    ctx.ready().await;
    orch.send(call("c-1", "slow", json!(null))).await;
    orch.send(call("c-2", "slow", json!(null))).await;
    let mut ids = [
        within(started.recv()).await.unwrap(),
        within(started.recv()).await.unwrap(),
    ];
    ids.sort();
    assert_eq!(ids, ["c-1", "c-2"], "both handlers run at once");

    let emit = tokio::spawn(ctx.emit(Event {
        name: "user_message".into(),
        ..Event::default()
    }));
    let seq = match next(&mut orch).await {
        FromConnector::Emit(e) => e.seq,
        other => panic!("expected an emit, got {other:?}"),
    };
    orch.send(EmitAck {
        seq,
        duplicate: None,
    })
    .await;
    within(emit).await.unwrap().expect("the emit is acked");
    orch.send(Ping { nonce: 9 }).await;
    assert_eq!(
        next(&mut orch).await,
        FromConnector::Pong(Pong { nonce: 9 })
    );

    gate.add_permits(2);
    let mut done = [call_result(&mut orch).await, call_result(&mut orch).await];
    done.sort_by(|a, b| a.id.cmp(&b.id));
    for (r, id) in done.iter().zip(["c-1", "c-2"]) {
        assert_eq!(r.id, id);
        assert!(r.ok);
        assert_eq!(r.data, Some(Json(json!({"done": id}))));
    }
}

#[tokio::test]
async fn an_unknown_operation_is_unavailable() {
    let (ctx, mut orch) = connect().await;
    ctx.operations()
        .on("known", |_| async { Ok(json!(1).into()) });
    orch.send(call("c-1", "unknown", json!({}))).await;
    let r = call_result(&mut orch).await;
    assert_eq!(r.id, "c-1");
    assert!(!r.ok);
    assert_eq!(class_of(&r), Some(FailureClass::Unavailable));
    assert!(r.error.unwrap().message.contains("\"unknown\""));
}

#[tokio::test]
async fn cancel_aborts_the_handler_and_answers_canceled() {
    let (ctx, mut orch) = connect().await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (dropped_tx, mut dropped) = mpsc::unbounded_channel::<()>();
    ctx.operations().on("forever", move |_| {
        let (started, dropped) = (started_tx.clone(), dropped_tx.clone());
        async move {
            // Sends when the handler's future is dropped (aborted).
            struct OnDrop(mpsc::UnboundedSender<()>);
            impl Drop for OnDrop {
                fn drop(&mut self) {
                    let _ = self.0.send(());
                }
            }
            let _guard = OnDrop(dropped);
            started.send(()).unwrap();
            std::future::pending::<()>().await;
            Ok(OperationOk::default())
        }
    });
    orch.send(call("c-1", "forever", json!({}))).await;
    within(started.recv()).await.unwrap();
    orch.send(CancelCall { id: "c-1".into() }).await;
    let r = call_result(&mut orch).await;
    assert_eq!((r.id.as_str(), r.ok), ("c-1", false));
    assert_eq!(class_of(&r), Some(FailureClass::Canceled));
    within(dropped.recv())
        .await
        .expect("the handler was dropped");
    // A cancel for a call already answered is ignored; the channel goes on.
    orch.send(CancelCall { id: "c-1".into() }).await;
    orch.send(Ping { nonce: 1 }).await;
    assert_eq!(
        next(&mut orch).await,
        FromConnector::Pong(Pong { nonce: 1 })
    );
}

#[tokio::test]
async fn a_panicking_handler_is_answered_transient() {
    let (ctx, mut orch) = connect().await;
    ctx.operations()
        .on("boom", |call: OperationCall| async move {
            if call.attempt > 0 {
                panic!("boom");
            }
            Ok(OperationOk::default())
        });
    orch.send(call("c-1", "boom", json!({}))).await;
    let r = call_result(&mut orch).await;
    assert_eq!(class_of(&r), Some(FailureClass::Transient), "{r:?}");
}

async fn greeter(ctx: Context) -> Result<(), BoxError> {
    ctx.operations()
        .on("greet", |call: OperationCall| async move {
            match call.input["name"].as_str() {
                Some(name) => Ok(json!({"greeting": format!("hello {name}")}).into()),
                None => Err(OperationError::permanent("input.name is missing")),
            }
        });
    ctx.ready().await;
    ctx.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_harness_calls_operations_like_the_orchestrator() {
    let run = run_connector(greeter, TestConfig::new());
    run.wait_ready(DEADLINE).await.unwrap();
    let r = run
        .call("greet", json!({"name": "ada"}), DEADLINE)
        .await
        .unwrap();
    assert!(r.ok);
    assert_eq!(r.data, Some(Json(json!({"greeting": "hello ada"}))));
    let r = run.call("greet", json!({}), DEADLINE).await.unwrap();
    assert_eq!(class_of(&r), Some(FailureClass::Permanent));
    let r = run.call("other", json!({}), DEADLINE).await.unwrap();
    assert_eq!(class_of(&r), Some(FailureClass::Unavailable));
    run.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_result_over_the_frame_limit_is_still_answered_once() {
    let (ctx, mut orch) = connect().await;
    let huge = "x".repeat(ipc_proto::DEFAULT_MAX_FRAME_BYTES + 1);
    ctx.operations().on("huge", move |_| {
        let huge = huge.clone();
        async move { Ok(json!({ "text": huge }).into()) }
    });
    orch.send(call("c-1", "huge", json!({}))).await;
    let r = call_result(&mut orch).await;
    assert_eq!(r.id, "c-1");
    assert_eq!(class_of(&r), Some(FailureClass::ValidationError), "{r:?}");
    assert!(r.error.unwrap().message.contains("could not be sent"));
}
