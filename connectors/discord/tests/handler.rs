//! The connector in process against a fake orchestrator and a fake Discord
//! API: signed interactions in, events and interaction responses out, and
//! the operations' requests and failure classes.

mod common;

use std::time::Duration;

use common::{
    APP_ID, BOT_TOKEN, FakeDiscord, INTERACTION_TOKEN, app_key, button_with_image, command, now,
    post, post_signed, public_key_hex, signed,
};
use connector_sdk::ipc_proto::{Audit, FailureClass, Image, Message, NackKind};
use connector_sdk::testing::{AckPolicy, Answer, TestConfig, TestRun, run_connector};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(10);

async fn start(api: &FakeDiscord, bot_token: bool, policy: AckPolicy) -> (TestRun, String) {
    let mut config = TestConfig::new()
        .connector("discord")
        .connection("discord")
        .config("PORT", "0")
        .config("API_BASE", api.url())
        .secret("PUBLIC_KEY", public_key_hex())
        .policy(policy);
    if bot_token {
        config = config.secret("BOT_TOKEN", BOT_TOKEN);
    }
    let run = run_connector(connector_discord::run, config);
    run.wait_ready(LIMIT).await.unwrap();
    let addr = std::fs::read_to_string(run.state_dir().join("address")).unwrap();
    (run, addr)
}

