//! connector-sdk
