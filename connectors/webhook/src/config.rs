//! The Connection's `spec.config`, parsed and checked once at start.

use std::collections::BTreeMap;

use axum::http::HeaderName;
use connector_sdk::verify::{Encoding, HmacSpec, Scheme};
use connector_sdk::{ConfigError, Secrets};

use crate::guard::{Guard, REPLAY_WINDOW};
use crate::listen::{self, Listen};
use crate::settings::Settings;

/// The secret every signed scheme is keyed by (Discord: the application's public key, hex).
pub const SECRET: &str = "WEBHOOK_SECRET";

/// Every key this connector reads besides [`listen::KEYS`].
const KEYS: &[&str] = &[
    "SIGNATURE",
    "SIGNATURE_HEADER",
    "SIGNATURE_ENCODING",
    "SIGNATURE_PREFIX",
    REPLAY_WINDOW,
    "EVENT_NAME",
    "EVENT_POINTER",
    "EVENT_HEADER",
    "INSTANCE_KEY_POINTER",
    "TEXT_POINTER",
    "PROPERTIES",
    "DEDUPE_HEADER",
    crate::outbound::OUTBOUND_URL,
    "REPLY_TIMEOUT",
];

/// The generic HMAC's settings, read only with `SIGNATURE: hmac-sha256`.
const HMAC_KEYS: &[&str] = &["SIGNATURE_HEADER", "SIGNATURE_ENCODING", "SIGNATURE_PREFIX"];

/// The checked configuration.
#[derive(Debug)]
pub struct Config {
    pub listen: Listen,
    pub guard: Guard,
    pub mapping: Mapping,
    /// `REPLY_TIMEOUT`: how long a request waits for an agent's `respond`
    /// (unset or `0s`: it does not wait).
    pub reply_timeout: Option<std::time::Duration>,
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
    /// Parses `config` and picks the secret from `secrets`; the second value
    /// lists warnings (unknown or unused keys) to log.
    pub fn parse(
        config: &BTreeMap<String, String>,
        secrets: &Secrets,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let s = Settings::new(config);
        let scheme = scheme(&s)?;
        let mut warnings = s.unknown_keys(&[listen::KEYS, KEYS].concat());
        if !matches!(scheme, Scheme::HmacSha256(_)) {
            for key in HMAC_KEYS.iter().filter(|k| s.get(k).is_some()) {
                warnings.push(format!(
                    "{key} is only read with SIGNATURE hmac-sha256; ignored"
                ));
            }
        }
        let config_out = Config {
            listen: Listen::from_settings(&s, 8080, 1024 * 1024)?,
            guard: Guard::new(scheme, secrets, SECRET, &s)?,
            mapping: Mapping {
                event_name: s.get("EVENT_NAME").unwrap_or("webhook").to_string(),
                event_pointer: pointer(s.get("EVENT_POINTER"), "EVENT_POINTER")?,
                event_header: header(s.get("EVENT_HEADER"), "EVENT_HEADER")?,
                instance_key_pointer: pointer(
                    s.get("INSTANCE_KEY_POINTER"),
                    "INSTANCE_KEY_POINTER",
                )?,
                text_pointer: pointer(s.get("TEXT_POINTER"), "TEXT_POINTER")?,
                properties: properties(s.get("PROPERTIES"))?,
                dedupe_header: header(s.get("DEDUPE_HEADER"), "DEDUPE_HEADER")?,
            },
            reply_timeout: Some(s.duration("REPLY_TIMEOUT", std::time::Duration::ZERO)?)
                .filter(|d| !d.is_zero()),
        };
        Ok((config_out, warnings))
    }
}

