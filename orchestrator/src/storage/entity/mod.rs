//! sea-orm entities, one per table. They mirror the schema the migrations create; the
//! conversions to and from the domain's records live beside the code that uses them.

pub mod api_token;
pub mod job;
pub mod job_stage;
pub mod job_transition;
pub mod log_line;
pub mod pipeline;
pub mod plugin;
pub mod registration_token;
pub mod runner;
pub mod runner_credential;
pub mod schedule;
pub mod schedule_fire;
pub mod secret;
pub mod status_report;
pub mod trigger;
