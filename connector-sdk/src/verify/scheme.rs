//! Choosing a scheme by its configuration name, and the one dispatch.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use super::{
    Headers, HmacSpec, Verified, VerifyError, Window, discord, github, hmac_sha256, notion, slack,
    standard_webhooks, stripe,
};

/// A signature scheme, as named in configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `none`: NO VERIFICATION, every request is accepted. Only ever an explicit choice.
    None,
    /// `github`: `X-Hub-Signature-256`.
    Github,
    /// `stripe`: `Stripe-Signature`.
    Stripe,
    /// `slack`: `X-Slack-Signature` and `X-Slack-Request-Timestamp`.
    Slack,
    /// `standard-webhooks`: `webhook-id`, `webhook-timestamp`, `webhook-signature`
    /// (or Svix's `svix-id`, `svix-timestamp`, `svix-signature`).
    StandardWebhooks,
    /// `notion`: `X-Notion-Signature`.
    Notion,
    /// `discord`: Ed25519 in `X-Signature-Ed25519`; the "secret" is the public key.
    Discord,
    /// `hmac-sha256`: a generic HMAC of the body; parsing gives [`HmacSpec::default`], set its fields from configuration.
    HmacSha256(HmacSpec),
}

impl Scheme {
    /// Every configuration name, in the order error messages list them.
    pub const NAMES: &'static [&'static str] = &[
        "github",
        "stripe",
        "slack",
        "standard-webhooks",
        "notion",
        "discord",
        "hmac-sha256",
        "none",
    ];

    /// The configuration name.
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::None => "none",
            Scheme::Github => "github",
            Scheme::Stripe => "stripe",
            Scheme::Slack => "slack",
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::Notion => "notion",
            Scheme::Discord => "discord",
            Scheme::HmacSha256(_) => "hmac-sha256",
        }
    }

    /// Whether this is [`Scheme::None`], which accepts unsigned requests.
    pub fn is_unsigned(&self) -> bool {
        matches!(self, Scheme::None)
    }

    /// Checks at start that `secret` can key this scheme, so a bad one fails configuration, not every request.
    pub fn check_secret(&self, secret: &str) -> Result<(), VerifyError> {
        match self {
            Scheme::None => Ok(()),
            Scheme::StandardWebhooks => super::standard_webhooks::key(secret).map(drop),
            Scheme::Discord => super::discord::public_key(secret).map(drop),
            Scheme::Github
            | Scheme::Stripe
            | Scheme::Slack
            | Scheme::Notion
            | Scheme::HmacSha256(_) => super::mac::keyed(secret.as_bytes()).map(drop),
        }
    }
}

impl FromStr for Scheme {
    type Err = ParseNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "none" => Scheme::None,
            "github" => Scheme::Github,
            "stripe" => Scheme::Stripe,
            "slack" => Scheme::Slack,
            "standard-webhooks" => Scheme::StandardWebhooks,
            "notion" => Scheme::Notion,
            "discord" => Scheme::Discord,
            "hmac-sha256" => Scheme::HmacSha256(HmacSpec::default()),
            other => {
                return Err(ParseNameError::new(
                    "signature scheme",
                    other,
                    "github, stripe, slack, standard-webhooks, notion, discord, hmac-sha256, none",
                ));
            }
        })
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A configuration name that is not one of the allowed ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{got}': expected one of {allowed}")]
pub struct ParseNameError {
    what: &'static str,
    got: String,
    allowed: &'static str,
}

impl ParseNameError {
    pub(super) fn new(what: &'static str, got: &str, allowed: &'static str) -> Self {
        ParseNameError {
            what,
            got: got.to_owned(),
            allowed,
        }
    }
}

/// Verifies one request by `scheme`; [`Scheme::None`] accepts it unchecked.
///
/// `secret` is the scheme's secret as configured (Discord: the public key
/// in hex); `now` is the clock to check signed timestamps against.
pub fn verify<H: Headers + ?Sized>(
    scheme: &Scheme,
    secret: &str,
    headers: &H,
    body: &[u8],
    now: SystemTime,
    window: Window,
) -> Result<Verified, VerifyError> {
    let key = secret.as_bytes();
    match scheme {
        Scheme::None => Ok(Verified::default()),
        Scheme::Github => github(key, headers, body),
        Scheme::Stripe => stripe(key, headers, body, now, window),
        Scheme::Slack => slack(key, headers, body, now, window),
        Scheme::StandardWebhooks => standard_webhooks(secret, headers, body, now, window),
        Scheme::Notion => notion(key, headers, body),
        Scheme::Discord => discord(secret, headers, body, now, window),
        Scheme::HmacSha256(spec) => hmac_sha256(spec, key, headers, body),
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn verify_scheme_names_round_trip() {
        for name in Scheme::NAMES {
            let scheme: Scheme = name.parse().unwrap();
            assert_eq!(scheme.name(), *name);
            assert_eq!(scheme.to_string(), *name);
        }
        assert!("none".parse::<Scheme>().unwrap().is_unsigned());
        assert!(!"github".parse::<Scheme>().unwrap().is_unsigned());
    }

    #[test]
    fn verify_unknown_scheme_lists_the_allowed_names() {
        for bad in ["", "GitHub", "hmac", "unsigned"] {
            let msg = bad.parse::<Scheme>().unwrap_err().to_string();
            assert!(msg.starts_with(&format!("unknown signature scheme '{bad}'")));
            for name in Scheme::NAMES {
                assert!(msg.contains(name), "{msg}");
            }
        }
    }

    #[test]
    fn verify_scheme_none_accepts_without_looking() {
        let no_headers: [(&str, &str); 0] = [];
        let got = verify(
            &Scheme::None,
            "",
            &no_headers,
            b"x",
            UNIX_EPOCH,
            Window::DEFAULT,
        );
        assert_eq!(got, Ok(Verified::default()));
        // Every other scheme fails closed on the same request.
        for name in Scheme::NAMES.iter().filter(|n| **n != "none") {
            let scheme: Scheme = name.parse().unwrap();
            let got = verify(
                &scheme,
                "whsec_c2VjcmV0",
                &no_headers,
                b"x",
                UNIX_EPOCH,
                Window::DEFAULT,
            );
            assert!(got.is_err(), "{name}");
        }
    }

    #[test]
    fn verify_check_secret_per_scheme() {
        let discord_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let discord_hex = hex::encode(discord_key.to_bytes());
        let ok = [
            ("github", "s"),
            (
                "standard-webhooks",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            ("discord", discord_hex.as_str()),
            ("none", ""),
        ];
        for (name, secret) in ok {
            let scheme: Scheme = name.parse().unwrap();
            assert_eq!(scheme.check_secret(secret), Ok(()), "{name}");
        }
        let bad = [
            ("stripe", ""),
            ("standard-webhooks", "whsec_!!"),
            ("discord", "abcd"),
            ("hmac-sha256", ""),
        ];
        for (name, secret) in bad {
            let scheme: Scheme = name.parse().unwrap();
            let e = scheme.check_secret(secret).unwrap_err();
            assert_eq!(e.reason(), "bad_key", "{name}");
        }
    }
}
