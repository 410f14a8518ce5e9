//! `AgentContext::invoke` against a fake orchestrator over a real socket pair:
//! invokes made while a delivery is handled, results matched by id.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use common::{Fake, pair, within};
use connector_sdk::Message;
use connector_sdk::agent::{Agent, AgentContext, FailureClass, InvokeFailure};
use ipc_proto::{
    AgentInit, Deliver, DeliveredEvent, DeliveryAck, FromAgent, Invoke, InvokeError,
    InvokeResponse, InvokeResult, Json, PROTOCOL_VERSION, Ping, Pong, ResponseMetadata, ToAgent,
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

type Orch = Fake<FromAgent, ToAgent>;

type Outcome = Result<serde_json::Value, InvokeFailure>;

/// An agent that, per delivery, invokes `send` and `react` of `chat-prod` at
/// once, reports both outcomes on `out`, then acks.
async fn start() -> (
    JoinHandle<ExitCode>,
    Orch,
    mpsc::UnboundedReceiver<(Outcome, Outcome)>,
) {
    let (transport, mut orch) = pair();
    let (tx, rx) = mpsc::unbounded_channel();
    let agent = Agent::new(move |ctx: AgentContext, d: Deliver| {
        let tx = tx.clone();
        async move {
            let send = ctx
                .invoke("chat-prod", "send", json!({"text": "hi"}))
                .idempotency_key(format!("reply:{}", d.id))
                .timeout(Duration::from_millis(2500))
                .correlation_id(d.event.id.clone());
            let react = ctx.invoke("chat-prod", "react", json!({"emoji": "+1"}));
            let (a, b) = tokio::join!(send.into_future(), react.into_future());
            tx.send((a.map(|r| r.data.0), b.map(|r| r.data.0))).unwrap();
            Ok(())
        }
    });
    let served = tokio::spawn(agent.serve(transport));
    orch.send(AgentInit {
        protocol: PROTOCOL_VERSION,
        agent: "replier".into(),
        instance_key: "chat:42".into(),
        swarm: "default".into(),
        state_dir: "/tmp/state/replier".into(),
        secrets: Default::default(),
    })
    .await;
    assert!(matches!(orch.recv().await, FromAgent::Ready(_)));
    (served, orch, rx)
}

fn deliver(id: &str) -> Deliver {
    Deliver {
        id: id.into(),
        attempt: 1,
        event: DeliveredEvent {
            id: id.into(),
            connection: "chat-prod".into(),
            connector: "chat".into(),
            name: "user_message".into(),
            message: Some(Message::text("hello")),
            properties: Default::default(),
            instance_key: "chat:42".into(),
            received_at: "2026-11-29T10:30:00Z".into(),
            payload: None,
        },
    }
}

async fn invoked(orch: &mut Orch) -> Invoke {
    match orch.recv().await {
        FromAgent::Invoke(i) => i,
        other => panic!("expected an invoke, got {other:?}"),
    }
}

fn ok(id: &str, invoke: &Invoke, data: serde_json::Value) -> InvokeResult {
    InvokeResult {
        id: id.into(),
        ok: true,
        response: Some(InvokeResponse {
            data: Json(data),
            metadata: ResponseMetadata {
                request_id: "req-1".into(),
                correlation_id: invoke.correlation_id.clone(),
                connection: invoke.connection.clone(),
                operation: invoke.operation.clone(),
                duration_ms: 3,
                attempts: 1,
                provider_status: Some(200),
            },
            warnings: vec![],
            redactions_applied: vec![],
            truncated: false,
        }),
        error: None,
        job: None,
    }
}

#[tokio::test]
async fn two_invokes_in_flight_are_matched_by_id_when_answered_out_of_order() {
    let (_served, mut orch, mut outcomes) = start().await;
    orch.send(deliver("e1")).await;
    let mut invokes = [invoked(&mut orch).await, invoked(&mut orch).await];
    invokes.sort_by(|a, b| a.operation.cmp(&b.operation));
    let [react, send] = invokes;
    assert_ne!(react.id, send.id, "ids are unique");
    assert_eq!(send.connection, "chat-prod");
    assert_eq!(send.input, Json(json!({"text": "hi"})));
    assert_eq!(send.idempotency_key.as_deref(), Some("reply:e1"));
    assert_eq!(send.timeout_ms, Some(2500));
    assert_eq!(send.correlation_id.as_deref(), Some("e1"));
    assert_eq!(
        (
            react.idempotency_key.as_ref(),
            react.timeout_ms,
            react.correlation_id.as_ref()
        ),
        (None, None, None)
    );

    // A ping in between is still answered while both wait.
    orch.send(Ping { nonce: 3 }).await;
    assert_eq!(orch.recv().await, FromAgent::Pong(Pong { nonce: 3 }));
    // A result for an id nobody waits for is ignored.
    orch.send(ok("invoke-999", &send, json!("stray"))).await;
    // The second first, then the first, as a failure.
    orch.send(ok(&react.id, &react, json!({"reacted": true})))
        .await;
    orch.send(InvokeResult {
        id: send.id.clone(),
        ok: false,
        response: None,
        error: Some(InvokeError {
            class: FailureClass::QuotaExceeded,
            message: "provider answered 429".into(),
            retry_after_ms: Some(3000),
            provider_status: Some(429),
            attempts: 3,
        }),
        job: None,
    })
    .await;

    let (send_outcome, react_outcome) = within(outcomes.recv()).await.unwrap();
    assert_eq!(react_outcome, Ok(json!({"reacted": true})));
    let failure = send_outcome.unwrap_err();
    assert_eq!(failure.class, FailureClass::QuotaExceeded);
    assert_eq!(failure.message, "provider answered 429");
    assert_eq!(failure.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(failure.provider_status, Some(429));
    assert_eq!(failure.attempts, 3);
    assert_eq!(
        (failure.connection.as_str(), failure.operation.as_str()),
        ("chat-prod", "send")
    );
    // The delivery is acked after its invokes were answered.
    assert_eq!(
        orch.recv().await,
        FromAgent::Ack(DeliveryAck { id: "e1".into() })
    );
}

#[tokio::test]
async fn invokes_waiting_when_the_channel_closes_fail_unavailable() {
    let (served, mut orch, mut outcomes) = start().await;
    orch.send(deliver("e1")).await;
    invoked(&mut orch).await;
    invoked(&mut orch).await;
    drop(orch);
    let (a, b) = within(outcomes.recv()).await.unwrap();
    for outcome in [a, b] {
        assert_eq!(outcome.unwrap_err().class, FailureClass::Unavailable);
    }
    assert_eq!(within(served).await.unwrap(), ExitCode::SUCCESS);
}

#[tokio::test]
async fn an_invoke_over_the_frame_limit_fails_validation_without_being_sent() {
    let (transport, mut orch): (_, Orch) = pair();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = Agent::new(move |ctx: AgentContext, _d: Deliver| {
        let tx = tx.clone();
        async move {
            let huge = "x".repeat(ipc_proto::DEFAULT_MAX_FRAME_BYTES + 1);
            let r = ctx
                .invoke("chat-prod", "send", json!({ "text": huge }))
                .await;
            tx.send(r.map(|r| r.data.0)).unwrap();
            Ok(())
        }
    });
    let _served = tokio::spawn(agent.serve(transport));
    orch.send(AgentInit {
        protocol: PROTOCOL_VERSION,
        agent: "replier".into(),
        instance_key: "chat:42".into(),
        swarm: "default".into(),
        state_dir: "/tmp/state/replier".into(),
        secrets: Default::default(),
    })
    .await;
    assert!(matches!(orch.recv().await, FromAgent::Ready(_)));
    orch.send(deliver("e1")).await;
    let failure = within(rx.recv()).await.unwrap().unwrap_err();
    assert_eq!(failure.class, FailureClass::ValidationError, "{failure}");
    assert_eq!(failure.attempts, 0);
    assert_eq!(
        (failure.connection.as_str(), failure.operation.as_str()),
        ("chat-prod", "send")
    );
    // Nothing but the ack was sent.
    assert_eq!(
        orch.recv().await,
        FromAgent::Ack(DeliveryAck { id: "e1".into() })
    );
}

/// The orchestrator's `result` for request `id`, carrying job `j-1` in `state`.
fn job_result(id: &str, state: ipc_proto::JobState) -> InvokeResult {
    InvokeResult {
        id: id.into(),
        ok: true,
        response: None,
        error: None,
        job: Some(Box::new(job("j-1", state))),
    }
}

fn job(id: &str, state: ipc_proto::JobState) -> ipc_proto::Job {
    ipc_proto::Job {
        job_id: id.into(),
        state,
        connection: Some("reports".into()),
        operation: Some("build".into()),
        response: None,
        error: None,
    }
}

/// An async operation: `.job()` resolves with the job the orchestrator
/// started, `job_get` and `job_cancel` ask about it by id; the agent names
/// the `payload` feature and gets the event's payload.
#[tokio::test]
async fn an_async_invoke_resolves_with_its_job_and_jobs_are_asked_by_id() {
    use ipc_proto::JobState;
    let (transport, mut orch): (_, Orch) = pair();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = Agent::new(move |ctx: AgentContext, d: Deliver| {
        let tx = tx.clone();
        async move {
            let started = ctx.invoke("reports", "build", json!({})).job().await?;
            let got = ctx.job_get(started.job_id.clone()).await?;
            let canceled = ctx.job_cancel(started.job_id.clone()).await?;
            let payload = d.event.payload.map(|p| p.0);
            tx.send((started.state, got.state, canceled.state, payload))
                .unwrap();
            Ok(())
        }
    });
    let _served = tokio::spawn(agent.serve(transport));
    orch.send(AgentInit {
        protocol: PROTOCOL_VERSION,
        agent: "reporter".into(),
        instance_key: "k".into(),
        swarm: "default".into(),
        state_dir: "/tmp/state/reporter".into(),
        secrets: Default::default(),
    })
    .await;
    match orch.recv().await {
        FromAgent::Ready(r) => assert!(r.has_feature(ipc_proto::FEATURE_PAYLOAD), "{r:?}"),
        other => panic!("not ready: {other:?}"),
    }
    let mut d = deliver("e1");
    d.event.payload = Some(Json(json!({"update_id": 10})));
    orch.send(d).await;
    let FromAgent::Invoke(invoke) = orch.recv().await else {
        panic!("no invoke")
    };
    orch.send(job_result(&invoke.id, JobState::Pending)).await;
    let FromAgent::JobGet(get) = orch.recv().await else {
        panic!("no jobGet")
    };
    assert_eq!(get.job_id, "j-1");
    orch.send(job_result(&get.id, JobState::Running)).await;
    let FromAgent::JobCancel(cancel) = orch.recv().await else {
        panic!("no jobCancel")
    };
    assert_eq!(cancel.job_id, "j-1");
    orch.send(job_result(&cancel.id, JobState::Canceled)).await;
    let (started, got, canceled, payload) = within(rx.recv()).await.unwrap();
    assert_eq!(
        (started, got, canceled),
        (JobState::Pending, JobState::Running, JobState::Canceled)
    );
    assert_eq!(payload, Some(json!({"update_id": 10})));
    assert_eq!(
        orch.recv().await,
        FromAgent::Ack(DeliveryAck { id: "e1".into() })
    );
}
