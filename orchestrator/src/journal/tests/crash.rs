//! SIGKILL in the middle of a stream of accepts loses no acknowledged event.
//!
//! The parent re-runs this test binary, filtered to [`crash_child`], with
//! [`CHILD_ENV`] naming a journal file. The child accepts events as fast as
//! it can (64 in flight) and prints `ACCEPTED <id>` only after the future
//! resolved — the moment a connector would be acked — and marks every third
//! one delivered, printing `MARKED <id>`. The parent SIGKILLs it mid-stream,
//! reopens the file and checks that every accepted, unmarked id is pending.
//! (A marked id may be either: its mark may not have been made durable.)

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use super::*;

const CHILD_ENV: &str = "ORCHESTRATOR_JOURNAL_CRASH_CHILD";
const KILL_AFTER: usize = 3000;

#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let journal = Journal::open(std::path::Path::new(&path), JournalOptions::default())
            .expect("child opens the journal");
        let mut out = std::io::stdout().lock();
        let mut in_flight = VecDeque::new();
        for n in 0.. {
            let e = event("crash", n);
            in_flight.push_back((e.id.clone(), journal.accept(routed(e))));
            if in_flight.len() < 64 {
                continue;
            }
            let (id, accepted) = in_flight.pop_front().unwrap();
            accepted.await.expect("accept");
            writeln!(out, "ACCEPTED {id}").unwrap();
            if n % 3 == 0 {
                writeln!(out, "MARKED {id}").unwrap();
                out.flush().unwrap();
                journal.delivered(&id);
            }
            out.flush().unwrap();
        }
    });
}

#[test]
fn sigkill_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "journal::tests::crash::crash_child",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let (mut accepted, mut marked) = (Vec::new(), HashSet::new());
    let mut take = |line: String| {
        if let Some(id) = line.strip_prefix("ACCEPTED ") {
            accepted.push(id.to_owned());
        } else if let Some(id) = line.strip_prefix("MARKED ") {
            marked.insert(id.to_owned());
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = 0;
    while seen < KILL_AFTER {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen += usize::from(line.starts_with("ACCEPTED "));
                take(line);
            }
            Err(e) => {
                let _ = child.kill();
                panic!("the child stopped early or hung ({e:?}) after {seen} accepts");
            }
        }
    }
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed: {status:?}");
    // Lines already written before the kill are still in the pipe.
    for line in rx {
        take(line);
    }
    reader.join().unwrap();
    let accepted_count = accepted.len();

    let journal = Journal::open(&path, JournalOptions::default()).expect("reopen after SIGKILL");
    let pending: HashSet<_> = pending_ids(&journal).into_iter().collect();
    let lost: Vec<_> = accepted
        .iter()
        .filter(|id| !marked.contains(*id) && !pending.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {accepted_count} acked events lost: {lost:?}",
        lost.len()
    );
    assert!(accepted_count >= KILL_AFTER);
    // Pending holds no more than what was acked plus the window in flight, minus marks.
    assert!(pending.len() <= accepted_count + 64);
}