/// `SIGNATURE`, required (fail closed), with the generic HMAC's own settings.
fn scheme(s: &Settings<'_>) -> Result<Scheme, ConfigError> {
    let scheme: Scheme = s.parsed("SIGNATURE")?.ok_or_else(|| {
        ConfigError::new(
            "SIGNATURE is required: one of github, stripe, slack, standard-webhooks, notion, \
             discord, hmac-sha256, or none to accept unsigned requests",
        )
    })?;
    let Scheme::HmacSha256(default) = scheme else {
        return Ok(scheme);
    };
    let header = s.get("SIGNATURE_HEADER").unwrap_or(&default.header);
    HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
        ConfigError::new(format!(
            "SIGNATURE_HEADER: '{header}' is not a valid header name"
        ))
    })?;
    Ok(Scheme::HmacSha256(HmacSpec {
        header: header.to_owned(),
        encoding: s
            .parsed::<Encoding>("SIGNATURE_ENCODING")?
            .unwrap_or(default.encoding),
        prefix: s.get("SIGNATURE_PREFIX").map(str::to_owned),
    }))
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
    use connector_sdk::verify::Encoding;

    use super::*;

    /// A configuration case: config pairs, the secret, and what the error must say.
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);

    fn parse_with(
        pairs: &[(&str, &str)],
        secret: Option<&str>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let secrets = Secrets(
            secret
                .map(|s| BTreeMap::from([(SECRET.to_string(), s.to_string())]))
                .unwrap_or_default(),
        );
        Config::parse(&map, &secrets)
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<(Config, Vec<String>), ConfigError> {
        parse_with(pairs, None)
    }

    #[test]
    fn defaults() {
        let (c, warnings) = parse(&[("SIGNATURE", "none")]).unwrap();
        let l = &c.listen;
        assert_eq!(
            (l.host.as_str(), l.port, l.max_body_bytes),
            ("127.0.0.1", 8080, 1_048_576)
        );
        assert!(c.guard.scheme().is_unsigned());
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
            ("SIGNATURE_PREFIX", "sha256="),
            ("COLOUR", "blue"),
        ])
        .unwrap();
        let l = &c.listen;
        assert_eq!(
            (l.host.as_str(), l.port, l.max_body_bytes),
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
        assert_eq!(
            warnings,
            [
                "unknown config key COLOUR ignored",
                "SIGNATURE_PREFIX is only read with SIGNATURE hmac-sha256; ignored"
            ]
        );
    }

    #[test]
    fn every_scheme_with_its_secret() {
        for name in Scheme::NAMES
            .iter()
            .filter(|n| !["none", "discord", "standard-webhooks"].contains(n))
        {
            let (c, _) = parse_with(&[("SIGNATURE", name)], Some("s3cret")).unwrap();
            assert_eq!(c.guard.scheme().name(), *name);
        }
        let sw = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert!(parse_with(&[("SIGNATURE", "standard-webhooks")], Some(sw)).is_ok());
        let discord = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        assert!(parse_with(&[("SIGNATURE", "discord")], Some(discord)).is_ok());
    }

    #[test]
    fn hmac_settings() {
        let (c, _) = parse_with(&[("SIGNATURE", "hmac-sha256")], Some("k")).unwrap();
        assert_eq!(c.guard.scheme(), &Scheme::HmacSha256(HmacSpec::default()));
        let (c, warnings) = parse_with(
            &[
                ("SIGNATURE", "hmac-sha256"),
                ("SIGNATURE_HEADER", "X-Acme-Signature"),
                ("SIGNATURE_ENCODING", "base64"),
                ("SIGNATURE_PREFIX", "sha256="),
            ],
            Some("k"),
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            c.guard.scheme(),
            &Scheme::HmacSha256(HmacSpec {
                header: "X-Acme-Signature".into(),
                encoding: Encoding::Base64,
                prefix: Some("sha256=".into()),
            })
        );
    }

    #[test]
    fn refusals() {
        let none = ("SIGNATURE", "none");
        let cases: &[Case] = &[
            (&[], None, "SIGNATURE is required"),
            (
                &[("SIGNATURE", "GitHub")],
                Some("s"),
                "SIGNATURE: unknown signature scheme 'GitHub'",
            ),
            (
                &[("SIGNATURE", "github")],
                None,
                "the github scheme needs the secret WEBHOOK_SECRET",
            ),
            (
                &[("SIGNATURE", "discord")],
                Some("abcd"),
                "cannot be used by the discord scheme",
            ),
            (
                &[("SIGNATURE", "standard-webhooks")],
                Some("whsec_!!"),
                "cannot be used",
            ),
            (
                &[("SIGNATURE", "hmac-sha256"), ("SIGNATURE_ENCODING", "b64")],
                Some("s"),
                "SIGNATURE_ENCODING: unknown hmac encoding 'b64'",
            ),
            (
                &[("SIGNATURE", "hmac-sha256"), ("SIGNATURE_HEADER", "a b")],
                Some("s"),
                "SIGNATURE_HEADER: 'a b' is not a valid header name",
            ),
            (
                &[("SIGNATURE", "slack"), (REPLAY_WINDOW, "soon")],
                Some("s"),
                "REPLAY_WINDOW",
            ),
            (
                &[none, ("PORT", "http")],
                None,
                "PORT: 'http' is not a valid number",
            ),
            (&[none, ("PORT", "70000")], None, "PORT"),
            (
                &[none, ("TEXT_POINTER", "text")],
                None,
                "not a JSON pointer",
            ),
            (
                &[none, ("EVENT_HEADER", "bad header")],
                None,
                "not a valid header name",
            ),
            (&[none, ("PROPERTIES", "a=/a,b")], None, "PROPERTIES: 'b'"),
            (&[none, ("PROPERTIES", "=/a")], None, "PROPERTIES"),
        ];
        for (pairs, secret, want) in cases {
            let err = parse_with(pairs, *secret).unwrap_err().to_string();
            assert!(err.contains(want), "{pairs:?}: {err}");
        }
    }
}
