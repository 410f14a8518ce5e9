//! The connector's real HTTP handler, in process, on a clock the test sets,
//! against a fake orchestrator: Slack's own signature vector, the URL check,
//! retries, stale and forged requests, and the orchestrator's refusals.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use common::{Answer, post, slack_headers, slack_vector, testdata};
use connector_sdk::Secrets;
use connector_sdk::ipc_proto::{
    Audit, ConnectorInit, Emit, EmitAck, EmitNack, FromConnector, NackError, NackKind,
    PROTOCOL_VERSION, Shutdown,
};
use connector_sdk::testing::ConnectorPeer;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(10);

struct Running {
    orch: ConnectorPeer,
    addr: String,
    /// Unix seconds the connector's clock reads.
    now: Arc<AtomicU64>,
    task: JoinHandle<std::process::ExitCode>,
    _state: tempfile::TempDir,
}

/// The connector in this process with `secret` and `config`, its clock at `now`.
async fn start(secret: &str, config: &[(&str, &str)], now: u64) -> Running {
    let state = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicU64::new(now));
    let clock_now = now.clone();
    let clock =
        Arc::new(move || UNIX_EPOCH + Duration::from_secs(clock_now.load(Ordering::SeqCst)));
    let (transport, mut orch) = ConnectorPeer::pair().unwrap();
    let task = tokio::spawn(connector_sdk::serve(transport, move |ctx| {
        connector_slack::run_with_clock(ctx, clock)
    }));
    let mut config: BTreeMap<String, String> = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    config.insert("PORT".into(), "0".into());
    orch.send(ConnectorInit {
        protocol: PROTOCOL_VERSION,
        connector: "slack".into(),
        connection: "slack".into(),
        config,
        secrets: Secrets(BTreeMap::from([(
            "SIGNING_SECRET".to_string(),
            secret.to_string(),
        )])),
        state_dir: state.path().to_str().unwrap().into(),
    })
    .await
    .unwrap();
    let ready = loop {
        match orch.recv_within(DEADLINE).await.unwrap() {
            // "no secret BOT_TOKEN: …", before ready.
            Some(FromConnector::Log(_)) => continue,
            other => break other,
        }
    };
    assert!(matches!(ready, Some(FromConnector::Ready(_))), "{ready:?}");
    let addr = std::fs::read_to_string(state.path().join("address")).unwrap();
    Running {
        orch,
        addr,
        now,
        task,
        _state: state,
    }
}

impl Running {
    /// The next message that is not a log line.
    async fn next(&mut self) -> FromConnector {
        loop {
            match self.orch.recv_within(DEADLINE).await.unwrap() {
                Some(FromConnector::Log(_)) => continue,
                Some(msg) => return msg,
                None => panic!("the connector closed the channel"),
            }
        }
    }

    async fn next_emit(&mut self) -> Emit {
        match self.next().await {
            FromConnector::Emit(e) => e,
            other => panic!("expected an emit, got {other:?}"),
        }
    }

    async fn ack(&mut self, seq: u64, duplicate: bool) {
        let ack = EmitAck {
            seq,
            duplicate: Some(duplicate),
        };
        self.orch.send(ack).await.unwrap();
    }

    /// POSTs on a blocking thread, so the test can play the orchestrator meanwhile.
    fn post(&self, headers: Vec<(String, String)>, body: &[u8]) -> JoinHandle<Answer> {
        let (addr, body) = (self.addr.clone(), body.to_vec());
        tokio::task::spawn_blocking(move || post(&addr, &headers, &body))
    }

    /// POSTs a JSON body signed with `secret` at the clock's time.
    fn post_json(&self, secret: &str, body: &[u8]) -> JoinHandle<Answer> {
        let ts = self.now.load(Ordering::SeqCst).to_string();
        self.post(slack_headers(secret, &ts, body, false), body)
    }

