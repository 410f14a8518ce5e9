//! A fake GitHub REST API for the operations tests: an axum server on
//! 127.0.0.1 that checks each request the way GitHub documents it (method,
//! path, `Authorization`, `Accept`, `X-GitHub-Api-Version`, the body's
//! shape), answers as GitHub does, and remembers what it saw.
//!
//! GitHub App: `POST /app/installations/77/access_tokens` and
//! `GET /repos/{o}/{r}/installation` need a JWT that verifies with
//! `testdata/app/public-key.der`, issued by app 4242, with `iat` 60 s back
//! and `exp` at most 10 minutes ahead; the installation token is
//! [`INSTALLATION_TOKEN`].
//!
//! Repositories named `limited`, `reset`, `down`, `missing` answer a
//! secondary rate limit (403 + `retry-after: 7`), a primary one (403,
//! `x-ratelimit-remaining: 0`, reset in 30 s), 502, and 404.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Value, json};

pub const APP_ID: u64 = 4242;
pub const INSTALLATION: u64 = 77;
pub const INSTALLATION_TOKEN: &str = "ghs_installationTOKEN0123456789";

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: String,
    pub body: Value,
}

struct Shared {
    /// The bearer token repository calls must carry (besides the installation token).
    token: String,
    public_key: Vec<u8>,
    seen: Mutex<Vec<Seen>>,
    /// How long an installation token it hands out lives, in seconds.
    token_lifetime: AtomicU64,
}

pub struct FakeGithub {
    pub base: String,
    shared: Arc<Shared>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeGithub {
    /// Starts the fake; repository calls must carry `token` or the installation token.
    pub fn start(token: &str) -> Self {
        let public_key = std::fs::read(super::crate_dir().join("testdata/app/public-key.der"))
            .expect("public key");
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            public_key,
            seen: Mutex::new(Vec::new()),
            token_lifetime: AtomicU64::new(3600),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        FakeGithub {
            base: format!("http://{addr}"),
            shared,
            _runtime: runtime,
        }
    }

    /// Installation tokens handed out from now on expire after `secs`.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.shared.token_lifetime.store(secs, Ordering::SeqCst);
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The requests whose `METHOD path` is `what`.
    pub fn seen_at(&self, what: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| format!("{} {}", s.method, s.path) == what)
            .collect()
    }
}

