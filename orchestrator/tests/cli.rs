//! The binary's exit codes, as the README documents them (0 ok, 1 failure,
//! 2 usage, 3 invalid bundle). Being an integration test of this package also
//! makes `cargo test`/`nextest` build the `orchestrator` binary up front, so
//! the end-to-end tests find it ready.

use std::path::PathBuf;
use std::process::Command;

fn orchestrator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orchestrator"))
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn version_exits_0() {
    let out = orchestrator().arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("orchestrator "));
}

#[test]
fn an_unknown_verb_is_a_usage_error() {
    let out = orchestrator().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"));
}

#[test]
fn an_invalid_bundle_exits_3_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.yaml");
    std::fs::write(&bundle, "apiVersion: goondan.ai/v1\nkind: Agent\nmetadata: {name: a}\nspec: {entry: x, colour: red}\n")
        .unwrap();
    let out = orchestrator()
        .arg("validate")
        .arg(&bundle)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bundle.yaml:4:18: Agent/a: unknown field `colour`"),
        "{stderr}"
    );
}

#[test]
fn status_without_a_running_orchestrator_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = orchestrator()
        .args(["status", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("control.sock"));
}

#[test]
fn every_shipped_bundle_and_connector_parses() {
    // The quickstart's entries are found next to the orchestrator binary
    // once the workspace is built; here only its shape is checked.
    let quickstart =
        std::fs::read_to_string(workspace().join("examples/quickstart/bundle.yaml")).unwrap();
    let mut sources = vec![orchestrator::bundle::Source {
        name: "quickstart/bundle.yaml".into(),
        text: quickstart,
    }];
    let mut names: Vec<String> = std::fs::read_dir(workspace().join("connectors"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("connector.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 7, "{names:?}");
    for name in &names {
        let path = workspace().join(format!("connectors/{name}/connector.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        // Each connector.yaml parses on its own.
        let one = orchestrator::bundle::parse(
            &workspace(),
            &[orchestrator::bundle::Source {
                name: path.display().to_string(),
                text: text.clone(),
            }],
        );
        assert!(one.is_ok(), "{name}: {:?}", one.err());
        if name != "webhook" {
            sources.push(orchestrator::bundle::Source {
                name: path.display().to_string(),
                text,
            });
        }
    }
    let all = orchestrator::bundle::parse(&workspace(), &sources);
    assert!(all.is_ok(), "{:?}", all.err());
    // Every example bundle (a file, or a directory of YAML files) loads.
    for entry in std::fs::read_dir(workspace().join("examples"))
        .unwrap()
        .flatten()
    {
        let dir = entry.path();
        if dir.join("bundle.yaml").is_file() {
            let target = if dir.join("connector.yaml").exists() {
                dir.clone()
            } else {
                dir.join("bundle.yaml")
            };
            let loaded = orchestrator::bundle::load(&target);
            assert!(loaded.is_ok(), "{}: {:?}", target.display(), loaded.err());
        }
    }
}
