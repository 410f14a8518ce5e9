//! The operations end to end: the real orchestrator runs connector-github
//! against a fake GitHub API (tests/common/fake_github.rs) and an operator
//! invokes each operation with `orchestrator invoke`. The fake checks every
//! request as GitHub documents it; the answers' classes are checked here,
//! and no token shows in any log, the audit log or `status`.

mod common;

use common::fake_github::{APP_ID, FakeGithub, INSTALLATION, INSTALLATION_TOKEN};
use common::{connector_yaml_path, crate_dir};
use e2e::{DEADLINE, Harness};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_personalTOKEN0123456789abcdef";
const ALLOW: &str = "[createIssueComment, addLabels, createCheckRun, updateCheckRun]";

/// The connector, and a Connection `name` with `config` and `secrets` (YAML flow mappings).
fn bundle(name: &str, config: &str, secrets: &str, extra: &str) -> String {
    let connector = std::fs::read_to_string(connector_yaml_path()).unwrap();
    format!(
        r#"{connector}---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: {name} }}
spec:
  connectorRef: Connector/github
  config: {{ HOST: 127.0.0.1, PORT: "0", {config} }}
  secrets: {{ WEBHOOK_SECRET: {{ value: "s" }}, {secrets} }}
  operations: {{ allow: {ALLOW} }}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: gh }}
spec: {{ entryAgent: Agent/echo, agents: [Agent/echo] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: echo }}
spec: {{ entry: agent-echo, protocol: frames }}
{extra}"#
    )
}

fn invoke(h: &Harness, conn: &str, op: &str, input: Value) -> Value {
    let out = h.cli(&["invoke", conn, op, "--input", &input.to_string(), "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}\n{}", h.dump()))
}

fn data(r: &Value) -> &Value {
    assert_eq!(r["ok"], true, "{r}");
    &r["response"]["data"]
}

fn ready(h: &Harness, conn: &str) {
    h.wait_process("ready", &format!("connection/{conn}"), DEADLINE, |p| {
        e2e::state_of(p) == "ready"
    });
}

/// Every log, the audit log and `status --json` hold none of `secrets`.
fn assert_nowhere(h: &Harness, secrets: &[&str]) {
    let mut texts: Vec<(String, String)> = h
        .all_logs()
        .into_iter()
        .map(|(p, t)| (p.display().to_string(), t))
        .collect();
    let audit = std::fs::read_to_string(h.state().join("audit.log")).unwrap_or_default();
    texts.push(("audit.log".into(), audit));
    let status = h.cli(&["status", "--json"]);
    texts.push((
        "status".into(),
        String::from_utf8_lossy(&status.stdout).into_owned(),
    ));
    for (where_, text) in &texts {
        for s in secrets {
            assert!(!text.contains(s), "a secret is in {where_}:\n{text}");
        }
    }
}

