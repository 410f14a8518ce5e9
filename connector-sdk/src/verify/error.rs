//! The one error type of signature verification.

use std::borrow::Cow;

/// Why a request failed verification.
///
/// No variant carries a secret, a key or a signature, and neither does any
/// message: a header is named, never quoted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header the scheme needs is absent (or not valid text).
    #[error("missing header {0}")]
    MissingHeader(Cow<'static, str>),
    /// A header is present but cannot be parsed.
    #[error("malformed header {header}: {reason}")]
    MalformedHeader {
        /// The header's name.
        header: Cow<'static, str>,
        /// What is wrong with it, without its value.
        reason: String,
    },
    /// No signature in the request matches the body and the key.
    #[error("signature does not match")]
    BadSignature,
    /// The signature is good but the signed timestamp is too far from the clock: a replay, or clock skew.
    #[error("signed timestamp is {skew_secs} s behind the clock, outside the replay window")]
    TimestampOutsideWindow {
        /// `now - timestamp` in seconds: positive for an old request, negative for one from the future.
        skew_secs: i64,
    },
    /// The configured secret or key cannot be used; restarting will not help.
    #[error("unusable key: {0}")]
    BadKey(String),
}

impl VerifyError {
    /// A stable snake_case code for audit records, e.g. `bad_signature`.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) => "missing_header",
            VerifyError::MalformedHeader { .. } => "malformed_header",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::TimestampOutsideWindow { .. } => "timestamp_outside_window",
            VerifyError::BadKey(_) => "bad_key",
        }
    }

    /// A [`VerifyError::MalformedHeader`].
    pub(super) fn malformed(header: Cow<'static, str>, reason: impl Into<String>) -> Self {
        VerifyError::MalformedHeader {
            header,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_error_reasons_are_stable() {
        let cases = [
            (VerifyError::MissingHeader("a".into()), "missing_header"),
            (
                VerifyError::malformed(Cow::Borrowed("a"), "b"),
                "malformed_header",
            ),
            (VerifyError::BadSignature, "bad_signature"),
            (
                VerifyError::TimestampOutsideWindow { skew_secs: 1 },
                "timestamp_outside_window",
            ),
            (VerifyError::BadKey("x".into()), "bad_key"),
        ];
        for (error, reason) in cases {
            assert_eq!(error.reason(), reason);
        }
    }

    #[test]
    fn verify_error_messages_are_lowercase_and_name_the_header() {
        let e = VerifyError::malformed(Cow::Borrowed("Stripe-Signature"), "no t= timestamp");
        assert_eq!(
            e.to_string(),
            "malformed header Stripe-Signature: no t= timestamp"
        );
        assert_eq!(
            VerifyError::TimestampOutsideWindow { skew_secs: -400 }.to_string(),
            "signed timestamp is -400 s behind the clock, outside the replay window"
        );
    }
}
