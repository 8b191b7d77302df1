//! The database schema, as sea-orm-migration migrations: one set for PostgreSQL and SQLite.
//!
//! Each migration lives in its own module named `mYYYYMMDD_HHMMSS_name`, because
//! `DeriveMigrationName` records the module name in `seaql_migrations`. Migrations describe
//! the schema with their own identifiers instead of reusing the storage entities, so that a
//! later change to an entity cannot rewrite history.

use sea_orm_migration::prelude::*;

mod m20261127_000001_create_pipelines;
mod m20261127_000002_create_jobs;
mod m20261127_000003_create_job_transitions;
mod m20261127_000004_create_job_stages;
mod m20261127_000005_create_log_lines;
mod m20261127_000006_create_runners;
mod m20261129_030000_create_api_tokens;
mod m20261129_030100_create_registration_tokens;
mod m20261129_030101_create_runner_credentials;
mod m20261204_010000_create_secrets;
mod m20261204_020000_create_plugins;
mod m20261205_010000_add_job_trace;
mod m20261205_020000_create_triggers;
mod m20261205_030000_create_schedules;
mod m20261205_040000_create_status_reports;

/// Every migration, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_pipelines::Migration),
            Box::new(m20261127_000002_create_jobs::Migration),
            Box::new(m20261127_000003_create_job_transitions::Migration),
            Box::new(m20261127_000004_create_job_stages::Migration),
            Box::new(m20261127_000005_create_log_lines::Migration),
            Box::new(m20261127_000006_create_runners::Migration),
            Box::new(m20261129_030000_create_api_tokens::Migration),
            Box::new(m20261129_030100_create_registration_tokens::Migration),
            Box::new(m20261129_030101_create_runner_credentials::Migration),
            Box::new(m20261204_010000_create_secrets::Migration),
            Box::new(m20261204_020000_create_plugins::Migration),
            Box::new(m20261205_010000_add_job_trace::Migration),
            Box::new(m20261205_020000_create_triggers::Migration),
            Box::new(m20261205_030000_create_schedules::Migration),
            Box::new(m20261205_040000_create_status_reports::Migration),
        ]
    }
}
