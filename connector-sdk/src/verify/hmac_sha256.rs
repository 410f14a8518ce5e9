//! Generic HMAC-SHA256 over the raw body, for senders with no scheme of their own.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{Headers, ParseNameError, Verified, VerifyError, mac, required};

/// Where a generic HMAC-SHA256 signature is and how it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HmacSpec {
    /// The header carrying the signature, e.g. `X-Signature`.
    pub header: String,
    /// How the 32-byte tag is written.
    pub encoding: Encoding,
    /// Text before the tag that must be present and is not part of it, e.g. `sha256=`.
    pub prefix: Option<String>,
}

impl HmacSpec {
    /// A hex tag without prefix in `header`.
    pub fn new(header: impl Into<String>) -> Self {
        HmacSpec {
            header: header.into(),
            encoding: Encoding::Hex,
            prefix: None,
        }
    }
}

/// `X-Signature`, hex, no prefix: what `hmac-sha256` means until configured otherwise.
impl Default for HmacSpec {
    fn default() -> Self {
        HmacSpec::new("X-Signature")
    }
}

/// How a signature's bytes are written in its header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// Hex digits, either case.
    #[default]
    Hex,
    /// Standard base64 with padding.
    Base64,
}

impl Encoding {
    /// The configuration name: `hex` or `base64`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
        }
    }
}

impl FromStr for Encoding {
    type Err = ParseNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hex" => Ok(Encoding::Hex),
            "base64" => Ok(Encoding::Base64),
            other => Err(ParseNameError::new("hmac encoding", other, "hex, base64")),
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Verifies `<spec.header>: <prefix><HMAC-SHA256(secret, body)>`; no timestamp, no delivery id.
pub fn hmac_sha256<H: Headers + ?Sized>(
    spec: &HmacSpec,
    secret: &[u8],
    headers: &H,
    body: &[u8],
) -> Result<Verified, VerifyError> {
    let mac = mac::keyed(secret)?;
    let header: Cow<'static, str> = Cow::Owned(spec.header.clone());
    let value = required(headers, header.clone())?;
    let prefix = spec.prefix.as_deref().unwrap_or("");
    let encoded = value.strip_prefix(prefix).ok_or_else(|| {
        VerifyError::malformed(header.clone(), format!("expected the {prefix} prefix"))
    })?;
    let signature = match spec.encoding {
        Encoding::Hex => hex::decode(encoded).ok(),
        Encoding::Base64 => STANDARD.decode(encoded).ok(),
    }
    .ok_or_else(|| {
        VerifyError::malformed(
            header.clone(),
            format!("signature is not {}", spec.encoding),
        )
    })?;
    if !mac::any_matches(&mac::tag(mac, &[body]), [signature.as_slice()]) {
        return Err(VerifyError::BadSignature);
    }
    Ok(Verified::default())
}

#[cfg(test)]
mod tests {
    use hmac::Mac;

    use super::*;

    const SECRET: &[u8] = b"a shared secret";
    const BODY: &[u8] = br#"{"event":"build.finished","id":42}"#;

    /// Self-computed: HMAC-SHA256 of BODY under SECRET, via the hmac crate.
    fn tag() -> Vec<u8> {
        let mut m = mac::HmacSha256::new_from_slice(SECRET).unwrap();
        m.update(BODY);
        m.finalize().into_bytes().to_vec()
    }

    #[test]
    fn verify_hmac_hex_with_prefix() {
        let spec = HmacSpec {
            prefix: Some("sha256=".into()),
            ..HmacSpec::new("X-Acme-Signature")
        };
        let value = format!("sha256={}", hex::encode(tag()));
        let h = [("x-acme-signature", value.as_str())];
        assert_eq!(
            hmac_sha256(&spec, SECRET, &h, BODY),
            Ok(Verified::default())
        );
        assert_eq!(
            hmac_sha256(&spec, b"wrong", &h, BODY),
            Err(VerifyError::BadSignature)
        );
        let bare = [("X-Acme-Signature", hex::encode(tag()))];
        let e = hmac_sha256(&spec, SECRET, &bare, BODY).unwrap_err();
        assert_eq!(e.reason(), "malformed_header");
        assert!(!e.to_string().contains(&hex::encode(tag())));
    }

    #[test]
    fn verify_hmac_base64_without_prefix() {
        let spec = HmacSpec {
            encoding: Encoding::Base64,
            ..HmacSpec::new("X-Sig")
        };
        let h = [("X-Sig", STANDARD.encode(tag()))];
        assert!(hmac_sha256(&spec, SECRET, &h, BODY).is_ok());
        assert_eq!(
            hmac_sha256(&spec, SECRET, &h, b"{}"),
            Err(VerifyError::BadSignature)
        );
        // Hex where base64 is configured is refused (it may even decode, to the wrong bytes).
        let hexed = [("X-Sig", hex::encode(tag()))];
        assert!(hmac_sha256(&spec, SECRET, &hexed, BODY).is_err());
        let e = hmac_sha256(&spec, SECRET, &[("X-Sig", "???")], BODY).unwrap_err();
        assert_eq!(e.reason(), "malformed_header");
    }

    #[test]
    fn verify_hmac_names_the_configured_header() {
        let spec = HmacSpec::new("X-Custom");
        assert_eq!(
            hmac_sha256(&spec, SECRET, &[("X-Other", "00")], BODY),
            Err(VerifyError::MissingHeader("X-Custom".into()))
        );
        assert_eq!("base64".parse::<Encoding>(), Ok(Encoding::Base64));
        let e = "b64".parse::<Encoding>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown hmac encoding 'b64': expected one of hex, base64"
        );
    }
}
