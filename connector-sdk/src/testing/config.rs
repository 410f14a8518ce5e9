//! What a harness run starts with: [`TestConfig`], and how emits are answered.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipc_proto::{Emit, NackKind};

use crate::MockClock;

/// How the fake orchestrator answers one emit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `ack`; with `duplicate: true` when its dedupe key was acked before in this run.
    Ack,
    /// `ack` with `duplicate: true`.
    Duplicate,
    /// `nack` with this kind and message.
    Nack(NackKind, String),
    /// No answer yet: the test answers later with [`TestRun::answer`](super::TestRun::answer).
    Hold,
}

/// How the fake orchestrator answers the emits it receives.
#[derive(Clone, Default)]
pub enum AckPolicy {
    /// Ack every emit, as the orchestrator does (a repeated dedupe key is
    /// acked as a duplicate).
    #[default]
    Ack,
    /// Nack every emit with this kind.
    Nack(NackKind),
    /// Hold every emit: the test answers each one.
    Hold,
    /// Ask a function, per emit.
    With(Arc<dyn Fn(&Emit) -> Answer + Send + Sync>),
}

impl AckPolicy {
    /// A policy that asks `f` for each emit.
    pub fn with(f: impl Fn(&Emit) -> Answer + Send + Sync + 'static) -> Self {
        AckPolicy::With(Arc::new(f))
    }

    pub(super) fn answer(&self, emit: &Emit) -> Answer {
        match self {
            AckPolicy::Ack => Answer::Ack,
            AckPolicy::Nack(kind) => Answer::Nack(*kind, "nacked by the test policy".into()),
            AckPolicy::Hold => Answer::Hold,
            AckPolicy::With(f) => f(emit),
        }
    }
}

impl fmt::Debug for AckPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckPolicy::Ack => f.write_str("Ack"),
            AckPolicy::Nack(kind) => write!(f, "Nack({})", kind.as_str()),
            AckPolicy::Hold => f.write_str("Hold"),
            AckPolicy::With(_) => f.write_str("With(<fn>)"),
        }
    }
}

/// What the connector is started with: the `init` message and the harness's knobs.
#[derive(Clone, Debug)]
pub struct TestConfig {
    /// The Connector's name (`ctx.connector()`); default `test`.
    pub connector: String,
    /// The Connection's name (`ctx.connection()`); default `test`.
    pub connection: String,
    /// `spec.config`.
    pub config: BTreeMap<String, String>,
    /// The resolved secrets.
    pub secrets: BTreeMap<String, String>,
    /// The connection's state directory; `None`: a fresh temp dir, removed with the run.
    pub state_dir: Option<PathBuf>,
    /// The clock `ctx.clock()` returns; `None`: the system clock.
    pub clock: Option<MockClock>,
    /// How emits are answered until [`TestRun::set_policy`](super::TestRun::set_policy).
    pub policy: AckPolicy,
    /// The grace period [`TestRun::shutdown`](super::TestRun::shutdown) grants; default 2 s.
    pub grace: Duration,
}

impl Default for TestConfig {
    fn default() -> Self {
        TestConfig {
            connector: "test".into(),
            connection: "test".into(),
            config: BTreeMap::new(),
            secrets: BTreeMap::new(),
            state_dir: None,
            clock: None,
            policy: AckPolicy::Ack,
            grace: Duration::from_secs(2),
        }
    }
}

impl TestConfig {
    /// The defaults: connector and connection `test`, nothing configured, system clock, ack all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the Connector's name.
    pub fn connector(mut self, name: impl Into<String>) -> Self {
        self.connector = name.into();
        self
    }

    /// Sets the Connection's name.
    pub fn connection(mut self, name: impl Into<String>) -> Self {
        self.connection = name.into();
        self
    }

    /// Adds one config value.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// Adds one secret.
    pub fn secret(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.secrets.insert(key.into(), value.into());
        self
    }

    /// Uses `dir` as the state directory (kept after the run: it is the test's).
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Runs the connector on `clock`.
    pub fn clock(mut self, clock: &MockClock) -> Self {
        self.clock = Some(clock.clone());
        self
    }

    /// Answers emits by `policy`.
    pub fn policy(mut self, policy: AckPolicy) -> Self {
        self.policy = policy;
        self
    }
}
