//! The agent side against a fake orchestrator over a real socket pair.

mod common;

use std::process::ExitCode;
use std::sync::Arc;

use common::{Fake, pair, within};
use connector_sdk::agent::{Agent, AgentContext, HandlerError};
use connector_sdk::{ConfigError, Message, MockClock};
use ipc_proto::{
    AgentInit, Deliver, DeliveredEvent, DeliveryAck, DeliveryNack, FromAgent, PROTOCOL_VERSION,
    Ping, Pong, Ready, Shutdown, ToAgent,
};
use tokio::sync::Barrier;
use tokio::task::JoinHandle;

type Orch = Fake<FromAgent, ToAgent>;

fn init(protocol: u32) -> AgentInit {
    AgentInit {
        protocol,
        agent: "handler".into(),
        instance_key: "cli:ada".into(),
        swarm: "default".into(),
        state_dir: "/tmp/state/handler".into(),
        secrets: Default::default(),
    }
}

fn deliver(id: &str, text: &str) -> Deliver {
    Deliver {
        id: id.into(),
        attempt: 1,
        event: DeliveredEvent {
            id: id.into(),
            connection: "cli-local".into(),
            connector: "cli".into(),
            name: "user_message".into(),
            message: Some(Message::text(text)),
            properties: Default::default(),
            instance_key: "cli:ada".into(),
            received_at: "2026-11-27T10:30:00Z".into(),
            payload: None,
        },
    }
}

/// The agent's ack of delivery `id`.
fn ack(id: &str) -> FromAgent {
    FromAgent::Ack(DeliveryAck { id: id.into() })
}

fn text(d: &Deliver) -> &str {
    d.event
        .message
        .as_ref()
        .and_then(Message::as_text)
        .unwrap_or("")
}

/// Serves `agent` on a fresh channel and takes its `ready`: the test's side
/// of the channel, and the serving task.
async fn serving<H, Fut>(agent: Agent<H>) -> (JoinHandle<ExitCode>, Orch)
where
    H: Fn(AgentContext, Deliver) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let (transport, mut orch): (_, Orch) = pair();
    let served = tokio::spawn(agent.serve(transport));
    orch.send(init(PROTOCOL_VERSION)).await;
    orch.recv().await; // ready
    (served, orch)
}

/// Serves a handler that acks "ok", nacks "retry" (retryable) and "fail" (not).
async fn start() -> (JoinHandle<ExitCode>, Orch) {
    let (transport, mut orch) = pair();
    let agent = Agent::new(|ctx: AgentContext, d: Deliver| async move {
        assert_eq!(ctx.instance_key(), "cli:ada");
        match text(&d) {
            "retry" => Err(HandlerError::retry("upstream timed out")),
            "fail" => Err(HandlerError::fail("cannot parse")),
            _ => Ok(()),
        }
    });
    let served = tokio::spawn(agent.serve(transport));
    orch.send(init(PROTOCOL_VERSION)).await;
    assert_eq!(
        orch.recv().await,
        FromAgent::Ready(Ready {
            protocol: Some(PROTOCOL_VERSION),
            features: vec![ipc_proto::FEATURE_PAYLOAD.into()],
        })
    );
    (served, orch)
}

#[tokio::test]
async fn ok_acks_and_errors_nack_with_their_retry_flag() {
    let (_served, mut orch) = start().await;
    orch.send(deliver("e1", "ok")).await;
    assert_eq!(orch.recv().await, ack("e1"));
    orch.send(deliver("e2", "retry")).await;
    assert_eq!(
        orch.recv().await,
        FromAgent::Nack(DeliveryNack {
            id: "e2".into(),
            retry: true,
            error: "upstream timed out".into()
        })
    );
    orch.send(deliver("e3", "fail")).await;
    assert_eq!(
        orch.recv().await,
        FromAgent::Nack(DeliveryNack {
            id: "e3".into(),
            retry: false,
            error: "cannot parse".into()
        })
    );
}

#[tokio::test]
async fn ping_is_answered_and_shutdown_exits_0() {
    let (served, mut orch) = start().await;
    orch.send(Ping { nonce: 7 }).await;
    assert_eq!(orch.recv().await, FromAgent::Pong(Pong { nonce: 7 }));
    orch.send(Shutdown { grace_ms: 5000 }).await;
    assert_eq!(within(served).await.unwrap(), ExitCode::SUCCESS);
}

