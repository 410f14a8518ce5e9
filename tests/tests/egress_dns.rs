//! A DNS answer that changes between check and connect is not followed.
//!
//! The test resolver answers `flip.test` with 127.0.0.2 (the test server,
//! allowed by `allowCidrs`) on its first lookup and 10.0.0.1 (private) on
//! every later one. The proxy looks a name up once per request and
//! connects to the address it checked: the first request reaches the
//! server, the later ones are refused as `private_address`. A proxy that
//! looked the name up again to connect would take 10.0.0.1 for the first
//! request too, and the server would see nothing. Root only, like
//! tests/tests/egress.rs.

mod egress_support;

use e2e::{DEADLINE, Harness};
use egress_support::{Run, audit_records, bundle, outcome, upstream};

#[test]
fn egress_connects_to_the_address_it_checked_not_a_later_answer() {
    if !e2e::require_root() {
        return;
    }
    let up = upstream();
    let port = up.port;
    let h = Harness::new();
    h.copy_fixture("egress_probe.py");
    let network = format!(
        r#"{{ mode: egress, allowHosts: [flip.test], allowPorts: [{port}], allowCidrs: ["127.0.0.2/32"] }}"#
    );
    let first = format!("urllib:http://flip.test:{port}/first");
    let second = format!("urllib:http://flip.test:{port}/second");
    let third = format!("tunnel:flip.test:{port}");
    let checks = [first.as_str(), second.as_str(), third.as_str()].join(" ");
    h.write("bundle.yaml", &bundle(&network, &checks));
    let _run = Run::start(
        &h,
        &[(
            "ORCHESTRATOR_EGRESS_RESOLVE",
            "flip.test=127.0.0.2|10.0.0.1",
        )],
    );
    h.wait_until("the probe to finish its checks", DEADLINE, || {
        h.connection_log("p").contains("checks done")
    });
    let log = h.connection_log("p");

    // First lookup: 127.0.0.2, checked, and connected to.
    assert_eq!(outcome(&log, &first), "ok 200 hello /first", "{log}");
    assert_eq!(
        *up.seen.lock().expect("lock"),
        vec![format!("GET /first HTTP/1.1 host=flip.test:{port}")],
        "the server saw the first request, and only it"
    );
    // Every later lookup answers 10.0.0.1: refused, never connected to.
    assert_eq!(outcome(&log, &second), "err 403 private_address");
    assert_eq!(outcome(&log, &third), "err 403 private_address");
    h.wait_until("both refusals in audit.log", DEADLINE, || {
        audit_records(&h).len() >= 2
    });
    let records = audit_records(&h);
    assert_eq!(records.len(), 2, "{records:#?}");
    for r in &records {
        assert_eq!(r["host"], "flip.test", "{r}");
        assert_eq!(r["reason"], "private_address", "{r}");
        assert_eq!(r["addresses"], serde_json::json!(["10.0.0.1"]), "{r}");
    }
    // One allowed connection (to 127.0.0.2); none failed (a connection
    // tried to 10.0.0.1 would have failed or timed out).
    let row = h.process("connection/p").expect("status row");
    let egress = &row["egress"];
    assert_eq!(egress["allowed"], 1, "{egress}");
    assert_eq!(egress["refused"]["private_address"], 2, "{egress}");
    assert!(
        egress["failed"]
            .as_object()
            .is_none_or(serde_json::Map::is_empty),
        "{egress}"
    );
}
