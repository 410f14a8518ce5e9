//! The supervision state machine, driven through real (tiny shell) children
//! and a mock role: each restart-policy path ends in its documented state.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipc_proto::{
    ConnectorInit, FromConnector, ProtocolError, Ready, Secrets, Shutdown, ToConnector,
};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::bundle::{Backoff, Circuit as CircuitConfig, Protocol, RestartMode};
use crate::status::{ProcessKind, ProcessState};

/// A role that counts what the supervisor asks of it.
#[derive(Debug, Default, Clone)]
struct MockRole {
    calls: Arc<Mutex<Vec<&'static str>>>,
}

impl MockRole {
    fn count(&self, what: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| **c == what)
            .count()
    }
}

impl Role for MockRole {
    type In = FromConnector;
    type Out = ToConnector;

    fn init(&mut self) -> ToConnector {
        self.calls.lock().unwrap().push("init");
        ToConnector::Init(ConnectorInit {
            protocol: ipc_proto::PROTOCOL_VERSION,
            connector: "c".into(),
            connection: "c".into(),
            config: BTreeMap::new(),
            secrets: Secrets::default(),
            state_dir: "/tmp".into(),
        })
    }
    fn shutdown(grace: Duration) -> ToConnector {
        ToConnector::Shutdown(Shutdown {
            grace_ms: grace.as_millis() as u64,
        })
    }
    fn error(message: String) -> ToConnector {
        ToConnector::Error(ProtocolError { message })
    }
    fn ping(nonce: u64) -> ToConnector {
        ToConnector::Ping(ipc_proto::Ping { nonce })
    }
    fn pong(msg: &FromConnector) -> Option<u64> {
        match msg {
            FromConnector::Pong(p) => Some(p.nonce),
            _ => None,
        }
    }
    fn ready(msg: &FromConnector) -> Option<&Ready> {
        match msg {
            FromConnector::Ready(r) => Some(r),
            _ => None,
        }
    }
    fn before_ready(&mut self, _msg: FromConnector) -> Result<(), String> {
        Ok(())
    }
    async fn serve(
        &mut self,
        link: &mut Link<FromConnector, ToConnector>,
        _stop: &CancellationToken,
    ) -> Served {
        self.calls.lock().unwrap().push("serve");
        while link.recv().await.is_some() {}
        Served::Closed
    }
    async fn before_spawn(&mut self, _stop: &CancellationToken) -> bool {
        true
    }
    fn exited(&mut self) {
        self.calls.lock().unwrap().push("exited");
    }
    async fn wait_for_work(&mut self, stop: &CancellationToken) -> bool {
        stop.cancelled().await;
        false
    }
}

/// A jsonl child in sh: answers `init` with `ready` (unless `never-ready`),
/// then does what `$MODE` says.
const CHILD: &str = r#"read line
case "$MODE" in
  never-ready) sleep 30; exit 0 ;;
esac
echo '{"type":"ready"}'
case "$MODE" in
  exit1) echo "about to fail" >&2; exit 1 ;;
  exit78) exit 78 ;;
  serve) while read line; do case "$line" in *shutdown*) exit 0 ;; esac; done ;;
esac"#;

struct Fixture {
    _dir: tempfile::TempDir,
    role: MockRole,
    status: Arc<ProcessStatus>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<MockRole>,
}

fn policy(mode: RestartMode) -> RestartPolicy {
    RestartPolicy {
        policy: mode,
        backoff: Backoff {
            initial: Duration::from_millis(20),
            multiplier: 1.0,
            max: Duration::from_millis(20),
            jitter: 0.0,
        },
        start_timeout: Duration::from_secs(5),
        ..RestartPolicy::default()
    }
}

