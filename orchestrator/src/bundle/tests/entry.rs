//! `resolve_entry` and `check_entries` against a real temporary directory.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::super::{check_entries, resolve_entry};
use super::{BASE, parse_text};

fn file(path: &Path, mode: u32) -> PathBuf {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, "#!/bin/sh\n").expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    path.to_path_buf()
}

struct Dirs {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    exe: PathBuf,
    path_a: PathBuf,
    path_b: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().expect("tempdir");
    let [root, exe, path_a, path_b] = ["bundle", "exe", "bin-a", "bin-b"].map(|d| {
        let p = tmp.path().join(d);
        fs::create_dir(&p).expect("mkdir");
        p
    });
    Dirs {
        _tmp: tmp,
        root,
        exe,
        path_a,
        path_b,
    }
}

fn path_var(dirs: &[&Path]) -> OsString {
    std::env::join_paths(dirs).expect("join")
}

#[test]
fn a_relative_path_resolves_against_the_root() {
    let d = dirs();
    let want = file(&d.root.join("agents/echo"), 0o755);
    assert_eq!(
        resolve_entry(&d.root, "./agents/echo", None, None),
        Ok(d.root.join("./agents/echo"))
    );
    assert_eq!(resolve_entry(&d.root, "agents/echo", None, None), Ok(want));
}

#[test]
fn a_bare_name_is_found_next_to_the_binary_first() {
    let d = dirs();
    let near = file(&d.exe.join("connector-cli"), 0o755);
    file(&d.path_a.join("connector-cli"), 0o755);
    let path = path_var(&[&d.path_a]);
    assert_eq!(
        resolve_entry(&d.root, "connector-cli", Some(&d.exe), Some(&path)),
        Ok(near)
    );
}

#[test]
fn a_bare_name_falls_back_to_path_in_order() {
    let d = dirs();
    file(&d.path_a.join("tool"), 0o644);
    let on_path = file(&d.path_b.join("tool"), 0o700);
    let path = path_var(&[&d.path_a, &d.path_b]);
    assert_eq!(
        resolve_entry(&d.root, "tool", Some(&d.exe), Some(&path)),
        Ok(on_path)
    );
}

#[test]
fn a_file_without_execute_bits_is_refused() {
    let d = dirs();
    file(&d.root.join("agent.py"), 0o644);
    let err = resolve_entry(&d.root, "./agent.py", None, None).expect_err("not executable");
    assert_eq!(
        err,
        format!(
            "entry './agent.py': {0} is not executable (chmod +x {0})",
            d.root.join("./agent.py").display()
        )
    );

    file(&d.exe.join("helper"), 0o600);
    let err = resolve_entry(&d.root, "helper", Some(&d.exe), None).expect_err("not executable");
    assert!(err.contains("is not executable"), "{err}");
}

#[test]
fn a_directory_is_not_an_entry() {
    let d = dirs();
    fs::create_dir(d.root.join("agent")).expect("mkdir");
    let err = resolve_entry(&d.root, "./agent", None, None).expect_err("a directory");
    assert!(err.ends_with("is not a regular file"), "{err}");
}

#[test]
fn a_missing_entry_says_where_it_looked() {
    let d = dirs();
    let path = path_var(&[&d.path_a]);
    let err =
        resolve_entry(&d.root, "connector-foo", Some(&d.exe), Some(&path)).expect_err("missing");
    assert_eq!(
        err,
        format!(
            "entry 'connector-foo' not found next to {}, on PATH or beside the bundle",
            d.exe.display()
        )
    );
    let err = resolve_entry(&d.root, "./nope", None, None).expect_err("missing");
    assert_eq!(
        err,
        format!(
            "entry './nope': {} does not exist",
            d.root.join("./nope").display()
        )
    );
    // An empty PATH element is not the current directory.
    let err =
        resolve_entry(&d.root, "sh-like", None, Some(&OsString::from(""))).expect_err("missing");
    assert!(
        err.contains("not found beside the bundle (no orchestrator"),
        "{err}"
    );
}

#[test]
fn check_entries_reports_each_unresolvable_program_at_its_entry() {
    let bundle = parse_text(BASE).expect("valid");
    let diags = check_entries(&bundle, |entry| {
        if entry == "./agent" {
            Ok(PathBuf::from("/bundle/agent"))
        } else {
            Err(format!("entry '{entry}' missing"))
        }
    });
    let got: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        ["bundle.yaml:5:10: Connector/tg: `spec.entry`: entry './connector-tg' missing"]
    );
    assert!(check_entries(&bundle, |_| Ok(PathBuf::from("/x"))).is_empty());
}

#[test]
fn a_bare_name_beside_the_bundle_is_found_last() {
    let d = dirs();
    let beside = file(&d.root.join("three.py"), 0o755);
    let path = path_var(&[&d.path_a]);
    assert_eq!(
        resolve_entry(&d.root, "three.py", Some(&d.exe), Some(&path)),
        Ok(beside)
    );
    // A program of that name on PATH wins over the file beside the bundle.
    let on_path = file(&d.path_a.join("three.py"), 0o755);
    assert_eq!(
        resolve_entry(&d.root, "three.py", Some(&d.exe), Some(&path)),
        Ok(on_path)
    );
}

#[test]
fn a_bare_name_beside_the_bundle_without_execute_bits_says_chmod() {
    let d = dirs();
    file(&d.root.join("three.py"), 0o644);
    let err = resolve_entry(&d.root, "three.py", None, None).expect_err("not executable");
    assert!(
        err.contains(&format!("(chmod +x {})", d.root.join("three.py").display())),
        "{err}"
    );
}
