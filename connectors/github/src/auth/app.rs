//! GitHub App authentication: an RS256 JWT signed with the app's private
//! key (`iat` 60 s in the past against clock drift, `exp` 9 minutes ahead:
//! GitHub refuses more than 10) is exchanged at
//! `POST /app/installations/{id}/access_tokens` for an installation token,
//! which is kept until [`REFRESH_BEFORE`] its `expires_at`. The
//! installation is `INSTALLATION_ID`, or the one GitHub names for the
//! call's repository (`GET /repos/{owner}/{repo}/installation`, remembered).
//!
//! One lock over the token cache, held across an exchange: calls that need
//! a token at the same time wait for one exchange instead of each making
//! their own (an App rarely has more than a few installations).

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connector_sdk::ConfigError;
use connector_sdk::operations::OperationError;
use reqwest::Method;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::api::Http;
use crate::repo::Repo;
use crate::secret::Secret;

/// A cached installation token is replaced this long before it expires.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// How far in the past `iat` is set (GitHub's advice, against clock drift).
pub const IAT_SKEW: Duration = Duration::from_secs(60);

/// How far ahead `exp` is set (GitHub allows at most 10 minutes).
pub const JWT_LIFETIME: Duration = Duration::from_secs(9 * 60);

/// A GitHub App's credentials and its token cache.
pub struct AppAuth {
    app_id: String,
    key: RsaKeyPair,
    rng: SystemRandom,
    installation: Option<u64>,
    /// Installation id → its token.
    tokens: Mutex<HashMap<u64, Cached>>,
    /// `owner/name` (lowercase) → its installation id.
    installations: Mutex<HashMap<String, u64>>,
}

struct Cached {
    token: Secret,
    expires_at: SystemTime,
}

impl fmt::Debug for AppAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppAuth")
            .field("app_id", &self.app_id)
            .field("installation", &self.installation)
            .finish_non_exhaustive()
    }
}

