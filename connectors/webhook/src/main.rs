//! `connector-webhook`: every HTTP `POST` of a JSON body becomes one event,
//! answered `200` only once the orchestrator has made it durable.
//!
//! # Config (all values are strings)
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `SIGNATURE` | required | how requests are authenticated; only `none` (explicitly unsigned) is supported yet. Anything else exits 78 |
//! | `HOST` | `127.0.0.1` | address to bind |
//! | `PORT` | `8080` | port to bind; `0` picks a free one |
//! | `MAX_BODY_BYTES` | `1048576` | larger bodies get `413` |
//! | `EVENT_NAME` | `webhook` | the event name when nothing below names one |
//! | `EVENT_POINTER` | — | JSON pointer into the body; a non-empty string there is the event name |
//! | `EVENT_HEADER` | — | a header whose value is the event name (after `EVENT_POINTER`) |
//! | `INSTANCE_KEY_POINTER` | — | JSON pointer for the instance key; without it (or its value) `webhook:<request path>` |
//! | `TEXT_POINTER` | — | JSON pointer for the message text; without it (or its value) the whole body as compact JSON |
//! | `PROPERTIES` | — | `name=/json/pointer` pairs, comma-separated; each present, non-null value becomes a string property (numbers and booleans printed, arrays and objects as compact JSON) |
//! | `DEDUPE_HEADER` | — | a header whose value is the emit's dedupe key, e.g. `X-GitHub-Delivery` |
//!
//! # Answers
//!
//! `200 {"accepted":true,"duplicate":bool}` after the ack; `400` body not
//! JSON; `413` body too large; `405` not a POST; `503` + `Retry-After: 1`
//! when the orchestrator is overloaded or unreachable; `429` +
//! `Retry-After: 1` over quota; `422` the event does not validate; `502`
//! other refusals. `GET /healthz` answers `200`.
//!
//! Once listening it writes the bound address (`127.0.0.1:39211`) to
//! `<stateDir>/address` and logs `listening on <addr>`.

mod config;
mod extract;
mod server;
mod verify;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use connector_sdk::{BoxError, Context};

use crate::config::Config;
use crate::server::App;

fn main() -> ExitCode {
    connector_sdk::run(run)
}

async fn run(ctx: Context) -> Result<(), BoxError> {
    let (config, warnings) = Config::parse(ctx.config())?;
    for w in warnings {
        ctx.warn(w);
    }
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.host, config.port))?;
    let addr = listener.local_addr()?;
    write_address(ctx.state_dir(), &addr.to_string())
        .map_err(|e| format!("cannot write {}/address: {e}", ctx.state_dir().display()))?;
    ctx.ready().await;
    ctx.info(format!("listening on {addr}"));

    let shutdown = ctx.shutdown();
    let app = Arc::new(App { ctx, config });
    axum::serve(listener, server::router(app))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Writes `addr` to `<dir>/address` atomically, so a reader never sees half of it.
fn write_address(dir: &Path, addr: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("address.tmp");
    std::fs::write(&tmp, addr)?;
    std::fs::rename(tmp, dir.join("address"))
}
