//! `connector-slack`: receives Slack's Events API callbacks and slash
//! commands over HTTP, verifies each request's `X-Slack-Signature` with the
//! secret `SIGNING_SECRET` (and its timestamp within 5 minutes of the system
//! clock), answers Slack's `url_verification` challenge, and emits each
//! callback as the event named by its type (`message`, `app_mention`,
//! `reaction_added`, …, or `event`) and each slash command as
//! `slash_command`, with `team`, `channel`, `user` and `thread_ts`
//! properties and an instance key per channel and thread. `event_id` is the
//! dedupe key, so Slack's retries are not delivered twice. Interactivity
//! (`payload=` forms) becomes `block_actions`, `view_submission` or
//! `interaction` events. Operations: `chat.postMessage`, `chat.update`,
//! `reactions.add`, `getFile` (secret `BOT_TOKEN`) and `respond` (through a
//! kept response_url named by the event's `response_ref`). Config: `HOST`,
//! `PORT`, `MAX_BODY_BYTES`, `REPLAY_WINDOW`, `API_BASE`, `MAX_FILE_BYTES`;
//! see README.md beside this crate.

use std::process::ExitCode;

fn main() -> ExitCode {
    connector_sdk::run(connector_slack::run)
}