    async fn stop(mut self) {
        self.orch.send(Shutdown { grace_ms: 5000 }).await.unwrap();
        let code = tokio::time::timeout(DEADLINE, self.task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(code, std::process::ExitCode::SUCCESS);
    }
}

fn rejected(reason: &str) -> FromConnector {
    FromConnector::Audit(Audit {
        kind: "signature_rejected".into(),
        scheme: Some("slack".into()),
        reason: Some(reason.into()),
    })
}

#[tokio::test]
async fn slacks_signature_vector_is_a_slash_command() {
    let v = slack_vector();
    let secret = v["secret"].as_str().unwrap();
    let ts = v["timestamp"].as_str().unwrap();
    let body = v["payload"].as_str().unwrap().as_bytes();
    let signature = v["expected_signature"].as_str().unwrap();
    let t: u64 = ts.parse().unwrap();
    let mut r = start(secret, &[], t + 10).await;
    let headers = |sig: &str| {
        vec![
            (
                "Content-Type".to_string(),
                "application/x-www-form-urlencoded".to_string(),
            ),
            ("X-Slack-Request-Timestamp".to_string(), ts.to_string()),
            ("X-Slack-Signature".to_string(), sig.to_string()),
        ]
    };
    let as_slack_sent = headers(signature);
    assert_eq!(
        as_slack_sent,
        slack_headers(secret, ts, body, true),
        "our signer agrees"
    );

    let answer = r.post(as_slack_sent.clone(), body);
    let emit = r.next_emit().await;
    assert_eq!(emit.event.name, "slash_command");
    let props: Vec<(&str, &str)> = emit
        .event
        .properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // The command's response_url is kept; the event names it by reference.
    let reference = emit.event.properties["response_ref"].as_str();
    assert!(reference.starts_with("rsp_"), "{reference}");
    assert!(!format!("{:?}", emit.event).contains("hooks.slack.com"));
    assert_eq!(
        props,
        [
            ("channel", "G8PSS9T3V"),
            ("command", "/webhook-collect"),
            ("response_ref", reference),
            ("team", "T1DC2JH3J"),
            ("user", "U2CERLKJA"),
        ]
    );
    assert_eq!(
        emit.event.instance_key.as_deref(),
        Some("slack:T1DC2JH3J:G8PSS9T3V")
    );
    assert_eq!(
        emit.dedupe_key.as_deref(),
        Some("398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"),
        "the trigger_id"
    );
    assert!(!answer.is_finished(), "no answer before the ack");
    r.ack(emit.seq, false).await;
    let a = answer.await.unwrap();
    assert_eq!(
        (a.status, a.body.as_str()),
        (200, ""),
        "an empty 200 for Slack"
    );

    // The vector's negative twin: one character of the signature changed.
    let mut forged = signature.to_string();
    let last = if forged.ends_with('3') { "4" } else { "3" };
    forged.replace_range(forged.len() - 1.., last);
    let answer = r.post(headers(&forged), body);
    assert_eq!(r.next().await, rejected("bad_signature"));
    assert_eq!(answer.await.unwrap().status, 401);

    // The same request six minutes on: a replay.
    r.now.store(t + 301, Ordering::SeqCst);
    let answer = r.post(as_slack_sent, body);
    assert_eq!(r.next().await, rejected("timestamp_outside_window"));
    assert_eq!(answer.await.unwrap().status, 401);
    r.stop().await;
}

#[tokio::test]
async fn url_verification_is_answered_with_its_challenge() {
    let mut r = start("s3cret", &[], 1_700_000_000).await;
    let body = std::fs::read(testdata("url_verification.json")).unwrap();
    let a = r.post_json("s3cret", &body).await.unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json(),
        serde_json::json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    // Unsigned, it is refused like anything else.
    let unsigned = vec![("Content-Type".to_string(), "application/json".to_string())];
    let a = r.post(unsigned, &body).await.unwrap();
    assert_eq!(a.status, 401);
    assert_eq!(
        r.next().await,
        rejected("missing_header"),
        "and nothing was emitted"
    );
    r.stop().await;
}

#[tokio::test]
async fn callbacks_are_keyed_by_event_id_and_retries_carry_the_same_key() {
    let mut r = start("s3cret", &[("MAX_BODY_BYTES", "4096")], 1_700_000_000).await;
    let body = std::fs::read(testdata("events/message.thread_reply.json")).unwrap();
    let answer = r.post_json("s3cret", &body);
    let emit = r.next_emit().await;
    assert_eq!(emit.event.name, "message");
    assert_eq!(
        emit.event.instance_key.as_deref(),
        Some("slack:T123ABC456:C123ABC456:1355517523.000005")
    );
    assert_eq!(
        emit.event.message.as_ref().and_then(|m| m.as_text()),
        Some("Replying in the thread")
    );
    assert_eq!(emit.dedupe_key.as_deref(), Some("Ev123ABC457"));
    r.ack(emit.seq, false).await;
    assert_eq!(answer.await.unwrap().status, 200);

    // Slack retries (it did not hear back in time): same event_id.
    let ts = r.now.load(Ordering::SeqCst).to_string();
    let mut headers = slack_headers("s3cret", &ts, &body, false);
    headers.push(("X-Slack-Retry-Num".into(), "1".into()));
    headers.push(("X-Slack-Retry-Reason".into(), "http_timeout".into()));
    let answer = r.post(headers, &body);
    let emit = r.next_emit().await;
    assert_eq!(emit.dedupe_key.as_deref(), Some("Ev123ABC457"));
    r.ack(emit.seq, true).await;
    assert_eq!(answer.await.unwrap().status, 200);

    // The orchestrator is overloaded: 503 with Retry-After, Slack retries later.
    let answer = r.post_json("s3cret", &body);
    let emit = r.next_emit().await;
    let error = NackError {
        kind: NackKind::Overloaded,
        message: "full".into(),
    };
    r.orch
        .send(EmitNack {
            seq: emit.seq,
            error,
        })
        .await
        .unwrap();
    let a = answer.await.unwrap();
    assert_eq!(a.status, 503);
    assert!(a.head.contains("retry-after: 1"), "{}", a.head);

    // Refused as invalid: 500 so Slack retries (a 4xx would lose it), and audited.
    let answer = r.post_json("s3cret", &body);
    let emit = r.next_emit().await;
    let error = NackError {
        kind: NackKind::ValidationError,
        message: "event message: required property user is missing".into(),
    };
    r.orch
        .send(EmitNack {
            seq: emit.seq,
            error,
        })
        .await
        .unwrap();
    let a = answer.await.unwrap();
    assert_eq!(a.status, 500, "{}", a.body);
    assert!(a.body.contains("validation_error"), "{}", a.body);
    let audit = loop {
        match r.next().await {
            FromConnector::Audit(a) => break a,
            _ => continue,
        }
    };
    assert_eq!(audit.kind, "delivery_refused");
    assert_eq!(audit.scheme.as_deref(), Some("slack"));
    assert_eq!(audit.reason.as_deref(), Some("validation_error: message"));

    // Signed but malformed, or too large.
    assert_eq!(
        r.post_json("s3cret", b"{not json").await.unwrap().status,
        400
    );
    let a = r
        .post_json("s3cret", br#"{"type":"event_callback","event":{}}"#)
        .await
        .unwrap();
    assert_eq!(a.status, 400, "{}", a.body);
    let big = format!(
        r#"{{"type":"event_callback","pad":"{}"}}"#,
        "x".repeat(5000)
    );
    assert_eq!(
        r.post_json("s3cret", big.as_bytes()).await.unwrap().status,
        413
    );
    // A slash command form without its fields.
    let ts = r.now.load(Ordering::SeqCst).to_string();
    let form = b"command=%2Fdeploy";
    let a = r
        .post(slack_headers("s3cret", &ts, form, true), form)
        .await
        .unwrap();
    assert_eq!(a.status, 400, "{}", a.body);
    r.stop().await;
}
