//! The Connection's `spec.config`, parsed and checked once at start.

use std::collections::BTreeMap;

use axum::http::HeaderName;
use connector_sdk::ConfigError;

use crate::verify::Verifier;

/// Every key this connector reads.
const KEYS: &[&str] = &[
    "HOST",
    "PORT",
    "SIGNATURE",
    "MAX_BODY_BYTES",
    "EVENT_NAME",
    "EVENT_POINTER",
    "EVENT_HEADER",
    "INSTANCE_KEY_POINTER",
    "TEXT_POINTER",
    "PROPERTIES",
    "DEDUPE_HEADER",
];

/// The checked configuration.
#[derive(Debug)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub verifier: Verifier,
    pub max_body_bytes: usize,
    pub mapping: Mapping,
}

/// How a request becomes an event.
#[derive(Debug, Default)]
pub struct Mapping {
    pub event_name: String,
    pub event_pointer: Option<String>,
    pub event_header: Option<HeaderName>,
    pub instance_key_pointer: Option<String>,
    pub text_pointer: Option<String>,
    /// `(property name, JSON pointer)`, in the order configured.
    pub properties: Vec<(String, String)>,
    pub dedupe_header: Option<HeaderName>,
}

impl Config {
    /// Parses `config`; the second value lists warnings (unknown keys) to log.
    pub fn parse(config: &BTreeMap<String, String>) -> Result<(Config, Vec<String>), ConfigError> {
        // An empty value means the same as an absent key.
        let get = |key: &str| config.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let scheme = get("SIGNATURE").ok_or_else(|| {
            ConfigError::new("SIGNATURE is required: set it to 'none' to accept unsigned requests")
        })?;
        let config_out = Config {
            host: get("HOST").unwrap_or("127.0.0.1").to_string(),
            port: number(get("PORT"), "PORT", 8080)?,
            verifier: Verifier::from_scheme(scheme)?,
            max_body_bytes: number(get("MAX_BODY_BYTES"), "MAX_BODY_BYTES", 1024 * 1024)?,
            mapping: Mapping {
                event_name: get("EVENT_NAME").unwrap_or("webhook").to_string(),
                event_pointer: pointer(get("EVENT_POINTER"), "EVENT_POINTER")?,
                event_header: header(get("EVENT_HEADER"), "EVENT_HEADER")?,
                instance_key_pointer: pointer(get("INSTANCE_KEY_POINTER"), "INSTANCE_KEY_POINTER")?,
                text_pointer: pointer(get("TEXT_POINTER"), "TEXT_POINTER")?,
                properties: properties(get("PROPERTIES"))?,
                dedupe_header: header(get("DEDUPE_HEADER"), "DEDUPE_HEADER")?,
            },
        };
        let warnings = config
            .keys()
            .filter(|k| !KEYS.contains(&k.as_str()))
            .map(|k| format!("unknown config key {k} ignored"))
            .collect();
        Ok((config_out, warnings))
    }
}

fn number<T: std::str::FromStr>(
    value: Option<&str>,
    key: &str,
    default: T,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| ConfigError::new(format!("{key}: '{v}' is not a valid number"))),
    }
}

fn pointer(value: Option<&str>, key: &str) -> Result<Option<String>, ConfigError> {
    match value {
        None => Ok(None),
        Some(p) if p.starts_with('/') => Ok(Some(p.to_string())),
        Some(p) => Err(ConfigError::new(format!(
            "{key}: '{p}' is not a JSON pointer (it must start with '/', e.g. /message/chat/id)"
        ))),
    }
}

fn header(value: Option<&str>, key: &str) -> Result<Option<HeaderName>, ConfigError> {
    value
        .map(|h| {
            HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| ConfigError::new(format!("{key}: '{h}' is not a valid header name")))
        })
        .transpose()
}

fn properties(value: Option<&str>) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let bad = || {
                ConfigError::new(format!(
                    "PROPERTIES: '{pair}' is not name=/json/pointer (e.g. chat_id=/message/chat/id)"
                ))
            };
            let (name, ptr) = pair.split_once('=').ok_or_else(bad)?;
            let (name, ptr) = (name.trim(), ptr.trim());
            if name.is_empty() || !ptr.starts_with('/') {
                return Err(bad());
            }
            Ok((name.to_string(), ptr.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<(Config, Vec<String>), ConfigError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(&map)
    }

    #[test]
    fn defaults() {
        let (c, warnings) = parse(&[("SIGNATURE", "none")]).unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.max_body_bytes),
            ("127.0.0.1", 8080, 1_048_576)
        );
        assert_eq!(c.mapping.event_name, "webhook");
        assert!(c.mapping.properties.is_empty() && c.mapping.dedupe_header.is_none());
        assert!(warnings.is_empty());
    }

    #[test]
    fn every_key() {
        let (c, warnings) = parse(&[
            ("SIGNATURE", "none"),
            ("HOST", "0.0.0.0"),
            ("PORT", "0"),
            ("MAX_BODY_BYTES", "10"),
            ("EVENT_NAME", "push"),
            ("EVENT_POINTER", "/type"),
            ("EVENT_HEADER", "X-GitHub-Event"),
            ("INSTANCE_KEY_POINTER", "/repo/id"),
            ("TEXT_POINTER", "/text"),
            ("PROPERTIES", " repo = /repo/name, n=/n ,"),
            ("DEDUPE_HEADER", "X-GitHub-Delivery"),
            ("COLOUR", "blue"),
        ])
        .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.max_body_bytes),
            ("0.0.0.0", 0, 10)
        );
        let m = &c.mapping;
        assert_eq!(m.event_pointer.as_deref(), Some("/type"));
        assert_eq!(
            m.event_header.as_ref().map(|h| h.as_str()),
            Some("x-github-event")
        );
        assert_eq!(
            m.properties,
            [
                ("repo".into(), "/repo/name".into()),
                ("n".into(), "/n".into())
            ]
        );
        assert_eq!(
            m.dedupe_header.as_ref().map(|h| h.as_str()),
            Some("x-github-delivery")
        );
        assert_eq!(warnings, ["unknown config key COLOUR ignored"]);
    }

    #[test]
    fn refusals() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "SIGNATURE is required"),
            (
                &[("SIGNATURE", "github")],
                "signature scheme 'github' is not supported yet",
            ),
            (
                &[("SIGNATURE", "none"), ("PORT", "http")],
                "PORT: 'http' is not a valid number",
            ),
            (&[("SIGNATURE", "none"), ("PORT", "70000")], "PORT"),
            (
                &[("SIGNATURE", "none"), ("TEXT_POINTER", "text")],
                "not a JSON pointer",
            ),
            (
                &[("SIGNATURE", "none"), ("EVENT_HEADER", "bad header")],
                "not a valid header name",
            ),
            (
                &[("SIGNATURE", "none"), ("PROPERTIES", "a=/a,b")],
                "PROPERTIES: 'b'",
            ),
            (
                &[("SIGNATURE", "none"), ("PROPERTIES", "=/a")],
                "PROPERTIES",
            ),
        ];
        for (pairs, want) in cases {
            let err = parse(pairs).unwrap_err().to_string();
            assert!(err.contains(want), "{pairs:?}: {err}");
        }
    }
}