fn github_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"message": message, "documentation_url": "https://docs.github.com/rest"});
    (status, axum::Json(body)).into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let path = uri.path().to_owned();
    let body_json: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return github_error(StatusCode::BAD_REQUEST, "Problems parsing JSON"),
        }
    };
    shared.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: path.clone(),
        authorization: header("authorization"),
        body: body_json.clone(),
    });
    if header("accept") != "application/vnd.github+json" {
        return github_error(StatusCode::BAD_REQUEST, "fake: wrong Accept");
    }
    if header("x-github-api-version") != "2022-11-28" {
        return github_error(StatusCode::BAD_REQUEST, "fake: wrong X-GitHub-Api-Version");
    }
    if header("user-agent").is_empty() {
        return github_error(StatusCode::FORBIDDEN, "fake: no User-Agent");
    }
    if !body.is_empty() && header("content-type") != "application/json" {
        return github_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "fake: not JSON");
    }
    let bearer = header("authorization")
        .strip_prefix("Bearer ")
        .unwrap_or("")
        .to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();

    // GitHub App endpoints: a JWT, verified.
    if let ["app", "installations", id, "access_tokens"] = parts[..] {
        if method != Method::POST {
            return github_error(StatusCode::NOT_FOUND, "Not Found");
        }
        if let Err(why) = verify_jwt(&shared.public_key, &bearer) {
            return github_error(StatusCode::UNAUTHORIZED, &format!("fake: {why}"));
        }
        if id != INSTALLATION.to_string() {
            return github_error(StatusCode::NOT_FOUND, "Not Found");
        }
        let lifetime = shared.token_lifetime.load(Ordering::SeqCst);
        let expires = SystemTime::now() + Duration::from_secs(lifetime);
        let body = json!({
            "token": INSTALLATION_TOKEN,
            "expires_at": humantime::format_rfc3339_seconds(expires).to_string(),
            "permissions": {"issues": "write", "checks": "write"},
            "repository_selection": "all"
        });
        return (StatusCode::CREATED, axum::Json(body)).into_response();
    }
    if let ["repos", _, _, "installation"] = parts[..] {
        if let Err(why) = verify_jwt(&shared.public_key, &bearer) {
            return github_error(StatusCode::UNAUTHORIZED, &format!("fake: {why}"));
        }
        return axum::Json(json!({"id": INSTALLATION, "app_id": APP_ID})).into_response();
    }

    let ["repos", owner, repo, ref rest @ ..] = parts[..] else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    if bearer != shared.token && bearer != INSTALLATION_TOKEN {
        return github_error(StatusCode::UNAUTHORIZED, "Bad credentials");
    }
    match repo {
        "limited" => {
            let mut r = github_error(
                StatusCode::FORBIDDEN,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
            r.headers_mut().insert("retry-after", "7".parse().unwrap());
            return r;
        }
        "reset" => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let mut r = github_error(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for installation ID 77.",
            );
            let h = r.headers_mut();
            h.insert("x-ratelimit-remaining", "0".parse().unwrap());
            h.insert("x-ratelimit-reset", (now + 30).to_string().parse().unwrap());
            return r;
        }
        "down" => {
            return (
                StatusCode::BAD_GATEWAY,
                "<html><body>502 Bad Gateway</body></html>",
            )
                .into_response();
        }
        "missing" => return github_error(StatusCode::NOT_FOUND, "Not Found"),
        _ => {}
    }
    let html = format!("https://github.com/{owner}/{repo}");
    match (method.as_str(), rest) {
        ("POST", ["issues", n, "comments"]) => {
            let Some(text) = body_json["body"].as_str() else {
                return github_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid request.\n\n\"body\" wasn't supplied.",
                );
            };
            if body_json.as_object().map(|o| o.len()) != Some(1) {
                return github_error(StatusCode::UNPROCESSABLE_ENTITY, "fake: only body expected");
            }
            let out = json!({
                "id": 1001, "node_id": "IC_1001", "body": text,
                "html_url": format!("{html}/issues/{n}#issuecomment-1001"),
                "user": {"login": "bot"}
            });
            (StatusCode::CREATED, axum::Json(out)).into_response()
        }
        ("POST", ["issues", _, "labels"]) => {
            let Some(labels) = body_json["labels"].as_array() else {
                return github_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request.");
            };
            let out: Vec<Value> = labels
                .iter()
                .enumerate()
                .map(|(i, l)| json!({"id": i + 1, "name": l, "color": "ededed", "default": false}))
                .collect();
            axum::Json(Value::Array(out)).into_response()
        }
        ("POST", ["check-runs"]) => {
            if !body_json["name"].is_string() || !body_json["head_sha"].is_string() {
                return github_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request.");
            }
            let out = json!({
                "id": 5, "head_sha": body_json["head_sha"], "name": body_json["name"],
                "html_url": format!("{html}/runs/5"),
                "status": body_json.get("status").cloned().unwrap_or(json!("queued")),
                "conclusion": body_json.get("conclusion").cloned().unwrap_or(Value::Null),
            });
            (StatusCode::CREATED, axum::Json(out)).into_response()
        }
        ("PATCH", ["check-runs", id]) => {
            let out = json!({
                "id": id.parse::<u64>().unwrap_or(0),
                "html_url": format!("{html}/runs/{id}"),
                "status": body_json.get("status").cloned().unwrap_or(json!("in_progress")),
                "conclusion": body_json.get("conclusion").cloned().unwrap_or(Value::Null),
            });
            axum::Json(out).into_response()
        }
        _ => github_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// Checks a GitHub App JWT: RS256 by the test key, `iss` the app, `iat`
/// about 60 s back, `exp` ahead by at most 10 minutes.
fn verify_jwt(public_key: &[u8], jwt: &str) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("not a JWT".into());
    };
    let decode = |p: &str| {
        URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|e| format!("base64url: {e}"))
    };
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err(format!("alg is {}", header["alg"]));
    }
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key)
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &decode(signature)?,
        )
        .map_err(|_| "A JSON web token could not be decoded (bad signature)".to_string())?;
    let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|e| e.to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let iat = claims["iat"].as_i64().ok_or("no iat")?;
    let exp = claims["exp"].as_i64().ok_or("no exp")?;
    if claims["iss"] != json!(APP_ID) {
        return Err(format!("iss is {}", claims["iss"]));
    }
    if !(now - 75..=now - 45).contains(&iat) {
        return Err(format!("iat {iat} is not about 60 s before {now}"));
    }
    if exp <= now || exp > now + 600 {
        return Err(format!("exp {exp} is not within 10 minutes of {now}"));
    }
    Ok(())
}
