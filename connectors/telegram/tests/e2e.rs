//! connector-telegram through the real orchestrator: a text message from a
//! fake Bot API reaches agent-echo, and the offset is persisted after the ack.

mod common;

use common::{FakeBotApi, TOKEN, testdata};
use e2e::{DEADLINE, Harness};

#[test]
fn a_text_message_reaches_the_agent() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(FakeBotApi::start());
    // One text message, one update kind the connector skips.
    let updates = testdata();
    let pick = |id: i64| {
        updates
            .iter()
            .find(|u| u["update_id"] == id)
            .unwrap()
            .clone()
    };
    api.push([pick(892252934), pick(71651249)]);

    let mut h = Harness::new();
    let bundle = format!(
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
  secrets:
    BOT_TOKEN: {{ value: "{TOKEN}" }}
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
        base = api.url(),
    );
    h.start(&bundle);
    let received = h.wait_received("echo", "telegram:218485655", 1);
    let r = &received[0];
    assert_eq!(r["name"], "message", "{r}");
    assert_eq!(r["text"], "hello there");
    assert_eq!(r["connection"], "tg");
    assert_eq!(r["properties"]["chat_id"], "218485655");
    assert_eq!(r["properties"]["chat_type"], "private");
    assert_eq!(r["properties"]["user_id"], "218485655");
    assert_eq!(r["properties"]["username"], "WaffleLapkin");

    let offset = h.state().join("state/connections/tg/offset");
    h.wait_until("the offset file to pass both updates", DEADLINE, || {
        std::fs::read_to_string(&offset).is_ok_and(|s| s.trim() == "892252935")
    });
    h.wait_until("the next poll from the stored offset", DEADLINE, || {
        api.requests().iter().any(|r| r.offset == Some(892252935))
    });
    h.wait_until("the skipped update in the log", DEADLINE, || {
        h.connection_log("tg")
            .contains("update 71651249 skipped: message_reaction")
    });
    for (path, text) in h.all_logs() {
        assert!(!text.contains(TOKEN), "the token is in {}", path.display());
    }
    h.stop();
}
