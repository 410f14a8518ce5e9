//! The orchestrator: a supervisor for event-driven agent swarms.
//!
//! # Theory of operation
//!
//! `orchestrator run bundle.yaml` loads a bundle ([`bundle`]: pure parse and
//! validate), then starts one supervised connector process per Connection
//! ([`connection`] under [`supervisor`]). Each event a connector emits is
//! checked against its Connector's declared events, recorded in the
//! [`journal`], acked, routed by the Connection's ingress rules ([`ingress`]:
//! pure) to an `(agent, instanceKey)`, and queued to that agent instance
//! ([`router`]), whose own supervised process receives it as a `deliver` and
//! acks it. Every process writes its own log under the state directory
//! ([`logs`]).
//!
//! The orchestrator never trusts a child: a bad frame, an undeclared event or
//! a crash is answered, logged and counted, and never unwinds anything but
//! that child's own supervision task.

pub mod bundle;
pub mod cluster;
pub mod connection;
pub mod console;
pub mod control;
pub mod egress;
pub mod ingress;
pub mod journal;
pub mod logs;
pub mod metrics;
pub mod operations;
pub mod reconcile;
pub mod router;
mod run;
pub mod sandbox;
pub mod shim;
pub mod status;
pub mod supervisor;

pub use run::{JournalMode, Retention, RunError, RunOptions, load_checked, run};

/// Process exit codes of the `orchestrator` binary (documented in the README).
pub mod exit_code {
    /// Success.
    pub const OK: u8 = 0;
    /// A failure while running.
    pub const FAILURE: u8 = 1;
    /// Bad command-line usage.
    pub const USAGE: u8 = 2;
    /// The bundle is invalid.
    pub const INVALID_BUNDLE: u8 = 3;
}
