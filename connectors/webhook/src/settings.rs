//! Reading a Connection's `spec.config`: every value is a string, an empty
//! value counts as unset, and a value that does not parse is a [`ConfigError`]
//! (the process exits 78 and waits for a fixed configuration).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use connector_sdk::ConfigError;

/// A Connection's config, with typed getters that name the key in their errors.
#[derive(Clone, Copy, Debug)]
pub struct Settings<'a> {
    config: &'a BTreeMap<String, String>,
}

impl<'a> Settings<'a> {
    /// Wraps `config` (usually `ctx.config()`).
    pub fn new(config: &'a BTreeMap<String, String>) -> Self {
        Settings { config }
    }

    /// The trimmed value of `key`; `None` when absent or empty.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.config
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// `key` parsed as a number, or `default` when unset.
    pub fn number<T: FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ConfigError::new(format!("{key}: '{v}' is not a valid number"))),
        }
    }

    /// `key` parsed as a duration like `5m`, `90s` or `1h 30m`, or `default` when unset.
    pub fn duration(&self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => humantime::parse_duration(v).map_err(|e| {
                ConfigError::new(format!(
                    "{key}: '{v}' is not a duration like 5m or 300s ({e})"
                ))
            }),
        }
    }

    /// `key` parsed by [`FromStr`] (e.g. a scheme or an encoding name), or `None` when unset.
    pub fn parsed<T>(&self, key: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|e| ConfigError::new(format!("{key}: {e}")))
            })
            .transpose()
    }

    /// One warning for each configured key not in `known`, to log at start.
    pub fn unknown_keys(&self, known: &[&str]) -> Vec<String> {
        self.config
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| format!("unknown config key {k} ignored"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_is_unset_and_errors_name_the_key() {
        let m = map(&[
            ("A", " x "),
            ("E", "  "),
            ("N", "12"),
            ("BAD", "twelve"),
            ("W", "5m"),
            ("WS", "soon"),
        ]);
        let s = Settings::new(&m);
        assert_eq!(s.get("A"), Some("x"));
        assert_eq!(s.get("E"), None);
        assert_eq!(s.number("N", 0u16).unwrap(), 12);
        assert_eq!(s.number("E", 7u16).unwrap(), 7);
        let e = s.number("BAD", 0u16).unwrap_err().to_string();
        assert_eq!(e, "BAD: 'twelve' is not a valid number");
        assert_eq!(
            s.duration("W", Duration::ZERO).unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            s.duration("missing", Duration::from_secs(1)).unwrap(),
            Duration::from_secs(1)
        );
        assert!(
            s.duration("WS", Duration::ZERO)
                .unwrap_err()
                .0
                .starts_with("WS: 'soon'")
        );
        assert_eq!(
            s.unknown_keys(&["A", "E", "N", "BAD", "W"]),
            ["unknown config key WS ignored"]
        );
    }
}
