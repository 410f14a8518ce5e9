//! connector-discord through the real orchestrator: a signed slash command
//! reaches agent-echo, the operator answers it with `followup` through the
//! governed path, the fake Discord API sees the documented request, and
//! neither the interaction token nor the bot token shows up anywhere.

mod common;

use common::{
    APP_ID, BOT_TOKEN, FakeDiscord, INTERACTION_TOKEN, command, post_signed, public_key_hex,
};
use e2e::{DEADLINE, Harness};
use serde_json::{Value, json};

fn bundle(api: &str) -> String {
    format!(
        r#"{connector}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: discord }}
spec:
  connectorRef: Connector/discord
  config:
    PORT: "0"
    API_BASE: "{api}"
  secrets:
    PUBLIC_KEY: {{ value: "{key}" }}
    BOT_TOKEN: {{ value: "{BOT_TOKEN}" }}
  operations:
    allow: [followup, createMessage]
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/echo, agents: [Agent/echo] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: echo }}
spec: {{ entry: agent-echo, protocol: frames }}
"#,
        connector = include_str!("../connector.yaml"),
        key = public_key_hex(),
    )
}

#[test]
fn a_command_reaches_the_agent_and_a_followup_reaches_discord() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(FakeDiscord::start());
    let mut h = Harness::new();
    h.start(&bundle(api.url()));
    let file = h.state().join("state/connections/discord/address");
    h.wait_until("the connector to write its address", DEADLINE, || {
        std::fs::read_to_string(&file).is_ok_and(|a| !a.trim().is_empty())
    });
    let addr = std::fs::read_to_string(&file).unwrap();

    let (status, body) = post_signed(
        &addr,
        &json!({"id": "1", "type": 1, "application_id": APP_ID, "token": "t", "version": 1}),
    );
    assert_eq!((status, body), (200, json!({"type": 1})), "{}", h.dump());
    let (status, body) = post_signed(&addr, &command("1100", "why?"));
    assert_eq!((status, body), (200, json!({"type": 5})), "{}", h.dump());

    let received = h.wait_received("echo", "discord:4400", 1);
    let r = &received[0];
    assert_eq!(r["name"], "command", "{r}");
    assert_eq!(r["text"], "/ask question:why?");
    assert_eq!(r["connection"], "discord");
    assert_eq!(r["properties"]["command"], "ask");
    assert_eq!(r["properties"]["user"], "5500");
    let reference = r["properties"]["interaction"].as_str().unwrap().to_owned();

    let input = json!({"interaction": reference, "content": "because"}).to_string();
    let out = h.cli(&["invoke", "discord", "followup", "--input", &input, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let result: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["response"]["data"]["channelId"], "4400", "{result}");
    assert_eq!(
        result["response"]["metadata"]["providerStatus"], 200,
        "{result}"
    );
    let seen = api.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].path,
        format!("/webhooks/{APP_ID}/{INTERACTION_TOKEN}")
    );
    assert_eq!(seen[0].authorization, None);
    assert_eq!(seen[0].body, json!({"content": "because"}));

    // The schema refuses a followup without its reference before the connector sees it.
    let out = h.cli(&[
        "invoke",
        "discord",
        "followup",
        "--input",
        r#"{"content":"x"}"#,
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(api.seen().len(), 1);

    // createMessage as the bot; then Discord's 429 holds the Connection's next call.
    let invoke = |input: &str| -> Value {
        let out = h.cli(&[
            "invoke",
            "discord",
            "createMessage",
            "--input",
            input,
            "--json",
        ]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    };
    let r = invoke(r#"{"channelId":"4400","content":"hi"}"#);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        api.seen()[1].authorization.as_deref(),
        Some(&*format!("Bot {BOT_TOKEN}"))
    );
    api.answer(
        "/channels/4429/",
        429,
        json!({"message": "You are being rate limited.", "retry_after": 30.0, "global": false}),
        None,
    );
    let r = invoke(r#"{"channelId":"4429","content":"x"}"#);
    assert_eq!(r["error"]["class"], "quota_exceeded", "{r}");
    assert_eq!(r["error"]["providerStatus"], 429, "{r}");
    let r = invoke(r#"{"channelId":"4400","content":"held"}"#);
    assert_eq!(
        r["error"]["class"], "quota_exceeded",
        "held by the 429: {r}"
    );
    assert_eq!(api.seen().len(), 3, "the held call never reached Discord");

    let status = h.cli(&["status", "--json"]);
    let mut shown: Vec<(String, String)> = h
        .all_logs()
        .into_iter()
        .map(|(p, t)| (p.display().to_string(), t))
        .collect();
    shown.push((
        "status".into(),
        String::from_utf8_lossy(&status.stdout).into_owned(),
    ));
    let audit_log = h.state().join("audit.log");
    h.wait_until("the followup's audit record", DEADLINE, || {
        std::fs::read_to_string(&audit_log).is_ok_and(|a| a.contains("\"operation\":\"followup\""))
    });
    let audit = std::fs::read_to_string(&audit_log).unwrap_or_default();
    shown.push(("audit.log".into(), audit));
    for (place, text) in shown {
        assert!(
            !text.contains(INTERACTION_TOKEN),
            "the interaction token is in {place}"
        );
        assert!(!text.contains(BOT_TOKEN), "the bot token is in {place}");
    }
    assert!(h.stop().success(), "{}", h.dump());
}
