//! `connector-telegram`: long-polls the Telegram Bot API and emits
//! `message`, `command`, `edited_message` and `callback_query` events.
//!
//! Secret `BOT_TOKEN`; config `API_BASE` (default the public Bot API),
//! `POLL_TIMEOUT` (seconds, default 30) and `ALLOWED_UPDATES`. The polling
//! offset is kept in `<stateDir>/offset` and advanced only after the
//! orchestrator acked the updates below it. See `README.md` beside this
//! crate and [`connector_telegram`] for how it works.

use std::process::ExitCode;

fn main() -> ExitCode {
    connector_sdk::run(connector_telegram::run)
}