#[test]
fn token_auth_operations_reach_github_as_documented_and_fail_by_class() {
    let fake = FakeGithub::start(TOKEN);
    let mut h = Harness::new();
    let config = format!("API_BASE: \"{}\"", fake.base);
    h.start(&bundle(
        "gh",
        &config,
        &format!("GITHUB_TOKEN: {{ value: \"{TOKEN}\" }}"),
        "",
    ));
    ready(&h, "gh");

    // createIssueComment: POST /repos/o/r/issues/n/comments {"body"}.
    let input = json!({"repo": "octo/hello", "issueNumber": 1, "body": "Thanks!"});
    let r = invoke(&h, "gh", "createIssueComment", input);
    assert_eq!(
        data(&r),
        &json!({"id": 1001, "url": "https://github.com/octo/hello/issues/1#issuecomment-1001"})
    );
    let seen = fake.seen_at("POST /repos/octo/hello/issues/1/comments");
    assert_eq!(seen.len(), 1, "{:?}", fake.seen());
    assert_eq!(seen[0].authorization, format!("Bearer {TOKEN}"));
    assert_eq!(seen[0].body, json!({"body": "Thanks!"}));

    // addLabels, with the number as an event property gives it (text).
    let input = json!({"repo": "octo/hello", "issueNumber": "2", "labels": ["bug", "triage"]});
    let r = invoke(&h, "gh", "addLabels", input);
    assert_eq!(data(&r), &json!({"labels": ["bug", "triage"]}));
    let seen = fake.seen_at("POST /repos/octo/hello/issues/2/labels");
    assert_eq!(seen[0].body, json!({"labels": ["bug", "triage"]}));

    // createCheckRun / updateCheckRun: GitHub's snake_case fields.
    let input = json!({
        "repo": "octo/hello", "name": "lint", "headSha": "ce587453ced02b1526dfb4cb910479d431683101",
        "status": "in_progress", "detailsUrl": "https://ci.example/1"
    });
    let r = invoke(&h, "gh", "createCheckRun", input);
    assert_eq!(
        data(&r),
        &json!({"id": 5, "url": "https://github.com/octo/hello/runs/5", "status": "in_progress", "conclusion": null})
    );
    assert_eq!(
        fake.seen_at("POST /repos/octo/hello/check-runs")[0].body,
        json!({
            "name": "lint", "head_sha": "ce587453ced02b1526dfb4cb910479d431683101",
            "status": "in_progress", "details_url": "https://ci.example/1"
        })
    );
    let input = json!({
        "repo": "octo/hello", "checkRunId": 5, "status": "completed", "conclusion": "success",
        "output": {"title": "Lint", "summary": "no problems"}
    });
    let r = invoke(&h, "gh", "updateCheckRun", input);
    assert_eq!(data(&r)["conclusion"], "success");
    assert_eq!(
        fake.seen_at("PATCH /repos/octo/hello/check-runs/5")[0].body,
        json!({"status": "completed", "conclusion": "success", "output": {"title": "Lint", "summary": "no problems"}})
    );

    // A repo that is not owner/name never leaves the orchestrator.
    let before = fake.seen().len();
    let bad = json!({"repo": "octo/../admin", "issueNumber": 1, "body": "x"});
    let r = invoke(&h, "gh", "createIssueComment", bad);
    assert_eq!(r["error"]["class"], "validation_error", "{r}");
    assert_eq!(fake.seen().len(), before);

    // 404 → permanent with GitHub's message; 502 → transient.
    let input = |repo: &str| json!({"repo": repo, "issueNumber": 1, "body": "x"});
    let r = invoke(&h, "gh", "createIssueComment", input("octo/missing"));
    assert_eq!(r["error"]["class"], "permanent", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("github answered 404: Not Found"),
        "{r}"
    );
    assert_eq!(r["error"]["providerStatus"], 404, "{r}");
    let r = invoke(&h, "gh", "createIssueComment", input("octo/down"));
    assert_eq!(r["error"]["class"], "transient", "{r}");
    assert_eq!(r["error"]["providerStatus"], 502, "{r}");

    // A secondary rate limit → quota_exceeded with GitHub's retry-after, and
    // the Connection's calls are held: the next one never reaches GitHub.
    let r = invoke(&h, "gh", "createIssueComment", input("octo/limited"));
    assert_eq!(r["error"]["class"], "quota_exceeded", "{r}");
    assert_eq!(r["error"]["retryAfterMs"], 7000, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("secondary rate limit"),
        "{r}"
    );
    let before = fake.seen().len();
    let r = invoke(&h, "gh", "createIssueComment", input("octo/hello"));
    assert_eq!(r["error"]["class"], "quota_exceeded", "held: {r}");
    assert_eq!(
        fake.seen().len(),
        before,
        "a held call does not reach github"
    );

    assert_nowhere(&h, &[TOKEN]);
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn a_primary_rate_limit_waits_until_its_reset() {
    let fake = FakeGithub::start(TOKEN);
    let mut h = Harness::new();
    let config = format!("API_BASE: \"{}\"", fake.base);
    h.start(&bundle(
        "gh",
        &config,
        &format!("GITHUB_TOKEN: {{ value: \"{TOKEN}\" }}"),
        "",
    ));
    ready(&h, "gh");
    let r = invoke(
        &h,
        "gh",
        "addLabels",
        json!({"repo": "octo/reset", "issueNumber": 1, "labels": ["x"]}),
    );
    assert_eq!(r["error"]["class"], "quota_exceeded", "{r}");
    let ms = r["error"]["retryAfterMs"].as_u64().unwrap();
    assert!(
        (28_000..=31_000).contains(&ms),
        "until x-ratelimit-reset: {r}"
    );
    assert_eq!(fake.seen().len(), 1, "quota_exceeded is not retried");
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn a_github_app_mints_a_jwt_and_reuses_its_installation_token() {
    let fake = FakeGithub::start("not-the-app-token");
    let mut h = Harness::new();
    let key = crate_dir().join("testdata/app/private-key.pem");
    let vault = format!(
        "---\napiVersion: goondan.ai/v1\nkind: Secret\nmetadata: {{ name: app }}\n\
         spec: {{ data: {{ key: {{ valueFrom: {{ file: \"{}\" }} }} }} }}\n",
        key.display()
    );
    let config = format!("API_BASE: \"{}\", APP_ID: \"{APP_ID}\"", fake.base);
    let secrets = "PRIVATE_KEY: { valueFrom: { secretRef: { ref: Secret/app, key: key } } }";
    h.start(&bundle("ghapp", &config, secrets, &vault));
    ready(&h, "ghapp");

    for n in [1, 2] {
        let input = json!({"repo": "octo/hello", "issueNumber": n, "body": format!("comment {n}")});
        let r = invoke(&h, "ghapp", "createIssueComment", input);
        assert_eq!(data(&r)["id"], 1001, "{r}");
        let seen = fake.seen_at(&format!("POST /repos/octo/hello/issues/{n}/comments"));
        assert_eq!(
            seen[0].authorization,
            format!("Bearer {INSTALLATION_TOKEN}")
        );
    }
    // The installation found from the repository, once; one exchange for both calls.
    assert_eq!(fake.seen_at("GET /repos/octo/hello/installation").len(), 1);
    let exchanges = fake.seen_at(&format!(
        "POST /app/installations/{INSTALLATION}/access_tokens"
    ));
    assert_eq!(exchanges.len(), 1, "{:?}", fake.seen());
    let jwt = exchanges[0]
        .authorization
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned();
    let claims = connector_github::auth::app::claims(&jwt).unwrap();
    assert_eq!(claims["iss"], APP_ID);

    let pem = std::fs::read_to_string(&key).unwrap();
    let key_line = pem.lines().nth(1).unwrap();
    assert_nowhere(&h, &[INSTALLATION_TOKEN, &jwt, key_line]);
    assert!(h.stop().success(), "{}", h.dump());
}

/// With `INSTALLATION_ID` no installation is looked up; a token that
/// expires within the refresh margin (5 minutes) is not reused.
#[test]
fn a_given_installation_and_a_token_about_to_expire() {
    let fake = FakeGithub::start("not-the-app-token");
    fake.set_token_lifetime(4 * 60);
    let mut h = Harness::new();
    let key = crate_dir().join("testdata/app/private-key.pem");
    let pem = std::fs::read_to_string(&key).unwrap();
    // Inline, with its newlines escaped as in an environment variable.
    let escaped = pem.trim().replace('\n', "\\n");
    let config = format!(
        "API_BASE: \"{}\", APP_ID: \"{APP_ID}\", INSTALLATION_ID: \"{INSTALLATION}\"",
        fake.base
    );
    let secrets = format!("PRIVATE_KEY: {{ value: '{escaped}' }}");
    h.start(&bundle("ghapp", &config, &secrets, ""));
    ready(&h, "ghapp");
    for n in [1, 2] {
        let input = json!({"repo": "octo/hello", "issueNumber": n, "labels": ["x"]});
        let r = invoke(&h, "ghapp", "addLabels", input);
        assert_eq!(data(&r), &json!({"labels": ["x"]}));
    }
    assert!(
        fake.seen_at("GET /repos/octo/hello/installation")
            .is_empty()
    );
    let exchanges = fake.seen_at(&format!(
        "POST /app/installations/{INSTALLATION}/access_tokens"
    ));
    assert_eq!(
        exchanges.len(),
        2,
        "a token 4 minutes from expiry is replaced"
    );
    assert!(h.stop().success(), "{}", h.dump());
}

/// No answer at all (nothing listens at API_BASE) is `transient`.
#[test]
fn no_answer_is_transient() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut h = Harness::new();
    let config = format!("API_BASE: \"{base}\"");
    h.start(&bundle(
        "gh",
        &config,
        &format!("GITHUB_TOKEN: {{ value: \"{TOKEN}\" }}"),
        "",
    ));
    ready(&h, "gh");
    let input = json!({"repo": "octo/hello", "issueNumber": 1, "body": "x"});
    let r = invoke(&h, "gh", "createIssueComment", input);
    assert_eq!(r["error"]["class"], "transient", "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains("no answer from github"), "{r}");
    assert!(!message.contains(TOKEN), "{r}");
    assert!(h.stop().success(), "{}", h.dump());
}
