//! The example bots run their connector in `sandbox.network.mode: egress`.
//!
//! Each `examples/<name>-bot` has its own Connector: a copy of the shipped
//! `connectors/<name>/connector.yaml` (which has no sandbox, so it runs
//! anywhere) with a `sandbox` block inserted after `spec:`, between the
//! lines `# >>> example sandbox` and `# <<< example sandbox`. The first test
//! keeps the copies equal to the shipped file plus [`SANDBOXES`]; after a
//! change to a connector.yaml, copy them again with
//! `UPDATE_EXAMPLE_CONNECTORS=1 cargo test -p e2e --test egress_examples`.
//!
//! The second runs examples/telegram-bot as it is (its Connection and
//! agent; only the API's address and port changed for the test) against a
//! fake Bot API on 127.0.0.2 registered as `api.telegram.org` through the
//! proxy's test resolver: a message comes in through getUpdates, the agent
//! answers with sendMessage, both through the proxy. Root only, like
//! tests/tests/egress.rs. The third runs examples/slack-bot the same way, a
//! signed `app_mention` sent to its published port: the webhook comes in
//! through `publishTcp`, the answer goes out through the proxy.

mod egress_support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use e2e::{DEADLINE, Harness};
use egress_support::Run;
use egress_support::fakes::{confined, fake_api, rewrite};

const BEGIN: &str = "  # >>> example sandbox";
const END: &str = "  # <<< example sandbox\n";

