//! Delivery guarantees, end to end (issue 5): at-least-once across an agent
//! `kill -9` and an orchestrator `kill -9`, redelivery after
//! `deliveryTimeout`, dead letters and the `dlq` verbs, dedupe keys,
//! backpressure (`overloaded`, `overflow: wait`, 503), rate limits
//! (`quota_exceeded`, 429), durability across a clean restart, and the
//! issue's "done when" on the quickstart.
//!
//! The fake peers: `delivery-connector` emits a stream (pipelined, paced,
//! with dedupe keys) and writes every answer to `answers.log` in its state
//! directory; `test-feeder` emits what a test appends to a file;
//! `delivery-agent` records every delivery (id, attempt, text, pid) in
//! `<RECORD_DIR>/<key>.jsonl` before it answers. The orchestrator is run
//! here by [`Orch`], which can start it again on the same state directory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::answers::acked;
use e2e::{DEADLINE, Harness, pid_alive};
use serde_json::{Value, json};

/// A longer deadline for the 10,000-event and restart runs (debug builds, 2 shared cores).
const LONG: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------- the orchestrator

/// One `orchestrator run` on the harness's temp dir and state dir. Several
/// may run one after another on the same state dir; each appends its
/// stdout/stderr to `orchestrator.stdout`/`orchestrator.stderr` (which
/// `Harness::dump` shows). Dropping it SIGKILLs it if it still runs.
struct Orch {
    child: Child,
    status: Option<ExitStatus>,
}

impl Orch {
    /// `orchestrator run <bundle> --state-dir <state> [extra…]`.
    fn start(h: &Harness, bundle: &str, extra: &[&str]) -> Orch {
        let open = |name: &str| {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(h.path(name))
                .expect("open orchestrator output");
            let _ = writeln!(f, "==== orchestrator run {bundle} {extra:?}");
            f
        };
        let child = h
            .command()
            .args(["run", bundle, "--state-dir"])
            .arg(h.state())
            .args(extra)
            .stdout(open("orchestrator.stdout"))
            .stderr(open("orchestrator.stderr"))
            .spawn()
            .expect("spawn orchestrator");
        Orch {
            child,
            status: None,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits for the exit (reaping it); panics with the logs past `deadline`.
    fn wait_exit(&mut self, h: &Harness, deadline: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let child = &mut self.child;
        let mut status = None;
        h.wait_until("the orchestrator to exit", deadline, || {
            status = child.try_wait().expect("try_wait");
            status.is_some()
        });
        self.status = status;
        status.expect("exited")
    }

    /// SIGTERM: a graceful stop. Returns the exit status.
    fn stop(&mut self, h: &Harness) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(h, Duration::from_secs(30))
    }

    /// `kill -9`, then waits until it and every child it noted starting are gone.
    fn kill9(&mut self, h: &Harness) {
        self.signal(libc::SIGKILL);
        self.wait_exit(h, DEADLINE);
        let pids = h.child_pids();
        h.wait_until("every child to die with the orchestrator", DEADLINE, || {
            pids.iter().all(|&p| !pid_alive(p))
        });
    }
}

impl Drop for Orch {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn kill9_pid(pid: u32) {
    // SAFETY: kill(2) on a pid this test read from the orchestrator's status.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -9 {pid}: {}", std::io::Error::last_os_error());
}

// ---------------------------------------------------------------- bundles

/// `delivery-connector` as Connector `dconn`.
const DCONN: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: dconn }
spec:
  entry: delivery-connector
  protocol: frames
  events:
    - name: item
      properties: { i: { type: number, optional: true } }
  restart: { backoff: { initial: 100ms, max: 1s } }
"#;

/// `test-feeder` as Connector `feeder`.
const FEEDER: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: feeder }
spec:
  entry: test-feeder
  protocol: frames
  events:
    - name: item
      properties: { i: { type: number, optional: true } }
  restart: { backoff: { initial: 100ms, max: 1s } }
"#;

/// The webhook connector (as in connectors/webhook/connector.yaml).
const WEBHOOK: &str = r#"
---
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: webhook }
spec:
  entry: connector-webhook
  protocol: frames
  events:
    - name: webhook
"#;

/// A Connection `name` of `connector` with `config` (a YAML flow mapping)
/// and extra spec lines (indented by 2).
fn connection(name: &str, connector: &str, config: &str, extra: &str) -> String {
    format!(
        r#"
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: {name} }}
spec:
  connectorRef: Connector/{connector}
  config: {config}
{extra}
"#
    )
}

/// A webhook Connection on a free port: `user` is the instance key, `text` the text.
fn hook_connection(name: &str, extra: &str) -> String {
    connection(
        name,
        "webhook",
        r#"{ HOST: 127.0.0.1, PORT: "0", SIGNATURE: none, TEXT_POINTER: /text, INSTANCE_KEY_POINTER: /user }"#,
        extra,
    )
}

/// Swarm `default` with the one Agent `worker` (delivery-agent), recording in
/// `<temp>/records`, with extra spec lines (indented by 2).
fn worker(h: &Harness, extra: &str) -> String {
    worker_with(h, "{ backoff: { initial: 100ms, max: 1s } }", extra)
}

/// [`worker`] with its `restart` policy (a YAML flow mapping).
fn worker_with(h: &Harness, restart: &str, extra: &str) -> String {
    format!(
        r#"
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/worker, agents: [Agent/worker] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: worker }}
spec:
  entry: delivery-agent
  protocol: frames
  env:
    RECORD_DIR: "{records}"
    FIXED_MARKER: "{fixed}"
    UNBLOCK_FILE: "{unblock}"
  restart: {restart}
{extra}
"#,
        records = records_dir(h).display(),
        fixed = h.path("fixed").display(),
        unblock = h.path("unblock").display(),
    )
}

// ---------------------------------------------------------------- what the peers wrote

fn records_dir(h: &Harness) -> PathBuf {
    h.path("records")
}

/// Every delivery `delivery-agent` recorded for instance `key`, in order.
fn records(h: &Harness, key: &str) -> Vec<Value> {
    e2e::delivery_records(&records_dir(h), key)
}

fn text(r: &Value) -> &str {
    r["text"].as_str().expect("record text")
}

fn attempt(r: &Value) -> u64 {
    r["attempt"].as_u64().expect("record attempt")
}

fn texts(rs: &[Value]) -> Vec<&str> {
    rs.iter().map(text).collect()
}

/// `answers.log` of the `delivery-connector` Connection `name`, split into runs.
fn answer_runs(h: &Harness, name: &str) -> Vec<Vec<String>> {
    e2e::answers::answer_runs(&h.state(), name)
}

