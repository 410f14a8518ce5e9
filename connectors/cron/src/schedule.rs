//! Slots: the instants a schedule fires at, forwards and backwards from any time.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// When to fire.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// A cron expression, evaluated in a time zone.
    Cron {
        /// The parsed expression.
        cron: Box<Cron>,
        /// Where its wall-clock fields are read.
        tz: Tz,
        /// The expression as configured.
        text: String,
    },
    /// Every `millis` milliseconds, at the multiples of it since the Unix epoch.
    Every {
        /// The interval, at least 1 ms.
        millis: i64,
        /// The interval as configured.
        text: String,
    },
}

impl Schedule {
    /// Parses a cron expression of 5 fields (minute first) or 6 (second first).
    pub fn cron(text: &str, tz: Tz) -> Result<Self, String> {
        let text = text.trim();
        let fields = text.split_whitespace().count();
        if !text.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "SCHEDULE {text:?} has {fields} fields; expected 5 (minute hour day month weekday) \
                 or 6 (with seconds first)"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(text)
            .map_err(|e| format!("SCHEDULE {text:?} is not a cron expression: {e}"))?;
        // croner accepts some expressions no time matches (an empty list
        // item as in `*/5 * , * *`, a lone `+` weekday, 30 February): such a
        // schedule would start and never fire. One that can fire does so
        // within 400 years (the Gregorian cycle) of any instant, well inside
        // croner's search limit (the year 5000).
        let reference = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(10_957); // 2000-01-01
        if cron
            .find_next_occurrence(&reference.with_timezone(&tz), false)
            .is_err()
        {
            return Err(format!(
                "SCHEDULE {text:?} never fires: no time matches every field"
            ));
        }
        Ok(Schedule::Cron {
            cron: Box::new(cron),
            tz,
            text: text.to_owned(),
        })
    }

    /// Parses an interval such as `30s`, `5m`, `1h 30m` or `250ms`.
    pub fn every(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let d = humantime::parse_duration(text)
            .map_err(|e| format!("EVERY {text:?} is not an interval like 30s or 5m: {e}"))?;
        let millis = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        if millis < 1 {
            return Err(format!("EVERY {text:?} is shorter than 1ms"));
        }
        Ok(Schedule::Every {
            millis,
            text: text.to_owned(),
        })
    }

