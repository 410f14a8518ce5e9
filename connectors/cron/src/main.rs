//! `connector-cron`: emits a `tick` event on a cron or interval schedule.
//!
//! Config: `SCHEDULE` (a cron expression of 5 or 6 fields) or `EVERY` (an
//! interval such as `30s`), `TIMEZONE` (IANA name, default UTC), `CATCH_UP`
//! (`skip`, `latest` or `all`: what to fire for slots missed while it was
//! down) and `NAME` (an optional label). The last acked slot is kept in
//! `<stateDir>/last_fire`. See `README.md` beside this crate and
//! [`connector_cron`] for how it works.

use std::process::ExitCode;

fn main() -> ExitCode {
    connector_sdk::run(connector_cron::run)
}
