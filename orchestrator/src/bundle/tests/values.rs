//! The value syntaxes on their own.

use std::time::Duration;

use super::super::common::{check_name, is_env_name, parse_duration, parse_percent, parse_size};

#[test]
fn sizes() {
    let ok = [
        ("0", 0),
        ("1048576", 1 << 20),
        ("256Mi", 256 << 20),
        ("1G", 1_000_000_000),
        ("4Ki", 4096),
        ("2Ti", 2 << 40),
    ];
    for (text, want) in ok {
        assert_eq!(parse_size(text), Ok(want), "{text}");
    }
    for bad in [
        "",
        "Mi",
        "1.5Gi",
        "-1",
        "12 Mi",
        "1mb",
        "99999999999999999999",
        "99999999999Ti",
    ] {
        assert!(parse_size(bad).is_err(), "{bad}");
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
    for bad in ["", "10", "soon", "-1s"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn percentages() {
    assert_eq!(parse_percent("50%"), Ok(50));
    assert_eq!(parse_percent("250%"), Ok(250));
    for bad in ["50", "0%", "%", "-5%", "1.5%"] {
        assert!(parse_percent(bad).is_err(), "{bad}");
    }
}

#[test]
fn names() {
    for ok in [
        "a",
        "telegram-production",
        "v1.2_x",
        "0abc",
        &"a".repeat(63),
    ] {
        assert!(check_name(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "-a",
        ".hidden",
        "a/b",
        "a b",
        "ünï",
        &"a".repeat(64),
        "..",
    ] {
        assert!(check_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn env_names() {
    assert!(is_env_name("RUST_LOG") && is_env_name("_x1"));
    assert!(!is_env_name("1X") && !is_env_name("A-B") && !is_env_name(""));
}
