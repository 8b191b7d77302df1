//! The orchestrator's domain: the contracts of storage and coordination, and the logic
//! that drives jobs through their lifecycle on top of them.

pub mod coord;
pub mod store;
