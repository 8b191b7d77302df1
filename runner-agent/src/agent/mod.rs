//! The runner agent's connection to the orchestrator: one long-lived `Connect` stream that
//! the runner opens (so it works behind NAT), reopened with exponential backoff and jitter
//! whenever it breaks. Jobs run on their own tasks and keep running while the orchestrator
//! is unreachable; their output waits in the [`Outbox`] until it is acknowledged.

pub mod config;
pub mod credential;
pub mod outbox;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rivet_core::job::PROTOCOL_VERSION;
use rivet_core::{Assignment, FailureReason, JobState};
use rivet_proto::endpoint::{ClientTls, endpoint};
use rivet_proto::v1::runner_service_client::RunnerServiceClient;
use rivet_proto::v1::{self as pb, ConnectRequest, connect_request, connect_response};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

pub use config::AgentConfig;
pub use credential::Credential;
pub use outbox::Outbox;

use crate::agent::credential::CredentialError;

use crate::job::{EventSink, JobOutcome, JobSpec};
use crate::proto;

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

struct Running {
    assignment: Assignment,
    cancel: CancellationToken,
}

/// The runner agent.
pub struct Agent {
    config: AgentConfig,
    runner_id: Uuid,
    /// The runner's own credential, once it registered.
    credential: Option<Credential>,
    runner: Arc<dyn JobRunner>,
    outbox: Outbox,
    running: Arc<Mutex<HashMap<Uuid, Running>>>,
    stopping_now: Arc<AtomicBool>,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("runner_id", &self.runner_id).finish_non_exhaustive()
    }
}

