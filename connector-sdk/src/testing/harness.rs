//! [`run_connector`]: a connector function against an in-process fake orchestrator.
//!
//! The run has two tasks. One is the connector:
//! [`serve_with_clock`](crate::serve_with_clock) on one end of a socket pair,
//! exactly what [`run`](crate::run) does in a real process, except that the
//! context's clock is the [`TestConfig`]'s mock clock (if it has one). The
//! other is the fake orchestrator on the other end: it sends `init` from the
//! [`TestConfig`], records every message the connector sends (ready, emits,
//! logs, audits), and answers each emit as the [`AckPolicy`] says. The test
//! reads the record through [`TestRun`] and steers the fake through it:
//! answer held emits, change the policy, send `shutdown`.
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipc_proto::{Audit, ConnectorInit, Emit, Log, NackKind, PROTOCOL_VERSION, Secrets};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::FakeOrchestrator;
use super::config::{AckPolicy, Answer, TestConfig};
use super::peer::{Cmd, Record, fake_orchestrator};
use crate::{BoxError, Clock, Context, MockClock};
/// How the connector function ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    /// What the process would have exited with (78 for a [`ConfigError`](crate::ConfigError)).
    pub exit_code: ExitCode,
    /// What the function returned, its error as text; `None` when it
    /// panicked, or did not return within the grace period after `shutdown`.
    pub result: Option<Result<(), String>>,
}

impl Finished {
    /// Whether it ended with a [`ConfigError`](crate::ConfigError) (exit 78).
    pub fn is_config_error(&self) -> bool {
        self.exit_code == ExitCode::from(crate::EXIT_CONFIG)
    }
}
/// Why a [`TestRun`] wait did not get what it waited for.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// Nothing came in time.
    #[error("timed out after {limit:?} waiting for {what}\n{context}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The limit.
        limit: Duration,
        /// The last logs and how the connector ended, if it did.
        context: String,
    },
    /// The connector is gone, and what was awaited did not happen.
    #[error("the connector ended while waiting for {what}\n{context}")]
    Ended {
        /// What was awaited.
        what: String,
        /// The last logs and how the connector ended.
        context: String,
    },
}

/// A connector running against the fake orchestrator. Dropping it stops both.
pub struct TestRun {
    pub(super) rec: Arc<watch::Sender<Record>>,
    pub(super) cmds: mpsc::UnboundedSender<Cmd>,
    connector: JoinHandle<()>,
    peer: JoinHandle<()>,
    cursor: usize,
    state_dir: PathBuf,
    own_dir: bool,
    grace: Duration,
    clock: Option<MockClock>,
}

impl fmt::Debug for TestRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.rec.borrow();
        f.debug_struct("TestRun")
            .field("state_dir", &self.state_dir)
            .field("emits", &r.emits.len())
            .field("held", &r.held)
            .field("logs", &r.logs.len())
            .field("finished", &r.finished)
            .finish_non_exhaustive()
    }
}

/// Starts `f` (what a connector's `main` passes to [`run`](crate::run))
/// against a fake orchestrator configured by `config`. Call it inside a
/// tokio runtime (`#[tokio::test]`); any flavor works.
pub fn run_connector<F, Fut>(f: F, config: TestConfig) -> TestRun
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let (state_dir, own_dir) = match config.state_dir {
        Some(dir) => (dir, false),
        None => (fresh_dir(), true),
    };
    let (transport, peer) =
        FakeOrchestrator::pair().expect("a socket pair for the fake orchestrator");
    let rec = Arc::new(watch::Sender::new(Record::default()));
    let (cmds, cmd_rx) = mpsc::unbounded_channel();
    let init = ConnectorInit {
        protocol: PROTOCOL_VERSION,
        connector: config.connector,
        connection: config.connection,
        config: config.config,
        secrets: Secrets(config.secrets),
        state_dir: state_dir.display().to_string(),
    };
    let peer = tokio::spawn(fake_orchestrator(
        peer,
        init,
        cmd_rx,
        rec.clone(),
        config.policy,
    ));

    let result = Arc::new(Mutex::new(None));
    let slot = result.clone();
    let wrapped = move |ctx: Context| {
        let fut = f(ctx);
        async move {
            let r = fut.await;
            let text = r.as_ref().map(|_| ()).map_err(error_chain);
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
            r
        }
    };
    let clock = config
        .clock
        .as_ref()
        .map_or_else(Clock::system, MockClock::clock);
    let on_end = rec.clone();
    let ended = cmds.clone();
    let connector = tokio::spawn(async move {
        let exit_code = crate::serve_with_clock(transport, clock, wrapped).await;
        let result = result.lock().unwrap_or_else(|e| e.into_inner()).take();
        let finished = Finished { exit_code, result };
        // The fake reads what the connector flushed last, then records the end;
        // when the fake is gone already, the end is recorded here.
        if let Err(mpsc::error::SendError(Cmd::Ended(finished))) = ended.send(Cmd::Ended(finished))
        {
            on_end.send_modify(|r| r.finished = Some(finished));
        }
    });
    TestRun {
        rec,
        cmds,
        connector,
        peer,
        cursor: 0,
        state_dir,
        own_dir,
        grace: config.grace,
        clock: config.clock,
    }
}

impl TestRun {
    /// The connection's state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The mock clock the run was started with.
    pub fn clock(&self) -> Option<&MockClock> {
        self.clock.as_ref()
    }

