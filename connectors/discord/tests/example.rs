//! The example bot (examples/discord-bot with examples/agents/discord_bot.py)
//! run for real against a fake Discord API: a slash command and a button
//! are each answered with a followup through the orchestrator.

mod common;

use std::time::Duration;

use common::{
    APP_ID, BOT_TOKEN, FakeDiscord, INTERACTION_TOKEN, button_with_image, command, post_signed,
    public_key_hex,
};
use e2e::{DEADLINE, Harness};
use serde_json::json;

#[test]
fn the_example_bot_answers_commands_through_followup() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(FakeDiscord::start());
    let mut h = Harness::new();
    // The bundle refers to ../agents/discord_bot.py: keep the examples' layout.
    let dir = h.copy_example_dir("discord-bot");
    h.copy_example_dir("agents");
    let path = dir.join("bundle.yaml");
    let bundle = std::fs::read_to_string(&path).unwrap();
    let replaced = bundle
        .replace(
            r#"PORT: "8080""#,
            &format!("PORT: \"0\"\n    API_BASE: \"{}\"", api.url()),
        )
        .replace(
            "{ valueFrom: { env: DISCORD_PUBLIC_KEY } }",
            &format!("{{ value: \"{}\" }}", public_key_hex()),
        )
        .replace(
            "{ valueFrom: { env: DISCORD_BOT_TOKEN } }",
            &format!("{{ value: \"{BOT_TOKEN}\" }}"),
        );
    assert!(
        replaced.contains("API_BASE") && !replaced.contains("valueFrom"),
        "the example bundle changed; update this test\n{bundle}"
    );
    std::fs::write(&path, replaced).unwrap();
    assert!(
        std::fs::read_to_string(dir.join("connector.yaml"))
            .is_ok_and(|c| c.contains("name: followup")),
        "the example's connector.yaml is the connector's"
    );
    // The bot without the example's egress sandbox (port 0, the fake API on
    // 127.0.0.1): tests/tests/egress_examples.rs covers that sandbox.
    let connector = dir.join("connector.yaml");
    let text = std::fs::read_to_string(&connector).unwrap();
    let (head, rest) = text
        .split_once("  # >>> example sandbox")
        .expect("the example's sandbox");
    let (_, tail) = rest.split_once("  # <<< example sandbox\n").unwrap();
    std::fs::write(&connector, format!("{head}{tail}")).unwrap();
    h.start_file("discord-bot");

    let file = h.state().join("state/connections/discord/address");
    h.wait_until("the connector to write its address", DEADLINE, || {
        std::fs::read_to_string(&file).is_ok_and(|a| !a.trim().is_empty())
    });
    let addr = std::fs::read_to_string(&file).unwrap();

    let (status, body) = post_signed(&addr, &command("1100", "why?"));
    assert_eq!((status, body), (200, json!({"type": 5})), "{}", h.dump());
    h.wait_until("the followup to the command", DEADLINE, || {
        !api.seen().is_empty()
    });
    let seen = api.seen();
    assert_eq!(
        seen[0].path,
        format!("/webhooks/{APP_ID}/{INTERACTION_TOKEN}")
    );
    assert_eq!(seen[0].body, json!({"content": "You asked: why?"}));

    let (status, _) = post_signed(&addr, &button_with_image("1101"));
    assert_eq!(status, 200);
    h.wait_until("the followup to the button", DEADLINE, || {
        api.seen().len() >= 2
    });
    assert_eq!(
        api.seen()[1].body["content"],
        "Pressed approve: an image (https://cdn.discordapp.com/attachments/1/9900/cat.png)"
    );

    // The agent logged both results as successes.
    h.wait_until(
        "both results in the agent's logs",
        Duration::from_secs(10),
        || {
            h.all_logs()
                .iter()
                .map(|(_, t)| t.matches("result {").count())
                .sum::<usize>()
                >= 2
        },
    );
    let logs: String = h.all_logs().into_iter().map(|(_, t)| t).collect();
    for line in logs.lines().filter(|l| l.contains("result {")) {
        assert!(line.contains(r#""ok":true"#), "{line}");
    }
    assert!(!logs.contains(INTERACTION_TOKEN) && !logs.contains(BOT_TOKEN));
    assert!(h.stop().success(), "{}", h.dump());
}
