//! `Clock` and `MockClock`: time that a test moves, and sleeps it can see;
//! and the harness handing a run's mock to its `Context`.

use std::time::{Duration, SystemTime};

use connector_sdk::testing::{TestConfig, run_connector};
use connector_sdk::{BoxError, Clock, Context, Event, MockClock};

const LIMIT: Duration = Duration::from_secs(5);

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[tokio::test]
async fn a_mock_sleep_ends_only_when_the_test_moves_the_clock() {
    let mock = MockClock::at_unix(100);
    let clock = mock.clock();
    assert!(clock.is_mock());
    assert_eq!(clock.now(), at(100));
    let sleeper = tokio::spawn({
        let clock = clock.clone();
        async move { clock.sleep_until(at(110)).await }
    });
    assert_eq!(mock.next_sleeper(LIMIT).await, Some(at(110)));
    mock.advance(Duration::from_secs(9));
    assert_eq!(
        mock.sleepers(),
        vec![at(110)],
        "one second short: still asleep"
    );
    assert!(!sleeper.is_finished());
    mock.advance(Duration::from_secs(1));
    tokio::time::timeout(LIMIT, sleeper).await.unwrap().unwrap();
    assert!(mock.sleepers().is_empty());
    assert_eq!(clock.now(), at(110));
}

#[tokio::test]
async fn a_past_deadline_does_not_sleep_and_a_dropped_sleep_is_forgotten() {
    let mock = MockClock::at_unix(100);
    let clock = mock.clock();
    tokio::time::timeout(LIMIT, clock.sleep_until(at(50)))
        .await
        .expect("a past deadline returns at once");
    tokio::time::timeout(LIMIT, clock.sleep(Duration::ZERO))
        .await
        .expect("a zero sleep returns at once");

    let sleeper = tokio::spawn({
        let clock = clock.clone();
        async move { clock.sleep(Duration::from_secs(60)).await }
    });
    assert_eq!(mock.next_sleeper(LIMIT).await, Some(at(160)));
    sleeper.abort();
    let _ = sleeper.await;
    assert!(
        mock.sleepers().is_empty(),
        "an aborted sleep leaves no trace"
    );
    assert_eq!(mock.next_sleeper(Duration::from_millis(20)).await, None);
}

#[tokio::test]
async fn setting_the_clock_backwards_keeps_sleepers_asleep() {
    let mock = MockClock::at_unix(1_000);
    let clock = mock.clock();
    let sleeper = tokio::spawn(async move { clock.sleep_until(at(1_010)).await });
    mock.next_sleeper(LIMIT).await.unwrap();
    mock.set(at(500));
    assert_eq!(mock.now(), at(500));
    assert_eq!(mock.sleepers(), vec![at(1_010)]);
    assert_eq!(mock.advance_to_next_sleeper(LIMIT).await, Some(at(1_010)));
    tokio::time::timeout(LIMIT, sleeper).await.unwrap().unwrap();
}

#[tokio::test]
async fn the_system_clock_reads_and_sleeps_in_real_time() {
    let clock = Clock::system();
    assert!(!clock.is_mock());
    let before = SystemTime::now();
    let now = clock.now();
    assert!(now >= before);
    tokio::time::timeout(LIMIT, clock.sleep_until(now - Duration::from_secs(5)))
        .await
        .expect("a past deadline returns at once");
    let start = std::time::Instant::now();
    tokio::time::timeout(LIMIT, clock.sleep(Duration::from_millis(20)))
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(20));
}

/// Emits `tick` every 10 s of its context's clock, each carrying the clock's time.
async fn ticker(ctx: Context) -> Result<(), BoxError> {
    let clock = ctx.clock();
    ctx.ready().await;
    loop {
        tokio::select! {
            () = clock.sleep(Duration::from_secs(10)) => {}
            () = ctx.shutdown() => return Ok(()),
        }
        let secs = clock
            .now()
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_secs();
        let event = Event {
            name: "tick".into(),
            properties: [("at".to_string(), secs.to_string())].into(),
            ..Event::default()
        };
        ctx.emit(event).await?;
    }
}

