//! connector-cron against the SDK's fake orchestrator, with time on a mock clock.
//!
//! The connector does all its catch-up work before it goes to sleep for the
//! next slot, so "it sleeps until T" (`MockClock::next_sleeper`) is the point
//! where a test checks what was emitted and persisted: no real waiting.

use std::path::Path;
use std::time::{Duration, SystemTime};

use connector_sdk::NackKind;
use connector_sdk::ipc_proto::Emit;
use connector_sdk::testing::{
    AckPolicy, MockClock, TestConfig, TestRun, run_connector, wait_until,
};

const LIMIT: Duration = Duration::from_secs(10);

fn t(rfc3339: &str) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("an RFC 3339 time")
        .into()
}

fn start(cfg: TestConfig) -> TestRun {
    run_connector(connector_cron::run, cfg)
}

fn scheduled(e: &Emit) -> &str {
    &e.event.properties["scheduled_at"]
}

fn last_fire(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("last_fire"))
        .ok()
        .map(|s| s.trim().to_owned())
}

async fn wait_last_fire(dir: &Path, want: &str) {
    wait_until(&format!("last_fire = {want}"), LIMIT, || {
        last_fire(dir).as_deref() == Some(want)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: last_fire is {:?}", last_fire(dir)));
}

#[tokio::test]
async fn an_interval_ticks_on_its_aligned_slots_and_persists_only_after_the_ack() {
    let mock = MockClock::new(t("2026-01-01T00:00:10Z"));
    let mut run = start(
        TestConfig::new()
            .config("EVERY", "30s")
            .clock(&mock)
            .policy(AckPolicy::Hold),
    );
    assert_eq!(
        mock.advance_to_next_sleeper(LIMIT).await,
        Some(t("2026-01-01T00:00:30Z"))
    );
    let tick = run.next_emit(LIMIT).await.unwrap();
    assert_eq!(tick.event.name, "tick");
    assert_eq!(scheduled(&tick), "2026-01-01T00:00:30Z");
    assert_eq!(tick.event.properties["schedule"], "every 30s");
    assert!(!tick.event.properties.contains_key("name"));
    assert_eq!(tick.event.instance_key.as_deref(), Some("cron:test"));
    assert_eq!(
        tick.dedupe_key.as_deref(),
        Some("cron:2026-01-01T00:00:30Z")
    );
    assert_eq!(
        last_fire(run.state_dir()),
        None,
        "nothing is persisted before the ack"
    );

    run.ack(tick.seq);
    wait_last_fire(run.state_dir(), "2026-01-01T00:00:30Z").await;
    assert_eq!(
        mock.next_sleeper(LIMIT).await,
        Some(t("2026-01-01T00:01:00Z"))
    );
    assert_eq!(run.emits().len(), 1);
    run.shutdown().await.unwrap();
}

#[tokio::test]
async fn nine_in_seoul_is_midnight_utc() {
    let mock = MockClock::new(t("2026-03-01T12:00:00Z"));
    let mut run = start(
        TestConfig::new()
            .config("SCHEDULE", "0 9 * * *")
            .config("TIMEZONE", "Asia/Seoul")
            .config("NAME", "report")
            .clock(&mock),
    );
    assert_eq!(
        mock.advance_to_next_sleeper(LIMIT).await,
        Some(t("2026-03-02T00:00:00Z"))
    );
    let tick = run.next_emit(LIMIT).await.unwrap();
    assert_eq!(scheduled(&tick), "2026-03-02T00:00:00Z");
    assert_eq!(tick.event.properties["schedule"], "0 9 * * *");
    assert_eq!(tick.event.properties["name"], "report");
    assert_eq!(tick.event.instance_key.as_deref(), Some("cron:report"));
    assert_eq!(
        mock.next_sleeper(LIMIT).await,
        Some(t("2026-03-03T00:00:00Z"))
    );
}

#[tokio::test]
async fn six_fields_fire_by_the_second() {
    let mock = MockClock::new(t("2026-01-01T00:00:01Z"));
    let mut run = start(
        TestConfig::new()
            .config("SCHEDULE", "*/15 * * * * *")
            .clock(&mock),
    );
    for want in ["2026-01-01T00:00:15Z", "2026-01-01T00:00:30Z"] {
        assert_eq!(mock.advance_to_next_sleeper(LIMIT).await, Some(t(want)));
        assert_eq!(scheduled(&run.next_emit(LIMIT).await.unwrap()), want);
    }
}

/// After five missed one-minute slots, each policy fires what it says.
#[tokio::test]
async fn each_catch_up_policy_after_a_downtime() {
    let cases: [(&str, &[&str]); 3] = [
        ("skip", &[]),
        ("latest", &["2026-01-01T00:05:00Z"]),
        (
            "all",
            &[
                "2026-01-01T00:01:00Z",
                "2026-01-01T00:02:00Z",
                "2026-01-01T00:03:00Z",
                "2026-01-01T00:04:00Z",
                "2026-01-01T00:05:00Z",
            ],
        ),
    ];
    for (policy, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("last_fire"), "2026-01-01T00:00:00Z\n").unwrap();
        let mock = MockClock::new(t("2026-01-01T00:05:30Z"));
        let run = start(
            TestConfig::new()
                .config("EVERY", "1m")
                .config("CATCH_UP", policy)
                .state_dir(dir.path())
                .clock(&mock),
        );
        // Asleep until the next slot: the catch-up is done.
        assert_eq!(
            mock.next_sleeper(LIMIT).await,
            Some(t("2026-01-01T00:06:00Z")),
            "{policy}"
        );
        let got: Vec<String> = run
            .emits()
            .iter()
            .map(|e| scheduled(e).to_owned())
            .collect();
        assert_eq!(got, want, "{policy}");
        let persisted = want.last().copied().unwrap_or("2026-01-01T00:00:00Z");
        assert_eq!(
            last_fire(dir.path()).as_deref(),
            Some(persisted),
            "{policy}"
        );
        run.wait_log("the catch-up line", LIMIT, |l| {
            l.message.contains("5 missed slot(s)")
        })
        .await
        .unwrap_or_else(|e| panic!("{policy}: {e}"));
    }
}

#[tokio::test]
async fn catch_up_all_is_capped_at_the_latest_thousand() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("last_fire"), "2026-01-01T00:00:00Z").unwrap();
    // Two hours of one-second slots: 7200 missed.
    let mock = MockClock::new(t("2026-01-01T02:00:00.5Z"));
    let run = start(
        TestConfig::new()
            .config("EVERY", "1s")
            .config("CATCH_UP", "all")
            .state_dir(dir.path())
            .clock(&mock),
    );
    assert_eq!(
        mock.next_sleeper(Duration::from_secs(60)).await,
        Some(t("2026-01-01T02:00:01Z"))
    );
    let emits = run.emits();
    assert_eq!(emits.len(), connector_cron::MAX_CATCH_UP);
    assert_eq!(scheduled(&emits[0]), "2026-01-01T01:43:21Z");
    assert_eq!(scheduled(emits.last().unwrap()), "2026-01-01T02:00:00Z");
    let cap_line = "more than 1000 missed slots after 2026-01-01T00:00:00Z up to \
                    2026-01-01T02:00:00.500Z; firing only the latest 1000";
    run.wait_log("the cap warning", LIMIT, |l| l.message.contains(cap_line))
        .await
        .unwrap();
    assert_eq!(
        last_fire(dir.path()).as_deref(),
        Some("2026-01-01T02:00:00Z")
    );
}