fn start(mode: &str, restart: RestartPolicy) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("child.sh");
    std::fs::write(&script, format!("#!/bin/sh\n{CHILD}\n")).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = LogSink::open(&dir.path().join("child.log")).unwrap();
    let (status, control) = ProcessStatus::new(ProcessKind::Connection, "c", None);
    let stop = CancellationToken::new();
    let role = MockRole::default();
    let sup = Supervision {
        spec: ChildSpec {
            program: script,
            args: vec![],
            env: BTreeMap::from([("MODE".to_string(), mode.to_string())]),
            cwd: dir.path().to_path_buf(),
            protocol: Protocol::Jsonl,
            max_frame_bytes: 1 << 20,
            max_protocol_errors: 10,
            shim: None,
            inherit_stdin: false,
            sandbox: None,
            pin: None,
        },
        restart,
        health_interval: None,
        log,
        status: status.clone(),
        control,
        stop: stop.clone(),
        kill_now: CancellationToken::new(),
        console: crate::console::Console::silent(),
    };
    let task = tokio::spawn(supervise(role.clone(), sup));
    Fixture {
        _dir: dir,
        role,
        status,
        stop,
        task,
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_crash_is_restarted_after_the_backoff_with_its_cause_recorded() {
    let f = start("exit1", policy(RestartMode::OnFailure));
    wait_for("two restarts", || f.status.snapshot().restarts >= 2).await;
    let snap = f.status.snapshot();
    assert_eq!(snap.last_exit.as_deref(), Some("exit code 1"));
    assert_eq!(
        snap.last_error.as_deref(),
        Some("about to fail"),
        "the crash's last stderr line"
    );
    assert!(f.role.count("exited") >= 2 && f.role.count("serve") >= 2);
    f.stop.cancel();
    f.task.await.unwrap();
    assert_eq!(f.status.state(), ProcessState::Stopped);
}

#[tokio::test]
async fn a_permanent_exit_code_waits_in_failed_until_a_manual_restart() {
    let f = start("exit78", policy(RestartMode::Always));
    wait_for("failed", || f.status.state() == ProcessState::Failed).await;
    assert_eq!(f.role.count("init"), 1);
    // An absence can only be checked over a while: five backoff periods
    // pass, and still nothing restarted it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(f.role.count("init"), 1, "not restarted by policy");
    assert!(
        f.status.request(Control::Restart),
        "the supervisor takes the request"
    );
    wait_for("a second start", || f.role.count("init") == 2).await;
    wait_for("failed again", || f.status.state() == ProcessState::Failed).await;
    f.stop.cancel();
    f.task.await.unwrap();
}

#[tokio::test]
async fn policy_never_leaves_it_stopped() {
    let f = start("exit1", policy(RestartMode::Never));
    wait_for("stopped", || {
        f.role.count("exited") == 1 && f.status.state() == ProcessState::Stopped
    })
    .await;
    assert_eq!(f.status.snapshot().restarts, 0);
    f.stop.cancel();
    f.task.await.unwrap();
    assert_eq!(f.role.count("init"), 1);
}

#[tokio::test]
async fn a_graceful_stop_is_not_a_crash() {
    let f = start("serve", policy(RestartMode::OnFailure));
    wait_for("ready", || f.status.state() == ProcessState::Ready).await;
    f.stop.cancel();
    f.task.await.unwrap();
    assert_eq!(f.role.count("init"), 1, "a graceful stop is not a restart");
    assert_eq!(
        f.status.snapshot().last_exit,
        None,
        "a requested stop records no crash"
    );
}

#[tokio::test]
async fn the_circuit_trips_into_crashloop_and_probes_after_the_cooldown() {
    let mut p = policy(RestartMode::Always);
    p.circuit = CircuitConfig {
        failures: 3,
        window: Duration::from_secs(60),
        cooldown: Duration::from_millis(300),
    };
    let f = start("exit1", p);
    wait_for("crashloop", || f.status.state() == ProcessState::Crashloop).await;
    let starts = f.role.count("init");
    assert_eq!(starts, 3, "tripped at the third failure");
    wait_for("a probe after the cooldown", || {
        f.role.count("init") > starts
    })
    .await;
    f.stop.cancel();
    f.task.await.unwrap();
}

#[tokio::test]
async fn no_ready_in_time_is_a_failed_start() {
    let mut p = policy(RestartMode::OnFailure);
    p.start_timeout = Duration::from_millis(100);
    let f = start("never-ready", p);
    wait_for("a failed start", || f.status.snapshot().last_exit.is_some()).await;
    let exit = f.status.snapshot().last_exit.unwrap();
    assert!(
        exit.starts_with("failed start: no ready within 100ms"),
        "{exit}"
    );
    wait_for("a retry", || f.role.count("init") >= 2).await;
    f.stop.cancel();
    f.task.await.unwrap();
}
