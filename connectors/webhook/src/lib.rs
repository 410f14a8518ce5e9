//! The generic webhook connector (`connector-webhook`), and the HTTP
//! plumbing every webhook-style connector of this workspace shares.
//!
//! # Theory of operation
//!
//! One request's path through [`run`]'s server: its connection was let in
//! under `MAX_CONNECTIONS` and its headers came within `HEADER_TIMEOUT`
//! ([`serve`]); axum reads the body up to `MAX_BODY_BYTES` (over it: `413`)
//! within `BODY_TIMEOUT` (else `408`); the [`guard::Guard`] verifies the
//! signature over the raw bytes by the configured scheme (`SIGNATURE`: any
//! of [`connector_sdk::verify::Scheme`], `none` only when set explicitly) and
//! on failure answers `401`, sends an `audit` record and counts it; the body
//! is parsed as JSON (`400` if it is not); the mapping (pointers, headers,
//! `PROPERTIES`) builds one event, emitted with the delivery id as its
//! dedupe key; the orchestrator's ack becomes `200` and its refusals the
//! statuses in [`answer::refused`] (a `validation_error` is a `500`, so the
//! sender retries, and an audit record: [`answer::refused_audited`]).
//! Discord's PING is answered by the connector itself.
//!
//! The `send` operation ([`outbound`]) goes the other way: `input.body` as
//! a JSON POST to `OUTBOUND_URL` only, optionally signed the Standard
//! Webhooks way, the receiver's status mapped to a failure class.
//!
//! The shared modules, used by `connector-github` and `connector-slack` too:
//! [`settings`] (typed config reads; a bad value is a `ConfigError`, exit
//! 78), [`listen`] (`HOST`/`PORT`, the `<stateDir>/address` file written
//! before `ready`, the connection limits), [`serve`] (the accept loop: at
//! most `MAX_CONNECTIONS` at once, hyper's HTTP/1 with keep-alive, graceful
//! stop) with `deadline` (header, body and idle timeouts), [`guard`]
//! (verification with an injected clock, audit and count), and [`answer`]
//! (the HTTP statuses).
//!
//! Nothing here keeps state across requests beyond a rejection counter and
//! the connection count:
//! duplicates are the orchestrator's to drop, by the dedupe key.

pub mod answer;
mod config;
mod deadline;
mod extract;
pub mod guard;
pub mod listen;
pub mod outbound;
mod reply;
pub mod serve;
mod server;
pub mod settings;

use std::sync::Arc;

use connector_sdk::{BoxError, Context};

use crate::config::Config;
use crate::server::App;

/// The webhook connector: checks its configuration, listens, and serves until `shutdown`.
pub async fn run(ctx: Context) -> Result<(), BoxError> {
    let (config, warnings) = Config::parse(ctx.config(), ctx.secrets())?;
    for w in warnings {
        ctx.warn(w);
    }
    outbound::Outbound::from_settings(&settings::Settings::new(ctx.config()), ctx.secrets())?
        .register(&ctx);
    // Every operation is registered before `ready` (which `bind` sends).
    let replies = Arc::new(reply::Replies::default());
    let responder = replies.clone();
    ctx.operations().on("respond", move |call| {
        let replies = responder.clone();
        async move { replies.respond(&call) }
    });
    let (listener, _) = config.listen.bind(&ctx).await?;
    let limits = config.listen.limits;
    ctx.info(format!(
        "verifying requests by the {} scheme",
        config.guard.scheme()
    ));
    let app = Arc::new(App {
        ctx: ctx.clone(),
        config,
        replies,
    });
    listen::serve(&ctx, listener, server::router(app), limits).await
}

/// The request mapping for the fuzz targets in `fuzz/`: not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::config::{Config, Mapping};
    pub use crate::extract::event;
}
