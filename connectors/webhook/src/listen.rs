//! Binding, announcing and serving: `HOST`/`PORT`, the `<stateDir>/address`
//! file, `ready`, the connection limits (`HEADER_TIMEOUT`, `BODY_TIMEOUT`,
//! `IDLE_TIMEOUT`, `MAX_CONNECTIONS`), and a graceful stop on the
//! orchestrator's `shutdown`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::Router;
use connector_sdk::fs::WriteError;
use connector_sdk::{BoxError, ConfigError, Context};
use tokio::net::TcpListener;

use crate::settings::Settings;

/// The config keys [`Listen`] reads.
pub const KEYS: &[&str] = &[
    "HOST",
    "PORT",
    "MAX_BODY_BYTES",
    "HEADER_TIMEOUT",
    "BODY_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_CONNECTIONS",
];

/// How long a client may take, and how many may be connected at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `HEADER_TIMEOUT` (10 s): a request's headers must be complete this
    /// long after the connection was accepted, or after the first byte of a
    /// request on a kept-alive connection; else the connection is closed.
    pub header_timeout: Duration,
    /// `BODY_TIMEOUT` (30 s): the whole body must arrive this long after the
    /// headers; else `408` and the connection is closed.
    pub body_timeout: Duration,
    /// `IDLE_TIMEOUT` (60 s): a kept-alive connection with no request for
    /// this long is closed.
    pub idle_timeout: Duration,
    /// `MAX_CONNECTIONS` (1024): connections over it are closed at accept,
    /// counted and logged.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

impl Limits {
    /// Reads `HEADER_TIMEOUT`, `BODY_TIMEOUT`, `IDLE_TIMEOUT` and
    /// `MAX_CONNECTIONS`; zero is refused (it would refuse every client).
    pub fn from_settings(settings: &Settings<'_>) -> Result<Self, ConfigError> {
        let d = Limits::default();
        let positive = |key: &str, default: Duration| {
            let v = settings.duration(key, default)?;
            if v.is_zero() {
                return Err(ConfigError::new(format!("{key}: must be more than 0")));
            }
            Ok(v)
        };
        let max_connections = settings.number("MAX_CONNECTIONS", d.max_connections)?;
        if max_connections == 0 {
            return Err(ConfigError::new("MAX_CONNECTIONS: must be at least 1"));
        }
        Ok(Limits {
            header_timeout: positive("HEADER_TIMEOUT", d.header_timeout)?,
            body_timeout: positive("BODY_TIMEOUT", d.body_timeout)?,
            idle_timeout: positive("IDLE_TIMEOUT", d.idle_timeout)?,
            max_connections,
        })
    }
}

/// Where to listen, how much body to read, and the connection [`Limits`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// `HOST`, default `127.0.0.1`.
    pub host: String,
    /// `PORT`, default `default_port`; `0` picks a free port.
    pub port: u16,
    /// `MAX_BODY_BYTES`: larger bodies are answered `413`.
    pub max_body_bytes: usize,
    /// Timeouts and the connection cap.
    pub limits: Limits,
}

impl Listen {
    /// Reads `HOST`, `PORT`, `MAX_BODY_BYTES` and the [`Limits`].
    pub fn from_settings(
        settings: &Settings<'_>,
        default_port: u16,
        default_max_body: usize,
    ) -> Result<Self, ConfigError> {
        Ok(Listen {
            host: settings.get("HOST").unwrap_or("127.0.0.1").to_owned(),
            port: settings.number("PORT", default_port)?,
            max_body_bytes: settings.number("MAX_BODY_BYTES", default_max_body)?,
            limits: Limits::from_settings(settings)?,
        })
    }

