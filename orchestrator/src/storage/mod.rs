//! Storage on sea-orm: PostgreSQL for distributed mode, SQLite for embedded mode.
//!
//! [`SeaStore`] implements [`crate::domain::store::Store`] once for both backends. The
//! implementation is split by concern: `pipelines`, `plugins`, `jobs` (creation, reads, cancel),
//! `claim`, `lifecycle` (the fenced state changes), `logs`, `runners`, `identity`
//! (registration tokens and runner credentials), `tokens` (API tokens, by hash),
//! `secrets` (sealed values only) and `schedules` (cron schedules and their claimed fires);
//! `entity` holds the sea-orm entities and `codec` the conversions to the domain's types.
//! The backends
//! differ only in how a writer is made exclusive (see [`SeaStore`]), how concurrent
//! migrations are serialised (`connect`), and the parameter limit of a multi-row insert.

mod claim;
mod codec;
mod connect;
mod entity;
mod identity;
mod jobs;
mod lifecycle;
mod logs;
mod pipelines;
mod plugins;
mod runners;
mod schedules;
mod secrets;
mod statuses;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod tokens;
mod triggers;

pub use store::{Backend, SeaStore};
