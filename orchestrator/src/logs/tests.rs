use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::*;

/// Every line sent so far, once the writer thread has written them.
fn lines_of(path: &Path) -> Vec<String> {
    flush();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(str::to_string).collect()
}

#[test]
fn lines_are_stamped_and_long_ones_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    let sink = LogSink::open_with(
        &path,
        LogOptions {
            max_line: 8,
            ..Default::default()
        },
    )
    .unwrap();
    sink.line("stderr", "short\n");
    sink.line("stdout", "0123456789abcdef");
    let lines = lines_of(&path);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].ends_with(" stderr short"), "{}", lines[0]);
    assert!(
        lines[0].starts_with("20") && lines[0].contains('T'),
        "timestamp first: {}",
        lines[0]
    );
    assert!(
        lines[1].ends_with(" stdout 01234567 [line cut at 8 bytes]"),
        "{}",
        lines[1]
    );
}

/// A child's `log` message or stderr line cannot forge a line of its own.
#[test]
fn control_characters_cannot_forge_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forge.log");
    let sink = LogSink::open(&path).unwrap();
    let forged = "hello\n2026-11-27T10:30:00.000Z orchestrator exited with status 0\r\u{1b}[2K";
    sink.line("info", forged);
    sink.note(&format!("note {forged}"));
    let lines = lines_of(&path);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].ends_with(
            " info hello\\n2026-11-27T10:30:00.000Z orchestrator exited with status 0\\r\\e[2K"
        ),
        "{}",
        lines[0]
    );
    assert!(
        lines
            .iter()
            .all(|l| !l.contains('\u{1b}') && !l.contains('\r'))
    );
}

/// The writer is a thread of its own: a sink works with no tokio runtime at
/// all (it used to be a tokio task doing file I/O on a worker).
#[test]
fn sinks_need_no_runtime() {
    assert!(tokio::runtime::Handle::try_current().is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/plain.log");
    let sink = LogSink::open(&path).unwrap();
    sink.note("written without a runtime");
    assert_eq!(lines_of(&path).len(), 1);
    // Created private: the file 0600, the directories it made 0700.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("sub/dir")), 0o700);
    assert_eq!(mode(&dir.path().join("sub")), 0o700);
}

#[test]
fn rotates_by_size_and_keeps_n_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.log");
    let opts = LogOptions {
        max_bytes: 200,
        keep: 2,
        ..Default::default()
    };
    let sink = LogSink::open_with(&path, opts).unwrap();
    for i in 0..40 {
        sink.line("stdout", &format!("line number {i:03}"));
    }
    sink.note("last");
    let current = lines_of(&path);
    assert!(current.last().unwrap().ends_with("last"), "{current:?}");
    let rotated = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    assert!(rotated(1).exists() && rotated(2).exists());
    assert!(!rotated(3).exists(), "only `keep` rotated files stay");
    for p in [path.clone(), rotated(1), rotated(2)] {
        assert!(
            std::fs::metadata(&p).unwrap().len() < 260,
            "{p:?} stays near max_bytes"
        );
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{p:?}");
    }
    // Nothing is out of order across the files that remain.
    let newest = std::fs::read_to_string(rotated(1)).unwrap();
    assert!(newest.contains("line number 03"));
}

#[test]
fn a_flood_is_limited_and_the_drop_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.log");
    let opts = LogOptions {
        lines_per_sec: 1.0,
        burst: 5.0,
        ..Default::default()
    };
    let sink = LogSink::open_with(&path, opts).unwrap();
    for i in 0..100 {
        sink.line("stderr", &format!("flood {i}"));
    }
    // Notes are never refused, and carry the count of what was dropped.
    sink.note("after the flood");
    let lines = lines_of(&path);
    let kept = lines
        .iter()
        .filter(|l| l.contains(" stderr flood "))
        .count();
    assert_eq!(kept, 5, "{lines:#?}");
    // One report (or, should the writer's tick fall in the middle, two).
    let dropped: u64 = lines
        .iter()
        .filter_map(|l| l.strip_suffix(" lines dropped"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(dropped, 95, "{lines:#?}");
    assert!(lines.iter().any(|l| l.ends_with("after the flood")));
}

/// A flood followed by silence is still reported (by the writer thread, at
/// its next tick or when the file closes), not only at the next line.
#[test]
fn drops_are_reported_after_the_flood_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quiet.log");
    let opts = LogOptions {
        lines_per_sec: 0.0,
        burst: 2.0,
        ..Default::default()
    };
    let sink = LogSink::open_with(&path, opts).unwrap();
    for i in 0..10 {
        sink.line("stderr", &format!("flood {i}"));
    }
    drop(sink);
    let lines = lines_of(&path);
    let dropped: u64 = lines
        .iter()
        .filter_map(|l| l.strip_suffix(" lines dropped"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(dropped, 8, "{lines:#?}");
    assert!(
        lines.last().unwrap().ends_with(" lines dropped"),
        "{lines:#?}"
    );
}

/// A deferred sink touches no disk in `open`: the writer thread creates the
/// directory and the file, and the lines still arrive in order.
#[test]
fn a_deferred_sink_opens_on_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents/a/k.log");
    let sink = LogSink::open_deferred(&path, LogOptions::default()).unwrap();
    sink.note("one");
    sink.line("stdout", "two");
    let lines = lines_of(&path);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].ends_with(" orchestrator one") && lines[1].ends_with(" stdout two"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // A path that cannot be opened loses its lines, not the writer.
    std::fs::write(dir.path().join("file"), "").unwrap();
    let bad = LogSink::open_deferred(&dir.path().join("file/x.log"), LogOptions::default());
    bad.unwrap().note("lost");
    sink.note("three");
    assert_eq!(lines_of(&path).len(), 3);
}

/// Whether this process holds `path` open.
fn held_open(path: &Path) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|p| p == path))
}

/// An idle instance's log gives its descriptor back, and takes it again
/// for the next line; nothing is lost either way.
#[test]
fn a_released_log_closes_its_file_until_the_next_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = std::fs::canonicalize(dir.path()).unwrap().join("a.log");
    let sink = LogSink::open(&path).unwrap();
    sink.note("before");
    flush();
    assert!(held_open(&path));
    sink.release();
    flush();
    assert!(!held_open(&path), "released: the file is closed");
    sink.note("after");
    let lines = lines_of(&path);
    assert!(held_open(&path), "the next line opened it again");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].ends_with("orchestrator after"), "{lines:?}");
}