    /// Waits until the connector said `ready` (or emitted, which implies it).
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), HarnessError> {
        self.wait("ready", limit, |r| r.ready.then_some(())).await
    }

    /// The next emit after the ones this method returned before, waiting at most `limit`.
    pub async fn next_emit(&mut self, limit: Duration) -> Result<Emit, HarnessError> {
        let i = self.cursor;
        let emit = self
            .wait(&format!("emit #{}", i + 1), limit, |r| {
                r.emits.get(i).cloned()
            })
            .await?;
        self.cursor += 1;
        Ok(emit)
    }

    /// Waits until `n` emits in all came in; returns them all.
    pub async fn wait_emits(&self, n: usize, limit: Duration) -> Result<Vec<Emit>, HarnessError> {
        self.wait(&format!("{n} emits"), limit, |r| {
            (r.emits.len() >= n).then(|| r.emits.clone())
        })
        .await
    }

    /// Waits for a log line `pred` accepts; returns it.
    pub async fn wait_log(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Log) -> bool,
    ) -> Result<Log, HarnessError> {
        self.wait(&format!("a log line: {what}"), limit, |r| {
            r.logs.iter().find(|l| pred(l)).cloned()
        })
        .await
    }

    /// Every emit so far.
    pub fn emits(&self) -> Vec<Emit> {
        self.rec.borrow().emits.clone()
    }

    /// Every audit record so far.
    pub fn audits(&self) -> Vec<Audit> {
        self.rec.borrow().audits.clone()
    }

    /// Every `status` message so far (`credential_expired`, `active`).
    pub fn statuses(&self) -> Vec<ipc_proto::ConnectorStatus> {
        self.rec.borrow().statuses.clone()
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<Log> {
        self.rec.borrow().logs.clone()
    }

    /// The seqs of the emits held for an answer from the test, lowest first.
    pub fn held(&self) -> Vec<u64> {
        self.rec.borrow().held.iter().copied().collect()
    }

    /// How the emit `seq` was answered (`Hold` while it waits for the test).
    pub fn answer_of(&self, seq: u64) -> Option<Answer> {
        self.rec.borrow().answers.get(&seq).cloned()
    }

    /// Answers a held emit.
    pub fn answer(&self, seq: u64, answer: Answer) {
        let _ = self.cmds.send(Cmd::Answer(seq, answer));
    }

    /// Acks a held emit.
    pub fn ack(&self, seq: u64) {
        self.answer(seq, Answer::Ack)
    }

    /// Nacks a held emit.
    pub fn nack(&self, seq: u64, kind: NackKind, message: impl Into<String>) {
        self.answer(seq, Answer::Nack(kind, message.into()))
    }

    /// Answers later emits by `policy` (held ones stay held).
    pub fn set_policy(&self, policy: AckPolicy) {
        let _ = self.cmds.send(Cmd::Policy(policy));
    }

    /// How the connector ended, if it did.
    pub fn finished(&self) -> Option<Finished> {
        self.rec.borrow().finished.clone()
    }

    /// Waits (at most `limit`) for the connector to end by itself.
    pub async fn wait_finished(&self, limit: Duration) -> Result<Finished, HarnessError> {
        self.wait_until_end("the connector to end", limit).await
    }

    /// Sends `shutdown` with the configured grace and waits for the connector
    /// to end (it is abandoned after the grace, as the SDK does in a process).
    pub async fn shutdown(&self) -> Result<Finished, HarnessError> {
        let _ = self.cmds.send(Cmd::Shutdown(self.grace));
        let limit = self.grace + Duration::from_secs(5);
        self.wait_until_end("the connector to stop after shutdown", limit)
            .await
    }

    async fn wait_until_end(&self, what: &str, limit: Duration) -> Result<Finished, HarnessError> {
        let mut rx = self.rec.subscribe();
        let got = tokio::time::timeout(limit, rx.wait_for(|r| r.finished.is_some())).await;
        match got {
            Ok(Ok(r)) => Ok(r.finished.clone().expect("checked")),
            _ => Err(HarnessError::Timeout {
                what: what.into(),
                limit,
                context: self.context(),
            }),
        }
    }

    /// Waits until `pick` finds something in the record; fails early once the
    /// connector has ended and the record can no longer change.
    pub(super) async fn wait<T>(
        &self,
        what: &str,
        limit: Duration,
        pick: impl Fn(&Record) -> Option<T>,
    ) -> Result<T, HarnessError> {
        let mut rx = self.rec.subscribe();
        let mut found = None;
        let waited = tokio::time::timeout(
            limit,
            rx.wait_for(|r| {
                found = pick(r);
                found.is_some() || r.finished.is_some()
            }),
        )
        .await;
        if let Some(v) = found {
            return Ok(v);
        }
        match waited {
            Ok(_) => Err(HarnessError::Ended {
                what: what.into(),
                context: self.context(),
            }),
            Err(_) => Err(HarnessError::Timeout {
                what: what.into(),
                limit,
                context: self.context(),
            }),
        }
    }

    /// The last logs and the end, for an error message.
    fn context(&self) -> String {
        let r = self.rec.borrow();
        let mut out = format!(
            "{} emits ({} held), {} log lines; finished: {:?}\n",
            r.emits.len(),
            r.held.len(),
            r.logs.len(),
            r.finished
        );
        for l in r.logs.iter().rev().take(20).rev() {
            out.push_str(&format!("  [{}] {}\n", l.level.as_str(), l.message));
        }
        out
    }
}

impl Drop for TestRun {
    fn drop(&mut self) {
        // Closing the channel cancels the connector's shutdown token, as a
        // dying orchestrator would.
        self.peer.abort();
        self.connector.abort();
        if self.own_dir {
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}
/// `error` and its sources, joined by `: `.
fn error_chain(e: &BoxError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// A new empty directory under the system temp dir.
fn fresh_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "connector-sdk-test-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a temp state dir");
    dir
}
