//! The real `connector-webhook` binary against a fake orchestrator: the
//! mapping, the answers, and the configurations it refuses.

mod common;

use common::{expect_config_error, http, start};
use connector_sdk::ipc_proto::{EmitAck, EmitNack, FromConnector, NackError, NackKind};

/// A configuration case: config pairs, the secret, and what the error must say.
type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);

#[tokio::test]
async fn posts_become_events_answered_after_the_ack() {
    let mut w = start(
        &[
            ("SIGNATURE", "none"),
            ("EVENT_HEADER", "X-Event"),
            ("TEXT_POINTER", "/text"),
            ("INSTANCE_KEY_POINTER", "/chat"),
            ("PROPERTIES", "chat=/chat,urgent=/urgent"),
            ("DEDUPE_HEADER", "X-Delivery"),
            ("MAX_BODY_BYTES", "200"),
        ],
        None,
    )
    .await;
    let addr = w.addr;

    let body = br#"{"text":"hi","chat":42,"urgent":true}"#;
    let post = tokio::spawn(async move {
        http(
            addr,
            "POST",
            "/hooks/a",
            &[("X-Event", "chat"), ("X-Delivery", "d-1")],
            body,
        )
        .await
    });
    let emit = w.next_emit().await;
    assert_eq!(emit.event.name, "chat");
    assert_eq!(emit.event.instance_key.as_deref(), Some("42"));
    assert_eq!(
        emit.event.message.as_ref().and_then(|m| m.as_text()),
        Some("hi")
    );
    assert_eq!(
        emit.event.properties.get("urgent").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        emit.event.properties.get("chat").map(String::as_str),
        Some("42")
    );
    assert_eq!(emit.dedupe_key.as_deref(), Some("d-1"));
    assert!(!post.is_finished(), "no answer before the ack");
    w.orch
        .send(EmitAck {
            seq: emit.seq,
            duplicate: Some(true),
        })
        .await
        .unwrap();
    let answer = post.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json(),
        serde_json::json!({"accepted": true, "duplicate": true})
    );

    // Refusals by the orchestrator.
    for (kind, status, retry_after) in [
        (NackKind::Overloaded, 503, true),
        (NackKind::QuotaExceeded, 429, true),
        (NackKind::ValidationError, 500, false),
        (NackKind::Permanent, 502, false),
    ] {
        let post = tokio::spawn(async move { http(addr, "POST", "/", &[], b"{}").await });
        let emit = w.next_emit().await;
        assert_eq!(emit.event.name, "webhook");
        assert_eq!(emit.event.instance_key.as_deref(), Some("webhook:/"));
        let error = NackError {
            kind,
            message: "no thanks".into(),
        };
        w.orch
            .send(EmitNack {
                seq: emit.seq,
                error,
            })
            .await
            .unwrap();
        let answer = post.await.unwrap();
        assert_eq!(answer.status, status, "{kind:?}: {}", answer.body);
        assert_eq!(
            answer.head.contains("retry-after: 1"),
            retry_after,
            "{kind:?}: {}",
            answer.head
        );
        assert_eq!(answer.json()["error"], "no thanks");
        if kind == NackKind::ValidationError {
            // Never a silent refusal: an audit record says what was lost.
            match w.next().await {
                FromConnector::Audit(a) => {
                    assert_eq!(a.kind, "delivery_refused");
                    assert_eq!(a.scheme.as_deref(), Some("none"));
                    assert_eq!(a.reason.as_deref(), Some("validation_error: no thanks"));
                }
                other => panic!("expected an audit record, got {other:?}"),
            }
        }
    }

    // Refusals before any emit.
    let answer = http(addr, "POST", "/", &[], b"{not json").await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let answer = http(addr, "POST", "/", &[], &[b' '; 300]).await;
    assert_eq!(answer.status, 413);
    let answer = http(addr, "GET", "/hooks/a", &[], b"").await;
    assert_eq!(answer.status, 405);
    let answer = http(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(answer.status, 200);

    w.stop().await;
}

#[tokio::test]
async fn a_bad_configuration_exits_78_and_fails_closed() {
    let discord = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let cases: &[Case] = &[
        (&[], None, "SIGNATURE is required"),
        (
            &[("SIGNATURE", "hmac")],
            Some("s3cret"),
            "SIGNATURE: unknown signature scheme 'hmac'",
        ),
        (
            &[("SIGNATURE", "github")],
            None,
            "the github scheme needs the secret WEBHOOK_SECRET",
        ),
        (
            &[("SIGNATURE", "stripe")],
            Some(""),
            "the stripe scheme needs the secret",
        ),
        (
            &[("SIGNATURE", "discord")],
            Some("0123456789abcdef"),
            "cannot be used by the discord scheme",
        ),
        (
            &[("SIGNATURE", "standard-webhooks")],
            Some("whsec_%%%%"),
            "cannot be used",
        ),
        (
            &[("SIGNATURE", "slack"), ("REPLAY_WINDOW", "soon")],
            Some("s3cret"),
            "REPLAY_WINDOW: 'soon'",
        ),
        (
            &[("SIGNATURE", "hmac-sha256"), ("SIGNATURE_ENCODING", "b64")],
            Some("s3cret"),
            "SIGNATURE_ENCODING: unknown hmac encoding 'b64'",
        ),
    ];
    for (config, secret, want) in cases {
        expect_config_error(config, *secret, want).await;
    }
    // A good Discord key is accepted; the check above was about the key.
    let w = start(&[("SIGNATURE", "discord")], Some(discord)).await;
    w.stop().await;
}
