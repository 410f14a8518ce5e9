//! `orchestrator validate`, and the exit codes of the CLI.

use e2e::Harness;

const VALID: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: emitter }
spec:
  entry: test-emitter
  events:
    - name: user_message
      properties: { chat_id: { type: string } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: main }
spec:
  connectorRef: Connector/emitter
  ingress:
    rules:
      - match: { event: user_message }
        route: { agentRef: Agent/handler, instanceKeyProperty: chat_id, instanceKeyPrefix: "tg:" }
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/handler, agents: [Agent/handler] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: handler }
spec: { entry: agent-echo, protocol: frames }
"#;

/// Errors in four documents; each line is marked by a comment `# E<n>`.
const BROKEN: &str = r#"apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: emitter }
spec:
  entry: test-emitter
  protocol: carrier-pigeon                        # E1
  events:
    - name: user_message
      properties: { chat_id: { type: string } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: main }
spec:
  connectorRef: Connector/emitter
  ingress:
    rules:
      - match: { event: user_mesage }             # E2
        route: { agentRef: Agent/handler }
      - route: { agentRef: Agent/nobody }         # E3
      - route:
          instanceKey: fixed                      # E4
          instanceKeyProperty: chat_id
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/handler, agents: [Agent/handler] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: handler }
spec:
  entry: agent-echo
  maxInFlight: 0                                  # E5
"#;

/// `bundle.yaml:LINE:COL` of `needle` on the line marked `# <mark>`.
fn place_of(text: &str, mark: &str, needle: &str) -> String {
    let (i, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.trim_end().ends_with(&format!("# {mark}")))
        .unwrap_or_else(|| panic!("no line marked {mark}"));
    let col = line
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not on line {mark}"))
        + 1;
    format!("bundle.yaml:{}:{col}", i + 1)
}

#[test]
fn a_valid_bundle_validates() {
    let h = Harness::new();
    h.write("bundle.yaml", VALID);
    let out = h.validate("bundle.yaml");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.starts_with("bundle.yaml: valid ("), "{stdout}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn every_error_is_reported_at_its_place() {
    let h = Harness::new();
    h.write("bundle.yaml", BROKEN);
    let out = h.validate("bundle.yaml");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit code for an invalid bundle\n{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // (mark, where on the line the error points, resource, what the message says)
    let expected = [
        (
            "E1",
            "carrier-pigeon",
            "Connector/emitter",
            "carrier-pigeon",
        ),
        (
            "E2",
            "user_mesage",
            "Connection/main",
            "declares no event `user_mesage`",
        ),
        (
            "E3",
            "Agent/nobody",
            "Connection/main",
            "no Agent named `nobody`",
        ),
        (
            "E4",
            "instanceKey",
            "Connection/main",
            "both instanceKey and instanceKeyProperty",
        ),
        ("E5", "0", "Agent/handler", "at least 1"),
    ];
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("bundle.yaml:") && l.contains(": "))
        .collect();
    let errors: Vec<&str> = errors
        .into_iter()
        .filter(|l| !l.starts_with("bundle.yaml: "))
        .collect();
    assert_eq!(errors.len(), expected.len(), "one line per error\n{stderr}");
    for ((mark, at, resource, says), line) in expected.iter().zip(&errors) {
        let prefix = format!("{}: {resource}: ", place_of(BROKEN, mark, at));
        assert!(
            line.starts_with(&prefix),
            "{mark}: want {prefix:?}…, got {line:?}\n{stderr}"
        );
        assert!(line.contains(says), "{mark}: {line}");
    }
    assert!(stderr.contains("bundle.yaml: 5 errors"), "{stderr}");
}

#[test]
fn a_missing_entry_is_an_error_at_its_place() {
    let h = Harness::new();
    let bundle = VALID.replace("entry: agent-echo,", "entry: ./no-such-agent,");
    h.write("bundle.yaml", &bundle);
    let out = h.validate("bundle.yaml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let (i, line) = bundle
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("./no-such-agent"))
        .expect("entry line");
    let place = format!(
        "bundle.yaml:{}:{}: Agent/handler: ",
        i + 1,
        line.find("./no-such-agent").expect("col") + 1
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&place) && l.contains("no-such-agent")),
        "want {place}…\n{stderr}"
    );
}

#[test]
fn run_refuses_an_invalid_bundle_with_the_same_errors() {
    let h = Harness::new();
    h.write("bundle.yaml", BROKEN);
    let out = h
        .command()
        .args(["run", "bundle.yaml", "--state-dir", "state"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: Connector/emitter: ",
            place_of(BROKEN, "E1", "carrier-pigeon")
        )),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let h = Harness::new();
    h.write("bundle.yaml", VALID);
    let cases: &[&[&str]] = &[
        &[],
        &["frobnicate"],
        &["validate"],
        &["validate", "bundle.yaml", "extra"],
        &["run"],
        &["run", "bundle.yaml", "--no-such-flag"],
    ];
    for args in cases {
        let out = h.command().args(*args).output().expect("run orchestrator");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "orchestrator {args:?}\n{stderr}"
        );
        assert!(
            !stderr.trim().is_empty(),
            "orchestrator {args:?} says what is wrong"
        );
    }
    // Asking for help is not an error.
    let out = h
        .command()
        .arg("--help")
        .output()
        .expect("run orchestrator");
    assert_eq!(out.status.code(), Some(0));
}