#[tokio::test]
async fn no_last_fire_means_nothing_to_catch_up() {
    let mock = MockClock::new(t("2026-01-01T00:05:30Z"));
    let run = start(
        TestConfig::new()
            .config("EVERY", "1m")
            .config("CATCH_UP", "all")
            .clock(&mock),
    );
    assert_eq!(
        mock.next_sleeper(LIMIT).await,
        Some(t("2026-01-01T00:06:00Z"))
    );
    assert!(run.emits().is_empty());
}

#[tokio::test]
async fn slots_passed_while_asleep_follow_the_policy() {
    let mock = MockClock::new(t("2026-01-01T00:00:30Z"));
    let mut run = start(
        TestConfig::new()
            .config("EVERY", "1m")
            .config("CATCH_UP", "latest")
            .clock(&mock),
    );
    assert_eq!(
        mock.next_sleeper(LIMIT).await,
        Some(t("2026-01-01T00:01:00Z"))
    );
    // The machine was suspended: it wakes ten minutes later.
    mock.set(t("2026-01-01T00:10:30Z"));
    assert_eq!(
        scheduled(&run.next_emit(LIMIT).await.unwrap()),
        "2026-01-01T00:01:00Z"
    );
    assert_eq!(
        scheduled(&run.next_emit(LIMIT).await.unwrap()),
        "2026-01-01T00:10:00Z"
    );
    assert_eq!(
        mock.next_sleeper(LIMIT).await,
        Some(t("2026-01-01T00:11:00Z"))
    );
    assert_eq!(run.emits().len(), 2);
    wait_last_fire(run.state_dir(), "2026-01-01T00:10:00Z").await;
}

