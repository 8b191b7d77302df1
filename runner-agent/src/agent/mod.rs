//! The runner agent's side of the runner protocol: one long-lived `Connect` stream that
//! the runner opens (so it works behind NAT), reopened with backoff whenever it breaks.
//! Jobs run on their own tasks and keep running while the orchestrator is unreachable;
//! their output waits in the [`Outbox`] until it is acknowledged.
//!
//! - `connection`: the transport and the protocol's edge (wire messages are encoded and
//!   decoded there, and nowhere else), registration, reconnecting with backoff, and the
//!   retry-or-give-up decision.
//! - `session`: one stream's hello, welcome and message loop, on `rivet_core::protocol`'s
//!   messages.
//! - `jobs`: the running-job table.
//! - [`outbox`]: what the runner owes the orchestrator, as operations.

pub mod config;
mod connection;
pub mod credential;
mod jobs;
pub mod outbox;
mod session;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use config::AgentConfig;
pub use credential::Credential;
pub use outbox::Outbox;

use crate::agent::connection::Transport;
use crate::agent::credential::CredentialError;
use crate::agent::jobs::Jobs;
use crate::job::{EventSink, JobOutcome, JobSpec};

/// Runs one job to its end. The Podman executor implements it; tests may script one.
pub trait JobRunner: Send + Sync + 'static {
    /// Runs `spec`, reporting through `sink`, until it ends or `cancel` fires.
    fn run(
        &self,
        spec: JobSpec,
        sink: Arc<dyn EventSink>,
        cancel: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = JobOutcome> + Send + 'static>>;
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The orchestrator refused the runner for good (bad token, protocol mismatch).
    #[error("the orchestrator refused this runner: {0}")]
    Refused(tonic::Status),
    /// The orchestrator refused the registration token.
    #[error("the orchestrator refused the registration token: {0}")]
    RegistrationRefused(tonic::Status),
    /// The orchestrator refused the runner's credential: it was revoked, or belongs to
    /// another orchestrator's database.
    #[error(
        "the orchestrator refused this runner's credential ({path}): {status}. If the runner was revoked, \
         delete that file and register it again with a new registration token"
    )]
    CredentialRefused {
        /// The credential file.
        path: std::path::PathBuf,
        /// The orchestrator's answer.
        status: tonic::Status,
    },
    /// The credential file cannot be read or written.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The orchestrator URL is malformed.
    #[error("invalid orchestrator url `{url}`: {message}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The state directory cannot be used.
    #[error("cannot use the state directory: {0}")]
    State(#[from] std::io::Error),
}

/// How the agent should stop.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    /// Drain: take no new jobs, finish the running ones, then disconnect.
    pub drain: CancellationToken,
    /// Stop now: cancel running jobs, report them, then disconnect.
    pub now: CancellationToken,
}

/// The runner agent.
pub struct Agent {
    config: AgentConfig,
    runner_id: Uuid,
    /// The runner's own credential, once it registered.
    credential: Option<Credential>,
    outbox: Outbox,
    jobs: Jobs,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("runner_id", &self.runner_id).finish_non_exhaustive()
    }
}

/// What one stream ended with.
enum Ended {
    /// The stream broke or the orchestrator asked us to go: reconnect.
    Reconnect,
    /// Stopping, and everything is reported.
    Done,
}

impl Agent {
    /// Creates an agent; reads its credential, or (without one) its stable id, from the
    /// state directory, creating the id when there is none.
    pub fn new(config: AgentConfig, runner: Arc<dyn JobRunner>) -> Result<Agent, AgentError> {
        std::fs::create_dir_all(&config.state_dir)?;
        let credential = credential::load(&config.state_dir)?;
        let id_file = config.state_dir.join("runner-id");
        let stored_id = std::fs::read_to_string(&id_file).ok().and_then(|text| Uuid::parse_str(text.trim()).ok());
        let runner_id = match (&credential, stored_id) {
            (Some(credential), _) => credential.runner_id,
            (None, Some(id)) => id,
            (None, None) => {
                let id = Uuid::new_v4();
                std::fs::write(&id_file, id.to_string())?;
                id
            }
        };
        let spill_dir = config.state_dir.join("spill");
        let _ = std::fs::remove_dir_all(&spill_dir);
        let outbox = Outbox::new(spill_dir, config.log_memory_bytes, config.max_log_spill_bytes);
        let jobs = Jobs::new(runner, outbox.clone());
        Ok(Agent { config, runner_id, credential, outbox, jobs })
    }

    /// The runner's stable id.
    pub fn runner_id(&self) -> Uuid {
        self.runner_id
    }

    /// The runner's credential, once it registered.
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    /// Whether `run` registers first: no credential yet, and a registration token.
    pub fn registration_pending(&self) -> bool {
        self.credential.is_none() && self.config.registration_token().is_some()
    }

    /// Registers with the configured registration token when the runner has no credential
    /// yet, then connects and serves until `stop` says so and every job is reported.
    /// What the runner's `/metrics` endpoint serves: its metrics, with the gauges of this
    /// agent's jobs and outbox read at each scrape.
    pub fn metrics_render(&self) -> impl Fn() -> String + Send + Sync + 'static {
        let (outbox, jobs) = (self.outbox.clone(), self.jobs.clone());
        move || {
            let metrics = crate::metrics::get();
            metrics.set_outbox_bytes(outbox.held_bytes());
            metrics.set_jobs_running(jobs.len());
            metrics.render()
        }
    }

    pub async fn run(mut self, stop: Stop) -> Result<(), AgentError> {
        let transport = Transport::new(&self.config)?;
        if self.registration_pending()
            && let Some(token) = self.config.registration_token().map(str::to_owned)
            && !self.register(&transport, &token, &stop).await?
        {
            return Ok(());
        }
        self.serve_reconnecting(&transport, &stop).await
    }

    /// Whether a runner without a connection should stop: told to stop now with no job
    /// running, or told to drain with no job running and nothing left to report (a drain
    /// finishes jobs and delivers their reports; with neither, there is nothing to wait
    /// for, and an orchestrator that went away first must not keep it alive).
    fn stopped_while_away(&self, stop: &Stop) -> bool {
        let idle = self.jobs.is_empty();
        (stop.now.is_cancelled() && idle) || (stop.drain.is_cancelled() && idle && self.outbox.is_empty())
    }
}
