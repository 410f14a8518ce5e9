//! `validate` checks a Connection's `connectorRef.version` range against
//! its Connector's `spec.version`, at the range's line and column.

use e2e::Harness;

fn shipped(name: &str) -> String {
    std::fs::read_to_string(e2e::workspace_dir().join(format!("connectors/{name}/connector.yaml")))
        .expect("connector.yaml")
}

#[test]
fn validate_checks_a_connector_version_range_at_its_place() {
    let h = Harness::new();
    h.copy_example("agents/echo.py");
    let connection = |name: &str, range: &str| {
        format!(
            "---\napiVersion: goondan.ai/v1\nkind: Connection\nmetadata: {{ name: {name} }}\nspec:\n  connectorRef: {{ name: telegram, version: \"{range}\" }}\n  secrets: {{ BOT_TOKEN: {{ value: x }} }}\n"
        )
    };
    let rest = "---\napiVersion: goondan.ai/v1\nkind: Swarm\nmetadata: { name: default }\nspec: { entryAgent: Agent/a, agents: [Agent/a] }\n---\napiVersion: goondan.ai/v1\nkind: Agent\nmetadata: { name: a }\nspec: { entry: ./echo.py }\n";
    // The shipped telegram connector is 0.1.x.
    let fits = format!(
        "{}{}{rest}",
        shipped("telegram"),
        connection("fits", "~0.1")
    );
    h.write("fits.yaml", &fits);
    let out = h.validate("fits.yaml");
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let bundle = format!(
        "{}{}{}{rest}",
        shipped("telegram"),
        connection("fits", "~0.1"),
        connection("too-old", "^1")
    );
    h.write("bundle.yaml", &bundle);
    let out = h.validate("bundle.yaml");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let line = bundle
        .lines()
        .position(|l| l.contains("version: \"^1\""))
        .map(|i| i + 1)
        .expect("the range's line");
    let column = bundle
        .lines()
        .nth(line - 1)
        .and_then(|l| l.find("\"^1\""))
        .expect("column")
        + 1;
    let want = format!(
        "bundle.yaml:{line}:{column}: Connection/too-old: `spec.connectorRef.version`: Connector `telegram` is version 0.1.0, which does not satisfy `^1`"
    );
    // That one error and the count: the Connection whose range fits is not reported.
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [want.as_str(), "bundle.yaml: 1 error"],
        "{err}"
    );
}