#[tokio::test]
async fn a_restart_catches_up_from_the_persisted_slot() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockClock::new(t("2026-01-01T00:00:30Z"));
    let cfg = TestConfig::new()
        .config("EVERY", "1m")
        .config("CATCH_UP", "all")
        .state_dir(dir.path())
        .clock(&mock);
    let mut first = start(cfg.clone());
    mock.advance_to_next_sleeper(LIMIT).await.unwrap();
    assert_eq!(
        scheduled(&first.next_emit(LIMIT).await.unwrap()),
        "2026-01-01T00:01:00Z"
    );
    wait_last_fire(dir.path(), "2026-01-01T00:01:00Z").await;
    first.shutdown().await.unwrap();
    drop(first);

    // Down for two and a half minutes.
    mock.set(t("2026-01-01T00:03:30Z"));
    let second = start(cfg);
    assert_eq!(
        mock.next_sleeper(LIMIT).await,
        Some(t("2026-01-01T00:04:00Z"))
    );
    let got: Vec<String> = second
        .emits()
        .iter()
        .map(|e| scheduled(e).to_owned())
        .collect();
    assert_eq!(got, ["2026-01-01T00:02:00Z", "2026-01-01T00:03:00Z"]);
    assert_eq!(
        last_fire(dir.path()).as_deref(),
        Some("2026-01-01T00:03:00Z")
    );
}

#[tokio::test]
async fn a_nacked_tick_is_retried_with_backoff_and_not_persisted_until_acked() {
    let mock = MockClock::new(t("2026-01-01T00:00:00.5Z"));
    let mut run = start(
        TestConfig::new()
            .config("EVERY", "1h")
            .clock(&mock)
            .policy(AckPolicy::Hold),
    );
    let slot = mock.advance_to_next_sleeper(LIMIT).await.unwrap();
    let first = run.next_emit(LIMIT).await.unwrap();
    run.nack(first.seq, NackKind::Overloaded, "queue full");
    assert_eq!(
        mock.next_sleeper(LIMIT).await,
        Some(slot + Duration::from_secs(1))
    );
    assert_eq!(last_fire(run.state_dir()), None);

    mock.advance_to_next_sleeper(LIMIT).await.unwrap();
    let second = run.next_emit(LIMIT).await.unwrap();
    assert_eq!(
        second.dedupe_key, first.dedupe_key,
        "the same slot, the same key"
    );
    run.nack(second.seq, NackKind::Transient, "journal busy");
    assert_eq!(
        mock.next_sleeper(LIMIT).await,
        Some(mock.now() + Duration::from_secs(2))
    );

    mock.advance_to_next_sleeper(LIMIT).await.unwrap();
    let third = run.next_emit(LIMIT).await.unwrap();
    run.ack(third.seq);
    wait_last_fire(run.state_dir(), "2026-01-01T01:00:00Z").await;

    // A refusal that retrying cannot fix is given up at once.
    mock.advance_to_next_sleeper(LIMIT).await.unwrap();
    let fourth = run.next_emit(LIMIT).await.unwrap();
    run.nack(fourth.seq, NackKind::ValidationError, "not declared");
    assert_eq!(
        mock.next_sleeper(LIMIT).await,
        Some(t("2026-01-01T03:00:00Z"))
    );
    assert_eq!(
        last_fire(run.state_dir()).as_deref(),
        Some("2026-01-01T01:00:00Z")
    );
    run.wait_log("given up", LIMIT, |l| l.message.contains("given up"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_bad_configuration_exits_78_without_emitting() {
    let cases: &[&[(&str, &str)]] = &[
        &[],
        &[("EVERY", "1m"), ("SCHEDULE", "* * * * *")],
        &[("SCHEDULE", "61 * * * *")],
        &[("SCHEDULE", "* * * *")],
        &[("EVERY", "soon")],
        &[("EVERY", "1m"), ("TIMEZONE", "Nowhere/City")],
        &[("EVERY", "1m"), ("CATCH_UP", "some")],
    ];
    for pairs in cases {
        let mut cfg = TestConfig::new();
        for (k, v) in *pairs {
            cfg = cfg.config(*k, *v);
        }
        let run = start(cfg);
        let end = run.wait_finished(LIMIT).await.unwrap();
        assert!(end.is_config_error(), "{pairs:?}: {end:?}");
        assert!(run.emits().is_empty());
    }
}

#[tokio::test]
async fn an_unreadable_last_fire_is_reported_and_ignored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("last_fire"), "yesterday").unwrap();
    let mock = MockClock::new(t("2026-01-01T00:00:30Z"));
    let mut run = start(
        TestConfig::new()
            .config("EVERY", "1m")
            .config("CATCH_UP", "all")
            .state_dir(dir.path())
            .clock(&mock),
    );
    run.wait_log("the warning", LIMIT, |l| {
        l.message.contains("\"yesterday\"")
    })
    .await
    .unwrap();
    mock.advance_to_next_sleeper(LIMIT).await.unwrap();
    assert_eq!(
        scheduled(&run.next_emit(LIMIT).await.unwrap()),
        "2026-01-01T00:01:00Z"
    );
    wait_last_fire(dir.path(), "2026-01-01T00:01:00Z").await;
}