/// Each example bot's sandbox: (connector, where its Connector lives in
/// examples/, the lines inserted after `spec:`).
const SANDBOXES: [(&str, &str, &str); 4] = [
    (
        "telegram",
        "telegram-bot/connector.yaml",
        "    # It only calls out (long polling): the Bot API's host, nothing else.
    network: { mode: egress, allowHosts: [api.telegram.org] }
",
    ),
    (
        "slack",
        "slack-bot/connector.yaml",
        "    # slack.com: the Web API; files.slack.com: getFile; hooks.slack.com: respond.
    # Slack calls it on PORT 3000 (bundle.yaml): published from the host's
    # 127.0.0.1:3000 into its namespace (needs root).
    network: { mode: egress, allowHosts: [slack.com, \"*.slack.com\"], publishTcp: [3000] }
",
    ),
    (
        "discord",
        "discord-bot/connector.yaml",
        "    # discord.com: followup and createMessage. Discord calls its Interactions
    # Endpoint on PORT 8080 (bundle.yaml): published from the host's
    # 127.0.0.1:8080 into its namespace (needs root).
    network: { mode: egress, allowHosts: [discord.com], publishTcp: [8080] }
",
    ),
    (
        "github",
        "github-bot/bundle.yaml",
        "    # api.github.com: the operations (GitHub Enterprise Server: the host of
    # API_BASE instead). GitHub delivers webhooks to HOST 0.0.0.0, PORT 3000
    # (the Connection above): published from the host's 0.0.0.0:3000 into its
    # namespace (needs root).
    network: { mode: egress, allowHosts: [api.github.com], publishTcp: [\"0.0.0.0:3000\"] }
",
    ),
];

/// Where github-bot's bundle.yaml starts its copy of the Connector.
const GITHUB_MARK: &str = "\n---\n# The Connector resource of connector-github";

fn workspace() -> PathBuf {
    e2e::workspace_dir()
}

/// `shipped` with `lines` (a sandbox) inserted after its `spec:` line.
fn with_sandbox(shipped: &str, connector: &str, lines: &str) -> String {
    let at = shipped
        .find("\nspec:\n")
        .map(|i| i + "\nspec:\n".len())
        .unwrap_or_else(|| panic!("{connector}: no `spec:` line"));
    format!(
        "{}{BEGIN}: this sandbox is the example's, the rest is connectors/{connector}/connector.yaml\n  sandbox:\n{lines}{END}{}",
        &shipped[..at],
        &shipped[at..]
    )
}

/// What each example's Connector must be, and where it is.
fn wanted() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for (connector, rel, lines) in SANDBOXES {
        let shipped_path = workspace().join(format!("connectors/{connector}/connector.yaml"));
        let shipped = std::fs::read_to_string(&shipped_path).expect("connector.yaml");
        let copy = with_sandbox(&shipped, connector, lines);
        let path = e2e::examples_dir().join(rel);
        if rel.ends_with("bundle.yaml") {
            // The bundle ends with the Connector, after GITHUB_MARK.
            let bundle = std::fs::read_to_string(&path).expect("bundle.yaml");
            let at = bundle.find(GITHUB_MARK).expect("the bundle's Connector") + 5;
            out.push((path, format!("{}{copy}", &bundle[..at])));
        } else {
            out.push((path, copy));
        }
    }
    out
}

#[test]
fn each_example_bot_runs_its_shipped_connector_with_an_egress_sandbox() {
    let update = std::env::var_os("UPDATE_EXAMPLE_CONNECTORS").is_some();
    for (path, want) in wanted() {
        let mut got = std::fs::read_to_string(&path).unwrap_or_default();
        // Only when it differs: the other test copies these files meanwhile.
        if update && got != want {
            std::fs::write(&path, &want).expect("write");
            got = std::fs::read_to_string(&path).unwrap_or_default();
        }
        assert!(
            got == want,
            "{} is not its connector.yaml with the sandbox of tests/tests/egress_examples.rs; \
             copy it again with UPDATE_EXAMPLE_CONNECTORS=1 cargo test -p e2e --test egress_examples",
            path.display()
        );
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        assert!(
            meta.file_type().is_file(),
            "{}: a file, not a link",
            path.display()
        );
    }
    // A webhook port published is the port the Connection listens on.
    for (bundle, published) in [
        ("slack-bot/bundle.yaml", "publishTcp: [3000]"),
        ("discord-bot/bundle.yaml", "publishTcp: [8080]"),
        ("github-bot/bundle.yaml", "publishTcp: [\"0.0.0.0:3000\"]"),
    ] {
        let text = std::fs::read_to_string(e2e::examples_dir().join(bundle)).expect("bundle");
        let port = published
            .trim_end_matches(['"', ']'])
            .rsplit(['[', ':'])
            .next()
            .expect("a port");
        assert!(
            text.contains(&format!("PORT: \"{port}\"")),
            "{bundle}: its Connection listens on another port than {published}"
        );
        let sandbox = wanted()
            .into_iter()
            .any(|(_, want)| want.contains(published));
        assert!(sandbox, "{published} is not in SANDBOXES");
    }
    // And each example directory validates with it.
    let h = Harness::new();
    for dir in [
        "telegram-bot",
        "slack-bot",
        "discord-bot",
        "github-bot/bundle.yaml",
    ] {
        let path = e2e::examples_dir().join(dir);
        let out = h.validate(path.to_str().expect("utf-8 path"));
        assert!(out.status.success(), "{dir}: {out:?}");
    }
}

const TOKEN: &str = "123:example-token";

/// The Bot API: one text message from getUpdates (until the offset passes
/// it), sendMessage answered.
fn telegram(path: &str, body: &str) -> serde_json::Value {
    let result = if path == format!("/bot{TOKEN}/getUpdates") {
        let params: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        if params["offset"].as_i64().unwrap_or(0) <= 1 {
            serde_json::json!([{
                "update_id": 1,
                "message": {
                    "message_id": 5, "date": 1700000000,
                    "chat": {"id": 42, "type": "private"},
                    "from": {"id": 42, "is_bot": false, "first_name": "Ada"},
                    "text": "hi"
                }
            }])
        } else {
            // Long polling with nothing new: answer empty after a while,
            // as Telegram does (the connector asks again).
            std::thread::sleep(std::time::Duration::from_millis(500));
            serde_json::json!([])
        }
    } else if path == format!("/bot{TOKEN}/sendMessage") {
        serde_json::json!({"message_id": 6, "date": 1700000001,
            "chat": {"id": 42, "type": "private"}, "text": "echo: hi"})
    } else {
        serde_json::Value::Null
    };
    serde_json::json!({"ok": !result.is_null(), "result": result})
}

/// The Slack Web API: chat.postMessage answered.
fn slack(path: &str, _body: &str) -> serde_json::Value {
    match path {
        "/api/chat.postMessage" => {
            serde_json::json!({"ok": true, "channel": "C0LAN2Q65", "ts": "1515449600.000100"})
        }
        _ => serde_json::json!({"ok": false, "error": "unknown_method"}),
    }
}

#[test]
fn the_telegram_example_answers_through_its_egress_proxy() {
    if !e2e::require_root() {
        return;
    }
    let api = fake_api(telegram);
    let port = api.port;
    let h = Harness::new();
    let dir = h.copy_example_dir("telegram-bot");
    h.copy_example_dir("agents");
    // The test's only changes: the API on the fake's port, over http, and
    // that port and 127.0.0.2 (where api.telegram.org resolves here) allowed.
    rewrite(
        &dir.join("connector.yaml"),
        "allowHosts: [api.telegram.org] }",
        &format!(
            "allowHosts: [api.telegram.org], allowPorts: [{port}], allowCidrs: [127.0.0.2/32] }}"
        ),
    );
    rewrite(
        &dir.join("bundle.yaml"),
        "  config:\n",
        &format!("  config:\n    API_BASE: \"http://api.telegram.org:{port}\"\n"),
    );

    let _run = Run::start_at(
        &h,
        "telegram-bot",
        &[
            ("ORCHESTRATOR_EGRESS_RESOLVE", "api.telegram.org=127.0.0.2"),
            ("TELEGRAM_BOT_TOKEN", TOKEN),
        ],
    );
    let send = format!("POST /bot{TOKEN}/sendMessage HTTP/1.1");
    h.wait_until("the bot's answer at the fake API", DEADLINE, || {
        api.seen
            .lock()
            .expect("lock")
            .iter()
            .any(|(l, _, _)| *l == send)
    });
    let seen = api.seen.lock().expect("lock").clone();
    let (_, host, body) = seen
        .iter()
        .find(|(l, _, _)| *l == send)
        .expect("sendMessage");
    assert_eq!(
        *host,
        format!("api.telegram.org:{port}"),
        "by name, through the proxy"
    );
    let body: serde_json::Value = serde_json::from_str(body).expect("json body");
    assert_eq!(body["chat_id"], 42, "{body}");
    assert_eq!(body["text"], "echo: hi", "{body}");
    assert!(
        seen.iter()
            .all(|(_, host, _)| *host == format!("api.telegram.org:{port}")),
        "{seen:?}"
    );

    // The connector ran confined, and its proxy counted the calls.
    confined(&h, "connection/telegram", 2);
    for (path, text) in h.all_logs() {
        assert!(!text.contains(TOKEN), "the token is in {}", path.display());
    }
}

const SIGNING_SECRET: &str = "example-signing-secret";
const SLACK_TOKEN: &str = "xoxb-example-token";

/// `v0=<hex HMAC-SHA256(secret, "v0:<ts>:<body>")>`, as Slack signs (by
/// Python's hmac: this crate has no HMAC of its own).
fn slack_signature(ts: &str, body: &std::path::Path) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib, hmac, os, sys\n\
             msg = b'v0:' + sys.argv[1].encode() + b':' + open(sys.argv[2], 'rb').read()\n\
             key = os.environ['SIGNING_SECRET'].encode()\n\
             print('v0=' + hmac.new(key, msg, hashlib.sha256).hexdigest())",
            ts,
        ])
        .arg(body)
        .env("SIGNING_SECRET", SIGNING_SECRET)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_slack_example_takes_webhooks_in_and_answers_out_through_its_proxy() {
    if !e2e::require_root() {
        return;
    }
    let api = fake_api(slack);
    let port = api.port;
    // A port free on the host now, published instead of the example's 3000
    // (which another program may hold).
    let hook = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let h = Harness::new();
    let dir = h.copy_example_dir("slack-bot");
    h.copy_example_dir("agents");
    rewrite(
        &dir.join("connector.yaml"),
        "publishTcp: [3000] }",
        &format!("allowPorts: [{port}], allowCidrs: [127.0.0.2/32], publishTcp: [{hook}] }}"),
    );
    rewrite(
        &dir.join("bundle.yaml"),
        "PORT: \"3000\"\n",
        &format!("PORT: \"{hook}\"\n    API_BASE: \"http://slack.com:{port}/api\"\n"),
    );
    let _run = Run::start_at(
        &h,
        "slack-bot",
        &[
            ("ORCHESTRATOR_EGRESS_RESOLVE", "slack.com=127.0.0.2"),
            ("SLACK_SIGNING_SECRET", SIGNING_SECRET),
            ("SLACK_BOT_TOKEN", SLACK_TOKEN),
        ],
    );

    // An app_mention, signed, to the host's port: forwarded into the
    // connector's namespace.
    let event = workspace().join("connectors/slack/testdata/events/app_mention.json");
    let body = std::fs::read(&event).expect("app_mention.json");
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .to_string();
    let signature = slack_signature(&ts, &event);
    let mut status = String::new();
    h.wait_until("the connector to take the event", DEADLINE, || {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", hook)) else {
            return false;
        };
        let head = format!(
            "POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n\
             X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {signature}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let mut answer = String::new();
        let sent = s
            .write_all(head.as_bytes())
            .and_then(|()| s.write_all(&body));
        if sent.and_then(|()| s.read_to_string(&mut answer)).is_err() {
            return false;
        }
        status = answer.lines().next().unwrap_or_default().to_string();
        !status.is_empty()
    });
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    // The agent's answer went out through the proxy, to slack.com by name.
    let at = "POST /api/chat.postMessage HTTP/1.1";
    h.wait_until("the bot's answer at the fake Slack", DEADLINE, || {
        api.seen
            .lock()
            .expect("lock")
            .iter()
            .any(|(l, _, _)| l == at)
    });
    let seen = api.seen.lock().expect("lock").clone();
    let (_, host, body) = seen.iter().find(|(l, _, _)| l == at).expect("postMessage");
    assert_eq!(
        *host,
        format!("slack.com:{port}"),
        "by name, through the proxy"
    );
    let body: serde_json::Value = serde_json::from_str(body).expect("json body");
    assert_eq!(body["channel"], "C0LAN2Q65", "{body}");
    assert_eq!(body["thread_ts"], "1515449522.000016", "{body}");
    assert!(
        body["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("echo: ")),
        "{body}"
    );
    confined(&h, "connection/slack", 1);
    for (path, text) in h.all_logs() {
        assert!(
            !text.contains(SLACK_TOKEN),
            "the token is in {}",
            path.display()
        );
        assert!(
            !text.contains(SIGNING_SECRET),
            "the secret is in {}",
            path.display()
        );
    }
}
