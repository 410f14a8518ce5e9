//! connector-cron through the real orchestrator: ticks reach agent-echo.

use e2e::{DEADLINE, Harness};

#[test]
fn ticks_every_200ms_reach_the_agent() {
    let mut h = Harness::new();
    let bundle = format!(
        r#"{connector}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: ticker }}
spec:
  connectorRef: Connector/cron
  config:
    EVERY: 200ms
    CATCH_UP: skip
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
        connector = include_str!("../connector.yaml")
    );
    h.start(&bundle);
    let received = h.wait_received("echo", "cron:ticker", 2);
    let first = &received[0];
    assert_eq!(first["name"], "tick", "{first}");
    assert_eq!(first["connection"], "ticker");
    assert_eq!(first["properties"]["schedule"], "every 200ms");
    assert!(first["properties"].get("name").is_none());
    let slot = |i: usize| {
        let text = received[i]["properties"]["scheduled_at"]
            .as_str()
            .expect("scheduled_at");
        assert!(text.ends_with('Z'), "{text}");
        chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339")
    };
    // Slots are multiples of 200ms, and later ticks are later slots.
    assert_eq!(slot(0).timestamp_subsec_millis() % 200, 0);
    assert!(slot(1) > slot(0));

    let last_fire = h.state().join("state/connections/ticker/last_fire");
    h.wait_until("last_fire is written", DEADLINE, || last_fire.exists());
    h.stop();
}