    /// Binds, writes the bound address to `<stateDir>/address`, then sends
    /// `ready` and logs `listening on <addr>`, in that order: once the
    /// Connection is ready, the file is there.
    pub async fn bind(&self, ctx: &Context) -> Result<(TcpListener, SocketAddr), BoxError> {
        let listener = TcpListener::bind((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot listen on {}:{}: {e}", self.host, self.port))?;
        let addr = listener.local_addr()?;
        write_address(ctx.state_dir(), &addr.to_string()).await?;
        ctx.ready().await;
        ctx.info(format!("listening on {addr}"));
        Ok((listener, addr))
    }
}

/// Serves `router` on `listener` under `limits` until the orchestrator says
/// `shutdown` (see [`crate::serve`]).
pub async fn serve(
    ctx: &Context,
    listener: TcpListener,
    router: Router,
    limits: Limits,
) -> Result<(), BoxError> {
    crate::serve::serve(ctx, listener, router, limits).await
}

/// Writes `addr` to `<dir>/address` atomically and durably
/// ([`write_atomic`](connector_sdk::fs::write_atomic)), so a reader never
/// sees half of it.
pub async fn write_address(dir: &Path, addr: &str) -> Result<(), WriteError> {
    connector_sdk::fs::write_atomic_async(dir.join("address"), addr).await
}

/// The routes every webhook-style connector serves: `GET /healthz`, and
/// `handler` for a request on any other path (and for `POST /healthz`),
/// bodies limited to `max_body_bytes` (over it: `413`).
pub fn routes<H, T, S>(handler: H, state: S, max_body_bytes: usize) -> axum::Router
where
    H: axum::handler::Handler<T, S> + Clone,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    use axum::routing::get;
    axum::Router::new()
        .route("/healthz", get(healthz).post(handler.clone()))
        .fallback(handler)
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"ok": true}))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn defaults_and_values() {
        let empty = BTreeMap::new();
        let l = Listen::from_settings(&Settings::new(&empty), 8080, 10).unwrap();
        assert_eq!(
            l,
            Listen {
                host: "127.0.0.1".into(),
                port: 8080,
                max_body_bytes: 10,
                limits: Limits::default(),
            }
        );
        let set: BTreeMap<String, String> =
            [("HOST", "0.0.0.0"), ("PORT", "0"), ("MAX_BODY_BYTES", "5")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let l = Listen::from_settings(&Settings::new(&set), 8080, 10).unwrap();
        assert_eq!(
            (l.host.as_str(), l.port, l.max_body_bytes),
            ("0.0.0.0", 0, 5)
        );
        let bad: BTreeMap<String, String> = [("PORT".to_string(), "70000".to_string())].into();
        assert!(Listen::from_settings(&Settings::new(&bad), 8080, 10).is_err());
    }

    #[test]
    fn limits_defaults_values_and_refusals() {
        let d = Limits::default();
        assert_eq!(
            (
                d.header_timeout,
                d.body_timeout,
                d.idle_timeout,
                d.max_connections
            ),
            (
                Duration::from_secs(10),
                Duration::from_secs(30),
                Duration::from_secs(60),
                1024
            )
        );
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let set = map(&[
            ("HEADER_TIMEOUT", "2s"),
            ("BODY_TIMEOUT", "500ms"),
            ("IDLE_TIMEOUT", "5m"),
            ("MAX_CONNECTIONS", "3"),
        ]);
        let l = Limits::from_settings(&Settings::new(&set)).unwrap();
        assert_eq!(
            l,
            Limits {
                header_timeout: Duration::from_secs(2),
                body_timeout: Duration::from_millis(500),
                idle_timeout: Duration::from_secs(300),
                max_connections: 3,
            }
        );
        for (key, value, want) in [
            (
                "HEADER_TIMEOUT",
                "0s",
                "HEADER_TIMEOUT: must be more than 0",
            ),
            (
                "IDLE_TIMEOUT",
                "soon",
                "IDLE_TIMEOUT: 'soon' is not a duration",
            ),
            (
                "MAX_CONNECTIONS",
                "0",
                "MAX_CONNECTIONS: must be at least 1",
            ),
            (
                "MAX_CONNECTIONS",
                "-1",
                "MAX_CONNECTIONS: '-1' is not a valid number",
            ),
        ] {
            let e = Limits::from_settings(&Settings::new(&map(&[(key, value)]))).unwrap_err();
            assert!(e.0.starts_with(want), "{key}={value}: {e}");
        }
    }

    #[tokio::test]
    async fn address_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        write_address(&sub, "127.0.0.1:1").await.unwrap();
        write_address(&sub, "127.0.0.1:2").await.unwrap();
        assert_eq!(
            std::fs::read_to_string(sub.join("address")).unwrap(),
            "127.0.0.1:2"
        );
        assert!(!sub.join("address.tmp").exists());
    }
}
