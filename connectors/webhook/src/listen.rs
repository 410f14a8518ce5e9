//! Binding, announcing and serving: `HOST`/`PORT`, the `<stateDir>/address`
//! file, `ready`, and a graceful stop on the orchestrator's `shutdown`.

use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use connector_sdk::{BoxError, ConfigError, Context};
use tokio::net::TcpListener;

use crate::settings::Settings;

/// The config keys [`Listen`] reads.
pub const KEYS: &[&str] = &["HOST", "PORT", "MAX_BODY_BYTES"];

/// Where to listen and how much body to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// `HOST`, default `127.0.0.1`.
    pub host: String,
    /// `PORT`, default `default_port`; `0` picks a free port.
    pub port: u16,
    /// `MAX_BODY_BYTES`: larger bodies are answered `413`.
    pub max_body_bytes: usize,
}

impl Listen {
    /// Reads `HOST`, `PORT` and `MAX_BODY_BYTES`.
    pub fn from_settings(
        settings: &Settings<'_>,
        default_port: u16,
        default_max_body: usize,
    ) -> Result<Self, ConfigError> {
        Ok(Listen {
            host: settings.get("HOST").unwrap_or("127.0.0.1").to_owned(),
            port: settings.number("PORT", default_port)?,
            max_body_bytes: settings.number("MAX_BODY_BYTES", default_max_body)?,
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
        write_address(ctx.state_dir(), &addr.to_string())
            .map_err(|e| format!("cannot write {}/address: {e}", ctx.state_dir().display()))?;
        ctx.ready().await;
        ctx.info(format!("listening on {addr}"));
        Ok((listener, addr))
    }
}

/// Serves `router` on `listener` until the orchestrator says `shutdown`.
pub async fn serve(ctx: &Context, listener: TcpListener, router: Router) -> Result<(), BoxError> {
    axum::serve(listener, router)
        .with_graceful_shutdown(ctx.shutdown())
        .await?;
    Ok(())
}

/// Writes `addr` to `<dir>/address` atomically, so a reader never sees half of it.
pub fn write_address(dir: &Path, addr: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("address.tmp");
    std::fs::write(&tmp, addr)?;
    std::fs::rename(tmp, dir.join("address"))
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
                max_body_bytes: 10
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
    fn address_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        write_address(&sub, "127.0.0.1:1").unwrap();
        write_address(&sub, "127.0.0.1:2").unwrap();
        assert_eq!(
            std::fs::read_to_string(sub.join("address")).unwrap(),
            "127.0.0.1:2"
        );
        assert!(!sub.join("address.tmp").exists());
    }
}
