//! A Connector declares the config and secrets it reads (`spec.config`: a
//! JSON Schema; `spec.secrets`): `validate` finds a bad value, a missing
//! required key or secret, and a secret it does not read, each at its place
//! — where before they passed and the connector exited 78 at run time.

use e2e::Harness;

fn shipped(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../connectors/{name}/connector.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("connector.yaml")
}

const REST: &str = r#"
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/a, agents: [Agent/a] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: a }
spec: { entry: ./echo.py }
"#;

#[test]
fn config_and_secrets_are_checked_against_the_connectors_declaration() {
    let h = Harness::new();
    h.copy_example("agents/echo.py");
    let bundle = format!(
        "{}---\napiVersion: goondan.ai/v1\nkind: Connection\nmetadata: {{ name: hooks }}\nspec:\n  connectorRef: Connector/webhook\n  config:\n    SIGNATURE: bogus\n    PORT: notaport\n  secrets:\n    WEBHOOK_SECRET: {{ value: s }}\n    NOT_READ: {{ value: x }}\n---\napiVersion: goondan.ai/v1\nkind: Connection\nmetadata: {{ name: tg }}\nspec:\n  connectorRef: Connector/telegram\n  config: {{ POLL_TIMEOUT: \"30s\" }}\n---\n{}{}",
        shipped("webhook"),
        shipped("telegram"),
        REST
    );
    h.write("bundle.yaml", &bundle);
    let out = h.validate("bundle.yaml");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let line_of = |needle: &str| {
        bundle
            .lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{needle} not in the bundle"))
    };
    let at = |needle: &str| format!("bundle.yaml:{}:", line_of(needle));
    let expect = [
        (at("SIGNATURE: bogus"), "\"bogus\""),
        (at("PORT: notaport"), "\"notaport\""),
        (
            String::from("Connection/hooks"),
            "reads no secret `NOT_READ`",
        ),
        (
            String::from("Connection/tg"),
            "the secret `BOT_TOKEN` is required by Connector/telegram",
        ),
    ];
    for (place, text) in expect {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&place) && l.contains(text)
                    || (l.contains(&place) && l.contains(text))),
            "no error at {place} saying {text}:\n{err}"
        );
    }
}

#[test]
fn a_value_from_the_environment_is_checked_at_start_without_showing_it() {
    let h = Harness::new();
    h.copy_example("agents/echo.py");
    let bundle = format!(
        "{}---\napiVersion: goondan.ai/v1\nkind: Connection\nmetadata: {{ name: hooks }}\nspec:\n  connectorRef: Connector/webhook\n  config:\n    SIGNATURE: none\n    PORT: {{ valueFrom: {{ env: ORCH_TEST_HOOK_PORT }} }}\n{}",
        shipped("webhook"),
        REST
    );
    // The variable is unset in the test's environment: resolving fails at
    // start, naming the variable; validate passes (it cannot know the value).
    h.write("bundle.yaml", &bundle);
    let out = h.validate("bundle.yaml");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = h
        .command()
        .args(["run", "bundle.yaml", "--state-dir", "state"])
        .env("ORCH_TEST_HOOK_PORT", "secret-looking-value")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Connection/hooks: spec.config at `/PORT`"),
        "{err}"
    );
    assert!(
        !err.contains("secret-looking-value"),
        "the value is not shown: {err}"
    );
}
