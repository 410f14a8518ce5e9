//! The Connection's `spec.config`, checked: any problem is a `ConfigError` (exit 78).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono_tz::Tz;
use connector_sdk::ConfigError;

use crate::schedule::Schedule;

/// What to fire for the slots that passed while the connector was not running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatchUp {
    /// Nothing.
    Skip,
    /// Only the latest missed slot.
    Latest,
    /// Every missed slot, oldest first (at most [`MAX_CATCH_UP`]).
    All,
}

/// `CATCH_UP: all` fires at most this many missed slots: the latest ones.
pub const MAX_CATCH_UP: usize = 1000;

impl fmt::Display for CatchUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CatchUp::Skip => "skip",
            CatchUp::Latest => "latest",
            CatchUp::All => "all",
        })
    }
}

impl FromStr for CatchUp {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim() {
            "skip" => Ok(CatchUp::Skip),
            "latest" => Ok(CatchUp::Latest),
            "all" => Ok(CatchUp::All),
            other => Err(ConfigError::new(format!(
                "CATCH_UP {other:?} is not one of skip, latest, all"
            ))),
        }
    }
}

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// When to fire.
    pub schedule: Schedule,
    /// What to do about missed slots.
    pub catch_up: CatchUp,
    /// The optional label (`NAME`).
    pub name: Option<String>,
    /// `cron:<NAME>`, else `cron:<connection>`.
    pub instance_key: String,
}

impl Config {
    /// Reads `SCHEDULE` or `EVERY`, `TIMEZONE`, `CATCH_UP` and `NAME`.
    pub fn parse(config: &BTreeMap<String, String>, connection: &str) -> Result<Self, ConfigError> {
        let get = |k: &str| config.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let tz = match get("TIMEZONE") {
            None => Tz::UTC,
            Some(name) => name.parse::<Tz>().map_err(|_| {
                ConfigError::new(format!(
                    "TIMEZONE {name:?} is not an IANA time zone name such as Europe/Berlin"
                ))
            })?,
        };
        let schedule = match (get("SCHEDULE"), get("EVERY")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new("set either SCHEDULE or EVERY, not both"));
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "set SCHEDULE (a cron expression) or EVERY (an interval such as 5m)",
                ));
            }
            (Some(expr), None) => Schedule::cron(expr, tz),
            (None, Some(every)) => Schedule::every(every),
        }
        .map_err(ConfigError::new)?;
        let catch_up = get("CATCH_UP").map_or(Ok(CatchUp::Skip), str::parse)?;
        let name = get("NAME").map(str::to_owned);
        let instance_key = format!("cron:{}", name.as_deref().unwrap_or(connection));
        Ok(Config {
            schedule,
            catch_up,
            name,
            instance_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(&map, "nightly").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_names() {
        let c = parse(&[("EVERY", "5m")]).unwrap();
        assert_eq!(c.catch_up, CatchUp::Skip);
        assert_eq!(c.instance_key, "cron:nightly");
        assert_eq!(c.name, None);
        let c = parse(&[
            ("SCHEDULE", "0 9 * * *"),
            ("NAME", "report"),
            ("CATCH_UP", "all"),
        ])
        .unwrap();
        assert_eq!(c.instance_key, "cron:report");
        assert_eq!(c.catch_up, CatchUp::All);
        assert_eq!(c.schedule.describe(), "0 9 * * *");
    }

    #[test]
    fn every_mistake_is_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "set SCHEDULE"),
            (&[("EVERY", "5m"), ("SCHEDULE", "* * * * *")], "not both"),
            (&[("EVERY", "5m"), ("TIMEZONE", "Mars/Olympus")], "TIMEZONE"),
            (&[("EVERY", "5m"), ("CATCH_UP", "some")], "CATCH_UP"),
            (&[("SCHEDULE", "every day")], "SCHEDULE"),
            (&[("EVERY", "often")], "EVERY"),
        ];
        for (pairs, want) in cases {
            let e = parse(pairs).unwrap_err();
            assert!(e.contains(want), "{pairs:?}: {e}");
        }
    }
}
