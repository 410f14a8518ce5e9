//! The operations end to end: the real orchestrator, connector-telegram
//! against a fake Bot API, and the example agent `telegram_bot.py` (jsonl)
//! answering through `sendMessage` and `getFile`. The fake checks the path
//! (with the token), the JSON body and its fields as the Bot API documents
//! them; its 429/5xx/4xx become the documented failure classes; the token is
//! in no event, log line, audit record or status.

mod common;

use common::{FakeBotApi, Fault, TOKEN, testdata, text_update};
use e2e::{DEADLINE, Harness};
use serde_json::{Value, json};

fn bundle(base: &str, extra_config: &str) -> String {
    format!(
        r#"{connector}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: tg }}
spec:
  connectorRef: Connector/telegram
  config:
    API_BASE: "{base}"
    POLL_TIMEOUT: "1"
{extra_config}
  secrets:
    BOT_TOKEN: {{ value: "{TOKEN}" }}
  operations:
    allow: [sendMessage, editMessageText, answerCallbackQuery, sendChatAction, getFile]
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/bot, agents: [Agent/bot] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: bot }}
spec:
  entry: ./telegram_bot.py
  protocol: jsonl
  invoke:
    - connection: tg
      operations: [sendMessage, getFile, answerCallbackQuery]
"#,
        connector = include_str!("../connector.yaml"),
    )
}

fn start(h: &mut Harness, api: &FakeBotApi, extra_config: &str) {
    h.copy_example("agents/telegram_bot.py");
    h.start(&bundle(&api.url(), extra_config));
    h.wait_process("ready", "connection/tg", DEADLINE, |p| {
        e2e::state_of(p) == "ready"
    });
}

/// `orchestrator invoke tg OP --input INPUT --json`, parsed.
fn invoke(h: &Harness, op: &str, input: Value) -> Value {
    let out = h.cli(&["invoke", "tg", op, "--input", &input.to_string(), "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// Nowhere the orchestrator writes — logs, audit, journal, status — holds the token.
fn assert_no_token(h: &Harness) {
    for (path, text) in h.all_logs() {
        assert!(!text.contains(TOKEN), "the token is in {}", path.display());
    }
    let mut dirs = vec![h.state()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                let found = bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes());
                assert!(!found, "the token is in {}", path.display());
            }
        }
    }
    let status = h.cli(&["status", "--json"]);
    assert!(!String::from_utf8_lossy(&status.stdout).contains(TOKEN));
    let detail = h.cli(&["status", "connection/tg"]);
    assert!(!String::from_utf8_lossy(&detail.stdout).contains(TOKEN));
}

