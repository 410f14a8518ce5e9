//! `load`: a file or a directory from disk, into `parse`.

use std::fs;

use super::super::load;
use super::{BASE, doc};

#[test]
fn a_file_is_rooted_at_its_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.yaml");
    fs::write(&path, BASE).expect("write");
    let bundle = load(&path).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(bundle.root, dir.path());
    assert_eq!(
        &*bundle.connectors["tg"].place.file,
        path.display().to_string()
    );
}

#[test]
fn a_directory_reads_its_yaml_files_in_name_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 10-swarms.yaml comes first and holds the Swarm the Connection defaults to.
    fs::write(
        dir.path().join("10-swarms.yaml"),
        doc("Swarm", "first", "entryAgent: a\nagents: [a]"),
    )
    .expect("write");
    fs::write(dir.path().join("20-rest.yml"), BASE).expect("write");
    fs::write(
        dir.path().join("30-conn.yaml"),
        doc("Connection", "c", "connectorRef: tg"),
    )
    .expect("write");
    fs::write(dir.path().join("notes.txt"), "not: yaml: at all").expect("write");
    fs::create_dir(dir.path().join("sub.yaml")).expect("a directory is skipped");
    fs::write(
        dir.path().join("00-agent.yaml"),
        doc("Agent", "a", "entry: ./a"),
    )
    .expect("write");
    let bundle = load(dir.path()).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(bundle.root, dir.path());
    assert_eq!(bundle.connections[0].swarm, "first");
    assert_eq!(bundle.agents.len(), 4);
}

#[test]
fn errors_name_the_files_they_are_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("a.yaml"),
        doc("Agent", "a", "entry: ./a\nmaxQueue: 0"),
    )
    .expect("write");
    let diags = load(dir.path()).expect_err("invalid");
    let want = format!(
        "{}:6:13: Agent/a: `spec.maxQueue`: must be at least 1, found 0",
        dir.path().join("a.yaml").display()
    );
    assert_eq!(diags[0].to_string(), want);
}

#[test]
fn missing_paths_and_empty_directories_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = load(&dir.path().join("nope.yaml")).expect_err("missing");
    assert!(
        missing[0].message.contains("nope.yaml: cannot read"),
        "{}",
        missing[0]
    );
    let empty = load(dir.path()).expect_err("empty");
    assert!(
        empty[0].message.contains("no *.yaml or *.yml files"),
        "{}",
        empty[0]
    );
}

/// A FIFO would hold the reader forever (and with it an `apply`): refused at once.
#[test]
fn a_fifo_is_refused_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.yaml");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let errors = load(&path).expect_err("a FIFO is no bundle");
    assert!(
        errors[0]
            .to_string()
            .ends_with("not a regular file or a directory"),
        "{errors:?}"
    );
}