impl AppAuth {
    /// App `app_id` (its numeric id or its client id) with the PEM private
    /// key `pem` (PKCS#1 as GitHub hands it out, or PKCS#8; `\n` written as
    /// two characters, as in an environment variable, is accepted).
    pub fn new(app_id: &str, pem: &str, installation: Option<u64>) -> Result<Self, ConfigError> {
        let pem = if pem.contains('\n') {
            pem.to_owned()
        } else {
            pem.replace("\\n", "\n")
        };
        let bad = |why: &str| ConfigError::new(format!("the secret {}: {why}", super::KEY_SECRET));
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| bad("no PEM private key in it"))?;
        let key = match &der {
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            _ => return Err(bad("not an RSA private key (a GitHub App key is RSA)")),
        }
        .map_err(|e| bad(&format!("not a usable RSA private key ({e})")))?;
        Ok(AppAuth {
            app_id: app_id.to_owned(),
            key,
            rng: SystemRandom::new(),
            installation,
            tokens: Mutex::new(HashMap::new()),
            installations: Mutex::new(HashMap::new()),
        })
    }

    /// For the start-up log line.
    pub fn describe(&self) -> String {
        match self.installation {
            Some(id) => format!(
                "operations authenticate as GitHub App {} (installation {id})",
                self.app_id
            ),
            None => format!(
                "operations authenticate as GitHub App {} (installation looked up per repository)",
                self.app_id
            ),
        }
    }

    /// The app's JWT at `now`: RS256 over `{"iat","exp","iss"}`.
    pub fn jwt(&self, now: SystemTime) -> Result<Secret, OperationError> {
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let iss = match self.app_id.parse::<u64>() {
            Ok(n) => json!(n),
            Err(_) => json!(self.app_id),
        };
        let claims = json!({
            "iat": secs.saturating_sub(IAT_SKEW.as_secs()),
            "exp": secs + JWT_LIFETIME.as_secs(),
            "iss": iss,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| OperationError::permanent("signing the github app jwt failed"))?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }

    /// An installation token for a call on `repo`.
    pub async fn token(
        &self,
        http: &Http,
        repo: &Repo,
        timeout: Duration,
    ) -> Result<Secret, OperationError> {
        let id = match self.installation {
            Some(id) => id,
            None => self.installation_of(http, repo, timeout).await?,
        };
        let mut tokens = self.tokens.lock().await;
        let now = SystemTime::now();
        if let Some(c) = tokens.get(&id)
            && c.expires_at > now + REFRESH_BEFORE
        {
            return Ok(c.token.clone());
        }
        let path = format!("/app/installations/{id}/access_tokens");
        let reply = http
            .send(Method::POST, &path, &self.jwt(now)?, None, timeout)
            .await
            .map_err(|e| prefixed("github app authentication", e))?;
        let token = reply.json["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                OperationError::transient(format!("POST {path}: the answer has no token"))
            })?;
        let expires_at = reply.json["expires_at"]
            .as_str()
            .and_then(crate::time::parse)
            // Without a readable expiry, trust it for GitHub's documented hour.
            .unwrap_or(now + Duration::from_secs(3600));
        let token = Secret::new(token);
        tokens.insert(
            id,
            Cached {
                token: token.clone(),
                expires_at,
            },
        );
        Ok(token)
    }

    /// The installation of this app on `repo`, asked once per repository.
    async fn installation_of(
        &self,
        http: &Http,
        repo: &Repo,
        timeout: Duration,
    ) -> Result<u64, OperationError> {
        let mut known = self.installations.lock().await;
        if let Some(id) = known.get(&repo.key()) {
            return Ok(*id);
        }
        let path = format!("{}/installation", repo.path());
        let reply = http
            .send(
                Method::GET,
                &path,
                &self.jwt(SystemTime::now())?,
                None,
                timeout,
            )
            .await
            .map_err(|e| {
                prefixed(
                    &format!("finding the github app's installation on {repo}"),
                    e,
                )
            })?;
        let id = reply.json["id"].as_u64().ok_or_else(|| {
            OperationError::transient(format!("GET {path}: the answer has no installation id"))
        })?;
        known.insert(repo.key(), id);
        Ok(id)
    }

    /// Drops `token` from the cache (GitHub refused it).
    pub async fn forget(&self, token: &Secret) {
        self.tokens.lock().await.retain(|_, c| &c.token != token);
    }
}

fn prefixed(what: &str, mut e: OperationError) -> OperationError {
    e.message = format!("{what}: {}", e.message);
    e
}

/// The claims of a JWT (for tests and diagnostics): its middle part, decoded.
pub fn claims(jwt: &str) -> Option<Value> {
    let part = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    use super::*;

    const KEY: &str = include_str!("../../testdata/app/private-key.pem");
    const PUBLIC_DER: &[u8] = include_bytes!("../../testdata/app/public-key.der");

    #[test]
    fn the_jwt_is_rs256_with_githubs_claims() {
        let app = AppAuth::new("12345", KEY, None).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let jwt = app.jwt(now).unwrap();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "RS256", "typ": "JWT"}));
        assert_eq!(
            claims(jwt.expose()).unwrap(),
            json!({"iat": 1_699_999_940u64, "exp": 1_700_000_540u64, "iss": 12345})
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, PUBLIC_DER)
            .verify(signed.as_bytes(), &sig)
            .expect("the signature verifies with the public key");
        assert_eq!(format!("{jwt:?}"), "<redacted>");
        assert!(!format!("{app:?}").contains("PRIVATE"));
    }

    #[test]
    fn keys_that_are_not_rsa_pem_are_config_errors() {
        let escaped = KEY.replace('\n', "\\n");
        assert!(AppAuth::new("1", &escaped, None).is_ok(), "\\n-escaped PEM");
        let e = AppAuth::new("1", "not a key", None)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "the secret PRIVATE_KEY: no PEM private key in it");
        assert!(!e.contains("not a key"));
    }
}
