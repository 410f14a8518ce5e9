//! The example GitHub bot end to end: `examples/github-bot/bundle.yaml`
//! with `examples/agents/github_bot.py`, run by the real orchestrator
//! against the fake GitHub API. A signed `issues.opened` delivery makes the
//! agent comment on that issue through `createIssueComment`; other events
//! are dropped by the bundle's ingress.

mod common;

use common::fake_github::FakeGithub;
use common::{github_headers, post, samples, sign};
use e2e::{DEADLINE, Harness};

const SECRET: &str = "It's a Secret to Everybody";
const TOKEN: &str = "ghp_botTOKEN0123456789abcdef";

#[test]
fn the_example_bot_welcomes_an_opened_issue() {
    let fake = FakeGithub::start(TOKEN);
    let mut h = Harness::new();
    h.copy_example_dir("agents");
    let bundle =
        std::fs::read_to_string(e2e::examples_dir().join("github-bot/bundle.yaml")).unwrap();
    let edits = [
        ("HOST: 0.0.0.0", "HOST: 127.0.0.1".to_owned()),
        (
            "PORT: \"3000\"",
            format!("PORT: \"0\"\n    API_BASE: \"{}\"", fake.base),
        ),
        // The operator's environment, as values.
        (
            "{ valueFrom: { env: GITHUB_WEBHOOK_SECRET } }",
            format!("{{ value: \"{SECRET}\" }}"),
        ),
        (
            "{ valueFrom: { env: GITHUB_TOKEN } }",
            format!("{{ value: \"{TOKEN}\" }}"),
        ),
    ];
    let mut text = bundle.clone();
    for (from, to) in &edits {
        assert!(text.contains(from), "{from} is not in the example bundle");
        text = text.replacen(from, to, 1);
    }
    // The bot without the example's egress sandbox (port 0, the fake API on
    // 127.0.0.1): tests/tests/egress_examples.rs covers that sandbox.
    let (head, rest) = text
        .split_once("  # >>> example sandbox")
        .expect("the example's sandbox");
    let (_, tail) = rest
        .split_once("  # <<< example sandbox\n")
        .expect("its end");
    let text = format!("{head}{tail}");
    h.write("github-bot/bundle.yaml", &text);
    h.start_file("github-bot/bundle.yaml");
    let file = h.state().join("state/connections/github/address");
    h.wait_until("the github connector's address", DEADLINE, || {
        std::fs::read_to_string(&file).is_ok_and(|a| !a.trim().is_empty())
    });
    let addr = std::fs::read_to_string(&file).unwrap().trim().to_owned();

    let deliver = |folder: &str, file: &str, id: &str| {
        let s = samples()
            .into_iter()
            .find(|s| s.folder == folder && s.file == file)
            .unwrap();
        // Fresh: the bundle sets MAX_DELIVERY_AGE, and the examples are from 2019.
        let mut json = s.json.clone();
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        for subject in ["issue", "comment"] {
            if json.get(subject).is_some() {
                json[subject]["updated_at"] = now.clone().into();
            }
        }
        let body = serde_json::to_vec(&json).unwrap();
        let sig = sign(SECRET, &body);
        post(&addr, "/", &github_headers(folder, id, &sig), &body)
    };
    // A comment first: dropped by the ingress, never commented on.
    let a = deliver("issue_comment", "created.payload.json", "d-1");
    assert_eq!(a.status, 200, "{}\n{}", a.body, h.dump());
    let a = deliver("issues", "opened.payload.json", "d-2");
    assert_eq!(a.status, 200, "{}\n{}", a.body, h.dump());

    let at = "POST /repos/Codertocat/Hello-World/issues/1/comments";
    h.wait_until("the bot's comment at the fake github", DEADLINE, || {
        !fake.seen_at(at).is_empty()
    });
    let seen = fake.seen_at(at);
    assert_eq!(seen.len(), 1, "{:?}", fake.seen());
    assert_eq!(seen[0].authorization, format!("Bearer {TOKEN}"));
    let body = seen[0].body["body"].as_str().unwrap();
    assert!(
        body.starts_with("Thanks for opening this issue, @Codertocat!"),
        "{body}"
    );
    // The agent logged the operation's result.
    h.wait_until("the result in the agent's log", DEADLINE, || {
        h.all_logs()
            .iter()
            .any(|(_, t)| t.contains("result {") && t.contains("issuecomment-1001"))
    });
    assert_eq!(
        fake.seen().len(),
        1,
        "only the opened issue was commented on"
    );
    for (path, text) in h.all_logs() {
        assert!(!text.contains(TOKEN), "the token is in {}", path.display());
    }
    assert!(h.stop().success(), "{}", h.dump());
}
