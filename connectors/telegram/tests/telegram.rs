//! connector-telegram against a fake Bot API and the SDK's fake orchestrator.
//!
//! Backoff waits run on the SDK's mock clock: when the connector sleeps, the
//! test sees the deadline and the fake server's request count at that
//! moment, both exact, and moves the clock on. No timed assertions.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{FakeBotApi, Fault, TOKEN, testdata, text_update};
use connector_sdk::NackKind;
use connector_sdk::testing::{
    AckPolicy, MockClock, TestConfig, TestRun, run_connector, wait_until,
};

const LIMIT: Duration = Duration::from_secs(10);

fn config(api: &FakeBotApi) -> TestConfig {
    TestConfig::new()
        .connector("telegram")
        .connection("tg")
        .config("API_BASE", api.url())
        .config("POLL_TIMEOUT", "1")
        .secret("BOT_TOKEN", TOKEN)
}

fn start(cfg: TestConfig) -> TestRun {
    run_connector(connector_telegram::run, cfg)
}

fn offset(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("offset"))
        .ok()
        .map(|s| s.trim().to_owned())
}

async fn wait_offset(dir: &Path, want: i64) {
    let want = want.to_string();
    wait_until(&format!("offset = {want}"), LIMIT, || {
        offset(dir).as_deref() == Some(want.as_str())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: offset is {:?}", offset(dir)));
}

/// No log line shows the token (it is in every URL).
fn assert_no_token(run: &TestRun) {
    for l in run.logs() {
        assert!(
            !l.message.contains(TOKEN),
            "token in a log line: {}",
            l.message
        );
        assert!(
            !l.message.contains("/bot"),
            "a URL in a log line: {}",
            l.message
        );
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn every_testdata_update_yields_its_event_or_a_skip_line() {
    let api = FakeBotApi::start().await;
    api.push(testdata());
    let run = start(config(&api));
    // The offset moves past the last update only when all were acked or skipped.
    wait_offset(run.state_dir(), 892252935).await;
    let emits = run.emits();
    type Seen<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);
    let got: Vec<Seen> = emits
        .iter()
        .map(|e| {
            (
                e.event.name.as_str(),
                e.event.message.as_ref().and_then(|m| m.as_text()),
                e.event.instance_key.as_deref(),
                e.dedupe_key.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "my_chat_member",
                Some("the bot's status in chat 0: member → kicked"),
                Some("telegram:0"),
                Some("telegram:0")
            ),
            (
                "message",
                Some("4"),
                Some("telegram:408258968"),
                Some("telegram:306197398")
            ),
            (
                "command",
                Some("/report"),
                Some("telegram:-1001293752024"),
                Some("telegram:439432600")
            ),
            (
                "message",
                Some("hello there"),
                Some("telegram:218485655"),
                Some("telegram:892252934")
            ),
        ]
    );
    assert_eq!(emits[2].event.properties["command"], "/report");
    assert_eq!(emits[3].event.properties["username"], "WaffleLapkin");
    // The other ten: one log line each, naming the update.
    for id in [
        1, 71651249, 71651251, 71651297, 439432599, 573255266, 573255267, 767844136, 845402291,
    ] {
        let prefix = format!("update {id} skipped: ");
        run.wait_log(&prefix, LIMIT, |l| l.message.starts_with(&prefix))
            .await
            .unwrap();
    }
    let skips = run
        .logs()
        .iter()
        .filter(|l| l.message.contains(" skipped: "))
        .count();
    assert_eq!(skips, 10);
    // Still polling, now from the new offset.
    api.wait_requests("a poll from the new offset", LIMIT, |r| {
        r.last().is_some_and(|r| r.offset == Some(892252935))
    })
    .await;
    assert!(run.finished().is_none(), "{:?}", run.finished());
    assert!(
        api.requests()
            .iter()
            .all(|r| r.token_ok && r.timeout == Some(1))
    );
    assert_no_token(&run);
}

#[tokio::test]
async fn the_offset_advances_only_after_every_emit_is_acked() {
    let api = FakeBotApi::start().await;
    api.push([text_update(10, "one"), text_update(11, "two")]);
    let mut run = start(config(&api).policy(AckPolicy::Hold));
    let first = run.next_emit(LIMIT).await.unwrap();
    let second = run.next_emit(LIMIT).await.unwrap();
    assert_eq!(first.dedupe_key.as_deref(), Some("telegram:10"));
    run.ack(first.seq);
    assert_eq!(
        offset(run.state_dir()),
        None,
        "not before the whole batch is answered"
    );
    assert!(api.requests().iter().all(|r| r.offset.is_none()));
    run.ack(second.seq);
    wait_offset(run.state_dir(), 12).await;
    api.wait_requests("a poll with offset 12", LIMIT, |r| {
        r.iter().any(|r| r.offset == Some(12))
    })
    .await;
    assert_eq!(run.emits().len(), 2);
}

#[tokio::test]
async fn a_nacked_update_is_fetched_again_after_a_backoff() {
    let api = FakeBotApi::start().await;
    api.push([
        text_update(20, "a"),
        text_update(21, "b"),
        text_update(22, "c"),
    ]);
    let mock = MockClock::at_unix(1_000_000);
    let mut run = start(config(&api).clock(&mock).policy(AckPolicy::Hold));
    let e20 = run.next_emit(LIMIT).await.unwrap();
    let e21 = run.next_emit(LIMIT).await.unwrap();
    let e22 = run.next_emit(LIMIT).await.unwrap();
    run.ack(e20.seq);
    run.nack(e21.seq, NackKind::Overloaded, "queue full");
    run.ack(e22.seq);
    // Acked up to 20; 21 was refused, so the offset stops there.
    assert_eq!(mock.next_sleeper(LIMIT).await, Some(mock.now() + secs(1)));
    assert_eq!(offset(run.state_dir()).as_deref(), Some("21"));
    assert_eq!(api.requests().len(), 1);

    mock.advance_to_next_sleeper(LIMIT).await.unwrap();
    let again21 = run.next_emit(LIMIT).await.unwrap();
    let again22 = run.next_emit(LIMIT).await.unwrap();
    assert_eq!(again21.dedupe_key.as_deref(), Some("telegram:21"));
    assert_eq!(again22.dedupe_key.as_deref(), Some("telegram:22"));
    assert_eq!(api.requests()[1].offset, Some(21));
    // Refused again: the wait doubles.
    run.nack(again21.seq, NackKind::Overloaded, "still full");
    run.ack(again22.seq);
    assert_eq!(mock.next_sleeper(LIMIT).await, Some(mock.now() + secs(2)));
    assert_eq!(api.requests().len(), 2);

    mock.advance_to_next_sleeper(LIMIT).await.unwrap();
    let third21 = run.next_emit(LIMIT).await.unwrap();
    let third22 = run.next_emit(LIMIT).await.unwrap();
    run.ack(third21.seq);
    run.ack(third22.seq);
    wait_offset(run.state_dir(), 23).await;
    assert_eq!(
        run.answer_of(third22.seq),
        Some(connector_sdk::testing::Answer::Duplicate),
        "22 was acked before: the orchestrator would not deliver it twice"
    );
}

#[tokio::test]
async fn a_restart_fetches_the_updates_that_were_never_acked() {
    let api = FakeBotApi::start().await;
    api.push([text_update(30, "unacked")]);
    let dir = tempfile::tempdir().unwrap();
    let mut first = start(config(&api).state_dir(dir.path()).policy(AckPolicy::Hold));
    let e = first.next_emit(LIMIT).await.unwrap();
    first.shutdown().await.unwrap();
    drop(first);
    assert_eq!(offset(dir.path()), None);

    let mut second = start(config(&api).state_dir(dir.path()));
    let again = second.next_emit(LIMIT).await.unwrap();
    assert_eq!(again.dedupe_key, e.dedupe_key);
    assert_eq!(again.event, e.event);
    wait_offset(dir.path(), 31).await;
    assert!(api.requests().iter().take(2).all(|r| r.offset.is_none()));
}

#[tokio::test]
async fn server_errors_back_off_exponentially_up_to_the_cap_and_keep_the_offset() {
    let api = FakeBotApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("offset"), "100\n").unwrap();
    api.fail_next([Fault::Status(500); 8]);
    api.push([text_update(100, "after the outage")]);
    let mock = MockClock::at_unix(1_000_000);
    let mut run = start(config(&api).state_dir(dir.path()).clock(&mock));
    for (i, wait) in [1, 2, 4, 8, 16, 32, 60, 60].into_iter().enumerate() {
        let t0 = mock.now();
        let deadline = mock.advance_to_next_sleeper(LIMIT).await.unwrap();
        assert_eq!(deadline, t0 + secs(wait), "failure {}", i + 1);
        assert_eq!(api.requests().len(), i + 1, "one request per wait");
    }
    let e = run.next_emit(LIMIT).await.unwrap();
    assert_eq!(e.dedupe_key.as_deref(), Some("telegram:100"));
    assert!(api.requests()[..9].iter().all(|r| r.offset == Some(100)));
    wait_offset(dir.path(), 101).await;
    run.wait_log("the 500", LIMIT, |l| l.message.contains("HTTP 500"))
        .await
        .unwrap();
    assert_no_token(&run);
}

#[tokio::test]
async fn a_429_waits_exactly_retry_after() {
    let api = FakeBotApi::start().await;
    api.fail_next([Fault::RetryAfter(7), Fault::RetryAfter(3)]);
    api.push([text_update(40, "late")]);
    let mock = MockClock::at_unix(1_000_000);
    let mut run = start(config(&api).clock(&mock));
    assert_eq!(
        mock.advance_to_next_sleeper(LIMIT).await,
        Some(SystemTime::UNIX_EPOCH + secs(1_000_007))
    );
    assert_eq!(api.requests().len(), 1);
    assert_eq!(
        mock.advance_to_next_sleeper(LIMIT).await,
        Some(SystemTime::UNIX_EPOCH + secs(1_000_010))
    );
    assert_eq!(api.requests().len(), 2);
    assert_eq!(
        run.next_emit(LIMIT).await.unwrap().dedupe_key.as_deref(),
        Some("telegram:40")
    );
    run.wait_log("the 429", LIMIT, |l| {
        l.message.contains("429 Too Many Requests; retrying in 7s")
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_409_conflict_backs_off_logs_and_keeps_the_offset() {
    let api = FakeBotApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("offset"), "50").unwrap();
    api.fail_next([Fault::Conflict, Fault::Conflict]);
    let mock = MockClock::at_unix(1_000_000);
    let run = start(config(&api).state_dir(dir.path()).clock(&mock));
    let t0 = mock.now();
    assert_eq!(
        mock.advance_to_next_sleeper(LIMIT).await,
        Some(t0 + secs(1))
    );
    assert_eq!(
        mock.advance_to_next_sleeper(LIMIT).await,
        Some(t0 + secs(3))
    );
    run.wait_log("the conflict", LIMIT, |l| {
        l.message.contains("409 Conflict") && l.message.contains("another process polls this bot")
    })
    .await
    .unwrap();
    let requests = api
        .wait_requests("a third poll", LIMIT, |r| r.len() >= 3)
        .await;
    assert!(
        requests.iter().all(|r| r.offset == Some(50)),
        "{requests:?}"
    );
    assert_eq!(offset(dir.path()).as_deref(), Some("50"));
}

#[tokio::test]
async fn an_unreachable_api_backs_off_without_logging_the_url() {
    // A port nobody listens on: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mock = MockClock::at_unix(1_000_000);
    let run = start(
        TestConfig::new()
            .config("API_BASE", format!("http://127.0.0.1:{port}"))
            .config("POLL_TIMEOUT", "1")
            .secret("BOT_TOKEN", TOKEN)
            .clock(&mock),
    );
    let t0 = mock.now();
    assert_eq!(
        mock.advance_to_next_sleeper(LIMIT).await,
        Some(t0 + secs(1))
    );
    assert_eq!(mock.next_sleeper(LIMIT).await, Some(t0 + secs(3)));
    run.wait_log("the failure", LIMIT, |l| {
        l.message.contains("request failed")
    })
    .await
    .unwrap();
    assert_no_token(&run);
}

#[tokio::test]
async fn a_wrong_token_exits_78_without_showing_it() {
    let api = FakeBotApi::start().await;
    let run = start(config(&api).secret("BOT_TOKEN", "999:wrong-token"));
    let end = run.wait_finished(LIMIT).await.unwrap();
    assert!(end.is_config_error(), "{end:?}");
    let text = end.result.unwrap().unwrap_err();
    assert!(
        text.contains("HTTP 401") && text.contains("BOT_TOKEN"),
        "{text}"
    );
    assert!(!text.contains("999:wrong-token"));
    assert!(
        run.logs()
            .iter()
            .all(|l| !l.message.contains("999:wrong-token"))
    );
}

#[tokio::test]
async fn a_missing_token_is_a_config_error() {
    let run = start(TestConfig::new());
    let end = run.wait_finished(LIMIT).await.unwrap();
    assert!(end.is_config_error());
    assert_eq!(end.result, Some(Err("secret BOT_TOKEN is not set".into())));
}
