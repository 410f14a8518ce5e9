//! The Slack connector (`connector-slack`) as a library: the pure mappings
//! of Events API callbacks ([`events`]) and slash commands ([`commands`]),
//! and [`run`] / [`run_with_clock`].
//!
//! # Theory of operation
//!
//! One request's path: axum reads the body up to `MAX_BODY_BYTES` (`413`
//! beyond); the [`Guard`] checks `X-Slack-Signature` over
//! `v0:<X-Slack-Request-Timestamp>:<raw body>` with `SIGNING_SECRET`, and the
//! timestamp against the clock within `REPLAY_WINDOW` (5 minutes): a
//! mismatch or a stale request is answered `401`, audited and counted.
//! Then by content type: a form is a slash command (`slash_command`,
//! answered with an empty `200` after the ack); JSON is an Events API
//! request: `url_verification` is answered with its challenge, an
//! `event_callback` becomes one event named by `event.type` (or `event` for
//! types outside the declared list) emitted with `event_id` as the dedupe
//! key, so Slack's retries (`X-Slack-Retry-Num`) are dropped by the
//! orchestrator; the ack becomes `200`, a refusal the status in
//! [`connector_webhook::answer::refused`].
//!
//! Slack wants an answer within 3 seconds; the connector answers as soon as
//! the orchestrator has the event durably, never after the agent is done.

pub mod commands;
pub mod events;
mod server;

use std::sync::Arc;

use connector_sdk::verify::Scheme;
use connector_sdk::{BoxError, Context};
use connector_webhook::guard::{self, Clock, Guard, REPLAY_WINDOW};
use connector_webhook::listen::{self, Listen};
use connector_webhook::settings::Settings;

use crate::server::App;

/// The secret requests are signed with: the app's Signing Secret.
pub const SECRET: &str = "SIGNING_SECRET";

/// The connector on the system clock.
pub async fn run(ctx: Context) -> Result<(), BoxError> {
    run_with_clock(ctx, guard::system_clock()).await
}

/// The connector, reading "now" for the replay window from `clock`.
pub async fn run_with_clock(ctx: Context, clock: Clock) -> Result<(), BoxError> {
    let settings = Settings::new(ctx.config());
    for w in settings.unknown_keys(&[listen::KEYS, &[REPLAY_WINDOW]].concat()) {
        ctx.warn(w);
    }
    let listen = Listen::from_settings(&settings, 8080, 1024 * 1024)?;
    let guard = Guard::new(Scheme::Slack, ctx.secrets(), SECRET, &settings)?.with_clock(clock);
    let (listener, _) = listen.bind(&ctx).await?;
    let app = Arc::new(App {
        ctx: ctx.clone(),
        guard,
        max_body_bytes: listen.max_body_bytes,
    });
    listen::serve(&ctx, listener, server::router(app), listen.limits).await
}
