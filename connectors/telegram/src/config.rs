//! The Connection's config and secrets, checked: any problem is a `ConfigError` (exit 78).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use connector_sdk::{ConfigError, Secrets};

/// The public Bot API.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";
/// `getUpdates` long-poll timeout when `POLL_TIMEOUT` is not set.
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(30);
/// The most bytes `getFile` returns when `MAX_FILE_BYTES` is not set: 2 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;
/// The highest `MAX_FILE_BYTES`: a result travels base64 (4/3 the size) in one
/// frame of at most 4 MiB (the SDK's frame limit), so 3 MiB less some room.
/// (The public Bot API serves bots files of up to 20 MB.)
pub const MAX_FILE_BYTES_LIMIT: u64 = 3 * 1024 * 1024 - 64 * 1024;

/// The checked configuration. Its `Debug` hides the token.
#[derive(Clone)]
pub struct Config {
    /// `API_BASE` without a trailing `/`.
    pub api_base: String,
    /// `BOT_TOKEN`.
    pub token: String,
    /// `POLL_TIMEOUT`, whole seconds, at least 1.
    pub poll_timeout: Duration,
    /// `ALLOWED_UPDATES`, when set.
    pub allowed_updates: Option<Vec<String>>,
    /// `MAX_FILE_BYTES`: the most bytes `getFile` fetches and returns.
    pub max_file_bytes: u64,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("api_base", &self.api_base)
            .field("token", &"<redacted>")
            .field("poll_timeout", &self.poll_timeout)
            .field("allowed_updates", &self.allowed_updates)
            .field("max_file_bytes", &self.max_file_bytes)
            .finish()
    }
}

impl Config {
    /// Reads `API_BASE`, `POLL_TIMEOUT`, `ALLOWED_UPDATES`, `MAX_FILE_BYTES`
    /// and the secret `BOT_TOKEN`.
    pub fn parse(
        config: &BTreeMap<String, String>,
        secrets: &Secrets,
    ) -> Result<Self, ConfigError> {
        let get = |k: &str| config.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let token = secrets
            .get("BOT_TOKEN")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ConfigError::new("secret BOT_TOKEN is not set"))?;
        if token.contains(['/', '?', '#', ' ']) {
            return Err(ConfigError::new(
                "secret BOT_TOKEN has characters a bot token never has (/ ? # or space)",
            ));
        }
        let api_base = get("API_BASE")
            .unwrap_or(DEFAULT_API_BASE)
            .trim_end_matches('/')
            .to_owned();
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            return Err(ConfigError::new(format!(
                "API_BASE {api_base:?} is not an http(s) URL"
            )));
        }
        let poll_timeout = match get("POLL_TIMEOUT") {
            None => DEFAULT_POLL_TIMEOUT,
            Some(v) => parse_seconds(v)?,
        };
        let allowed_updates = get("ALLOWED_UPDATES").map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        });
        let max_file_bytes = match get("MAX_FILE_BYTES") {
            None => DEFAULT_MAX_FILE_BYTES,
            Some(v) => v
                .parse()
                .ok()
                .filter(|n| (1..=MAX_FILE_BYTES_LIMIT).contains(n))
                .ok_or_else(|| {
                    ConfigError::new(format!(
                        "MAX_FILE_BYTES {v:?} is not a whole number of bytes from 1 to \
                         {MAX_FILE_BYTES_LIMIT} (a file travels base64 in one 4 MiB frame)"
                    ))
                })?,
        };
        Ok(Config {
            api_base,
            token: token.to_owned(),
            poll_timeout,
            allowed_updates,
            max_file_bytes,
        })
    }
}

/// `30` or `30s` (whole seconds, at least 1: Telegram's timeout is in seconds).
fn parse_seconds(v: &str) -> Result<Duration, ConfigError> {
    let bad = || {
        ConfigError::new(format!(
            "POLL_TIMEOUT {v:?} is not a whole number of seconds of at least 1 (e.g. 30 or 30s)"
        ))
    };
    let secs: u64 = v
        .strip_suffix('s')
        .unwrap_or(v)
        .trim()
        .parse()
        .map_err(|_| bad())?;
    if secs == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(config: &[(&str, &str)], token: Option<&str>) -> Result<Config, String> {
        let config = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let secrets = Secrets(
            token
                .map(|t| BTreeMap::from([("BOT_TOKEN".to_string(), t.to_string())]))
                .unwrap_or_default(),
        );
        Config::parse(&config, &secrets).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = parse(&[], Some("123:abc")).unwrap();
        assert_eq!(c.api_base, "https://api.telegram.org");
        assert_eq!(c.poll_timeout, Duration::from_secs(30));
        assert_eq!(c.allowed_updates, None);
        assert_eq!(c.max_file_bytes, 2 * 1024 * 1024);
        assert!(!format!("{c:?}").contains("123:abc"));
    }

    #[test]
    fn values() {
        let c = parse(
            &[
                ("API_BASE", "http://127.0.0.1:8081/"),
                ("POLL_TIMEOUT", "2s"),
                ("ALLOWED_UPDATES", "message, callback_query"),
                ("MAX_FILE_BYTES", "1000"),
            ],
            Some("123:abc"),
        )
        .unwrap();
        assert_eq!(c.api_base, "http://127.0.0.1:8081");
        assert_eq!(c.max_file_bytes, 1000);
        assert_eq!(c.poll_timeout, Duration::from_secs(2));
        assert_eq!(
            c.allowed_updates,
            Some(vec!["message".to_owned(), "callback_query".to_owned()])
        );
    }

    #[test]
    fn mistakes() {
        type Case = (
            &'static [(&'static str, &'static str)],
            Option<&'static str>,
            &'static str,
        );
        let cases: &[Case] = &[
            (&[], None, "BOT_TOKEN is not set"),
            (&[], Some("  "), "BOT_TOKEN is not set"),
            (&[], Some("12/3"), "BOT_TOKEN has characters"),
            (&[("API_BASE", "api.telegram.org")], Some("1:a"), "API_BASE"),
            (&[("POLL_TIMEOUT", "0")], Some("1:a"), "POLL_TIMEOUT"),
            (&[("POLL_TIMEOUT", "1.5")], Some("1:a"), "POLL_TIMEOUT"),
            (&[("MAX_FILE_BYTES", "0")], Some("1:a"), "MAX_FILE_BYTES"),
            (&[("MAX_FILE_BYTES", "20Mi")], Some("1:a"), "MAX_FILE_BYTES"),
            (
                &[("MAX_FILE_BYTES", "20971520")],
                Some("1:a"),
                "MAX_FILE_BYTES",
            ),
        ];
        for (config, token, want) in cases {
            let e = parse(config, *token).unwrap_err();
            assert!(e.contains(want), "{config:?}: {e}");
            assert!(!e.contains("12/3"), "the token is never in a message");
        }
    }
}