#[tokio::test]
async fn deliveries_in_flight_run_concurrently_and_finish_before_exit() {
    // Each handler waits for the other: only concurrent handling gets past the barrier.
    let barrier = Arc::new(Barrier::new(2));
    let agent = Agent::new(move |_ctx, _d| {
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            Ok(())
        }
    });
    let (served, mut orch) = serving(agent).await;
    orch.send(deliver("a", "x")).await;
    orch.send(deliver("b", "y")).await;
    orch.send(Shutdown { grace_ms: 5000 }).await;
    let mut acked = vec![orch.recv().await, orch.recv().await];
    acked.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(acked, [ack("a"), ack("b")]);
    assert_eq!(within(served).await.unwrap(), ExitCode::SUCCESS);
}

#[tokio::test]
async fn a_panicking_handler_nacks_with_retry() {
    let agent = Agent::new(|_ctx, _d| async move {
        panic!("handler bug");
        #[allow(unreachable_code)]
        Ok(())
    });
    let (_served, mut orch) = serving(agent).await;
    orch.send(deliver("p", "x")).await;
    assert!(matches!(orch.recv().await, FromAgent::Nack(n) if n.id == "p" && n.retry));
}

#[tokio::test]
async fn a_handler_that_panics_when_called_nacks_with_retry_and_the_agent_goes_on() {
    let agent = Agent::new(|_ctx, d: Deliver| {
        // Before any future exists: the pump itself calls this.
        assert_ne!(text(&d), "boom", "handler bug");
        async move { Ok(()) }
    });
    let (_served, mut orch) = serving(agent).await;
    orch.send(deliver("p", "boom")).await;
    match orch.recv().await {
        FromAgent::Nack(n) => {
            assert_eq!((n.id.as_str(), n.retry), ("p", true));
            assert!(n.error.contains("handler bug"), "{}", n.error);
        }
        other => panic!("expected a nack, got {other:?}"),
    }
    orch.send(deliver("q", "fine")).await;
    assert_eq!(orch.recv().await, ack("q"));
}

/// A handler that blocks its thread (no `.await`) holds up the pump once;
/// after that each delivery starts in its own task, and they still run
/// concurrently and are answered.
#[tokio::test]
async fn after_a_handler_blocks_the_thread_deliveries_still_run_concurrently() {
    let barrier = Arc::new(Barrier::new(2));
    let agent = Agent::new(move |_ctx, d: Deliver| {
        let barrier = barrier.clone();
        async move {
            match text(&d) {
                // The behaviour under test: a handler that blocks the thread.
                "slow" => std::thread::sleep(std::time::Duration::from_millis(50)),
                _ => {
                    barrier.wait().await;
                }
            }
            Ok(())
        }
    });
    let (_served, mut orch) = serving(agent).await;
    orch.send(deliver("s", "slow")).await;
    assert_eq!(orch.recv().await, ack("s"));
    orch.send(deliver("a", "x")).await;
    orch.send(deliver("b", "y")).await;
    let mut acked = vec![orch.recv().await, orch.recv().await];
    acked.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(acked, [ack("a"), ack("b")]);
}

#[tokio::test]
async fn handlers_read_the_injected_clock_and_the_system_clock_by_default() {
    let mock = MockClock::at_unix(42);
    for (clock, want_mock) in [(Some(mock.clock()), true), (None, false)] {
        let mut agent = Agent::new(move |ctx: AgentContext, _d| async move {
            if ctx.clock().is_mock() != want_mock {
                return Err(HandlerError::fail(format!(
                    "wrong clock: {:?}",
                    ctx.clock()
                )));
            }
            Ok(())
        });
        if let Some(clock) = clock {
            agent = agent.clock(clock);
        }
        let (_served, mut orch) = serving(agent).await;
        orch.send(deliver("c", "x")).await;
        assert_eq!(orch.recv().await, ack("c"));
    }
}

#[tokio::test]
async fn a_failed_setup_exits_without_ready() {
    let (transport, mut orch): (_, Orch) = pair();
    let agent = Agent::new(|_ctx, _d| async move { Ok(()) })
        .setup(|_ctx| async move { Err(ConfigError::new("MODEL is not set").into()) });
    let served = tokio::spawn(agent.serve(transport));
    orch.send(init(PROTOCOL_VERSION)).await;
    assert_eq!(within(served).await.unwrap(), ExitCode::from(78));
    assert_eq!(orch.next().await, None);
}

#[tokio::test]
async fn a_wrong_protocol_version_is_refused_with_78() {
    let (transport, mut orch): (_, Orch) = pair();
    let served = tokio::spawn(Agent::new(|_ctx, _d| async move { Ok(()) }).serve(transport));
    orch.send(init(PROTOCOL_VERSION + 1)).await;
    assert_eq!(within(served).await.unwrap(), ExitCode::from(78));
    assert_eq!(orch.next().await, None, "nothing is sent on a mismatch");
}
