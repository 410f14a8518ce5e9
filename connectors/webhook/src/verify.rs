//! Request authentication, between reading the body and building the event.
//!
//! Only `none` (explicitly unsigned) exists today. A scheme such as GitHub's
//! HMAC is a new [`Verifier`] variant whose `verify` reads the headers, the
//! raw body and the Connection's secrets, and returns a [`Rejection`]: the
//! server answers 401 and records an `audit` line. Unknown schemes are
//! refused at start (exit 78), never silently accepted.

use axum::http::HeaderMap;
use connector_sdk::ConfigError;

/// How requests are authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verifier {
    /// `SIGNATURE: none`: every request is accepted unsigned.
    Unsigned,
}

/// Why a request failed verification; never carries a secret or a signature.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(dead_code, reason = "built by signature schemes; `none` never rejects")]
pub struct Rejection {
    /// A short code for the audit log, e.g. `bad_signature`.
    pub reason: &'static str,
}

impl Verifier {
    /// The verifier for a `SIGNATURE` value.
    pub fn from_scheme(scheme: &str) -> Result<Self, ConfigError> {
        match scheme {
            "none" => Ok(Verifier::Unsigned),
            other => Err(ConfigError::new(format!(
                "signature scheme '{other}' is not supported yet"
            ))),
        }
    }

    /// The scheme's name, as configured.
    pub fn scheme(&self) -> &'static str {
        match self {
            Verifier::Unsigned => "none",
        }
    }

    /// Checks one request.
    pub fn verify(&self, _headers: &HeaderMap, _body: &[u8]) -> Result<(), Rejection> {
        match self {
            Verifier::Unsigned => Ok(()),
        }
    }
}
