//! One module per command.

pub mod check;
pub mod init;
pub mod job;
pub mod pipeline;
pub mod runner;
pub mod settings;