#[tokio::test]
async fn a_connector_under_the_harness_reads_the_mock_clock() {
    let mock = MockClock::at_unix(1_000);
    let mut run = run_connector(ticker, TestConfig::new().clock(&mock));
    for expected in [1_010, 1_020, 1_030] {
        assert_eq!(
            mock.advance_to_next_sleeper(LIMIT).await,
            Some(at(expected))
        );
        let emit = run.next_emit(LIMIT).await.unwrap();
        assert_eq!(emit.event.properties["at"], expected.to_string());
    }
    assert!(run.emits().len() == 3, "no tick without the clock moving");
    run.shutdown().await.unwrap();
}

#[tokio::test]
async fn runs_without_a_mock_and_runs_with_another_mock_are_not_affected() {
    let mock_a = MockClock::at_unix(1_000);
    let mock_b = MockClock::at_unix(5_000);
    let mut a = run_connector(ticker, TestConfig::new().clock(&mock_a));
    let mut b = run_connector(ticker, TestConfig::new().clock(&mock_b));
    let real = run_connector(
        async |ctx: Context| {
            ctx.info(format!("mock={}", ctx.clock().is_mock()));
            ctx.shutdown().await;
            Ok(())
        },
        TestConfig::new(),
    );
    mock_b.advance_to_next_sleeper(LIMIT).await.unwrap();
    assert_eq!(
        b.next_emit(LIMIT).await.unwrap().event.properties["at"],
        "5010"
    );
    mock_a.advance_to_next_sleeper(LIMIT).await.unwrap();
    assert_eq!(
        a.next_emit(LIMIT).await.unwrap().event.properties["at"],
        "1010"
    );
    real.wait_log("mock line", LIMIT, |l| l.message == "mock=false")
        .await
        .unwrap();
}

#[tokio::test]
async fn runs_sharing_a_state_dir_each_read_their_own_clock() {
    let dir = tempdir("shared");
    let mock_a = MockClock::at_unix(1_000);
    let mock_b = MockClock::at_unix(7_000);
    let mut a = run_connector(ticker, TestConfig::new().clock(&mock_a).state_dir(&dir));
    let mut b = run_connector(ticker, TestConfig::new().clock(&mock_b).state_dir(&dir));
    let real = run_connector(
        async |ctx: Context| {
            ctx.info(format!("mock={}", ctx.clock().is_mock()));
            ctx.shutdown().await;
            Ok(())
        },
        TestConfig::new().state_dir(&dir),
    );
    mock_a.advance_to_next_sleeper(LIMIT).await.unwrap();
    mock_b.advance_to_next_sleeper(LIMIT).await.unwrap();
    assert_eq!(
        a.next_emit(LIMIT).await.unwrap().event.properties["at"],
        "1010"
    );
    assert_eq!(
        b.next_emit(LIMIT).await.unwrap().event.properties["at"],
        "7010"
    );
    real.wait_log("mock line", LIMIT, |l| l.message == "mock=false")
        .await
        .unwrap();
    drop((a, b, real));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_restarted_run_on_the_same_mock_reads_it() {
    let dir = tempdir("restart");
    let mock = MockClock::at_unix(2_000);
    let first = run_connector(ticker, TestConfig::new().clock(&mock).state_dir(&dir));
    mock.next_sleeper(LIMIT).await.unwrap();
    first.shutdown().await.unwrap();
    drop(first);
    let mut second = run_connector(ticker, TestConfig::new().clock(&mock).state_dir(&dir));
    assert_eq!(mock.advance_to_next_sleeper(LIMIT).await, Some(at(2_010)));
    assert_eq!(
        second.next_emit(LIMIT).await.unwrap().event.properties["at"],
        "2010"
    );
    drop(second);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_testing_paths_are_the_same_types() {
    let mock: connector_sdk::testing::MockClock = MockClock::at_unix(3);
    let clock: connector_sdk::testing::Clock = mock.clock();
    assert_eq!(clock.now(), at(3));
}

/// A new empty directory for one test.
fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("harness-clock-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
