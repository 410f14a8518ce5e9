//! The operations end to end: the real orchestrator, connector-slack
//! against a fake Slack, and the example agent `slack_bot.py` (jsonl)
//! answering a mention with `chat.postMessage`, a slash command and a
//! button with `respond` (through the response_ref the event carries, never
//! the URL), and a shared file with `getFile`. The fake checks the path, the
//! bearer token and the JSON body; its failures become the documented
//! classes; the bot token and the response_urls are in no event, log line,
//! audit record or status; an event the orchestrator refuses as invalid is
//! answered 500 (Slack retries) and audited.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::fake_api::{BOT_TOKEN, FakeSlack, Fault};
use common::{Answer, crate_dir, post, slack_headers, testdata};
use e2e::{DEADLINE, Harness};
use serde_json::{Value, json};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn bundle(api_base: &str, extra_config: &str) -> String {
    let connector = std::fs::read_to_string(crate_dir().join("connector.yaml")).unwrap();
    format!(
        r#"{connector}---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: slack }}
spec:
  connectorRef: Connector/slack
  config: {{ PORT: "0", API_BASE: "{api_base}"{extra_config} }}
  secrets:
    SIGNING_SECRET: {{ value: "{SECRET}" }}
    BOT_TOKEN: {{ value: "{BOT_TOKEN}" }}
  operations:
    allow: [chat.postMessage, chat.update, reactions.add, respond, getFile]
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: slack }}
spec: {{ entryAgent: Agent/bot, agents: [Agent/bot] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: bot }}
spec:
  entry: ./slack_bot.py
  protocol: jsonl
  invoke:
    - connection: slack
      operations: [chat.postMessage, respond, getFile]
"#
    )
}

struct Running {
    h: Harness,
    addr: String,
}

fn start(api: &FakeSlack, extra_config: &str) -> Running {
    let mut h = Harness::new();
    h.copy_example("agents/slack_bot.py");
    h.start(&bundle(&api.api_base(), extra_config));
    let file = h.state().join("state/connections/slack/address");
    h.wait_until("the slack connector to write its address", DEADLINE, || {
        std::fs::read_to_string(&file).is_ok_and(|a| !a.trim().is_empty())
    });
    let addr = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    Running { h, addr }
}

impl Running {
    fn send(&self, body: &[u8], form: bool) -> Answer {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        post(&self.addr, &slack_headers(SECRET, &now, body, form), body)
    }

    fn invoke(&self, op: &str, input: Value) -> Value {
        let out = self.h.cli(&[
            "invoke",
            "slack",
            op,
            "--input",
            &input.to_string(),
            "--json",
        ]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    }

    /// The events `slack_bot.py` logged for instance `key`.
    fn events(&self, key: &str) -> Vec<Value> {
        self.h
            .agent_log("bot", key)
            .lines()
            .filter_map(|l| l.split_once(" event ").map(|(_, e)| e))
            .filter_map(|e| serde_json::from_str(e).ok())
            .collect()
    }

    /// No log, state file or status holds any of `secrets`.
    fn assert_nowhere(&self, secrets: &[&str]) {
        let mut texts: Vec<(String, Vec<u8>)> = self
            .h
            .all_logs()
            .into_iter()
            .map(|(p, t)| (p.display().to_string(), t.into_bytes()))
            .collect();
        let mut dirs = vec![self.h.state()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.file_name().is_some_and(|n| n != "response_urls.json") {
                    // response_urls.json is where the URLs are kept, by design.
                    texts.push((
                        path.display().to_string(),
                        std::fs::read(&path).unwrap_or_default(),
                    ));
                }
            }
        }
        for args in [
            &["status", "--json"][..],
            &["status", "connection/slack"][..],
        ] {
            texts.push((format!("{args:?}"), self.h.cli(args).stdout));
        }
        for (place, bytes) in texts {
            for s in secrets {
                let found = bytes.windows(s.len()).any(|w| w == s.as_bytes());
                assert!(!found, "{s} is in {place}");
            }
        }
    }
}

