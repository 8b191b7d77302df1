//! The orchestrator's domain: the contracts of storage and coordination, and the logic
//! that drives jobs through their lifecycle on top of them.

pub mod access;
pub mod bounds;
pub mod coord;
pub mod dispatch;
pub mod error;
pub mod identity;
pub mod keyring;
pub mod leases;
pub mod metrics;
pub mod orchestrator;
pub mod plugins;
pub mod registry;
pub mod schedules;
pub mod secrets;
pub mod session;
pub mod statuses;
pub mod store;
pub mod timeouts;
pub mod tokens;
pub mod triggers;