#[test]
fn the_agent_answers_a_message_through_send_message_and_failures_are_classified() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(FakeBotApi::start());
    let mut h = Harness::new();
    start(&mut h, &api, "");
    api.push([text_update(500, "hello there")]);

    h.wait_until("the reply", DEADLINE, || {
        !api.calls_of("sendMessage").is_empty()
    });
    let call = &api.calls_of("sendMessage")[0];
    assert!(call.token_ok, "the path is /bot<token>/sendMessage");
    assert!(
        call.content_type.starts_with("application/json"),
        "{call:?}"
    );
    assert_eq!(
        call.body,
        json!({"chat_id": 218485655, "text": "echo: hello there",
               "reply_parameters": {"message_id": 6557}}),
        "the documented request"
    );
    h.wait_until("the agent's result", DEADLINE, || {
        h.agent_log("bot", "telegram:218485655")
            .contains(" result ")
    });
    let log = h.agent_log("bot", "telegram:218485655");
    let result: Value = log
        .lines()
        .find_map(|l| l.split_once(" result ").map(|(_, r)| r))
        .and_then(|r| serde_json::from_str(r).ok())
        .expect("a result line");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["response"]["data"]["chatId"], 218485655);
    assert!(result["response"]["data"]["messageId"].is_u64(), "{result}");
    assert_eq!(result["response"]["metadata"]["providerStatus"], 200);

    // Through the operator's CLI: each provider failure is its class.
    let send = json!({"chatId": "218485655", "text": "x", "parseMode": "HTML"});
    api.fail_methods([Fault::Status(502)]);
    let r = invoke(&h, "sendMessage", send.clone());
    assert_eq!(r["error"]["class"], "transient", "{r}");
    assert_eq!(r["error"]["providerStatus"], 502, "{r}");
    api.fail_methods([Fault::Status(400)]);
    let r = invoke(&h, "sendMessage", send.clone());
    assert_eq!(r["error"]["class"], "permanent", "{r}");
    assert_eq!(r["error"]["providerStatus"], 400, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Bad Request: chat not found")),
        "Telegram's description: {r}"
    );
    let r = invoke(
        &h,
        "answerCallbackQuery",
        json!({"callbackQueryId": "4382bfdwdsb323b2d9", "text": "done"}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let cq = api.calls_of("answerCallbackQuery");
    assert_eq!(
        cq[0].body,
        json!({"callback_query_id": "4382bfdwdsb323b2d9", "text": "done"})
    );
    let r = invoke(
        &h,
        "sendChatAction",
        json!({"chatId": -100123, "action": "typing"}),
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        api.calls_of("sendChatAction")[0].body,
        json!({"chat_id": -100123, "action": "typing"})
    );
    let r = invoke(
        &h,
        "editMessageText",
        json!({"chatId": "42", "messageId": 7, "text": "edited"}),
    );
    assert_eq!(r["response"]["data"]["edited"], true, "{r}");
    assert_eq!(
        api.calls_of("editMessageText")[0].body,
        json!({"chat_id": 42, "message_id": 7, "text": "edited"})
    );
    // Last: a 429 holds the Connection's calls for retry_after.
    api.fail_methods([Fault::RetryAfter(60)]);
    let r = invoke(&h, "sendMessage", send.clone());
    assert_eq!(r["error"]["class"], "quota_exceeded", "{r}");
    assert_eq!(r["error"]["retryAfterMs"], 60000, "{r}");
    assert_eq!(r["error"]["providerStatus"], 429, "{r}");
    let calls = api.calls().len();
    let held = invoke(&h, "sendMessage", send);
    assert_eq!(held["error"]["class"], "quota_exceeded", "{held}");
    assert_eq!(api.calls().len(), calls, "held: Telegram was not called");

    assert_no_token(&h);
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn an_attachment_round_trips_through_get_file_without_the_token() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(FakeBotApi::start());
    let photo: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    api.add_file("AgADBAADbig", "photos/file_7.jpg", photo.clone());
    api.add_file("BQADhuge", "documents/file_8.pdf", vec![7; 5000]);
    let mut h = Harness::new();
    start(&mut h, &api, "    MAX_FILE_BYTES: \"4000\"");
    let mut update = text_update(600, "unused");
    let msg = &mut update["message"];
    msg.as_object_mut().unwrap().remove("text");
    msg["photo"] = json!([
        {"file_id": "AgADBAADsmall", "file_unique_id": "s", "width": 90, "height": 67, "file_size": 900},
        {"file_id": "AgADBAADbig", "file_unique_id": "b", "width": 800, "height": 600, "file_size": 3000}
    ]);
    msg["caption"] = "a cat".into();
    api.push([update]);

    h.wait_until("the reply about the file", DEADLINE, || {
        !api.calls_of("sendMessage").is_empty()
    });
    assert_eq!(
        api.calls_of("getFile")[0].body,
        json!({"file_id": "AgADBAADbig"})
    );
    assert_eq!(
        api.downloads(),
        [(true, "photos/file_7.jpg".to_owned())],
        "downloaded from /file/bot<token>/<file_path>"
    );
    assert_eq!(
        api.calls_of("sendMessage")[0].body["text"],
        "got file_7.jpg: 3000 bytes"
    );
    h.wait_until("the event in the agent's log", DEADLINE, || {
        h.agent_log("bot", "telegram:218485655").contains(" event ")
    });
    let log = h.agent_log("bot", "telegram:218485655");
    let event: Value = log
        .lines()
        .find_map(|l| l.split_once(" event ").map(|(_, e)| e))
        .and_then(|e| serde_json::from_str(e).ok())
        .expect("the event in the agent's log");
    assert_eq!(
        event["message"],
        json!({"type": "image", "url": "telegram-file:AgADBAADbig"})
    );
    assert_eq!(event["properties"]["caption"], "a cat");
    // event.payload: the whole Update, as the fake sent it.
    assert_eq!(event["payload"]["update_id"], 600, "{event}");
    assert_eq!(
        event["payload"]["message"]["photo"][1]["file_id"],
        "AgADBAADbig"
    );
    assert_eq!(event["properties"]["attachment"], "photo");
    h.wait_until("the getFile result in the agent's log", DEADLINE, || {
        h.agent_log("bot", "telegram:218485655")
            .contains("contentBase64")
    });

    // Over MAX_FILE_BYTES: a clear permanent failure, nothing downloaded.
    let r = invoke(&h, "getFile", json!({"fileId": "BQADhuge"}));
    assert_eq!(r["error"]["class"], "permanent", "{r}");
    let message = r["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("over MAX_FILE_BYTES (4000 bytes)"), "{r}");
    assert_eq!(api.downloads().len(), 1);
    // Within it, from the CLI: the bytes, base64.
    let r = invoke(&h, "getFile", json!({"fileId": "AgADBAADbig"}));
    let data = &r["response"]["data"];
    assert_eq!(data["size"], 3000, "{r}");
    assert_eq!(data["filePath"], "photos/file_7.jpg");
    assert!(!r.to_string().contains(TOKEN));

    assert_no_token(&h);
    assert!(h.stop().success(), "{}", h.dump());
    let _ = testdata;
}

/// The example bundle (its Connector this crate's connector.yaml plus an egress sandbox) is valid.
#[test]
fn the_example_bundle_is_valid() {
    let h = Harness::new();
    let dir = e2e::examples_dir().join("telegram-bot");
    let out = h.validate(dir.to_str().unwrap());
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("valid (1 connectors"),
        "{out:?}"
    );
}
