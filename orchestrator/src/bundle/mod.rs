//! The bundle: parse, validate, resolve.
pub mod model;
pub use model::*;
