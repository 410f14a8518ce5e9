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
//! An operation's path: the orchestrator sends a `call`; [`ops`] checks
//! the input, [`auth::Auth`] gives a token (the `GITHUB_TOKEN` secret, or a
//! GitHub App's installation token), [`api::Http`] makes one request to
//! `API_BASE`, and [`api::classify`] turns a failed answer into a failure
//! class (`quota_exceeded` for rate limits, `transient` for 5xx and no
//! answer, `permanent` for other 4xx).
//!
//! GitHub signs no timestamp, so there is no replay window in the
//! signature: replays of a captured delivery are stopped by its delivery id,
//! and, with `MAX_DELIVERY_AGE`, by the payload's own timestamps ([`replay`]).

pub mod api;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod mapping;
pub mod ops;
pub mod replay;
pub mod repo;
pub mod secret;
mod server;
pub mod summary;
pub mod time;

use std::sync::Arc;

use connector_sdk::verify::Scheme;
use connector_sdk::{BoxError, Context};
use connector_webhook::guard::Guard;
use connector_webhook::listen::{self, Listen};
use connector_webhook::settings::Settings;

use crate::api::Http;
use crate::auth::Auth;
use crate::config::Config;
use crate::ops::Api;
use crate::server::App;

/// The secret deliveries are signed with.
pub const SECRET: &str = "WEBHOOK_SECRET";

/// GitHub's own cap on a webhook payload: 25 MB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// The connector: checks its configuration, listens, and serves until `shutdown`.
pub async fn run(ctx: Context) -> Result<(), BoxError> {
    let settings = Settings::new(ctx.config());
    let known: Vec<&str> = listen::KEYS.iter().chain(config::KEYS).copied().collect();
    for w in settings.unknown_keys(&known) {
        ctx.warn(w);
    }
    let listen = Listen::from_settings(&settings, 8080, DEFAULT_MAX_BODY_BYTES)?;
    let config = Config::from_settings(&settings)?;
    let auth = Auth::from_config(
        config.app_id.as_deref(),
        config.installation_id,
        ctx.secrets(),
    )?;
    let described = auth.describe();
    let http = Http::new(&config.api_base)?;
    // Before `bind`, which says ready: a call may come right after.
    ops::register(&ctx, Arc::new(Api { http, auth }));
    let guard = Guard::new(Scheme::Github, ctx.secrets(), SECRET, &settings)?;
    let (listener, _) = listen.bind(&ctx).await?;
    ctx.info(described);
    let app = Arc::new(App {
        ctx: ctx.clone(),
        guard,
        max_body_bytes: listen.max_body_bytes,
        max_delivery_age: config.max_delivery_age,
    });
    listen::serve(&ctx, listener, server::router(app), listen.limits).await
}
