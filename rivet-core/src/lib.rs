//! Rivet's core: domain types, the Lua sandbox, pipeline loading and validation, and input
//! typing. This crate does no I/O and knows neither tonic nor sea-orm.

pub mod sandbox;