#[test]
fn the_agent_answers_a_mention_a_slash_command_and_a_button() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(FakeSlack::start());
    let mut r = start(&api, "");

    // A mention: chat.postMessage in its thread, with the bot token.
    let body = std::fs::read(testdata("events/app_mention.json")).unwrap();
    assert_eq!(r.send(&body, false).status, 200);
    r.h.wait_until("the reply", DEADLINE, || {
        !api.seen_of("chat.postMessage").is_empty()
    });
    let call = &api.seen_of("chat.postMessage")[0];
    assert_eq!(
        call.authorization.as_deref(),
        Some(format!("Bearer {BOT_TOKEN}").as_str())
    );
    assert!(
        call.content_type.starts_with("application/json"),
        "{call:?}"
    );
    assert_eq!(
        call.body,
        json!({"channel": "C0LAN2Q65", "thread_ts": "1515449522.000016",
               "text": "echo: <@U0LAN0Z89> is it everything a river should be?"})
    );

    // A slash command: respond through its response_ref.
    let command_url = api.response_url("cmd1");
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("token", "gIkuvaNzQIHg97ATvDxqgjtO"),
            ("team_id", "T0001"),
            ("channel_id", "C2147483705"),
            ("user_id", "U2147483697"),
            ("command", "/weather"),
            ("text", "94070"),
            ("response_url", command_url.as_str()),
            ("trigger_id", "13345224609.738474920.8088930838d88f008e0"),
        ])
        .finish();
    let a = r.send(form.as_bytes(), true);
    assert_eq!(a.status, 200, "{}", a.body);
    r.h.wait_until("the response", DEADLINE, || {
        !api.seen_of("response cmd1").is_empty()
    });
    let resp = &api.seen_of("response cmd1")[0];
    assert_eq!(
        resp.body,
        json!({"text": "echo: 94070", "response_type": "ephemeral"})
    );
    assert_eq!(resp.authorization, None, "a response_url takes no token");
    r.h.wait_until("the command's event in the agent's log", DEADLINE, || {
        !r.events("slack:T0001:C2147483705").is_empty()
    });
    let events = r.events("slack:T0001:C2147483705");
    let reference = events[0]["properties"]["response_ref"]
        .as_str()
        .expect("a response_ref");
    assert!(reference.starts_with("rsp_"), "{reference}");

    // A button (form-encoded payload=): an event, answered through its response_ref.
    let button_url = api.response_url("act1");
    let payload = json!({
        "type": "block_actions", "trigger_id": "12466734323.1395872398",
        "team": {"id": "T0001", "domain": "example"},
        "user": {"id": "U2147483697", "team_id": "T0001"},
        "container": {"type": "message", "message_ts": "1548261231.000200", "channel_id": "C2147483705"},
        "channel": {"id": "C2147483705", "name": "general"},
        "message": {"ts": "1548261231.000200", "text": "deploy?"},
        "response_url": button_url,
        "actions": [{"action_id": "deploy", "block_id": "b1", "type": "button", "value": "yes",
                     "action_ts": "1548426417.840180"}]
    });
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish();
    let a = r.send(form.as_bytes(), true);
    assert_eq!(
        a.status, 200,
        "an interaction is an event, not a 400: {}",
        a.body
    );
    r.h.wait_until("the button's response", DEADLINE, || {
        !api.seen_of("response act1").is_empty()
    });
    assert_eq!(
        api.seen_of("response act1")[0].body,
        json!({"text": "you chose yes", "replace_original": true})
    );
    // The agent's log has its own writer: wait for the line.
    r.h.wait_until("the button's event in the agent's log", DEADLINE, || {
        r.events("slack:T0001:C2147483705")
            .iter()
            .any(|e| e["name"] == "block_actions")
    });
    let events = r.events("slack:T0001:C2147483705");
    let button = events
        .iter()
        .find(|e| e["name"] == "block_actions")
        .expect("the event");
    assert_eq!(button["properties"]["action_id"], "deploy");
    assert_eq!(button["properties"]["value"], "yes");
    // event.payload: the interaction whole, but for its response_url.
    assert_eq!(
        button["payload"]["actions"][0]["action_id"], "deploy",
        "{button}"
    );
    assert!(button["payload"].get("response_url").is_none(), "{button}");
    r.h.wait_until("the mention in the agent's log", DEADLINE, || {
        !r.events("slack:T061EG9R6:C0LAN2Q65").is_empty()
    });
    let mention = &r.events("slack:T061EG9R6:C0LAN2Q65")[0];
    assert_eq!(mention["payload"]["event_id"], "Ev0LAN670R", "{mention}");
    assert!(
        mention["payload"].get("token").is_none(),
        "the legacy verification token is withheld: {mention}"
    );

    // A reference that was never issued: permanent, nothing posted.
    let r2 = r.invoke(
        "respond",
        json!({"responseRef": format!("rsp_{}", "0".repeat(32)), "text": "x"}),
    );
    assert_eq!(r2["error"]["class"], "permanent", "{r2}");

    // Slack's failures, each its class.
    let send = json!({"channel": "C1", "text": "hi", "threadTs": "1.0"});
    api.fail_next([Fault::Error("channel_not_found")]);
    let x = r.invoke("chat.postMessage", send.clone());
    assert_eq!(x["error"]["class"], "permanent", "{x}");
    assert!(
        x["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("channel_not_found")),
        "{x}"
    );
    api.fail_next([Fault::Status(503)]);
    let x = r.invoke("chat.postMessage", send.clone());
    assert_eq!(x["error"]["class"], "transient", "{x}");
    assert_eq!(x["error"]["providerStatus"], 503, "{x}");
    let x = r.invoke(
        "reactions.add",
        json!({"channel": "C1", "ts": "1.0", "name": "eyes"}),
    );
    assert_eq!(x["ok"], true, "{x}");
    assert_eq!(
        api.seen_of("reactions.add")[0].body,
        json!({"channel": "C1", "timestamp": "1.0", "name": "eyes"})
    );
    let x = r.invoke(
        "chat.update",
        json!({"channel": "C1", "ts": "1.0", "text": "edited"}),
    );
    assert_eq!(
        x["response"]["data"],
        json!({"channel": "C1", "ts": "1.0"}),
        "{x}"
    );
    // Last: a 429 holds the Connection's calls for Retry-After.
    api.fail_next([Fault::RetryAfter(60)]);
    let x = r.invoke("chat.postMessage", send.clone());
    assert_eq!(x["error"]["class"], "quota_exceeded", "{x}");
    assert_eq!(x["error"]["retryAfterMs"], 60000, "{x}");
    assert_eq!(x["error"]["providerStatus"], 429, "{x}");
    let seen = api.seen().len();
    let held = r.invoke("chat.postMessage", send);
    assert_eq!(held["error"]["class"], "quota_exceeded", "{held}");
    assert_eq!(api.seen().len(), seen, "held: Slack was not called");

    r.assert_nowhere(&[BOT_TOKEN, &command_url, &button_url]);
    assert!(r.h.stop().success(), "{}", r.h.dump());
}

