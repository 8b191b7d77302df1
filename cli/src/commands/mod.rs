//! One module per command.

pub mod check;
pub mod dev;
pub mod init;
pub mod job;
pub mod pipeline;
pub mod plugin;
pub mod run;
pub mod runner;
pub mod schedule;
pub mod secret;
pub mod settings;
pub mod token;
pub mod trigger;
