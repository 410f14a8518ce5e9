//! The Discord connector (`connector-discord`) as a library: the pure
//! mapping of interactions ([`interaction`]), the token references
//! ([`tokens`]), the API calls ([`api`]), and [`run`] / [`run_with_clock`].
//!
//! # Theory of operation
//!
//! One interaction's path: axum reads the body up to `MAX_BODY_BYTES`
//! (`413` beyond); the [`Guard`] checks `X-Signature-Ed25519` over
//! `<X-Signature-Timestamp><raw body>` with the application's `PUBLIC_KEY`
//! and the timestamp within `REPLAY_WINDOW`: a mismatch is answered `401`
//! (Discord itself sends bad signatures to check that the endpoint refuses
//! them), audited and counted. `PING` is answered `{"type":1}`;
//! autocomplete with no suggestions. A command, component or modal
//! submission: its token is kept in [`tokens::Tokens`] under a fresh random
//! reference (bounded by `MAX_INTERACTIONS`, each for the token's 15
//! minutes), the reference goes into the event as the `interaction`
//! property, and the event is emitted with the interaction `id` as its
//! dedupe key. The ack becomes the deferred response (`{"type":5}`, or
//! `{"type":6}` for a component) within Discord's 3 seconds; a refusal the
//! status of [`connector_webhook::answer::refused_audited`] (a
//! `validation_error` is a `500` and an audit record).
//!
//! The operations run in their own tasks: `followup` looks the reference
//! up and POSTs to `<API_BASE>/webhooks/<application id>/<token>`;
//! `createMessage` POSTs to `<API_BASE>/channels/<id>/messages` with
//! `Authorization: Bot <BOT_TOKEN>`. Discord's answers map to failure
//! classes in [`api::answer`].

pub mod api;
pub mod attachments;
pub mod interaction;
mod ops;
mod server;
pub mod tokens;

use std::sync::{Arc, Mutex};

use connector_sdk::verify::Scheme;
use connector_sdk::{BoxError, ConfigError, Context};
use connector_webhook::guard::{self, Clock, Guard, REPLAY_WINDOW};
use connector_webhook::listen::{self, Listen};
use connector_webhook::settings::Settings;

use crate::api::{DEFAULT_API_BASE, DiscordApi};
use crate::server::App;
use crate::tokens::{TOKEN_LIFETIME, Tokens};

/// The secret requests are verified with: the application's public key (64 hex digits).
pub const PUBLIC_KEY: &str = "PUBLIC_KEY";
/// The secret `createMessage` authenticates with.
pub const BOT_TOKEN: &str = "BOT_TOKEN";
/// Config: where the Discord API is (tests point it at a fake).
pub const API_BASE: &str = "API_BASE";
/// Config: how many interaction references are kept at once.
pub const MAX_INTERACTIONS: &str = "MAX_INTERACTIONS";

/// The connector on the system clock.
pub async fn run(ctx: Context) -> Result<(), BoxError> {
    run_with_clock(ctx, guard::system_clock()).await
}

/// The connector, reading "now" for the replay window from `clock`.
pub async fn run_with_clock(ctx: Context, clock: Clock) -> Result<(), BoxError> {
    let settings = Settings::new(ctx.config());
    let known = [listen::KEYS, &[REPLAY_WINDOW, API_BASE, MAX_INTERACTIONS]].concat();
    for w in settings.unknown_keys(&known) {
        ctx.warn(w);
    }
    let listen = Listen::from_settings(&settings, 8080, 1024 * 1024)?;
    let guard =
        Guard::new(Scheme::Discord, ctx.secrets(), PUBLIC_KEY, &settings)?.with_clock(clock);
    let base = settings.get(API_BASE).unwrap_or(DEFAULT_API_BASE);
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        return Err(ConfigError::new(format!("{API_BASE}: '{base}' is not an http(s) URL")).into());
    }
    let capacity: usize = settings.number(MAX_INTERACTIONS, 10_000)?;
    if capacity == 0 {
        return Err(ConfigError::new(format!("{MAX_INTERACTIONS}: must be at least 1")).into());
    }
    let bot_token = ctx
        .secrets()
        .get(BOT_TOKEN)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    if bot_token.is_none() {
        ctx.info(
            "no BOT_TOKEN secret: createMessage will fail permanent; followup works without it",
        );
    }
    let api = DiscordApi::new(base, bot_token)?;
    let tokens = Arc::new(Mutex::new(Tokens::new(capacity, TOKEN_LIFETIME)));
    ops::register(&ctx, api, tokens.clone());
    let (listener, _) = listen.bind(&ctx).await?;
    let app = Arc::new(App {
        ctx: ctx.clone(),
        guard,
        tokens,
        max_body_bytes: listen.max_body_bytes,
    });
    listen::serve(&ctx, listener, server::router(app), listen.limits).await
}
