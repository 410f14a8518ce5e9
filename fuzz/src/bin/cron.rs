//! The cron connector's schedule: its configuration (`SCHEDULE` or `EVERY`,
//! `TIMEZONE`, `CATCH_UP`, `NAME`) and the slots a schedule gives from any
//! time, forwards and backwards.
//!
//! Input, separated by 0xFF: config lines (`KEY=VALUE`), 8 bytes of clock,
//! 8 bytes of a second clock, one byte of catch-up cap. Contract: no panic
//! and no endless search; a refusal says why; `next_after(t) > t`,
//! `before(t) < t`, `at_or_before(t) <= t`; the missed slots between two
//! times lie between them, latest first, at most cap + 1 of them.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use chrono::{DateTime, Utc};
use connector_cron::Config;

fn time(bytes: &[u8]) -> DateTime<Utc> {
    let t = fuzz::clock(bytes);
    let d = t.duration_since(UNIX_EPOCH).expect("after 1970");
    // Odd clocks fall inside a millisecond, even ones on a whole second.
    let nanos = if d.as_secs() % 2 == 1 { 500_123 } else { 0 };
    DateTime::from_timestamp(d.as_secs() as i64, nanos).expect("in chrono's range")
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let p = fuzz::parts(data, 4);
        let Some(config) = fuzz::text(p[0]) else {
            return;
        };
        let map: BTreeMap<String, String> = config
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let cfg = match Config::parse(&map, "fuzz") {
            Ok(cfg) => cfg,
            Err(e) => {
                assert!(!e.to_string().is_empty(), "a refusal says why");
                return;
            }
        };
        let s = &cfg.schedule;
        let _ = s.describe();
        let t = time(p[1]);
        if let Some(n) = s.next_after(t) {
            assert!(n > t, "next_after({t}) = {n}");
        }
        if let Some(b) = s.before(t) {
            assert!(b < t, "before({t}) = {b}");
        }
        if let Some(a) = s.at_or_before(t) {
            assert!(a <= t, "at_or_before({t}) = {a}");
        }
        let u = time(p[2]);
        let (after, upto) = if t <= u { (t, u) } else { (u, t) };
        let cap = usize::from(p[3].first().copied().unwrap_or(3) % 16);
        let slots = s.slots_between(after, upto, cap);
        assert!(slots.len() <= cap + 1, "at most cap + 1 slots");
        for w in slots.windows(2) {
            assert!(w[0] > w[1], "latest first");
        }
        for slot in &slots {
            assert!(
                *slot > after && *slot <= upto,
                "{slot} in ({after}, {upto}]"
            );
        }
    });
}
