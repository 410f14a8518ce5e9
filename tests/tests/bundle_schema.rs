//! `orchestrator schema` prints the committed JSON Schema of the bundle.

use e2e::Harness;

#[test]
fn schema_prints_the_committed_json_schema() {
    let h = Harness::new();
    let out = h.command().arg("schema").output().expect("schema");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let printed = String::from_utf8(out.stdout).expect("utf-8");
    let committed = std::fs::read_to_string(e2e::workspace_dir().join("schema/bundle.schema.json"))
        .expect("schema/bundle.schema.json");
    assert!(
        printed == committed,
        "schema/bundle.schema.json is not what `orchestrator schema` prints; regenerate it with \
         UPDATE_SCHEMA=1 cargo nextest run -p orchestrator the_committed_schema_is_current"
    );
    let schema: serde_json::Value = serde_json::from_str(&printed).expect("JSON");
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "draft 2020-12"
    );
}
