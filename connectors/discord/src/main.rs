//! `connector-discord`: serves Discord's Interactions endpoint over HTTP.
//! Each request is verified with the application's Ed25519 `PUBLIC_KEY`
//! (and its timestamp within 5 minutes of the system clock); `PING` is
//! answered `PONG`; application commands, message components and modal
//! submissions become the events `command`, `component` and `modal_submit`
//! (instance key `discord:<channel id>`), answered with a deferred
//! response once the orchestrator has them. The agent answers through the
//! operations `followup` (by the event's `interaction` reference; the
//! interaction token never leaves the connector) and `createMessage` (with
//! the `BOT_TOKEN` secret). Config: `HOST`, `PORT`, `API_BASE`,
//! `MAX_INTERACTIONS`, `MAX_BODY_BYTES`, `REPLAY_WINDOW`, and the
//! connection limits; see README.md beside this crate.

use std::process::ExitCode;

fn main() -> ExitCode {
    connector_sdk::run(connector_discord::run)
}
