//! The orchestrator library.
pub mod bundle;
