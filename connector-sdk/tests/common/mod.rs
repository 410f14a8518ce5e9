//! Helpers over the SDK's fake orchestrator.
#![allow(dead_code)]

use std::time::Duration;

use connector_sdk::Transport;
use connector_sdk::testing::FakeOrchestrator;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Every wait in these tests ends by this deadline.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// The fake orchestrator with panicking helpers, for terse tests.
pub struct Fake<In, Out>(FakeOrchestrator<In, Out>);

pub fn pair<In: DeserializeOwned, Out: Serialize>() -> (Transport, Fake<In, Out>) {
    let (transport, orch) = FakeOrchestrator::pair().expect("socketpair");
    (transport, Fake(orch))
}

impl<In: DeserializeOwned, Out: Serialize> Fake<In, Out> {
    pub async fn send(&mut self, msg: impl Into<Out>) {
        self.0.send(msg).await.expect("send to the child");
    }

    /// The next message, or `None` when the child closed its end.
    pub async fn next(&mut self) -> Option<In> {
        self.0
            .recv_within(DEADLINE)
            .await
            .expect("a message in time")
    }

    pub async fn recv(&mut self) -> In {
        self.next().await.expect("the channel is open")
    }
}

/// Awaits `fut` with the test deadline.
pub async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .expect("finished in time")
}