/// What one connection ended with.
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
        Ok(Agent {
            config,
            runner_id,
            credential,
            runner,
            outbox,
            running: Arc::default(),
            stopping_now: Arc::default(),
            tasks: TaskTracker::new(),
        })
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
    pub async fn run(mut self, stop: Stop) -> Result<(), AgentError> {
        let tls = &self.config.tls;
        let files = ClientTls {
            ca_file: tls.ca_file.as_deref(),
            cert_file: tls.cert_file.as_deref(),
            key_file: tls.key_file.as_deref(),
        };
        let endpoint = endpoint(&self.config.orchestrator_url, files)
            .map_err(|err| AgentError::InvalidUrl {
                url: self.config.orchestrator_url.clone(),
                message: err.to_string(),
            })?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(15))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        if self.registration_pending()
            && let Some(token) = self.config.registration_token().map(str::to_owned)
            && !self.register(&endpoint, &token, &stop).await?
        {
            return Ok(());
        }
        let (min, max) = self.config.reconnect_bounds();
        let mut delay = min;
        loop {
            let connected = endpoint.connect().await;
            match connected {
                Ok(channel) => match self.serve(channel, &stop).await {
                    Ok(Ended::Done) => return Ok(()),
                    Ok(Ended::Reconnect) => delay = min,
                    Err(status) if is_fatal(&status) && self.credential.is_some() => {
                        let path = credential::path(&self.config.state_dir);
                        tracing::error!(status = %status, path = %path.display(), "the orchestrator refused this runner's credential");
                        return Err(AgentError::CredentialRefused { path, status });
                    }
                    Err(status) if is_fatal(&status) => return Err(AgentError::Refused(status)),
                    Err(status) => tracing::warn!(status = %status, "connection to the orchestrator failed"),
                },
                Err(err) => {
                    tracing::warn!(error = %err, url = %self.config.orchestrator_url, "cannot reach the orchestrator")
                }
            }
            if self.stopped_while_away(&stop) {
                return Ok(());
            }
            // Full jitter: a fleet of runners does not reconnect in lockstep.
            let jittered = delay.mul_f64(0.5 + jitter() * 0.5);
            tracing::info!(delay_ms = jittered.as_millis() as u64, "reconnecting");
            // A stop that comes while waiting is acted on now, not after the delay.
            tokio::select! {
                _ = tokio::time::sleep(jittered) => {}
                _ = stop.drain.cancelled() => {}
                _ = stop.now.cancelled() => {}
            }
            if self.stopped_while_away(&stop) {
                return Ok(());
            }
            delay = (delay * 2).min(max);
        }
    }

    /// Trades the registration token for the runner's own credential and stores it,
    /// retrying while the orchestrator is unreachable. `false` when told to stop first.
    async fn register(&mut self, endpoint: &Endpoint, token: &str, stop: &Stop) -> Result<bool, AgentError> {
        let (min, max) = self.config.reconnect_bounds();
        let mut delay = min;
        loop {
            let attempt = async {
                let channel = endpoint.connect().await.map_err(|err| tonic::Status::unavailable(err.to_string()))?;
                let mut client = RunnerServiceClient::new(channel);
                let mut request = tonic::Request::new(pb::RegisterRunnerRequest {
                    name: self.config.runner_name(),
                    labels: self.config.announced_labels().into_iter().collect(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                });
                let value = format!("Bearer {token}").parse().map_err(|_| {
                    tonic::Status::invalid_argument("the registration token has characters not allowed in metadata")
                })?;
                request.metadata_mut().insert("authorization", value);
                client.register_runner(request).await.map(tonic::Response::into_inner)
            };
            match attempt.await {
                Ok(registered) => {
                    let runner_id = Uuid::parse_str(&registered.runner_id).map_err(|err| {
                        AgentError::RegistrationRefused(tonic::Status::internal(format!(
                            "the orchestrator answered with a malformed runner id: {err}"
                        )))
                    })?;
                    let credential = Credential {
                        runner_id,
                        credential: registered.credential,
                        labels: registered.labels.into_iter().collect(),
                    };
                    let path = credential::store(&self.config.state_dir, &credential)?;
                    tracing::info!(runner = %runner_id, path = %path.display(), labels = ?credential.labels, "registered: the credential is stored");
                    self.runner_id = runner_id;
                    self.credential = Some(credential);
                    return Ok(true);
                }
                Err(status) if is_fatal(&status) => {
                    tracing::error!(status = %status, "the orchestrator refused the registration token");
                    return Err(AgentError::RegistrationRefused(status));
                }
                Err(status) => {
                    tracing::warn!(status = %status, url = %self.config.orchestrator_url, "cannot register yet")
                }
            }
            let jittered = delay.mul_f64(0.5 + jitter() * 0.5);
            tokio::select! {
                _ = stop.drain.cancelled() => return Ok(false),
                _ = stop.now.cancelled() => return Ok(false),
                _ = tokio::time::sleep(jittered) => {}
            }
            delay = (delay * 2).min(max);
        }
    }

    /// Whether a runner without a connection should stop: told to stop now with no job
    /// running, or told to drain with no job running and nothing left to report (a drain
    /// finishes jobs and delivers their reports; with neither, there is nothing to wait
    /// for, and an orchestrator that went away first must not keep it alive).
    fn stopped_while_away(&self, stop: &Stop) -> bool {
        let idle = self.running.lock().map(|r| r.is_empty()).unwrap_or(true);
        (stop.now.is_cancelled() && idle) || (stop.drain.is_cancelled() && idle && self.outbox.lock().is_empty())
    }

    async fn serve(&self, channel: Channel, stop: &Stop) -> Result<Ended, tonic::Status> {
        let mut client = RunnerServiceClient::new(channel)
            .max_decoding_message_size(self.config.max_message_bytes)
            .max_encoding_message_size(self.config.max_message_bytes);
        let (sender, receiver) = mpsc::channel::<ConnectRequest>(64);
        sender.send(self.hello()).await.map_err(|_| tonic::Status::internal("outgoing channel closed"))?;
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(receiver));
        if let Some(credential) = &self.credential {
            let value = format!("Bearer {}", credential.credential).parse().map_err(|_| {
                tonic::Status::invalid_argument("the runner credential has characters not allowed in metadata")
            })?;
            request.metadata_mut().insert("authorization", value);
        }
        let mut inbound = client.connect(request).await?.into_inner();
        let welcome = match inbound.message().await? {
            Some(pb::ConnectResponse { body: Some(connect_response::Body::Welcome(welcome)) }) => welcome,
            _ => return Err(tonic::Status::internal("the orchestrator did not answer the hello with a welcome")),
        };
        for abandoned in &welcome.abandon {
            if let Some(assignment) = proto::assignment(abandoned.clone()) {
                tracing::warn!(%assignment, "the orchestrator handed this job to another runner: stopping it");
                self.stop_job(assignment.job_id);
                self.outbox.close(assignment.job_id);
            }
        }
        self.outbox.rewind();
        for ack in &welcome.acks {
            if let Ok(job) = Uuid::parse_str(&ack.job_id) {
                self.outbox.ack(job, ack.sequence);
            }
        }
        tracing::info!(runner = %self.runner_id, protocol = welcome.protocol_version, "connected to the orchestrator");
        let mut heartbeat = tokio::time::interval(Duration::from_millis(welcome.heartbeat_interval_ms.max(100)));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_acks = BTreeMap::new();
        let mut draining = false;
        let mut stopped_now = false;
        loop {
            self.flush(&sender).await;
            if (draining || stop.drain.is_cancelled() || stop.now.is_cancelled()) && self.outbox.lock().is_empty() {
                return Ok(if stop.drain.is_cancelled() || stop.now.is_cancelled() {
                    Ended::Done
                } else {
                    Ended::Reconnect
                });
            }
            tokio::select! {
                message = inbound.message() => match message? {
                    Some(pb::ConnectResponse { body: Some(body) }) => {
                        if let Some(ended) = self.handle(body, &sender, stop, &mut draining).await {
                            return Ok(ended);
                        }
                    }
                    Some(_) => {}
                    None => return Ok(Ended::Reconnect),
                },
                _ = heartbeat.tick() => {
                    last_acks = self.outbox.resend_stalled(&last_acks);
                    self.heartbeat(&sender, draining || stop.drain.is_cancelled()).await;
                }
                _ = self.outbox.changed() => {}
                _ = stop.now.cancelled(), if !stopped_now => {
                    stopped_now = true;
                    draining = true;
                    self.stop_all();
                    self.heartbeat(&sender, true).await;
                }
                _ = stop.drain.cancelled(), if !draining => {
                    draining = true;
                    // Say so at once, so the orchestrator stops assigning jobs here.
                    self.heartbeat(&sender, true).await;
                }
            }
        }
    }

    /// Handles one orchestrator message; `Some` ends the connection.
    async fn handle(
        &self,
        body: connect_response::Body,
        sender: &mpsc::Sender<ConnectRequest>,
        stop: &Stop,
        draining: &mut bool,
    ) -> Option<Ended> {
        match body {
            connect_response::Body::Welcome(_) => tracing::warn!("ignoring a second welcome"),
            connect_response::Body::AssignJob(assign) => {
                let Some(spec) = proto::job_spec(assign) else {
                    tracing::error!("ignoring a malformed assignment");
                    return None;
                };
                let assignment = spec.assignment;
                let full = self.running.lock().map(|r| r.len() as u32 >= self.config.capacity).unwrap_or(true);
                if *draining || stop.drain.is_cancelled() || full {
                    let reason = if full { "the runner is at capacity" } else { "the runner is draining" };
                    let rejected = pb::JobRejected {
                        assignment: Some(proto::assignment_to_proto(assignment)),
                        reason: reason.to_owned(),
                    };
                    let _ = sender.send(request_of(connect_request::Body::JobRejected(rejected))).await;
                    return None;
                }
                let accepted = pb::JobAccepted { assignment: Some(proto::assignment_to_proto(assignment)) };
                let _ = sender.send(request_of(connect_request::Body::JobAccepted(accepted))).await;
                self.start_job(spec);
            }
            connect_response::Body::CancelJob(cancel) => {
                if let Some(assignment) = cancel.assignment.and_then(proto::assignment) {
                    tracing::info!(%assignment, "cancel requested");
                    self.stop_job(assignment.job_id);
                }
            }
            connect_response::Body::LogAck(ack) => {
                if let Ok(job) = Uuid::parse_str(&ack.job_id) {
                    self.outbox.ack(job, ack.sequence);
                }
            }
            connect_response::Body::Drain(drain) => {
                tracing::info!(reason = %drain.reason, "the orchestrator asked this runner to reconnect elsewhere");
                return Some(Ended::Reconnect);
            }
            connect_response::Body::Refused(refused) => {
                if let Some(assignment) = refused.assignment.and_then(proto::assignment) {
                    tracing::warn!(%assignment, reason = %refused.reason, "the orchestrator refused a report: dropping the job");
                    self.stop_job(assignment.job_id);
                    self.outbox.close(assignment.job_id);
                }
            }
            connect_response::Body::JobClosed(closed) => {
                if let Some(assignment) = closed.assignment.and_then(proto::assignment) {
                    self.outbox.close(assignment.job_id);
                }
            }
        }
        None
    }

    async fn heartbeat(&self, sender: &mpsc::Sender<ConnectRequest>, draining: bool) {
        let beat = pb::RunnerHeartbeat { running_jobs: self.running_jobs(), draining };
        let _ = sender.send(request_of(connect_request::Body::Heartbeat(beat))).await;
    }

    /// The labels to announce: the ones the registration granted, once registered (the
    /// orchestrator refuses any other), else the configured ones.
    fn labels(&self) -> BTreeMap<String, String> {
        let configured = self.config.announced_labels();
        match &self.credential {
            Some(credential) => {
                if credential.labels != configured {
                    tracing::warn!(granted = ?credential.labels, configured = ?configured, "announcing the labels the registration granted, not the configured ones");
                }
                credential.labels.clone()
            }
            None => configured,
        }
    }

    fn hello(&self) -> ConnectRequest {
        let hello = pb::RunnerHello {
            protocol_versions: vec![PROTOCOL_VERSION],
            runner_id: self.runner_id.to_string(),
            name: self.config.runner_name(),
            labels: self.labels().into_iter().collect(),
            capacity: self.config.capacity,
            running_jobs: self.running_jobs(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        request_of(connect_request::Body::Hello(hello))
    }

    /// Every job the orchestrator must still hear about: running, or finished but not yet
    /// confirmed.
    fn running_jobs(&self) -> Vec<pb::RunningJob> {
        self.outbox
            .lock()
            .values()
            .map(|outbox| pb::RunningJob {
                assignment: Some(proto::assignment_to_proto(outbox.assignment)),
                last_sequence: outbox.produced,
            })
            .collect()
    }

    fn start_job(&self, spec: JobSpec) {
        let assignment = spec.assignment;
        let cancel = CancellationToken::new();
        if let Ok(mut running) = self.running.lock() {
            running.insert(assignment.job_id, Running { assignment, cancel: cancel.clone() });
        }
        self.outbox.open(assignment, spec.first_sequence);
        let outbox = self.outbox.clone();
        let running = self.running.clone();
        let stopping_now = self.stopping_now.clone();
        let future = self.runner.run(spec, Arc::new(outbox.clone()), cancel);
        tracing::info!(%assignment, "job started");
        self.tasks.spawn(async move {
            let mut outcome = future.await;
            if stopping_now.load(Ordering::Relaxed) {
                outcome = stopped(outcome);
            }
            tracing::info!(%assignment, state = %outcome.state, "job ended");
            if let Ok(mut running) = running.lock() {
                running.remove(&assignment.job_id);
            }
            outbox.finish(assignment.job_id, outcome);
        });
    }

    fn stop_job(&self, job: Uuid) {
        if let Ok(running) = self.running.lock()
            && let Some(entry) = running.get(&job)
        {
            entry.cancel.cancel();
        }
    }

    fn stop_all(&self) {
        self.stopping_now.store(true, Ordering::Relaxed);
        if let Ok(running) = self.running.lock() {
            for entry in running.values() {
                tracing::warn!(assignment = %entry.assignment, "stopping the job: the runner is stopping now");
                entry.cancel.cancel();
            }
        }
    }

    /// Sends what the outbox holds that this connection has not sent yet.
    async fn flush(&self, sender: &mpsc::Sender<ConnectRequest>) {
        const BATCH_LINES: usize = 500;
        let mut messages = Vec::new();
        {
            let mut jobs = self.outbox.lock();
            for outbox in jobs.values_mut() {
                let assignment = Some(proto::assignment_to_proto(outbox.assignment));
                while outbox.stage_events_sent < outbox.stage_events.len() {
                    let event = &outbox.stage_events[outbox.stage_events_sent];
                    if let Some(body) = proto::stage_event(outbox.assignment, event) {
                        messages.push(request_of(body));
                    }
                    outbox.stage_events_sent += 1;
                }
                // Bounded per flush, so one chatty job cannot starve heartbeats.
                for _ in 0..8 {
                    let lines = match outbox.unsent_lines(BATCH_LINES, self.config.max_log_batch_bytes) {
                        Ok(lines) => lines,
                        Err(err) => {
                            tracing::error!(job = %outbox.assignment.job_id, error = %err, "cannot read spilled log lines");
                            break;
                        }
                    };
                    let Some(last) = lines.last().map(|line| line.sequence) else { break };
                    outbox.sent = last;
                    let batch = pb::LogBatch {
                        assignment: assignment.clone(),
                        lines: lines.iter().map(proto::log_line).collect(),
                    };
                    messages.push(request_of(connect_request::Body::LogBatch(batch)));
                }
                if let Some(outcome) = &outbox.outcome
                    && !outbox.finish_sent
                    && outbox.acked >= outbox.produced
                {
                    outbox.finish_sent = true;
                    messages.push(request_of(connect_request::Body::JobFinished(proto::job_finished(
                        outbox.assignment,
                        outcome,
                    ))));
                }
            }
        }
        for message in messages {
            if sender.send(message).await.is_err() {
                return;
            }
        }
    }
}

fn request_of(body: connect_request::Body) -> ConnectRequest {
    ConnectRequest { body: Some(body) }
}

/// Whether a status means retrying cannot help (linkerd's `Recover`, in one place).
fn is_fatal(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::InvalidArgument | Code::FailedPrecondition | Code::Unauthenticated | Code::PermissionDenied
    )
}

/// A number in [0, 1) from the OS's randomness (through a v4 UUID).
fn jitter() -> f64 {
    (Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64
}

/// A job the runner cancelled because it was itself told to stop now is reported failed,
/// not cancelled: no user cancelled it.
fn stopped(outcome: JobOutcome) -> JobOutcome {
    if outcome.state != JobState::Cancelled {
        return outcome;
    }
    JobOutcome {
        state: JobState::Failed,
        failure_reason: Some(FailureReason::Cancelled),
        message: "the runner was stopped while the job ran".to_owned(),
        ..outcome
    }
}
