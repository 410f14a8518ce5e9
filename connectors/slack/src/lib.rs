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
//! A form with a `payload` field is an interactivity request
//! (`block_actions`, `view_submission`, …: [`interactions`]). A slash
//! command's or an interaction's `response_url` is kept by the connector
//! ([`responses`]) under an opaque `response_ref` the event carries; the
//! agent passes that reference to the `respond` operation, never a URL. An
//! emit the orchestrator refuses as `validation_error` is answered `500`
//! (Slack retries) and audited, never a silent 4xx.
//!
//! Slack wants an answer within 3 seconds; the connector answers as soon as
//! the orchestrator has the event durably, never after the agent is done.
//!
//! Operations ([`ops`]) call the Web API at `API_BASE` with the secret
//! `BOT_TOKEN` (`chat.postMessage`, `chat.update`, `reactions.add`,
//! `getFile`), or post to a kept response_url (`respond`).

pub mod api;
pub mod commands;
pub mod events;
pub mod interactions;
pub mod ops;
pub mod responses;
mod server;

use std::sync::Arc;

use connector_sdk::ConfigError;

use connector_sdk::verify::Scheme;
use connector_sdk::{BoxError, Context};
use connector_webhook::guard::{self, Clock, Guard, REPLAY_WINDOW};
use connector_webhook::listen::{self, Listen};
use connector_webhook::settings::Settings;

use crate::server::App;

/// The secret requests are signed with: the app's Signing Secret.
pub const SECRET: &str = "SIGNING_SECRET";
/// The secret the operations call the Web API with: the app's Bot User OAuth Token.
pub const BOT_TOKEN: &str = "BOT_TOKEN";
/// The most bytes `getFile` returns when `MAX_FILE_BYTES` is not set: 2 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;
/// The highest `MAX_FILE_BYTES`: a result travels base64 (4/3 the size) in
/// one frame of at most 4 MiB, so 3 MiB less some room.
pub const MAX_FILE_BYTES_LIMIT: u64 = 3 * 1024 * 1024 - 64 * 1024;
/// The config keys of the operations.
const OPERATION_KEYS: &[&str] = &["API_BASE", "MAX_FILE_BYTES"];

/// The connector on the system clock.
pub async fn run(ctx: Context) -> Result<(), BoxError> {
    run_with_clock(ctx, guard::system_clock()).await
}

/// The connector, reading "now" for the replay window from `clock`.
pub async fn run_with_clock(ctx: Context, clock: Clock) -> Result<(), BoxError> {
    let settings = Settings::new(ctx.config());
    for w in settings.unknown_keys(&[listen::KEYS, &[REPLAY_WINDOW], OPERATION_KEYS].concat()) {
        ctx.warn(w);
    }
    let listen = Listen::from_settings(&settings, 8080, 1024 * 1024)?;
    let guard =
        Guard::new(Scheme::Slack, ctx.secrets(), SECRET, &settings)?.with_clock(clock.clone());
    let api_base = settings
        .get("API_BASE")
        .unwrap_or(api::DEFAULT_API_BASE)
        .trim_end_matches('/')
        .to_owned();
    if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
        return Err(
            ConfigError::new(format!("API_BASE {api_base:?} is not an http(s) URL")).into(),
        );
    }
    let max_file_bytes = settings.number("MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES)?;
    if !(1..=MAX_FILE_BYTES_LIMIT).contains(&max_file_bytes) {
        return Err(ConfigError::new(format!(
            "MAX_FILE_BYTES {max_file_bytes} is not from 1 to {MAX_FILE_BYTES_LIMIT} (a file \
             travels base64 in one 4 MiB frame)"
        ))
        .into());
    }
    let token = ctx
        .secrets()
        .get(BOT_TOKEN)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    if token.is_none() {
        ctx.info("no secret BOT_TOKEN: the Web API operations will fail; respond works");
    }
    let (responses, problem) = responses::ResponseUrls::load(ctx.state_dir(), clock());
    if let Some(problem) = problem {
        ctx.warn(problem);
    }
    let responses = Arc::new(responses);
    ops::register(
        &ctx,
        Arc::new(ops::Ops {
            api: api::SlackApi::new(api_base, token)?,
            responses: responses.clone(),
            max_file_bytes,
            now: clock.clone(),
        }),
    );
    let (listener, _) = listen.bind(&ctx).await?;
    let app = Arc::new(App {
        ctx: ctx.clone(),
        guard,
        max_body_bytes: listen.max_body_bytes,
        responses,
        now: clock,
    });
    listen::serve(&ctx, listener, server::router(app), listen.limits).await
}
