//! What ships with the workspace: every `connectors/*/connector.yaml`
//! declares its version, config and secrets; and the list of shipped YAML
//! the schema tests check.

use std::path::{Path, PathBuf};

pub(super) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `*.yaml` of every example bundle, and every shipped `connector.yaml`.
pub(super) fn shipped_yaml() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let dirs = |sub: &str| -> Vec<PathBuf> {
        let mut d: Vec<PathBuf> = std::fs::read_dir(workspace().join(sub))
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        d.sort();
        d
    };
    for dir in dirs("examples") {
        // Monitoring holds a Prometheus config, not a bundle.
        if dir.ends_with("monitoring") {
            continue;
        }
        let mut yaml: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        yaml.sort();
        files.extend(yaml);
    }
    for dir in dirs("connectors") {
        files.push(dir.join("connector.yaml"));
    }
    files
}

/// Each `connectors/*/connector.yaml` says which version it is, and what
/// config and secrets a Connection gives it.
#[test]
fn every_shipped_connector_declares_version_config_and_secrets() {
    let mut checked = 0;
    for path in shipped_yaml()
        .iter()
        .filter(|p| p.starts_with(workspace().join("connectors")))
    {
        let text = std::fs::read_to_string(path).expect("connector.yaml");
        let bundle = super::super::parse(
            &workspace(),
            &[super::super::Source {
                name: path.display().to_string(),
                text,
            }],
        )
        .unwrap_or_else(|d| panic!("{}: {d:#?}", path.display()));
        for c in bundle.connectors.values() {
            let at = path.display();
            let version = c
                .version
                .as_deref()
                .unwrap_or_else(|| panic!("{at}: no spec.version"));
            assert!(semver::Version::parse(version).is_ok(), "{at}: {version}");
            let config = c
                .config_schema
                .as_ref()
                .unwrap_or_else(|| panic!("{at}: no spec.config"));
            assert!(
                config["properties"].is_object(),
                "{at}: spec.config names no keys"
            );
            assert!(c.secrets.is_some(), "{at}: no spec.secrets");
            checked += 1;
        }
    }
    assert!(checked >= 7, "{checked} connectors");
}