#[test]
fn a_file_round_trips_and_an_invalid_event_is_retried_not_lost() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(FakeSlack::start());
    api.add_file("F0ABC123", "plan.pdf", "application/pdf", vec![b'%'; 1500]);
    api.add_file("F0BIG", "video.mp4", "video/mp4", vec![0; 5000]);
    let mut r = start(&api, ", MAX_FILE_BYTES: \"4000\"");

    let body = json!({
        "token": "x", "team_id": "T1", "type": "event_callback", "event_id": "Ev0FILE",
        "event": {"type": "message", "subtype": "file_share", "channel": "C1", "user": "U1",
                  "text": "the plan", "ts": "1700000001.000200",
                  "files": [{"id": "F0ABC123", "name": "plan.pdf", "mimetype": "application/pdf",
                             "url_private": "https://files.slack.com/files-pri/T1-F0ABC123/plan.pdf"}]}
    });
    assert_eq!(r.send(body.to_string().as_bytes(), false).status, 200);
    r.h.wait_until("the reply about the file", DEADLINE, || {
        !api.seen_of("chat.postMessage").is_empty()
    });
    let info = &api.seen_of("files.info")[0];
    assert_eq!(info.body, json!({"file": "F0ABC123"}));
    assert_eq!(
        info.authorization.as_deref(),
        Some(format!("Bearer {BOT_TOKEN}").as_str())
    );
    let download = &api.seen_of("download F0ABC123")[0];
    assert_eq!(
        download.authorization.as_deref(),
        Some(format!("Bearer {BOT_TOKEN}").as_str())
    );
    assert_eq!(
        api.seen_of("chat.postMessage")[0].body,
        json!({"channel": "C1", "thread_ts": "1700000001.000200", "text": "got plan.pdf: 1500 bytes"})
    );
    r.h.wait_until("the event in the agent's log", DEADLINE, || {
        !r.events("slack:T1:C1").is_empty()
    });
    let events = r.events("slack:T1:C1");
    assert_eq!(
        events[0]["message"],
        json!({"type": "file", "url": "slack-file:F0ABC123", "name": "plan.pdf"})
    );
    assert_eq!(events[0]["properties"]["text"], "the plan");
    let x = r.invoke("getFile", json!({"fileId": "F0BIG"}));
    assert_eq!(x["error"]["class"], "permanent", "{x}");
    assert!(
        x["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("over MAX_FILE_BYTES (4000 bytes)")),
        "{x}"
    );
    assert!(api.seen_of("download F0BIG").is_empty());

    // member_joined_channel is declared with a user; one without is refused
    // as invalid: 500, so Slack retries, and an audit record — not a silent 4xx.
    let body = json!({"team_id": "T1", "type": "event_callback", "event_id": "Ev0BAD",
                      "event": {"type": "member_joined_channel", "channel": "C1"}});
    let a = r.send(body.to_string().as_bytes(), false);
    assert_eq!(a.status, 500, "{}", a.body);
    let audit = r.h.state().join("audit.log");
    r.h.wait_until("the audit record", DEADLINE, || {
        std::fs::read_to_string(&audit).is_ok_and(|t| t.contains("delivery_refused"))
    });
    let record: Value = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["kind"] == "delivery_refused")
        .unwrap();
    assert_eq!(record["connection"], "slack");
    assert_eq!(record["reason"], "validation_error: member_joined_channel");

    r.assert_nowhere(&[BOT_TOKEN]);
    assert!(r.h.stop().success(), "{}", r.h.dump());
}

/// The example bundle (its Connector this crate's connector.yaml plus an egress sandbox) is valid.
#[test]
fn the_example_bundle_is_valid() {
    let h = Harness::new();
    let dir = e2e::examples_dir().join("slack-bot");
    let out = h.validate(dir.to_str().unwrap());
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("valid (1 connectors"),
        "{out:?}"
    );
}
