//! The config keys of connector-github beyond the listener's
//! (`HOST`, `PORT`, `MAX_BODY_BYTES`, the timeouts: see connector-webhook).

use std::time::Duration;

use connector_sdk::ConfigError;
use connector_webhook::settings::Settings;

use crate::api::DEFAULT_API_BASE;

/// The keys this crate reads.
pub const KEYS: &[&str] = &["API_BASE", "APP_ID", "INSTALLATION_ID", "MAX_DELIVERY_AGE"];

/// What the operations and the replay check need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `API_BASE`: where the REST API is (default `https://api.github.com`;
    /// GitHub Enterprise Server: `https://HOST/api/v3`).
    pub api_base: String,
    /// `APP_ID`: the GitHub App's id (or client id); set, the App authenticates.
    pub app_id: Option<String>,
    /// `INSTALLATION_ID`: the App's installation, instead of looking it up per repository.
    pub installation_id: Option<u64>,
    /// `MAX_DELIVERY_AGE`: refuse deliveries whose payload is older (off by default).
    pub max_delivery_age: Option<Duration>,
}

impl Config {
    /// Reads and checks the keys; a bad value names its key.
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let api_base = s
            .get("API_BASE")
            .unwrap_or(DEFAULT_API_BASE)
            .trim_end_matches('/');
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            return Err(ConfigError::new(format!(
                "API_BASE: '{api_base}' is not an http(s) URL"
            )));
        }
        let installation_id = s
            .get("INSTALLATION_ID")
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ConfigError::new(format!("INSTALLATION_ID: '{v}' is not a number"))
                })
            })
            .transpose()?;
        let max_delivery_age = match s.get("MAX_DELIVERY_AGE") {
            None | Some("off") => None,
            Some(_) => Some(s.duration("MAX_DELIVERY_AGE", Duration::ZERO)?),
        };
        Ok(Config {
            api_base: api_base.to_owned(),
            app_id: s.get("APP_ID").map(str::to_owned),
            installation_id,
            max_delivery_age,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_settings(&Settings::new(&map))
    }

    #[test]
    fn defaults_and_errors() {
        let c = config(&[]).unwrap();
        assert_eq!(c.api_base, "https://api.github.com");
        assert_eq!(
            (c.app_id, c.installation_id, c.max_delivery_age),
            (None, None, None)
        );
        let c = config(&[
            ("API_BASE", "http://127.0.0.1:9/"),
            ("MAX_DELIVERY_AGE", "10m"),
        ])
        .unwrap();
        assert_eq!(c.api_base, "http://127.0.0.1:9");
        assert_eq!(c.max_delivery_age, Some(Duration::from_secs(600)));
        assert!(
            config(&[("API_BASE", "ftp://x")])
                .unwrap_err()
                .0
                .starts_with("API_BASE")
        );
        assert!(
            config(&[("INSTALLATION_ID", "x")])
                .unwrap_err()
                .0
                .starts_with("INSTALLATION_ID")
        );
        assert!(
            config(&[("MAX_DELIVERY_AGE", "soon")])
                .unwrap_err()
                .0
                .starts_with("MAX_DELIVERY_AGE")
        );
    }
}
