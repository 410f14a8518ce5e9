//! `testing::run_connector`: a connector function against the in-process fake orchestrator.

use std::process::ExitCode;
use std::time::Duration;

use connector_sdk::testing::{AckPolicy, Answer, HarnessError, TestConfig, run_connector};
use connector_sdk::{Audit, BoxError, ConfigError, Context, EmitError, Event, Message, NackKind};

const LIMIT: Duration = Duration::from_secs(5);

fn event(text: &str) -> Event {
    Event {
        name: "user_message".into(),
        message: Some(Message::text(text)),
        ..Event::default()
    }
}

/// Emits `n` events one after another, logs each answer, then waits for shutdown.
async fn emit_n(ctx: Context, n: usize, key: Option<&'static str>) -> Result<(), BoxError> {
    {
        for i in 0..n {
            let e = event(&format!("event {i}"));
            let answer = match key {
                Some(k) => ctx.emitter().emit_with_key(e, k).await,
                None => ctx.emit(e).await,
            };
            match answer {
                Ok(a) => ctx.info(format!("event {i} accepted duplicate={}", a.duplicate)),
                Err(EmitError::Nacked { kind, .. }) => {
                    ctx.warn(format!("event {i} nacked {}", kind.as_str()))
                }
                Err(e) => ctx.error(format!("event {i} failed: {e}")),
            }
        }
        ctx.info("done");
        ctx.shutdown().await;
        Ok(())
    }
}

fn has(run_logs: &[connector_sdk::ipc_proto::Log], text: &str) -> bool {
    run_logs.iter().any(|l| l.message == text)
}

#[tokio::test]
async fn emits_are_collected_in_order_and_acked() {
    let mut run = run_connector(move |ctx| emit_n(ctx, 3, None), TestConfig::new());
    run.wait_ready(LIMIT).await.unwrap();
    for i in 0..3 {
        let emit = run.next_emit(LIMIT).await.unwrap();
        assert_eq!(emit.seq, i + 1);
        assert_eq!(
            emit.event.message.as_ref().and_then(|m| m.as_text()),
            Some(format!("event {i}").as_str())
        );
        assert_eq!(run.answer_of(emit.seq), Some(Answer::Ack));
    }
    run.wait_log("done", LIMIT, |l| l.message == "done")
        .await
        .unwrap();
    assert!(has(&run.logs(), "event 2 accepted duplicate=false"));
    assert_eq!(run.emits().len(), 3);
    let end = run.shutdown().await.unwrap();
    assert_eq!(end.exit_code, ExitCode::SUCCESS);
    assert_eq!(end.result, Some(Ok(())));
}

#[tokio::test(flavor = "current_thread")]
async fn a_repeated_dedupe_key_is_acked_as_a_duplicate() {
    let run = run_connector(move |ctx| emit_n(ctx, 2, Some("src:1")), TestConfig::new());
    run.wait_log("done", LIMIT, |l| l.message == "done")
        .await
        .unwrap();
    let logs = run.logs();
    assert!(has(&logs, "event 0 accepted duplicate=false"), "{logs:?}");
    assert!(has(&logs, "event 1 accepted duplicate=true"), "{logs:?}");
    assert_eq!(run.answer_of(2), Some(Answer::Duplicate));
    assert_eq!(run.emits()[1].dedupe_key.as_deref(), Some("src:1"));
}

#[tokio::test]
async fn held_emits_wait_for_the_test_to_answer() {
    let mut run = run_connector(
        move |ctx| emit_n(ctx, 2, None),
        TestConfig::new().policy(AckPolicy::Hold),
    );
    let first = run.next_emit(LIMIT).await.unwrap();
    assert_eq!(run.held(), vec![first.seq]);
    assert!(!has(&run.logs(), "event 0 accepted duplicate=false"));
    run.nack(first.seq, NackKind::Overloaded, "busy");
    run.wait_log("nack seen", LIMIT, |l| {
        l.message == "event 0 nacked overloaded"
    })
    .await
    .unwrap();
    // The connector emits the second one only after the first answer.
    let second = run.next_emit(LIMIT).await.unwrap();
    run.set_policy(AckPolicy::Ack);
    assert_eq!(run.held(), vec![second.seq], "held emits stay held");
    run.ack(second.seq);
    run.wait_log("done", LIMIT, |l| l.message == "done")
        .await
        .unwrap();
    assert!(run.held().is_empty());
    assert_eq!(
        run.answer_of(first.seq),
        Some(Answer::Nack(NackKind::Overloaded, "busy".into()))
    );
}

