//! The GitHub webhook connector (`connector-github`) as a library: the
//! pure event mapping ([`mapping`], [`summary`]), what `connector.yaml`
//! declares for it ([`catalog`]), and [`run`].
//!
//! # Theory of operation
//!
//! A delivery's path: axum reads the body up to `MAX_BODY_BYTES` (`413`
//! beyond); the [`Guard`] checks `X-Hub-Signature-256` against
//! `WEBHOOK_SECRET` over the raw bytes (`401`, an audit record and a count
//! when it does not match); the payload is parsed (`400` if it is not JSON,
//! or lacks `X-GitHub-Event`); [`mapping::map`] names the event
//! `<X-GitHub-Event>[.<action>]` and sets its properties, instance key and a
//! one-line summary as text; it is emitted with `X-GitHub-Delivery` as the
//! dedupe key, so GitHub's redeliveries are dropped by the orchestrator;
//! the ack becomes `200` (`{"pong":true}` for `ping`), a refusal the status
//! in [`connector_webhook::answer::refused`].
//!
//! GitHub signs no timestamp, so there is no replay window here: replays of
//! a captured delivery are stopped by its delivery id, nothing else.

pub mod catalog;
pub mod mapping;
mod server;
pub mod summary;

use std::sync::Arc;

use connector_sdk::verify::Scheme;
use connector_sdk::{BoxError, Context};
use connector_webhook::guard::Guard;
use connector_webhook::listen::{self, Listen};
use connector_webhook::settings::Settings;

use crate::server::App;

/// The secret deliveries are signed with.
pub const SECRET: &str = "WEBHOOK_SECRET";

/// GitHub's own cap on a webhook payload: 25 MB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// The connector: checks its configuration, listens, and serves until `shutdown`.
pub async fn run(ctx: Context) -> Result<(), BoxError> {
    let settings = Settings::new(ctx.config());
    for w in settings.unknown_keys(listen::KEYS) {
        ctx.warn(w);
    }
    let listen = Listen::from_settings(&settings, 8080, DEFAULT_MAX_BODY_BYTES)?;
    let guard = Guard::new(Scheme::Github, ctx.secrets(), SECRET, &settings)?;
    let (listener, _) = listen.bind(&ctx).await?;
    let app = Arc::new(App {
        ctx: ctx.clone(),
        guard,
        max_body_bytes: listen.max_body_bytes,
    });
    listen::serve(&ctx, listener, server::router(app), listen.limits).await
}
