use serde_json::{Value, json};

use super::*;
use crate::logs::flush;

/// Every record in `audit.log` and its rotated files, oldest first.
fn records(path: &Path) -> Vec<Value> {
    flush();
    let mut out = Vec::new();
    for n in (1..=20).rev() {
        let rotated = PathBuf::from(format!("{}.{n}", path.display()));
        out.extend(read(&rotated));
    }
    out.extend(read(path));
    out
}

fn read(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn rejected(connection: &str, i: usize) -> Value {
    json!({"connection": connection, "kind": "signature_rejected", "reason": "bad_signature", "n": i})
}

/// The attack: 500,000 badly signed requests used to rotate every earlier
/// record out. Now one Connection's flood is held to its rate and
/// summarized, and what came before stays.
#[test]
fn a_flood_does_not_rotate_earlier_records_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let opts = AuditOptions {
        max_bytes: 64 * 1024,
        keep: 3,
        per_sec: 10.0,
        burst: 100.0,
        ..AuditOptions::default()
    };
    let audit = AuditLog::open_with(&path, opts).unwrap();
    audit.record(json!({"connection": "quiet", "kind": "duplicate_delivery", "original": "EARLY"}));
    for i in 0..500_000 {
        audit.record(rejected("flood", i));
    }
    // Another Connection is not silenced by the first one's flood.
    audit.record(json!({"connection": "quiet", "kind": "duplicate_delivery", "original": "LATE"}));
    let counts = audit.counts();
    assert!(counts.suppressed >= 499_000, "{counts:?}");
    // Closing writes the summary of what is still pending.
    drop(audit);
    let all = records(&path);
    assert!(
        all.iter().any(|r| r["original"] == "EARLY"),
        "the early record was rotated out"
    );
    assert!(all.iter().any(|r| r["original"] == "LATE"));
    let written = all
        .iter()
        .filter(|r| r["kind"] == "signature_rejected")
        .count();
    assert!(
        (100..1000).contains(&written),
        "{written} flood records written"
    );
    let suppressed: u64 = all
        .iter()
        .filter(|r| r["kind"] == "audit_suppressed" && r["connection"] == "flood")
        .map(|r| r["suppressed"].as_u64().unwrap())
        .sum();
    assert_eq!(
        suppressed, counts.suppressed,
        "every suppressed record is accounted for"
    );
    assert_eq!(written as u64 + suppressed, 500_000);
    assert!(
        !PathBuf::from(format!("{}.1", path.display())).exists(),
        "nothing needed rotating"
    );
}

/// A 3 MB record is refused, counted, and replaced by a small one.
#[test]
fn an_oversized_record_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let audit = AuditLog::open_with(&path, AuditOptions::default()).unwrap();
    let huge = "A".repeat(3 * 1024 * 1024);
    audit.record(json!({"connection": "c", "kind": "signature_rejected", "reason": huge}));
    audit.record(json!({"connection": "c", "kind": huge, "reason": "x"}));
    audit.record(json!({"connection": "c", "kind": "signature_rejected", "reason": "small"}));
    assert_eq!(audit.counts().refused, 2);
    assert_eq!(audit.counts().written, 1);
    let all = records(&path);
    assert_eq!(all.len(), 3, "{all:#?}");
    assert_eq!(all[0]["kind"], "audit_refused");
    assert_eq!(all[0]["reason"], "too_large");
    assert_eq!(all[0]["refusedKind"], "signature_rejected");
    assert_eq!(all[0]["connection"], "c");
    assert_eq!(all[0]["limit"], 16 * 1024);
    assert!(all[0]["bytes"].as_u64().unwrap() > 3 * 1024 * 1024);
    assert_eq!(
        all[1]["refusedKind"],
        Value::Null,
        "a huge kind is not repeated"
    );
    assert_eq!(all[1]["refusedSoFar"], 2);
    assert_eq!(all[2]["reason"], "small");
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 2048, "{size} bytes");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A writer that falls behind loses records only counted and reported.
#[test]
fn records_beyond_the_queue_are_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let opts = AuditOptions {
        queue: 0,
        ..AuditOptions::default()
    };
    let audit = AuditLog::open_with(&path, opts).unwrap();
    for i in 0..7 {
        audit.record(rejected("c", i));
    }
    assert_eq!(audit.counts().lost, 7);
    drop(audit);
    let all = records(&path);
    assert!(all.iter().all(|r| r["kind"] == "audit_lost"), "{all:#?}");
    let lost: u64 = all.iter().map(|r| r["lost"].as_u64().unwrap()).sum();
    assert_eq!(lost, 7, "{all:#?}");
}

/// Suppressed records are summarized once per interval while a flood goes on.
#[test]
fn suppressed_records_are_summarized_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let opts = AuditOptions {
        per_sec: 0.0,
        burst: 1.0,
        summary_every: Duration::ZERO,
        ..AuditOptions::default()
    };
    let audit = AuditLog::open_with(&path, opts).unwrap();
    for i in 0..4 {
        audit.record(rejected("c", i));
    }
    let shared = audit.inner.shared.clone();
    let due = shared.due(Instant::now(), false);
    assert_eq!(due.len(), 1, "{due:?}");
    let summary: Value = serde_json::from_str(due[0].trim_end()).unwrap();
    assert_eq!(summary["kind"], "audit_suppressed");
    assert_eq!(summary["suppressed"], 3);
    assert!(
        shared.due(Instant::now(), false).is_empty(),
        "reported once"
    );
}
