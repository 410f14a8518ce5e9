//! `connector-telegram`: long-polls the Telegram Bot API and emits
//! `message`, `command`, `edited_message`, `channel_post`,
//! `edited_channel_post`, `callback_query` and `my_chat_member` events;
//! serves the operations `sendMessage`, `editMessageText`,
//! `answerCallbackQuery`, `sendChatAction` and `getFile`.
//!
//! Secret `BOT_TOKEN`; config `API_BASE` (default the public Bot API),
//! `POLL_TIMEOUT` (seconds, default 30), `ALLOWED_UPDATES` and `MAX_FILE_BYTES`. The polling
//! offset is kept in `<stateDir>/offset` and advanced only after the
//! orchestrator acked the updates below it. See `README.md` beside this
//! crate and [`connector_telegram`] for how it works.

use std::process::ExitCode;

fn main() -> ExitCode {
    connector_sdk::run(connector_telegram::run)
}