#[tokio::test]
async fn nack_and_function_policies() {
    let run = run_connector(
        move |ctx| emit_n(ctx, 2, None),
        TestConfig::new().policy(AckPolicy::Nack(NackKind::Transient)),
    );
    run.wait_log("done", LIMIT, |l| l.message == "done")
        .await
        .unwrap();
    assert!(has(&run.logs(), "event 1 nacked transient"));

    let policy = AckPolicy::with(|emit| {
        if emit.seq % 2 == 0 {
            Answer::Nack(NackKind::ValidationError, "even".into())
        } else {
            Answer::Ack
        }
    });
    let run = run_connector(
        move |ctx| emit_n(ctx, 2, None),
        TestConfig::new().policy(policy),
    );
    run.wait_log("done", LIMIT, |l| l.message == "done")
        .await
        .unwrap();
    let logs = run.logs();
    assert!(has(&logs, "event 0 accepted duplicate=false"), "{logs:?}");
    assert!(has(&logs, "event 1 nacked validation_error"), "{logs:?}");
}

#[tokio::test]
async fn init_carries_the_test_config_and_the_state_dir_is_a_fresh_temp_dir() {
    let cfg = TestConfig::new()
        .connector("tg")
        .connection("tg-prod")
        .config("PORT", "3000")
        .secret("TOKEN", "hunter2");
    let run = run_connector(
        async |ctx: Context| {
            ctx.info(format!(
                "{} {} {:?} {:?} dir_exists={} mock={}",
                ctx.connector(),
                ctx.connection(),
                ctx.config_value("PORT"),
                ctx.secrets().get("TOKEN"),
                ctx.state_dir().is_dir(),
                ctx.clock().is_mock(),
            ));
            ctx.audit(Audit {
                kind: "signature_rejected".into(),
                scheme: Some("github".into()),
                reason: Some("bad_signature".into()),
            });
            ctx.shutdown().await;
            Ok(())
        },
        cfg,
    );
    let line = run
        .wait_log("the init line", LIMIT, |l| l.message.starts_with("tg "))
        .await
        .unwrap();
    assert_eq!(
        line.message,
        r#"tg tg-prod Some("3000") Some("hunter2") dir_exists=true mock=false"#
    );
    connector_sdk::testing::wait_until("the audit record", LIMIT, || !run.audits().is_empty())
        .await
        .unwrap();
    assert_eq!(run.audits()[0].reason.as_deref(), Some("bad_signature"));
    let dir = run.state_dir().to_path_buf();
    drop(run);
    assert!(!dir.exists(), "the harness's own state dir is removed");
}

#[tokio::test]
async fn a_given_state_dir_is_used_and_kept() {
    let dir = std::env::temp_dir().join(format!("harness-kept-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = run_connector(
        async |ctx: Context| {
            std::fs::write(ctx.state_dir().join("cursor"), "7")?;
            ctx.info("written");
            Ok(())
        },
        TestConfig::new().state_dir(&dir),
    );
    let end = run.wait_finished(LIMIT).await.unwrap();
    assert_eq!(end.result, Some(Ok(())));
    assert_eq!(run.state_dir(), dir.as_path());
    drop(run);
    assert_eq!(std::fs::read_to_string(dir.join("cursor")).unwrap(), "7");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_config_error_ends_the_run_with_78() {
    let mut run = run_connector(
        async |_ctx: Context| Err(ConfigError::new("PORT is not a number").into()),
        TestConfig::new(),
    );
    let end = run.wait_finished(LIMIT).await.unwrap();
    assert!(end.is_config_error());
    assert_eq!(end.exit_code, ExitCode::from(78));
    assert_eq!(end.result, Some(Err("PORT is not a number".into())));
    // Waiting for something that can no longer happen fails at once, not at the limit.
    let started = std::time::Instant::now();
    let err = run.next_emit(Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(err, HarnessError::Ended { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_connector_that_ignores_shutdown_is_abandoned_after_the_grace() {
    let mut cfg = TestConfig::new();
    cfg.grace = Duration::from_millis(100);
    let run = run_connector(
        async |ctx: Context| {
            ctx.ready().await;
            std::future::pending::<()>().await;
            Ok(())
        },
        cfg,
    );
    run.wait_ready(LIMIT).await.unwrap();
    let end = run.shutdown().await.unwrap();
    assert_eq!(end.exit_code, ExitCode::SUCCESS);
    assert_eq!(end.result, None);
}

#[tokio::test]
async fn a_timeout_names_what_was_awaited_and_shows_the_logs() {
    let mut run = run_connector(
        async |ctx: Context| {
            ctx.info("nothing to emit");
            ctx.shutdown().await;
            Ok(())
        },
        TestConfig::new(),
    );
    run.wait_log("hello", LIMIT, |l| l.message == "nothing to emit")
        .await
        .unwrap();
    let err = run.next_emit(Duration::from_millis(50)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("emit #1"), "{text}");
    assert!(text.contains("[info] nothing to emit"), "{text}");
}