/// The answer `test-feeder` logged for its emit `n` (`ack n …`, `nack n …`).
fn feeder_answer(h: &Harness, connection: &str, n: u64) -> Option<String> {
    let ack = format!(" stdout ack {n} ");
    let nack = format!(" stdout nack {n} ");
    h.connection_log(connection)
        .lines()
        .find(|l| l.contains(&ack) || l.contains(&nack))
        .map(|l| {
            let at = l.find(" stdout ").expect("stdout line") + " stdout ".len();
            l[at..].to_owned()
        })
}

/// Waits for `test-feeder`'s answer to emit `n`.
fn wait_feeder_answer(h: &Harness, connection: &str, n: u64) -> String {
    let mut answer = None;
    h.wait_until(
        &format!("{connection}: an answer to emit {n}"),
        DEADLINE,
        || {
            answer = feeder_answer(h, connection, n);
            answer.is_some()
        },
    );
    answer.expect("answer")
}

/// A `test-feeder` event: text `text`, instance key `key`.
fn item(text: &str, key: &str) -> Value {
    json!({"name": "item", "message": {"type": "text", "text": text}, "instanceKey": key})
}

/// `orchestrator dlq list --json`: the dead letters, or why not.
fn try_dlq_list(h: &Harness) -> Result<Vec<Value>, String> {
    let out = h.cli(&["dlq", "list", "--json"]);
    if !out.status.success() {
        return Err(format!(
            "dlq list failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "dlq list --json is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    v["deadLetters"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("no deadLetters array in {v}"))
}

/// [`try_dlq_list`], panicking with the logs if it fails.
fn dlq_list(h: &Harness) -> Vec<Value> {
    try_dlq_list(h).unwrap_or_else(|e| panic!("{e}\n{}", h.dump()))
}

/// Polls `dlq list` until the dead letters satisfy `cond` (a failing list,
/// as while the orchestrator starts, counts as not yet); returns them.
fn wait_dlq(h: &Harness, what: &str, mut cond: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
    let mut last = Vec::new();
    h.wait_until(what, DEADLINE, || match try_dlq_list(h) {
        Ok(list) => {
            let done = cond(&list);
            last = list;
            done
        }
        Err(_) => false,
    });
    last
}

/// `orchestrator dlq <verb> <id>`: succeeds and prints `<word> <id>`.
fn dlq_verb(h: &Harness, verb: &str, id: &str, word: &str) {
    let out = h.cli(&["dlq", verb, id]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dlq {verb} {id} failed ({}): {}{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        h.dump()
    );
    assert!(
        stdout.contains(&format!("{word} {id}")),
        "dlq {verb}: {stdout}"
    );
}

/// The program pid of `target` in `status --json`, once it is ready.
fn ready_pid(h: &Harness, target: &str) -> u32 {
    let row = h.wait_process("ready with a pid", target, DEADLINE, |p| {
        p["state"] == "ready" && p["pid"].as_u64().is_some()
    });
    row["pid"].as_u64().expect("pid") as u32
}

// ---------------------------------------------------------------- HTTP

/// An HTTP answer: status, headers (lowercase names), body.
type Reply = (u16, Vec<(String, String)>, String);

/// One JSON POST to `/hooks`: status, headers (lowercase names) and body;
/// `Err` when the connection fails (the server is gone).
fn try_post(addr: &str, body: &str) -> std::io::Result<Reply> {
    let a = e2e::try_http_post(
        addr,
        "/hooks",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )?;
    let headers = a
        .head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok((a.status, headers, a.body))
}

fn post(addr: &str, body: &str) -> Reply {
    try_post(addr, body).unwrap_or_else(|e| panic!("POST to {addr}: {e}"))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Waits for the webhook Connection `name` to write its address file; returns it.
fn hook_address(h: &Harness, name: &str) -> String {
    let file = h
        .state()
        .join("state/connections")
        .join(name)
        .join("address");
    h.wait_until(&format!("{name} to write its address"), DEADLINE, || {
        std::fs::read_to_string(&file).is_ok_and(|a| !a.trim().is_empty())
    });
    std::fs::read_to_string(&file)
        .expect("address")
        .trim()
        .to_owned()
}

// ---------------------------------------------------------------- 1. agent kill -9

/// 10,000 events to four instance keys; the agent process of one key is
/// killed with SIGKILL in the middle. Every event arrives at least once, the
/// first arrivals per instance are in emit order, and a repeat is always a
/// later attempt of the same event id.
#[test]
fn delivery_agent_kill_9_mid_stream_loses_nothing_and_keeps_order() {
    const N: u64 = 10_000;
    const KEYS: u64 = 4;
    let h = Harness::new();
    let bundle = format!(
        "{DCONN}{}{}",
        connection(
            "stream",
            "dconn",
            // Paced, so the kill surely lands mid-stream (about 2.5 s of it)
            // however fast this machine delivers.
            &format!("{{ COUNT: {N}, KEYS: {KEYS}, RATE: 4000 }}"),
            "  overflow: wait"
        ),
        worker(&h, "")
    );
    h.write("bundle.yaml", &bundle);
    let mut orch = Orch::start(&h, "bundle.yaml", &[]);

    // In the middle of k0's share (2,500 events): kill its process. Its pid
    // is read first, so that the kill follows the count at once.
    let victim = ready_pid(&h, "agent/worker/k0");
    h.wait_until("k0 to be 300 events in", LONG, || {
        records(&h, "k0").len() >= 300
    });
    kill9_pid(victim);
    let at_kill = records(&h, "k0").len();
    assert!(
        at_kill < (N / KEYS) as usize,
        "k0 had received everything ({at_kill}) before the kill: the test proves nothing"
    );

    h.wait_until("every emit to be answered", LONG, || {
        answer_runs(&h, "stream")
            .last()
            .is_some_and(|r| r.iter().any(|l| l == "done"))
    });
    let run = answer_runs(&h, "stream").pop().expect("a run");
    let new = acked(&run, "new");
    assert_eq!(
        new.len() as u64,
        N,
        "every emit is acked (overflow: wait, nothing nacked): {:?}",
        run.iter()
            .filter(|l| !l.starts_with("ack"))
            .take(5)
            .collect::<Vec<_>>()
    );

    for k in 0..KEYS {
        let key = format!("k{k}");
        let expected: Vec<String> = (0..N)
            .filter(|i| i % KEYS == k)
            .map(|i| format!("e-{i}"))
            .collect();
        h.wait_until(&format!("every event of {key} to arrive"), LONG, || {
            let got: BTreeSet<String> = records(&h, &key)
                .iter()
                .map(|r| text(r).to_owned())
                .collect();
            expected.iter().all(|t| got.contains(t))
        });
        let rs = records(&h, &key);
        let mut first_seen: Vec<&str> = Vec::new();
        let mut id_of: HashMap<&str, &str> = HashMap::new();
        let mut seen_ids: BTreeSet<&str> = BTreeSet::new();
        for r in &rs {
            let id = r["id"].as_str().expect("id");
            let t = text(r);
            let known = id_of.insert(t, id);
            assert!(
                known.is_none_or(|k| k == id),
                "{key}: {t} arrived under two event ids ({known:?}, {id})"
            );
            if seen_ids.insert(id) {
                first_seen.push(t);
                continue;
            }
            assert!(
                attempt(r) > 1,
                "{key}: a repeat of {t} ({id}) with attempt {}: {r}",
                attempt(r)
            );
        }
        assert_eq!(
            first_seen,
            expected.iter().map(String::as_str).collect::<Vec<_>>(),
            "{key}: first arrivals are in emit order"
        );
    }

    // The kill really hit k0 in the middle: a new process took over.
    let k0 = records(&h, "k0");
    let pids: BTreeSet<u64> = k0.iter().filter_map(|r| r["pid"].as_u64()).collect();
    assert!(
        pids.contains(&u64::from(victim)) && pids.len() >= 2,
        "k0 was served by the killed process {victim} and a new one: {pids:?}"
    );
    assert!(!pid_alive(victim));
    let row = h.process("agent/worker/k0").expect("k0 in status");
    assert!(
        row["lastExit"]
            .as_str()
            .is_some_and(|e| e.contains("signal 9")),
        "{row}"
    );
    assert!(orch.stop(&h).success(), "{}", h.dump());
}

// ---------------------------------------------------------------- 2. orchestrator kill -9

/// An orchestrator SIGKILLed in the middle of a paced stream with dedupe
/// keys, then started again on the same state dir (the connector emits
/// everything again, with the same keys): every event acked in either run is
/// delivered; what run 1 acked is redelivered only as attempt > 1 and acked
/// as a duplicate in run 2; no event is accepted twice.
#[test]
fn delivery_orchestrator_kill_9_mid_stream_loses_no_acked_event() {
    const N: u64 = 3000;
    let h = Harness::new();
    let bundle = format!(
        "{DCONN}{}{}",
        connection(
            "stream",
            "dconn",
            &format!("{{ COUNT: {N}, KEYS: 2, DEDUPE: \"true\", RATE: 1000 }}"),
            "  overflow: wait"
        ),
        worker(&h, "")
    );
    h.write("bundle.yaml", &bundle);
    let mut orch = Orch::start(&h, "bundle.yaml", &[]);
    h.wait_until("600 acks", LONG, || {
        answer_runs(&h, "stream")
            .first()
            .is_some_and(|r| acked(r, "new").len() >= 600)
    });
    orch.kill9(&h);

    let run1 = answer_runs(&h, "stream").remove(0);
    assert!(
        !run1.iter().any(|l| l == "done"),
        "the kill came after the whole stream: the test proves nothing"
    );
    let acked1 = acked(&run1, "new");
    assert!(
        acked(&run1, "dup").is_empty(),
        "nothing is a duplicate in run 1"
    );
    // What the agents had recorded when everything of run 1 was gone.
    let before: Vec<usize> = ["k0", "k1"].iter().map(|k| records(&h, k).len()).collect();

    let mut orch = Orch::start(&h, "bundle.yaml", &[]);
    h.wait_until("run 2 to answer every emit", LONG, || {
        answer_runs(&h, "stream")
            .get(1)
            .is_some_and(|r| r.iter().any(|l| l == "done"))
    });
    let run2 = answer_runs(&h, "stream").remove(1);
    let (new2, dup2) = (acked(&run2, "new"), acked(&run2, "dup"));
    assert_eq!(
        new2.len() + dup2.len(),
        N as usize,
        "run 2: every emit acked: {:?}",
        run2.iter()
            .filter(|l| !l.starts_with("ack"))
            .take(5)
            .collect::<Vec<_>>()
    );
    let not_dup: Vec<&u64> = acked1.difference(&dup2).take(10).collect();
    assert!(
        not_dup.is_empty(),
        "events acked in run 1 are duplicates in run 2 (dedupe keys survive the crash): {not_dup:?}"
    );

    let all_acked: BTreeSet<u64> = acked1.iter().chain(&new2).chain(&dup2).copied().collect();
    assert_eq!(all_acked.len() as u64, N);
    let want = |k: &str| -> BTreeSet<String> {
        all_acked
            .iter()
            .filter(|i| format!("k{}", *i % 2) == k)
            .map(|i| format!("e-{i}"))
            .collect()
    };
    // Run 1 accepted (durably) every event run 2's emit of it is a duplicate
    // of: those it acked, and those whose ack the kill cut off.
    let accepted1 = &dup2;
    let (mut repeats, mut recovered) = (0, 0);
    let (mut repeated_as_first, mut recovered_as_first) = (Vec::new(), Vec::new());
    for (n, key) in ["k0", "k1"].into_iter().enumerate() {
        let expected = want(key);
        h.wait_until(
            &format!("every acked event of {key} to arrive"),
            LONG,
            || {
                let got: BTreeSet<String> = records(&h, key)
                    .iter()
                    .map(|r| text(r).to_owned())
                    .collect();
                expected.iter().all(|t| got.contains(t))
            },
        );
        let rs = records(&h, key);
        let mut id_of: HashMap<&str, &str> = HashMap::new();
        for r in &rs {
            let (t, id) = (text(r), r["id"].as_str().expect("id"));
            let known = id_of.insert(t, id);
            assert!(
                known.is_none_or(|k| k == id),
                "{key}: {t} was accepted twice ({known:?}, {id}): a dedupe key was forgotten"
            );
        }
        // A repeat of a delivery run 1 made must be a later attempt; and
        // (README) everything run 1 accepted is delivered after the restart
        // as attempt > 1, since it may have reached the agent already.
        // Collected over both keys, checked after the other properties.
        let run1_ids: BTreeSet<&str> = rs[..before[n]]
            .iter()
            .filter_map(|r| r["id"].as_str())
            .collect();
        for r in &rs[before[n]..] {
            let i: u64 = text(r)["e-".len()..].parse().expect("e-<i>");
            let repeat = r["id"].as_str().is_some_and(|id| run1_ids.contains(id));
            repeats += usize::from(repeat);
            recovered += usize::from(accepted1.contains(&i));
            if attempt(r) == 1 && repeat {
                repeated_as_first.push(r.clone());
            } else if attempt(r) == 1 && accepted1.contains(&i) {
                recovered_as_first.push(r.clone());
            }
        }
    }
    let stopped = orch.stop(&h);
    assert!(
        recovered > 0,
        "nothing run 1 accepted was left to deliver after the restart: the test proves nothing"
    );
    assert!(
        repeated_as_first.is_empty(),
        "{} of the {repeats} events delivered in run 1 and again after the restart came as attempt 1 \
         (a duplicate indistinguishable from a first delivery), e.g. {}",
        repeated_as_first.len(),
        repeated_as_first[0]
    );
    assert!(
        recovered_as_first.is_empty(),
        "{} of the {recovered} events accepted in run 1 and delivered after the restart came as attempt 1 \
         (README: > 1, it may have reached the agent already), e.g. {}",
        recovered_as_first.len(),
        recovered_as_first[0]
    );
    assert!(stopped.success(), "{}", h.dump());
}

// ---------------------------------------------------------------- 3. deliveryTimeout

/// An agent that never answers one delivery is killed as unresponsive once
/// `deliveryTimeout` passes, and the event goes to a new process as attempt 2.
#[test]
fn delivery_a_hanging_agent_is_killed_after_delivery_timeout_and_the_event_redelivered() {
    let h = Harness::new();
    let feed = h.feed("feed.jsonl", &[]);
    let bundle = format!(
        "{FEEDER}{}{}",
        connection("feed", "feeder", &format!("{{ FEED: \"{feed}\" }}"), ""),
        worker(&h, "  deliveryTimeout: 500ms")
    );
    h.write("bundle.yaml", &bundle);
    let mut orch = Orch::start(&h, "bundle.yaml", &[]);
    h.feed(
        "feed.jsonl",
        &[
            item("before", "h"),
            item("hang-first", "h"),
            item("after", "h"),
        ],
    );
    h.wait_until("after to arrive", DEADLINE, || {
        records(&h, "h").iter().any(|r| text(r) == "after")
    });
    let rs = records(&h, "h");
    let got: Vec<(&str, u64)> = rs.iter().map(|r| (text(r), attempt(r))).collect();
    assert_eq!(
        got,
        [
            ("before", 1),
            ("hang-first", 1),
            ("hang-first", 2),
            ("after", 1)
        ],
        "the hung event is redelivered before anything later"
    );
    assert_eq!(rs[1]["id"], rs[2]["id"], "the same event id");
    let (hung, fresh) = (rs[1]["pid"].as_u64(), rs[2]["pid"].as_u64());
    assert_ne!(hung, fresh, "attempt 2 went to a new process");
    assert!(
        !pid_alive(hung.expect("pid") as u32),
        "the hung process is gone"
    );
    let row = h.process("agent/worker/h").expect("h in status");
    let last_exit = row["lastExit"].as_str().unwrap_or_default();
    assert!(
        last_exit.starts_with("unresponsive"),
        "lastExit says why it was killed: {row}"
    );
    assert!(last_exit.contains("500ms"), "{last_exit}");
    assert!(orch.stop(&h).success(), "{}", h.dump());
}

// ---------------------------------------------------------------- 4. poison events and the DLQ

/// A poison event is dead-lettered after `maxAttempts` with the agent's
/// error while later events flow; `dlq replay` delivers it again (attempt 1)
/// once the agent is fixed, `dlq drop` removes one, and with the
/// orchestrator stopped `dlq list` and `dlq replay` work on the journal.
#[test]
fn delivery_poison_event_goes_to_the_dlq_and_the_dlq_verbs_work() {
    let h = Harness::new();
    let feed = h.feed("feed.jsonl", &[]);
    let agent_spec = "  maxAttempts: 3";
    let bundle = format!(
        "{FEEDER}{}{}",
        connection("feed", "feeder", &format!("{{ FEED: \"{feed}\" }}"), ""),
        worker(&h, agent_spec)
    );
    h.write("bundle.yaml", &bundle);
    let mut orch = Orch::start(&h, "bundle.yaml", &[]);
    h.feed("feed.jsonl", &[item("poison-1", "p"), item("after-1", "p")]);

    let dead = wait_dlq(&h, "poison-1 in the dead-letter queue", |d| !d.is_empty());
    assert_eq!(dead.len(), 1, "{dead:?}");
    let d = &dead[0];
    let poison_id = d["id"].as_str().expect("id").to_owned();
    assert_eq!(d["attempts"], 3, "{d}");
    assert_eq!(d["text"], "poison-1", "{d}");
    assert_eq!(
        (d["agent"].as_str(), d["instanceKey"].as_str()),
        (Some("worker"), Some("p"))
    );
    assert!(
        d["error"]
            .as_str()
            .is_some_and(|e| e.contains("poisoned: cannot handle poison-1")),
        "the agent's last error: {d}"
    );
    h.wait_until("after-1 to flow on", DEADLINE, || {
        records(&h, "p").iter().any(|r| text(r) == "after-1")
    });
    let rs = records(&h, "p");
    let got: Vec<(&str, u64)> = rs.iter().map(|r| (text(r), attempt(r))).collect();
    assert_eq!(
        got,
        [
            ("poison-1", 1),
            ("poison-1", 2),
            ("poison-1", 3),
            ("after-1", 1)
        ]
    );

    // Fixed: replay delivers it again as a first attempt, and it leaves the DLQ.
    std::fs::write(h.path("fixed"), "fixed\n").expect("write marker");
    dlq_verb(&h, "replay", &poison_id, "replayed");
    h.wait_until("the replayed event to arrive", DEADLINE, || {
        records(&h, "p").len() >= 5
    });
    let r = &records(&h, "p")[4];
    assert_eq!((text(r), attempt(r)), ("poison-1", 1), "{r}");
    assert_eq!(
        r["id"].as_str(),
        Some(poison_id.as_str()),
        "the same event id"
    );
    wait_dlq(&h, "the dead-letter queue to be empty", <[Value]>::is_empty);

    // `fail…` is nacked with retry: false: dead at once, after one attempt.
    h.feed("feed.jsonl", &[item("fail-2", "p"), item("fail-3", "p")]);
    let dead = wait_dlq(&h, "two dead letters", |d| d.len() == 2);
    let id_of = |t: &str| {
        dead.iter()
            .find(|d| d["text"] == t)
            .and_then(|d| d["id"].as_str())
            .unwrap_or_else(|| panic!("{t} not in {dead:?}"))
            .to_owned()
    };
    let (fail2, fail3) = (id_of("fail-2"), id_of("fail-3"));
    assert!(dead.iter().all(|d| d["attempts"] == 1), "{dead:?}");
    dlq_verb(&h, "drop", &fail2, "dropped");
    let left = dlq_list(&h);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["id"].as_str(), Some(fail3.as_str()));

    // Stopped: the verbs open the journal themselves.
    assert!(orch.stop(&h).success(), "{}", h.dump());
    let offline = dlq_list(&h);
    assert_eq!(
        offline.len(),
        1,
        "dlq list works on the journal: {offline:?}"
    );
    assert_eq!(offline[0]["id"].as_str(), Some(fail3.as_str()));
    assert_eq!(offline[0]["attempts"], 1);
    assert!(
        offline[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused: fail-3")),
        "{offline:?}"
    );
    dlq_verb(&h, "replay", &fail3, "replayed");
    assert!(dlq_list(&h).is_empty(), "replayed offline: pending again");

    // The next start delivers it (a new, empty feed: nothing is emitted again).
    let feed2 = h.feed("feed2.jsonl", &[]);
    h.write("bundle.yaml", &bundle.replace(&feed, &feed2));
    let before = records(&h, "p").len();
    let mut orch = Orch::start(&h, "bundle.yaml", &[]);
    h.wait_until(
        "the offline replay to be delivered at the next start",
        DEADLINE,
        || records(&h, "p").len() > before,
    );
    let rs = records(&h, "p");
    let after: Vec<&str> = texts(&rs[before..]);
    assert_eq!(after[0], "fail-3", "only the replayed event: {after:?}");
    assert_eq!(rs[before]["id"].as_str(), Some(fail3.as_str()));
    // It still fails: back in the DLQ.
    wait_dlq(&h, "fail-3 back in the DLQ", |d| d.len() == 1);
    let all = texts(&rs);
    assert_eq!(
        all.iter().filter(|t| **t == "fail-2").count(),
        1,
        "a dropped letter is never delivered again: {all:?}"
    );
    assert!(orch.stop(&h).success(), "{}", h.dump());
}

// ---------------------------------------------------------------- 5. dedupe

/// Events without a dedupe key go to their agent while their commit is
/// under way; one with a key waits for its commit (a duplicate is known only
/// then), and the events behind it wait with it: a burst mixing both keeps
/// its order on one instance, and the duplicate is not delivered.
#[test]
fn delivery_events_with_and_without_dedupe_keys_keep_their_order() {
    let h = Harness::new();
    let keyed = |t: &str, key: &str| json!({"event": item(t, "m"), "dedupeKey": key}).to_string();
    let plain = |t: &str| json!({"event": item(t, "m")}).to_string();
    let events = h.write(
        "events.jsonl",
        &[
            plain("p-0"),
            keyed("k-1", "a"),
            plain("p-1"),
            keyed("k-dup", "a"),
            plain("p-2"),
            keyed("k-2", "b"),
            plain("p-3"),
        ]
        .join("\n"),
    );
    let bundle = format!(
        "{DCONN}{}{}",
        connection(
            "mix",
            "dconn",
            &format!("{{ EVENTS: \"{}\" }}", events.display()),
            ""
        ),
        worker(&h, "")
    );
    h.write("bundle.yaml", &bundle);
    let mut orch = Orch::start(&h, "bundle.yaml", &[]);
    h.wait_until("the last event to arrive", DEADLINE, || {
        records(&h, "m").iter().any(|r| text(r) == "p-3")
    });
    assert_eq!(
        texts(&records(&h, "m")),
        ["p-0", "k-1", "p-1", "p-2", "k-2", "p-3"],
        "in emit order, without the duplicate"
    );
    assert!(orch.stop(&h).success(), "{}", h.dump());
}

/// Two emits with the same dedupe key (pipelined, so possibly in one group
/// commit): the second is acked as a duplicate and only the first is delivered.
#[test]
fn delivery_a_repeated_dedupe_key_is_delivered_once() {
    let h = Harness::new();
    let line = |t: &str, key: &str| json!({"event": item(t, "d"), "dedupeKey": key}).to_string();
    let events = h.write(
        "events.jsonl",
        &[
            line("first", "same"),
            line("second", "same"),
            line("third", "other"),
        ]
        .join("\n"),
    );
    let bundle = format!(
        "{DCONN}{}{}",
        connection(
            "dd",
            "dconn",
            &format!("{{ EVENTS: \"{}\" }}", events.display()),
            ""
        ),
        worker(&h, "")
    );
    h.write("bundle.yaml", &bundle);
    let mut orch = Orch::start(&h, "bundle.yaml", &[]);
    h.wait_until("every emit answered", DEADLINE, || {
        answer_runs(&h, "dd")
            .last()
            .is_some_and(|r| r.iter().any(|l| l == "done"))
    });
    let run = answer_runs(&h, "dd").pop().expect("run");
    let mut answers: Vec<&str> = run
        .iter()
        .map(String::as_str)
        .filter(|l| *l != "done")
        .collect();
    answers.sort_unstable();
    assert_eq!(answers, ["ack 0 new", "ack 1 dup", "ack 2 new"]);
    h.wait_until("third to arrive", DEADLINE, || {
        records(&h, "d").iter().any(|r| text(r) == "third")
    });
    assert_eq!(
        texts(&records(&h, "d")),
        ["first", "third"],
        "the duplicate is not delivered (it would have come before 'third')"
    );
    assert!(
        h.connection_log("dd").contains("is a duplicate of event"),
        "{}",
        h.connection_log("dd")
    );
    // And the repeat is in the audit log, as one JSON record.
    let duplicates = || -> Vec<Value> {
        let audit = std::fs::read_to_string(h.state().join("audit.log")).unwrap_or_default();
        audit
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["kind"] == "duplicate_delivery")
            .collect()
    };
    h.wait_until("the audit record", DEADLINE, || !duplicates().is_empty());
    let records = duplicates();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["connection"], "dd");
    assert!(orch.stop(&h).success(), "{}", h.dump());
}

// ---------------------------------------------------------------- 6. backpressure

/// `maxQueue: 2` behind a blocked delivery: emits beyond the room are nacked
/// `overloaded` (the webhook answers 503 with Retry-After); nothing refused
/// is ever delivered, everything accepted is, once the agent unblocks.
#[test]
fn delivery_a_full_queue_nacks_overloaded_and_the_webhook_answers_503() {
    let h = Harness::new();
    let feed = h.feed("feed.jsonl", &[]);
    let bundle = format!(
        "{FEEDER}{WEBHOOK}{}{}{}",
        connection("feed", "feeder", &format!("{{ FEED: \"{feed}\" }}"), ""),
        hook_connection("hook", ""),
        worker(&h, "  maxQueue: 2")
    );
    h.write("bundle.yaml", &bundle);
    let mut orch = Orch::start(&h, "bundle.yaml", &[]);
    let addr = hook_address(&h, "hook");

    // One delivery in flight, blocked: nothing leaves the queue now.
    h.feed("feed.jsonl", &[item("block-0", "q")]);
    h.wait_until("block-0 in flight", DEADLINE, || {
        !records(&h, "q").is_empty()
    });
    let more: Vec<Value> = (1..=5).map(|i| item(&format!("n-{i}"), "q")).collect();
    h.feed("feed.jsonl", &more);
    let answers: Vec<String> = (2..=6).map(|n| wait_feeder_answer(&h, "feed", n)).collect();
    assert!(
        answers[0].starts_with("ack 2 n-1") && answers[1].starts_with("ack 3 n-2"),
        "{answers:?}"
    );
    for a in &answers[2..] {
        assert!(
            a.starts_with("nack") && a.contains(" overloaded "),
            "{answers:?}"
        );
    }

    let (status, headers, body) = post(&addr, r#"{"user":"q","text":"w-1"}"#);
    assert_eq!(status, 503, "{body}\n{}", h.dump());
    assert!(
        header(&headers, "retry-after").is_some(),
        "503 with Retry-After: {headers:?}"
    );
    let body: Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(body["kind"], "overloaded", "{body}");

    std::fs::write(h.path("unblock"), "go\n").expect("unblock");
    h.wait_until("the accepted events to arrive", DEADLINE, || {
        records(&h, "q").len() >= 3
    });
    // Room again: the webhook's next event is accepted and comes after them.
    h.wait_until("w-2 accepted", DEADLINE, || {
        post(&addr, r#"{"user":"q","text":"w-2"}"#).0 == 200
    });
    h.wait_until("w-2 to arrive", DEADLINE, || {
        records(&h, "q").iter().any(|r| text(r) == "w-2")
    });
    assert_eq!(
        texts(&records(&h, "q")),
        ["block-0", "n-1", "n-2", "w-2"],
        "refused emits are never delivered"
    );
    assert!(orch.stop(&h).success(), "{}", h.dump());
}

/// `--max-pending` bounds the accepted, undelivered events across every
/// instance: with three blocked in three instances, a fourth (to a fourth,
/// empty instance) is nacked `overloaded`; once they are delivered there is
/// room again.
#[test]
fn delivery_max_pending_bounds_undelivered_events_across_instances() {
    let h = Harness::new();
    let feed = h.feed("feed.jsonl", &[]);
    let bundle = format!(
        "{FEEDER}{}{}",
        connection("feed", "feeder", &format!("{{ FEED: \"{feed}\" }}"), ""),
        worker(&h, "")
    );
    h.write("bundle.yaml", &bundle);
    let mut orch = Orch::start(&h, "bundle.yaml", &["--max-pending", "3"]);

    let blocked: Vec<Value> = ["a", "b", "c"]
        .iter()
        .map(|k| item(&format!("block-{k}"), k))
        .collect();
    h.feed("feed.jsonl", &blocked);
    h.wait_until("three blocked deliveries in flight", DEADLINE, || {
        ["a", "b", "c"].iter().all(|k| !records(&h, k).is_empty())
    });
    h.feed("feed.jsonl", &[item("n-1", "d")]);
    let refused = wait_feeder_answer(&h, "feed", 4);
    assert!(
        refused.starts_with("nack 4")
            && refused.contains(" overloaded ")
            && refused.contains("--max-pending"),
        "{refused}"
    );

    // Counted too: status shows what became of the connection's emits.
    let intake = &h.process("connection/feed").expect("in status")["intake"];
    assert_eq!(
        (
            intake["accepted"].as_u64(),
            intake["overloaded"].as_u64(),
            intake["nacked"].as_u64()
        ),
        (Some(3), Some(1), Some(1)),
        "{intake}"
    );

    std::fs::write(h.path("unblock"), "go\n").expect("unblock");
    h.wait_until("the blocked events to be acked", DEADLINE, || {
        ["a", "b", "c"].iter().all(|k| {
            h.process(&format!("agent/worker/{k}"))
                .is_some_and(|p| p["eventsOut"].as_u64() == Some(1))
        })
    });
    // Places come back as the agent acks; the next emit finds one.
    h.feed("feed.jsonl", &[item("n-2", "d")]);
    let accepted = wait_feeder_answer(&h, "feed", 5);
    assert!(accepted.starts_with("ack 5"), "{accepted}");
    h.wait_until("n-2 to arrive", DEADLINE, || {
        records(&h, "d").iter().any(|r| text(r) == "n-2")
    });
    assert_eq!(
        texts(&records(&h, "d")),
        ["n-2"],
        "the refused emit is never delivered"
    );
    assert!(orch.stop(&h).success(), "{}", h.dump());
}

/// The same full queue with `overflow: wait`: nothing is nacked; emits
/// beyond the room are held until the agent unblocks, then all delivered.
#[test]
fn delivery_overflow_wait_holds_emits_instead_of_nacking() {
    let h = Harness::new();
    let feed = h.feed("feed.jsonl", &[]);
    let bundle = format!(
        "{FEEDER}{}{}",
        connection(
            "feed",
            "feeder",
            &format!("{{ FEED: \"{feed}\" }}"),
            "  overflow: wait"
        ),
        worker(&h, "  maxQueue: 2")
    );
    h.write("bundle.yaml", &bundle);
    let mut orch = Orch::start(&h, "bundle.yaml", &[]);
    h.feed("feed.jsonl", &[item("block-0", "q")]);
    h.wait_until("block-0 in flight", DEADLINE, || {
        !records(&h, "q").is_empty()
    });
    let more: Vec<Value> = (1..=5).map(|i| item(&format!("n-{i}"), "q")).collect();
    h.feed("feed.jsonl", &more);
    for n in 2..=3 {
        let a = wait_feeder_answer(&h, "feed", n);
        assert!(a.starts_with(&format!("ack {n} ")), "{a}");
    }
    // The queue is full and nothing leaves it while block-0 blocks: n-3 is held.
    let log = h.connection_log("feed");
    assert!(
        feeder_answer(&h, "feed", 4).is_none(),
        "n-3 is held, not answered\n{log}"
    );
    assert!(!log.contains(" stdout nack "), "nothing is nacked\n{log}");

    std::fs::write(h.path("unblock"), "go\n").expect("unblock");
    for n in 4..=6 {
        let a = wait_feeder_answer(&h, "feed", n);
        assert!(a.starts_with(&format!("ack {n} ")), "{a}");
    }
    h.wait_until("all six to arrive", DEADLINE, || {
        records(&h, "q").len() >= 6
    });
    assert_eq!(
        texts(&records(&h, "q")),
        ["block-0", "n-1", "n-2", "n-3", "n-4", "n-5"]
    );
    assert!(!h.connection_log("feed").contains(" stdout nack "));
    assert!(orch.stop(&h).success(), "{}", h.dump());
}

// ---------------------------------------------------------------- 7. rate limit

/// Posts `body(n)` for n = 0, 1, … every 100 ms until one is accepted (a
/// client honouring Retry-After); returns the n that was.
fn post_until_accepted(h: &Harness, addr: &str, body: impl Fn(usize) -> String) -> usize {
    let mut n = 0;
    h.wait_until("a post to be accepted again", DEADLINE, || {
        let (status, _, _) = post(addr, &body(n));
        if status == 200 {
            return true;
        }
        assert_eq!(status, 429);
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
        false
    });
    n
}

/// `rateLimit: {perSecond: 1, burst: 2}`: the third of three quick emits is
/// nacked `quota_exceeded` (429 through the webhook) and never delivered.
#[test]
fn delivery_a_rate_limit_nacks_quota_exceeded_and_the_webhook_answers_429() {
    let h = Harness::new();
    let feed = h.feed("feed.jsonl", &[]);
    let limit = "  rateLimit: { perSecond: 1, burst: 2 }";
    let bundle = format!(
        "{FEEDER}{WEBHOOK}{}{}{}",
        connection("feed", "feeder", &format!("{{ FEED: \"{feed}\" }}"), limit),
        hook_connection("hook", limit),
        worker(&h, "")
    );
    h.write("bundle.yaml", &bundle);
    let mut orch = Orch::start(&h, "bundle.yaml", &[]);
    let addr = hook_address(&h, "hook");

    // Three emits in one read of the feed: well within a second.
    h.feed(
        "feed.jsonl",
        &[item("r-0", "r"), item("r-1", "r"), item("r-2", "r")],
    );
    let answers: Vec<String> = (1..=3).map(|n| wait_feeder_answer(&h, "feed", n)).collect();
    assert!(
        answers[0].starts_with("ack 1 ") && answers[1].starts_with("ack 2 "),
        "{answers:?}"
    );
    assert!(
        answers[2].starts_with("nack 3 quota_exceeded "),
        "{answers:?}"
    );

    let start = Instant::now();
    let statuses: Vec<Reply> = (0..3)
        .map(|i| post(&addr, &format!(r#"{{"user":"w","text":"w-{i}"}}"#)))
        .collect();
    let quick = start.elapsed() < Duration::from_millis(900);
    assert_eq!((statuses[0].0, statuses[1].0), (200, 200), "{statuses:?}");
    if quick {
        let (status, headers, body) = &statuses[2];
        assert_eq!(*status, 429, "{body}");
        assert!(header(headers, "retry-after").is_some(), "{headers:?}");
        let body: Value = serde_json::from_str(body).expect("JSON body");
        assert_eq!(body["kind"], "quota_exceeded", "{body}");
    } else {
        eprintln!(
            "three posts took {:?}: a token came back; 429 not checked",
            start.elapsed()
        );
    }

    // A later event gets through once a token is back, after the refused one.
    let n = post_until_accepted(&h, &addr, |n| {
        format!(r#"{{"user":"w","text":"w-late-{n}"}}"#)
    });
    let late = format!("w-late-{n}");
    h.wait_until("the late webhook event to arrive", DEADLINE, || {
        records(&h, "w").iter().any(|r| text(r) == late)
    });
    let mut want = vec!["w-0", "w-1"];
    if !quick && statuses[2].0 == 200 {
        want.push("w-2");
    }
    want.push(&late);
    assert_eq!(
        texts(&records(&h, "w")),
        want,
        "a refused post is never delivered"
    );

    let mut k = 4;
    loop {
        h.feed("feed.jsonl", &[item(&format!("r-late-{k}"), "r")]);
        let a = wait_feeder_answer(&h, "feed", k);
        if a.starts_with("ack") {
            break;
        }
        assert!(a.contains("quota_exceeded"), "{a}");
        k += 1;
        assert!(k < 200, "the rate limit never let an emit through again");
        std::thread::sleep(Duration::from_millis(100));
    }
    let late = format!("r-late-{k}");
    h.wait_until("the late feed event to arrive", DEADLINE, || {
        records(&h, "r").iter().any(|r| text(r) == late)
    });
    assert_eq!(texts(&records(&h, "r")), ["r-0", "r-1", late.as_str()]);
    assert!(orch.stop(&h).success(), "{}", h.dump());
}

// ---------------------------------------------------------------- 8. clean restart

/// Events accepted but not delivered (the agent is blocked on the first)
/// survive a SIGTERM and are delivered after the next start, in order.
#[test]
fn delivery_accepted_events_survive_a_clean_restart() {
    let h = Harness::new();
    let line = |t: &str| json!({"event": item(t, "s")}).to_string();
    let texts_in: Vec<String> = std::iter::once("block-0".to_string())
        .chain((1..=4).map(|i| format!("d-{i}")))
        .collect();
    let events = h.write(
        "events.jsonl",
        &texts_in
            .iter()
            .map(|t| line(t))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let bundle = format!(
        "{DCONN}{}{}",
        connection(
            "once",
            "dconn",
            &format!("{{ EVENTS: \"{}\", ONCE: \"true\" }}", events.display()),
            ""
        ),
        worker_with(
            &h,
            "{ backoff: { initial: 100ms }, stop: { grace: 300ms, termGrace: 300ms } }",
            ""
        )
    );
    h.write("bundle.yaml", &bundle);
    let mut orch = Orch::start(&h, "bundle.yaml", &[]);
    h.wait_until("all five acked", DEADLINE, || {
        answer_runs(&h, "once")
            .first()
            .is_some_and(|r| acked(r, "new").len() == 5)
    });
    h.wait_until("block-0 in flight", DEADLINE, || {
        !records(&h, "s").is_empty()
    });
    assert!(orch.stop(&h).success(), "{}", h.dump());
    assert_eq!(
        texts(&records(&h, "s")),
        ["block-0"],
        "nothing else reached the agent before the stop"
    );

    std::fs::write(h.path("unblock"), "go\n").expect("unblock");
    let mut orch = Orch::start(&h, "bundle.yaml", &[]);
    h.wait_until("the accepted events after the restart", DEADLINE, || {
        records(&h, "s").len() >= 6
    });
    let rs = records(&h, "s");
    assert_eq!(
        texts(&rs[1..]),
        texts_in.iter().map(String::as_str).collect::<Vec<_>>(),
        "delivered after the restart, in order"
    );
    assert_eq!(rs[1]["id"], rs[0]["id"], "block-0 is the same event");
    // The agent gets the recovered events before the connector's second run
    // may have started: wait for that run to finish before reading it.
    h.wait_until("the connector's second run to finish", DEADLINE, || {
        let runs = answer_runs(&h, "once");
        runs.len() >= 2 && runs.last().is_some_and(|r| r.iter().any(|l| l == "done"))
    });
    let run2 = answer_runs(&h, "once").pop().expect("run 2");
    assert!(
        !run2.iter().any(|l| l.starts_with("ack")),
        "run 2 emitted nothing: {run2:?}"
    );
    let stopped = orch.stop(&h);
    assert!(
        attempt(&rs[1]) > 1,
        "block-0 reached the agent (attempt 1) before the stop: its redelivery must be a later attempt: {}",
        rs[1]
    );
    assert!(stopped.success(), "{}", h.dump());
}

/// Events recovered from the journal are queued before any connection
/// starts: an event a connector emits at once on the next start still comes
/// after every one of them (a large backlog makes the journal read slow
/// enough that a connection started first would win the race).
#[test]
fn delivery_recovered_events_come_before_anything_new() {
    const BACKLOG: usize = 2000;
    let h = Harness::new();
    let line = |t: &str| json!({"event": item(t, "s")}).to_string();
    let texts_in: Vec<String> = std::iter::once("block-0".to_string())
        .chain((1..=BACKLOG).map(|i| format!("old-{i}")))
        .collect();
    let events = h.write(
        "events.jsonl",
        &texts_in
            .iter()
            .map(|t| line(t))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let fresh = h.write("fresh.jsonl", &line("new"));
    let once = connection(
        "once",
        "dconn",
        &format!("{{ EVENTS: \"{}\", ONCE: \"true\" }}", events.display()),
        "",
    );
    let agent = worker_with(
        &h,
        "{ backoff: { initial: 100ms }, stop: { grace: 300ms, termGrace: 300ms } }",
        "  maxQueue: 5000",
    );
    h.write("run1.yaml", &format!("{DCONN}{once}{agent}"));
    let mut orch = Orch::start(&h, "run1.yaml", &[]);
    h.wait_until("every event acked", DEADLINE, || {
        answer_runs(&h, "once")
            .first()
            .is_some_and(|r| acked(r, "new").len() == BACKLOG + 1)
    });
    h.wait_until("block-0 in flight", DEADLINE, || {
        !records(&h, "s").is_empty()
    });
    assert!(orch.stop(&h).success(), "{}", h.dump());

    // Run 2 has a connection that emits one new event for the same instance at once.
    std::fs::write(h.path("unblock"), "go\n").expect("unblock");
    let fresh = connection(
        "fresh",
        "dconn",
        &format!("{{ EVENTS: \"{}\" }}", fresh.display()),
        "",
    );
    h.write("run2.yaml", &format!("{DCONN}{once}{fresh}{agent}"));
    let mut orch = Orch::start(&h, "run2.yaml", &[]);
    h.wait_until("the backlog and the new event", DEADLINE, || {
        records(&h, "s").len() >= BACKLOG + 3
    });
    let rs = records(&h, "s");
    let order = texts(&rs[1..]);
    let new_at = order
        .iter()
        .position(|t| *t == "new")
        .expect("new delivered");
    assert_eq!(
        new_at,
        BACKLOG + 1,
        "the new event came after the {} recovered ones, not among them: {:?}",
        BACKLOG + 1,
        &order[..new_at.min(5)]
    );
    assert!(orch.stop(&h).success(), "{}", h.dump());
}

// ---------------------------------------------------------------- 9. the issue's "done when"

/// The quickstart under load: 1,000 events POSTed by 8 threads while the
/// echo agent is killed once and the orchestrator once (and started again
/// on the same state dir): every event answered 200 is in an agent's log.
#[test]
fn delivery_quickstart_under_kills_every_acked_post_reaches_the_agent_log() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 125;
    const USERS: usize = 4;
    let h = Harness::new();
    let dir = h.copy_example_dir("quickstart");
    h.copy_example_dir("agents");
    let bundle_path = dir.join("bundle.yaml");
    let bundle = std::fs::read_to_string(&bundle_path).expect("read quickstart bundle");
    assert!(
        bundle.contains(r#"PORT: "8080""#),
        "update this test\n{bundle}"
    );
    std::fs::write(
        &bundle_path,
        bundle.replace(r#"PORT: "8080""#, r#"PORT: "0""#),
    )
    .expect("write bundle");
    let address_file = h.state().join("state/connections/quickstart/address");
    let mut orch = Orch::start(&h, "quickstart/bundle.yaml", &[]);
    hook_address(&h, "quickstart");

    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let ok = Arc::new(AtomicUsize::new(0));
    let give_up = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (accepted, ok, give_up) = (accepted.clone(), ok.clone(), give_up.clone());
            let address_file = address_file.clone();
            std::thread::spawn(move || {
                let mut other = BTreeMap::<u16, usize>::new();
                for n in 0..PER_THREAD {
                    let text = format!("q-{t}-{n}");
                    let body =
                        json!({"user": format!("u{}", (t + n) % USERS), "text": text}).to_string();
                    // Retried until a 200, through the orchestrator's restart.
                    loop {
                        if give_up.load(Ordering::Relaxed) {
                            return other;
                        }
                        let addr = std::fs::read_to_string(&address_file).unwrap_or_default();
                        match try_post(addr.trim(), &body) {
                            Ok((200, _, _)) => {
                                accepted.lock().expect("lock").push(text);
                                ok.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Ok((status, _, _)) => *other.entry(status).or_default() += 1,
                            Err(_) => *other.entry(0).or_default() += 1,
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                other
            })
        })
        .collect();
    // Stop the posters if this thread panics.
    struct GiveUp(Arc<AtomicBool>);
    impl Drop for GiveUp {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _give_up = GiveUp(give_up.clone());

    h.wait_until("250 accepted posts", LONG, || {
        ok.load(Ordering::Relaxed) >= 250
    });
    let agent = ready_pid(&h, "agent/echo/u0");
    kill9_pid(agent);
    h.wait_until("500 accepted posts", LONG, || {
        ok.load(Ordering::Relaxed) >= 500
    });
    orch.kill9(&h);
    let at_kill = ok.load(Ordering::Relaxed);
    assert!(
        at_kill < THREADS * PER_THREAD,
        "the kill came after the last post"
    );
    std::fs::remove_file(&address_file).expect("remove the old address");
    let mut orch = Orch::start(&h, "quickstart/bundle.yaml", &[]);
    h.wait_until("every post accepted", LONG, || {
        ok.load(Ordering::Relaxed) >= THREADS * PER_THREAD
    });
    let mut refusals = BTreeMap::new();
    for t in threads {
        for (status, n) in t.join().expect("poster thread") {
            *refusals.entry(status).or_insert(0) += n;
        }
    }
    eprintln!("non-200 answers while posting (0 = no connection): {refusals:?}");

    let accepted = accepted.lock().expect("lock").clone();
    assert_eq!(accepted.len(), THREADS * PER_THREAD);
    let logged = || -> BTreeSet<String> {
        (0..USERS)
            .flat_map(|u| h.texts("echo", &format!("u{u}")))
            .collect()
    };
    h.wait_until("every accepted post in an agent log", LONG, || {
        let got = logged();
        accepted.iter().all(|t| got.contains(t))
    });
    assert!(!pid_alive(agent), "the killed agent process is gone");
    assert!(
        h.agent_log("echo", "u0").contains("killed by signal 9"),
        "the agent kill is in its log"
    );
    assert!(orch.stop(&h).success(), "{}", h.dump());
}
