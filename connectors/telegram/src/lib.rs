//! The Telegram connector: Bot API long polling to events, at least once.
//!
//! # Theory of operation
//!
//! One loop. `getUpdates` (a POST to `<API_BASE>/bot<token>/getUpdates`
//! with `offset` and `timeout`) waits up to `POLL_TIMEOUT` seconds for
//! updates. Each update of the answer is [classified](classify): a text
//! message becomes `message` (or `command` when it starts with `/`), a
//! photo, document, voice, video or audio `message` with a
//! `telegram-file:<file_id>` reference (never a URL: those hold the token),
//! an edit `edited_message`, a channel post `channel_post` (and
//! `edited_channel_post`), a button press `callback_query`, a change of the
//! bot's membership `my_chat_member`; anything else — reactions, boosts,
//! other member changes, paid media, kinds newer than this code — is
//! skipped with a log line. All the batch's events are emitted at
//! once, each with the dedupe key `telegram:<update_id>`, then their answers
//! are awaited.
//!
//! The offset moves past an update only once the orchestrator acked it (or
//! it was skipped) and every update before it in the batch: it is then
//! written to `<stateDir>/offset` and sent with the next `getUpdates`, which
//! tells Telegram to forget those updates. A crash before that re-fetches
//! them on restart, and the dedupe key keeps the orchestrator from
//! delivering one twice. A nacked update stops the offset there, and the
//! connector backs off before fetching it again.
//!
//! Failures back off on the context's clock ([`Context::clock`]), so tests
//! drive them with a mock clock: 1 s doubling to 60 s for transport errors, 5xx
//! and 409 Conflict (another poller, or a webhook set for the bot); exactly
//! `parameters.retry_after` for 429. 401 and 404 mean the token (or
//! `API_BASE`) is wrong: the connector exits 78 so the orchestrator waits
//! for a configuration change instead of restarting it in a loop.
//!
//! Operations (`sendMessage`, `editMessageText`, `answerCallbackQuery`,
//! `sendChatAction`, `getFile`) are each one Bot API call made with the
//! same client; their failures are classified as OPERATIONS.md says (429 →
//! `quota_exceeded`, 5xx and no answer → `transient`, other 4xx →
//! `permanent`).
//!
//! The token is in every URL, so no URL is ever logged or put into an error.
//!
//! [`Context::clock`]: connector_sdk::Context::clock

mod api;
mod backoff;
mod config;
mod offset;
mod ops;
mod poller;
mod updates;

pub use config::{
    Config, DEFAULT_API_BASE, DEFAULT_MAX_FILE_BYTES, DEFAULT_POLL_TIMEOUT, MAX_FILE_BYTES_LIMIT,
};
pub use ops::OPERATIONS;
pub use poller::{BACKOFF_FIRST, BACKOFF_MAX, run};
pub use updates::{Classified, Outcome, classify};