/// POSTs off the runtime's threads (the client is blocking).
async fn send(addr: &str, body: Value) -> (u16, Value) {
    let addr = addr.to_owned();
    tokio::task::spawn_blocking(move || post_signed(&addr, &body))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn interactions_become_events_answered_deferred() {
    let api = FakeDiscord::start().await;
    let (mut run, addr) = start(&api, true, AckPolicy::Ack).await;

    // PING is answered PONG and emits nothing.
    assert_eq!(
        send(
            &addr,
            json!({"id": "1", "type": 1, "application_id": APP_ID, "token": "t", "version": 1})
        )
        .await,
        (200, json!({"type": 1}))
    );

    // A slash command: an event per channel, answered "thinking…".
    let (status, body) = send(&addr, command("1100", "why?")).await;
    assert_eq!((status, body), (200, json!({"type": 5})));
    let emit = run.next_emit(LIMIT).await.unwrap();
    assert_eq!(emit.dedupe_key.as_deref(), Some("1100"));
    let e = &emit.event;
    assert_eq!(e.name, "command");
    assert_eq!(e.instance_key.as_deref(), Some("discord:4400"));
    assert_eq!(e.message, Some(Message::text("/ask question:why?")));
    assert_eq!(e.properties["command"], "ask");
    assert_eq!(e.properties["user"], "5500");
    assert_eq!(e.properties["guild"], "3300");
    let reference = e.properties["interaction"].clone();
    assert!(reference.starts_with("dint_"), "{reference}");
    let shown = serde_json::to_string(&emit).unwrap();
    assert!(
        !shown.contains(INTERACTION_TOKEN),
        "the token is in the event: {shown}"
    );

    // A button: acknowledged without a message; its attachment is an image message.
    assert_eq!(
        send(&addr, button_with_image("1101")).await,
        (200, json!({"type": 6}))
    );
    let e = run.next_emit(LIMIT).await.unwrap().event;
    assert_eq!(e.name, "component");
    assert_eq!(e.instance_key.as_deref(), Some("discord:4401"));
    assert_eq!(
        e.message,
        Some(Message::Image(Image {
            url: "https://cdn.discordapp.com/attachments/1/9900/cat.png".into()
        }))
    );

    // Autocomplete: no suggestions, nothing emitted.
    let auto = json!({"id": "1102", "type": 4, "application_id": APP_ID, "token": "t", "data": {"name": "ask"}});
    assert_eq!(
        send(&addr, auto).await,
        (200, json!({"type": 8, "data": {"choices": []}}))
    );

    // A forged interaction (another key) and a stale one: 401, audited, not emitted.
    let forged = command("1103", "forged").to_string().into_bytes();
    let stranger = SigningKey::from_bytes(&[1; 32]);
    let a = addr.clone();
    let (status, _) =
        tokio::task::spawn_blocking(move || post(&a, &signed(&stranger, now(), &forged), &forged))
            .await
            .unwrap();
    assert_eq!(status, 401);
    let stale = command("1104", "late").to_string().into_bytes();
    let a = addr.clone();
    let (status, _) = tokio::task::spawn_blocking(move || {
        post(&a, &signed(&app_key(), now() - 600, &stale), &stale)
    })
    .await
    .unwrap();
    assert_eq!(status, 401);
    // The audit record goes out before the warning that counts it.
    run.wait_log("the second rejection", LIMIT, |l| {
        l.message.contains("(2 rejected since start)")
    })
    .await
    .unwrap();
    let audits = run.audits();
    let reasons: Vec<_> = audits
        .iter()
        .map(|a| a.reason.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        reasons,
        ["bad_signature", "timestamp_outside_window"],
        "{audits:?}"
    );
    assert!(
        audits
            .iter()
            .all(|a| a.kind == "signature_rejected" && a.scheme.as_deref() == Some("discord"))
    );
    assert_eq!(run.emits().len(), 2, "only the command and the button");

    // followup: to the interaction's webhook, no bot token.
    let r = run
        .call(
            "followup",
            json!({"interaction": reference, "content": "because", "ephemeral": true}),
            LIMIT,
        )
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.provider_status, Some(200));
    let data = r.data.unwrap().0;
    assert_eq!(data["channelId"], "4400");
    assert!(
        data["messageId"].as_str().is_some_and(|m| !m.is_empty()),
        "{data}"
    );
    let seen = api.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].path,
        format!("/webhooks/{APP_ID}/{INTERACTION_TOKEN}")
    );
    assert_eq!(seen[0].authorization, None, "a followup needs no bot token");
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(seen[0].body, json!({"content": "because", "flags": 64}));

    // createMessage: as the bot, into the channel, as a reply.
    let r = run
        .call(
            "createMessage",
            json!({"channelId": "4400", "content": "hello", "replyTo": "7700"}),
            LIMIT,
        )
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    let seen = api.seen();
    assert_eq!(seen[1].path, "/channels/4400/messages");
    assert_eq!(
        seen[1].authorization.as_deref(),
        Some(&*format!("Bot {BOT_TOKEN}"))
    );
    assert_eq!(
        seen[1].body,
        json!({"content": "hello", "message_reference": {"message_id": "7700", "fail_if_not_exists": false}})
    );

    // Neither token is in a log line.
    let logs = format!("{:?}", run.logs());
    assert!(
        !logs.contains(BOT_TOKEN) && !logs.contains(INTERACTION_TOKEN),
        "{logs}"
    );
    run.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn discord_errors_map_to_failure_classes() {
    let api = FakeDiscord::start().await;
    let (run, _addr) = start(&api, true, AckPolicy::Ack).await;
    api.answer(
        "/channels/500/",
        502,
        json!({"message": "Bad Gateway"}),
        None,
    );
    api.answer(
        "/channels/404/",
        404,
        json!({"message": "Unknown Channel", "code": 10003}),
        None,
    );
    api.answer(
        "/channels/429/",
        429,
        json!({"message": "You are being rate limited.", "retry_after": 0.25, "global": false}),
        Some("1"),
    );
    let error = |channel: &str| {
        let run = &run;
        let channel = channel.to_owned();
        async move {
            let r = run
                .call(
                    "createMessage",
                    json!({"channelId": channel, "content": "x"}),
                    LIMIT,
                )
                .await
                .unwrap();
            assert!(!r.ok, "{r:?}");
            r.error.unwrap()
        }
    };
    let e = error("500").await;
    assert_eq!(
        (e.class, e.provider_status),
        (FailureClass::Transient, Some(502))
    );
    let e = error("404").await;
    assert_eq!(
        (e.class, e.provider_status),
        (FailureClass::Permanent, Some(404))
    );
    assert!(
        e.message.contains("Unknown Channel (code 10003)"),
        "{}",
        e.message
    );
    let e = error("429").await;
    assert_eq!(e.class, FailureClass::QuotaExceeded);
    assert_eq!(e.retry_after_ms, Some(250), "from the body's retry_after");
    assert_eq!(e.provider_status, Some(429));

    // A reference never issued: permanent, Discord never asked.
    let before = api.seen().len();
    let r = run
        .call(
            "followup",
            json!({"interaction": "dint_0000", "content": "x"}),
            LIMIT,
        )
        .await
        .unwrap();
    let e = r.error.unwrap();
    assert_eq!(e.class, FailureClass::Permanent);
    assert!(
        e.message.contains("unknown to this connector"),
        "{}",
        e.message
    );
    assert_eq!(api.seen().len(), before);
    run.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_bot_token_create_message_is_permanent_and_followup_works() {
    let api = FakeDiscord::start().await;
    let (mut run, addr) = start(&api, false, AckPolicy::Ack).await;
    let r = run
        .call(
            "createMessage",
            json!({"channelId": "4400", "content": "x"}),
            LIMIT,
        )
        .await
        .unwrap();
    let e = r.error.unwrap();
    assert_eq!(e.class, FailureClass::Permanent);
    assert!(e.message.contains("BOT_TOKEN"), "{}", e.message);
    assert_eq!(send(&addr, command("1200", "q")).await.0, 200);
    let reference = run.next_emit(LIMIT).await.unwrap().event.properties["interaction"].clone();
    let r = run
        .call(
            "followup",
            json!({"interaction": reference, "content": "a"}),
            LIMIT,
        )
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(api.seen().len(), 1);
    run.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_event_is_answered_500_and_audited() {
    let api = FakeDiscord::start().await;
    let policy = AckPolicy::with(|_| {
        Answer::Nack(
            NackKind::ValidationError,
            "property locale is not declared".into(),
        )
    });
    let (run, addr) = start(&api, true, policy).await;
    let (status, body) = send(&addr, command("1300", "q")).await;
    assert_eq!(
        status, 500,
        "never 422, which Discord would not retry: {body}"
    );
    assert_eq!(body["kind"], "validation_error");
    // The audit record goes out before the warning.
    run.wait_log("the orchestrator's reason", LIMIT, |l| {
        l.message.contains("property locale is not declared")
    })
    .await
    .unwrap();
    assert_eq!(
        run.audits(),
        [Audit {
            kind: "delivery_refused".into(),
            scheme: Some("discord".into()),
            reason: Some("validation_error: property locale is not declared".into()),
        }]
    );
    run.shutdown().await.unwrap();
}