    /// The schedule as the `schedule` property shows it: the expression, or `every <interval>`.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Cron { text, .. } => text.clone(),
            Schedule::Every { text, .. } => format!("every {text}"),
        }
    }

    /// The interval of an `EVERY` schedule.
    pub fn interval(&self) -> Option<Duration> {
        match self {
            Schedule::Every { millis, .. } => Some(Duration::from_millis(*millis as u64)),
            Schedule::Cron { .. } => None,
        }
    }

    /// The first slot strictly after `t`; `None` when there is none.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { cron, tz, .. } => cron
                .find_next_occurrence(&t.with_timezone(tz), false)
                .ok()
                .map(|d| d.with_timezone(&Utc)),
            Schedule::Every { millis, .. } => {
                let ms = t.timestamp_millis();
                let next = (ms.div_euclid(*millis) + 1).checked_mul(*millis)?;
                DateTime::from_timestamp_millis(next)
            }
        }
    }

    /// The last slot at or before `t`.
    pub fn at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.previous(t, true)
    }

    /// The last slot strictly before `t`.
    pub fn before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.previous(t, false)
    }

    fn previous(&self, t: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { cron, tz, .. } => cron
                .find_previous_occurrence(&t.with_timezone(tz), inclusive)
                .ok()
                .map(|d| d.with_timezone(&Utc)),
            Schedule::Every { millis, .. } => {
                let ms = t.timestamp_millis();
                // A slot is a whole millisecond; `t` may lie inside one.
                let on_slot = ms.rem_euclid(*millis) == 0
                    && t.timestamp_subsec_nanos().is_multiple_of(1_000_000);
                let mut k = ms.div_euclid(*millis);
                if on_slot && !inclusive {
                    k -= 1;
                }
                DateTime::from_timestamp_millis(k.checked_mul(*millis)?)
            }
        }
    }

    /// The slots in `(after, upto]`, latest first, at most `cap + 1` of them
    /// (one more than `cap` says "more than `cap`").
    pub fn slots_between(
        &self,
        after: DateTime<Utc>,
        upto: DateTime<Utc>,
        cap: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut slot = self.at_or_before(upto);
        while let Some(s) = slot {
            if s <= after || out.len() > cap {
                break;
            }
            out.push(s);
            slot = self.before(s);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn cron_in_a_time_zone_fires_at_its_local_time() {
        let s = Schedule::cron("0 9 * * *", chrono_tz::Asia::Seoul).unwrap();
        // 09:00 in Seoul (UTC+9, no DST) is 00:00 UTC.
        assert_eq!(
            s.next_after(t("2026-03-01T12:00:00Z")),
            Some(t("2026-03-02T00:00:00Z"))
        );
        assert_eq!(
            s.at_or_before(t("2026-03-02T00:00:00Z")),
            Some(t("2026-03-02T00:00:00Z"))
        );
        assert_eq!(
            s.before(t("2026-03-02T00:00:00Z")),
            Some(t("2026-03-01T00:00:00Z"))
        );
    }

    #[test]
    fn six_fields_have_seconds_first() {
        let s = Schedule::cron("*/10 * * * * *", Tz::UTC).unwrap();
        assert_eq!(
            s.next_after(t("2026-01-01T00:00:05Z")),
            Some(t("2026-01-01T00:00:10Z"))
        );
    }

    #[test]
    fn dst_gaps_and_repeats_fire_once() {
        // 02:30 does not exist in New York on 2026-03-08 (clocks jump 02:00 → 03:00).
        let s = Schedule::cron("30 2 * * *", chrono_tz::America::New_York).unwrap();
        // It fires once, at the end of the gap: 03:00 EDT.
        assert_eq!(
            s.next_after(t("2026-03-08T05:00:00Z")),
            Some(t("2026-03-08T07:00:00Z"))
        );
        // 01:30 happens twice on 2026-11-01 (EDT, then EST): it fires once.
        let s = Schedule::cron("30 1 * * *", chrono_tz::America::New_York).unwrap();
        let first = s.next_after(t("2026-11-01T04:00:00Z")).unwrap();
        assert_eq!(first, t("2026-11-01T05:30:00Z"));
        assert_eq!(s.next_after(first), Some(t("2026-11-02T06:30:00Z")));
    }

    #[test]
    fn bad_expressions_are_refused_with_the_reason() {
        for bad in ["", "* * * *", "0 0 0 * * * 2026", "61 * * * *", "banana"] {
            let e = Schedule::cron(bad, Tz::UTC).unwrap_err();
            assert!(e.contains("SCHEDULE"), "{bad}: {e}");
        }
        for bad in ["", "0s", "soon", "-5m"] {
            assert!(Schedule::every(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn intervals_are_aligned_to_the_epoch() {
        let s = Schedule::every("30s").unwrap();
        assert_eq!(s.describe(), "every 30s");
        assert_eq!(
            s.next_after(t("2026-01-01T00:00:10Z")),
            Some(t("2026-01-01T00:00:30Z"))
        );
        assert_eq!(
            s.next_after(t("2026-01-01T00:00:30Z")),
            Some(t("2026-01-01T00:01:00Z"))
        );
        assert_eq!(
            s.at_or_before(t("2026-01-01T00:00:30Z")),
            Some(t("2026-01-01T00:00:30Z"))
        );
        assert_eq!(
            s.before(t("2026-01-01T00:00:30Z")),
            Some(t("2026-01-01T00:00:00Z"))
        );
        assert_eq!(
            s.before(t("2026-01-01T00:00:30.5Z")),
            Some(t("2026-01-01T00:00:30Z"))
        );
        let ms = Schedule::every("250ms").unwrap();
        assert_eq!(
            ms.next_after(t("2026-01-01T00:00:00.1Z")),
            Some(t("2026-01-01T00:00:00.25Z"))
        );
    }

    #[test]
    fn slots_between_counts_back_from_the_latest_with_a_cap() {
        let s = Schedule::every("1m").unwrap();
        let got = s.slots_between(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:03:30Z"), 10);
        assert_eq!(
            got,
            vec![
                t("2026-01-01T00:03:00Z"),
                t("2026-01-01T00:02:00Z"),
                t("2026-01-01T00:01:00Z")
            ]
        );
        let capped = s.slots_between(t("2026-01-01T00:00:00Z"), t("2026-01-02T00:00:00Z"), 5);
        assert_eq!(capped.len(), 6, "cap + 1 says there are more");
        assert!(
            s.slots_between(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:00:59Z"), 5)
                .is_empty()
        );
    }
}
