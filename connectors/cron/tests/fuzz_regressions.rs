//! Inputs the fuzzer (`fuzz/`, target `cron`) found, kept as tests. The
//! whole inputs are in `fuzz/regressions/cron/`.

use std::collections::BTreeMap;

use connector_cron::Config;

fn parse(pairs: &[(&str, &str)]) -> Result<Config, String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::parse(&map, "fuzz").map_err(|e| e.to_string())
}

/// croner parsed these, but no time matches them: the connector started and
/// never fired, and every look for a slot searched to the year 5000.
#[test]
fn an_expression_no_time_matches_is_refused_at_start() {
    for (expr, tz) in [
        ("*/5 * , * *", "UTC"),
        ("*/5 , * * *", "UTC"),
        ("*/5 * 4 * +", "UTC"),
        ("0 30 , * * MON-FRI", "Europe/Berlin"),
        ("0 0 30 2 *", "UTC"),
        ("0 0 31 4 *", "America/New_York"),
    ] {
        let err = parse(&[("SCHEDULE", expr), ("TIMEZONE", tz)])
            .err()
            .unwrap_or_else(|| panic!("{expr:?} was accepted"));
        assert!(err.contains("never fires"), "{expr:?}: {err}");
        assert!(err.contains(expr), "the error names the expression: {err}");
    }
}

/// Rare but real slots are still accepted.
#[test]
fn rare_expressions_still_parse() {
    for expr in ["0 0 29 2 *", "0 0 13 * FRI", "0 12 * * 5#5", "0 0 L 2 *"] {
        let cfg = parse(&[("SCHEDULE", expr)]).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
        let from = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("a time");
        let next = cfg.schedule.next_after(from).expect("a next slot");
        assert!(next > from);
    }
}
