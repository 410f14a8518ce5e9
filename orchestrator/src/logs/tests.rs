use std::time::Duration;

use super::*;

/// Waits (with a deadline) until `path` holds `want` lines.
async fn wait_lines(path: &Path, want: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= want || tokio::time::Instant::now() > deadline {
            return lines;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn lines_are_stamped_and_long_ones_cut() {
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
    let lines = wait_lines(&path, 2).await;
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

#[tokio::test]
async fn rotates_by_size_and_keeps_n_files() {
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
    let rotated = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&path)
        .unwrap_or_default()
        .contains("last")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the last line never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(rotated(1).exists() && rotated(2).exists());
    assert!(!rotated(3).exists(), "only `keep` rotated files stay");
    for p in [path.clone(), rotated(1), rotated(2)] {
        assert!(
            std::fs::metadata(&p).unwrap().len() < 260,
            "{p:?} stays near max_bytes"
        );
    }
    // Nothing is out of order across the files that remain.
    let newest = std::fs::read_to_string(rotated(1)).unwrap();
    assert!(newest.contains("line number 03"));
}

#[tokio::test]
async fn a_flood_is_limited_and_the_drop_is_reported() {
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
    let lines = wait_lines(&path, 7).await;
    let kept = lines
        .iter()
        .filter(|l| l.contains(" stderr flood "))
        .count();
    assert_eq!(kept, 5, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("orchestrator 95 lines dropped")),
        "{lines:#?}"
    );
    assert!(lines.last().unwrap().ends_with("after the flood"));
}
