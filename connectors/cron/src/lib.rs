//! The cron connector: `tick` events on a schedule, with catch-up after downtime.
//!
//! # Theory of operation
//!
//! A schedule is a set of *slots*, instants in UTC: the matches of a cron
//! expression read in `TIMEZONE` ([croner], which handles DST gaps and
//! folds), or the multiples of an `EVERY` interval since the Unix epoch (so
//! `5m` fires at :00, :05, … and a restart keeps the rhythm). All time comes
//! from the context's clock ([`Context::clock`]), so tests move it by hand.
//!
//! At start the connector reads `<stateDir>/last_fire`, the last slot the
//! orchestrator acked. The slots after it up to now were missed; `CATCH_UP`
//! says what to fire for them: nothing (`skip`, the default), the latest
//! (`latest`), or each of them oldest first (`all`, at most
//! [`MAX_CATCH_UP`], the latest ones). Without the file there is nothing to
//! catch up. Then it sleeps until the next slot, emits `tick` for it,
//! waits for the ack and only then writes `last_fire`; slots that passed
//! while it slept past them (a suspended machine) or waited for acks are
//! treated as missed, by the same policy.
//!
//! The dedupe key of a tick is `cron:<slot>`, so a slot fired again after a
//! crash between the ack and the write of `last_fire` is not delivered twice.
//! A tick that is nacked as `overloaded`, `transient` or `quota_exceeded`
//! is retried with backoff until the next slot is due; any other refusal is
//! logged and the slot is given up.
//!
//! [`Context::clock`]: connector_sdk::Context::clock

mod config;
mod last_fire;
mod runner;
mod schedule;

pub use config::{CatchUp, Config, MAX_CATCH_UP};
pub use runner::run;
pub use schedule::Schedule;
