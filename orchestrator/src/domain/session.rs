//! One runner's stream: hello and welcome, then heartbeats, job reports and log batches
//! in, and assignments, cancels and acks out, as `rivet_core::protocol` describes them (the
//! API edge decodes and encodes the wire messages). Every report is fenced by its
//! assignment's epoch and by the job's assigned runner; anything else is answered with
//! `Refused` so the runner stops working on it.
//!
//! A session is bound to the runner its credential names (see `domain::identity`): a hello
//! claiming another id, or labels the registration did not grant, is refused. A new
//! connection of the same runner fences the old session (on this replica it waits for it
//! to stop; other replicas are told over the runner's topic) before it takes over.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use rivet_core::protocol::{
    FromRunner, Heartbeat, JobFinished, Lifecycle, LogAck, LogBatch, PROTOCOL_VERSION, RunningJob, StageFinished,
    StageStarted, ToRunner, Violation, Welcome,
};
use rivet_core::{Assignment, JobState, StageState};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::bounds;
use crate::domain::coord::Topic;
use crate::domain::error::{Error, Result};
use crate::domain::identity::{RunnerIdentity, ungranted_label};
use crate::domain::leases;
use crate::domain::metrics::Requeue;
use crate::domain::orchestrator::{Orchestrator, RunnerCommand};
use crate::domain::registry::SessionHandle;
use crate::domain::store::{Finish, RunnerRecord, StageReport};

/// How many messages may wait for a slow runner before senders wait.
const OUTBOX: usize = 256;
/// How long a new connection waits for the runner's previous session on this replica to
/// stop after fencing it. A session stops between two messages, so this is only reached
/// when the database hangs; the new session then proceeds (the old one is fenced anyway).
const FENCE_WAIT: Duration = Duration::from_secs(5);
/// How often a registered runner's session re-reads its credential, in case the revoke
/// message (delivered at most once) was missed.
const CREDENTIAL_RECHECK: Duration = Duration::from_secs(30);

/// Why a report was refused: its assignment is not the job's current one, or the job is
/// assigned to another runner.
const STALE: &str = "stale assignment: the job is not (or no longer) assigned to this runner under this epoch";

/// A validated hello.
struct Hello {
    runner: RunnerRecord,
    running: Vec<RunningJob>,
}

/// One item of a runner's stream, as the API edge decoded it.
#[derive(Debug)]
pub enum Inbound {
    /// A well-formed message.
    Message(FromRunner),
    /// A message that could not be decoded (a required field missing or malformed). It is
    /// logged and the stream goes on, except in place of the hello.
    Malformed(Error),
    /// The stream failed, for the reason given.
    Broken(String),
}

/// Serves one runner stream: answers the hello, then handles messages until the stream
/// ends. Returns the receiver of messages to send to the runner; `serve` runs on a task.
pub async fn open<S>(
    orchestrator: Orchestrator,
    identity: RunnerIdentity,
    mut incoming: S,
) -> Result<mpsc::Receiver<ToRunner>>
where
    S: Stream<Item = Inbound> + Send + Unpin + 'static,
{
    let mut lifecycle = Lifecycle::new();
    let hello = match incoming.next().await {
        Some(Inbound::Message(message)) => {
            lifecycle.from_runner(&message).map_err(|violation| Error::invalid("body", violation.to_string()))?;
            let FromRunner::Hello(hello) = message else {
                return Err(Error::invalid("body", Violation::HelloFirst.to_string()));
            };
            parse_hello(hello)?
        }
        Some(Inbound::Malformed(err)) => return Err(err),
        Some(Inbound::Broken(reason)) => return Err(Error::invalid("body", reason)),
        None => return Err(Error::invalid("body", "the stream ended before the hello")),
    };
    let runner_id = hello.runner.id;
    check_identity(&orchestrator, &identity, &hello.runner).await?;

    // Fence the runner's previous session before this one takes over: on this replica,
    // wait until it has stopped; elsewhere, tell it to stop.
    let session =
        SessionHandle { connection: Uuid::new_v4(), fence: CancellationToken::new(), ended: CancellationToken::new() };
    if let Some(previous) = orchestrator.registry().session(runner_id) {
        previous.fence.cancel();
        if tokio::time::timeout(FENCE_WAIT, previous.ended.cancelled()).await.is_err() {
            tracing::warn!(runner = %runner_id, "the previous session did not stop in time; replacing it anyway");
        }
    }
    orchestrator.send_runner_command(runner_id, &RunnerCommand::Fence { keep: session.connection }).await;

    let (sender, receiver) = mpsc::channel(OUTBOX);
    // Keep the jobs the runner still runs under their current epoch; abandon the rest.
    let mut kept = HashSet::new();
    let mut owned = HashSet::new();
    let mut abandon = Vec::new();
    let mut acks = Vec::new();
    for RunningJob { assignment, .. } in &hello.running {
        let current = orchestrator.store().job(assignment.job_id).await?;
        match current {
            Some(job)
                if job.state.is_active() && job.assignment() == *assignment && job.runner_id == Some(runner_id) =>
            {
                // The database says the job is still this runner's: a coordinator that is
                // down now only delays the lease to the next heartbeat (`leases::renew`).
                if let Err(err) = orchestrator.coord().grant_lease(*assignment, orchestrator.config().lease_ttl()).await
                {
                    tracing::warn!(%assignment, error = %err, "cannot grant the lease now; the next heartbeat will");
                }
                kept.insert(job.id);
                owned.insert(*assignment);
                let stored = orchestrator.store().last_log_sequence(job.id).await?;
                acks.push(LogAck { job_id: job.id, sequence: stored });
            }
            _ => abandon.push(*assignment),
        }
    }
    leases::requeue_forgotten(&orchestrator, runner_id, &kept).await?;
    orchestrator.store().upsert_runner(&hello.runner).await?;
    if let Err(err) =
        orchestrator.coord().set_online(runner_id, orchestrator.replica(), orchestrator.config().lease_ttl()).await
    {
        tracing::warn!(runner = %runner_id, error = %err, "cannot mark the runner online now; its heartbeats will");
    }
    let connection = session.connection;
    let (fence, ended) = (session.fence.clone(), session.ended.clone());
    orchestrator.registry().connect(
        runner_id,
        hello.runner.labels.clone(),
        hello.runner.capacity,
        kept,
        sender.clone(),
        session,
    );
    let welcome = ToRunner::Welcome(Welcome {
        protocol_version: PROTOCOL_VERSION,
        lease_ttl: orchestrator.config().lease_ttl(),
        heartbeat_interval: orchestrator.config().heartbeat_interval(),
        abandon,
        acks,
    });
    lifecycle.to_runner(&welcome).map_err(|violation| Error::Internal(violation.to_string()))?;
    // The channel is fresh, so this cannot wait.
    let _ = sender.send(welcome).await;
    tracing::info!(runner = %runner_id, name = %hello.runner.name, capacity = hello.runner.capacity, "runner connected");

    let commands = orchestrator.coord().subscribe(&Topic::Runner(runner_id)).await?;
    let session = Session {
        orchestrator: orchestrator.clone(),
        runner: hello.runner,
        registered: matches!(identity, RunnerIdentity::Registered { .. }),
        connection,
        fence,
        sender,
        renewed: Default::default(),
        owned: std::sync::Mutex::new(owned),
    };
    tokio::spawn(async move {
        session.serve(lifecycle, incoming, commands).await;
        let orchestrator = session.orchestrator;
        orchestrator.registry().disconnect(runner_id, connection);
        if !orchestrator.registry().contains(runner_id)
            && let Err(err) = orchestrator.coord().set_offline(runner_id, orchestrator.replica()).await
        {
            tracing::warn!(runner = %runner_id, error = %err, "failed to mark the runner offline");
        }
        ended.cancel();
        tracing::info!(runner = %runner_id, "runner disconnected");
    });
    orchestrator.wake_dispatcher();
    Ok(receiver)
}

/// Refuses a hello that claims another runner's id, or labels the runner was not granted.
async fn check_identity(orchestrator: &Orchestrator, identity: &RunnerIdentity, hello: &RunnerRecord) -> Result<()> {
    match identity {
        RunnerIdentity::Registered { runner_id, labels } => {
            if *runner_id != hello.id {
                tracing::warn!(credential = %runner_id, claimed = %hello.id, "refused a hello claiming another runner's id");
                return Err(Error::RunnerRefused(format!(
                    "this credential belongs to runner {runner_id}; the hello claims runner {}",
                    hello.id
                )));
            }
            if let Some((key, value)) = ungranted_label(labels, &hello.labels) {
                return Err(Error::RunnerRefused(format!(
                    "label `{key}={value}` was not granted to runner {runner_id} at registration"
                )));
            }
        }
        RunnerIdentity::Unauthenticated => {
            if orchestrator.store().runner_credential(hello.id).await?.is_some() {
                return Err(Error::RunnerRefused(format!(
                    "runner {} is registered: it must connect with its credential",
                    hello.id
                )));
            }
        }
    }
    Ok(())
}

fn parse_hello(hello: rivet_core::protocol::Hello) -> Result<Hello> {
    if !hello.protocol_versions.contains(&PROTOCOL_VERSION) {
        return Err(Error::ProtocolMismatch { offered: hello.protocol_versions, supported: PROTOCOL_VERSION });
    }
    if hello.capacity == 0 || hello.capacity > 1024 {
        return Err(Error::invalid("hello.capacity", "must be between 1 and 1024"));
    }
    let running = hello.running_jobs;
    let labels: BTreeMap<String, String> = hello.labels;
    bounds::check_runner("hello", &hello.name, &hello.version, &labels)?;
    let id = hello.runner_id;
    let runner = RunnerRecord {
        id,
        name: if hello.name.is_empty() { id.to_string() } else { hello.name },
        labels,
        capacity: hello.capacity,
        version: hello.version,
        last_seen: chrono::Utc::now(),
    };
    Ok(Hello { runner, running })
}

struct Session {
    orchestrator: Orchestrator,
    runner: RunnerRecord,
    /// Whether the runner proved a credential (and so can be revoked).
    registered: bool,
    connection: Uuid,
    /// Cancelled when another connection of the runner takes over, or it is revoked.
    fence: CancellationToken,
    sender: mpsc::Sender<ToRunner>,
    /// Assignments known to be this runner's: checked once against the store, so a
    /// heartbeat cannot renew the lease of another runner's job.
    owned: std::sync::Mutex<HashSet<Assignment>>,
    /// When each job's lease was last renewed by this session.
    renewed: std::sync::Mutex<std::collections::HashMap<Assignment, tokio::time::Instant>>,
}

impl Session {
    async fn serve<S>(
        &self,
        mut lifecycle: Lifecycle,
        mut incoming: S,
        mut commands: futures_util::stream::BoxStream<'static, bytes::Bytes>,
    ) where
        S: Stream<Item = Inbound> + Unpin,
    {
        // A shutdown does not end the session: the runner must still be able to report
        // the jobs it drains; it leaves when it has, or when the server stops.
        let mut recheck = tokio::time::interval(CREDENTIAL_RECHECK);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        recheck.reset();
        loop {
            tokio::select! {
                biased;
                _ = self.fence.cancelled() => {
                    tracing::info!(runner = %self.runner.id, "session fenced: the runner connected again or was revoked");
                    return;
                }
                _ = recheck.tick(), if self.registered => {
                    if self.revoked().await {
                        return;
                    }
                }
                message = incoming.next() => match message {
                    Some(Inbound::Message(message)) => {
                        let handled = match lifecycle.from_runner(&message) {
                            Ok(()) => self.handle(message).await,
                            Err(violation) => Err(Error::invalid("body", violation.to_string())),
                        };
                        if let Err(err) = handled {
                            tracing::warn!(runner = %self.runner.id, error = %err, "failed to handle a runner message");
                            // The report was not stored, and the runner sends each only once
                            // per connection: ending the stream makes it resend everything
                            // unacknowledged when it reconnects.
                            if matches!(err, Error::Store(_)) {
                                return;
                            }
                        }
                    }
                    Some(Inbound::Malformed(err)) => {
                        tracing::warn!(runner = %self.runner.id, error = %err, "ignoring a malformed runner message");
                    }
                    Some(Inbound::Broken(reason)) => {
                        tracing::info!(runner = %self.runner.id, %reason, "runner stream failed");
                        return;
                    }
                    None => return,
                },
                Some(payload) = commands.next() => {
                    if !self.command(&payload).await {
                        return;
                    }
                }
            }
        }
    }

    /// Whether the runner's credential was revoked (or is gone), read from the store.
    async fn revoked(&self) -> bool {
        match self.orchestrator.store().runner_credential(self.runner.id).await {
            Ok(Some(credential)) => credential.revoked_at.is_some(),
            Ok(None) => true,
            Err(err) => {
                tracing::warn!(runner = %self.runner.id, error = %err, "cannot re-check the runner's credential");
                false
            }
        }
    }

    /// Forgets an assignment that ended, so the set of owned ones stays small.
    fn forget(&self, assignment: Assignment) {
        self.owned.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&assignment);
    }

    /// Whether `assignment` is the current assignment of a job this runner holds.
    async fn owns(&self, assignment: Assignment) -> Result<bool> {
        if self.owned.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).contains(&assignment) {
            return Ok(true);
        }
        let owns = self.orchestrator.store().job(assignment.job_id).await?.is_some_and(|job| {
            job.state.is_active() && job.assignment() == assignment && job.runner_id == Some(self.runner.id)
        });
        if owns {
            self.owned.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(assignment);
        }
        Ok(owns)
    }

    async fn send(&self, message: ToRunner) {
        let _ = self.sender.send(message).await;
    }

    async fn refuse(&self, assignment: Assignment, reason: impl Into<String>) {
        self.orchestrator.metrics().report_rejected();
        let reason = reason.into();
        tracing::info!(runner = %self.runner.id, %assignment, %reason, "refused a runner message");
        self.send(ToRunner::Refused { assignment, reason }).await;
    }

    async fn ack(&self, job_id: Uuid, sequence: u64) {
        self.send(ToRunner::LogAck(LogAck { job_id, sequence })).await;
    }

    /// Renews a job's lease when the runner reports on it, at most once per heartbeat
    /// interval: a runner busy streaming logs is alive even when its heartbeats queue
    /// behind the log batches on the stream.
    async fn renew_on_activity(&self, assignment: Assignment) -> Result<()> {
        let interval = self.orchestrator.config().heartbeat_interval();
        let now = tokio::time::Instant::now();
        {
            let mut renewed = self.renewed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if renewed.get(&assignment).is_some_and(|last| now.duration_since(*last) < interval) {
                return Ok(());
            }
            renewed.insert(assignment, now);
        }
        // The report itself is stored: a coordinator that is down must not hold up its ack.
        if let Err(err) = leases::renew(&self.orchestrator, self.runner.id, assignment).await {
            tracing::warn!(%assignment, error = %err, "cannot renew the lease on activity");
        }
        Ok(())
    }

    /// Handles a command for this runner; `false` ends the session.
    async fn command(&self, payload: &[u8]) -> bool {
        match serde_json::from_slice::<RunnerCommand>(payload) {
            Ok(RunnerCommand::Cancel { assignment, reason }) => {
                self.send(ToRunner::Cancel { assignment, reason: Some(reason) }).await;
            }
            Ok(RunnerCommand::Fence { keep }) if keep != self.connection => {
                tracing::info!(runner = %self.runner.id, "session fenced: the runner connected to another replica");
                return false;
            }
            Ok(RunnerCommand::Fence { .. }) => {}
            Ok(RunnerCommand::Revoke) => {
                tracing::warn!(runner = %self.runner.id, "session ended: the runner's credential was revoked");
                return false;
            }
            Err(err) => tracing::warn!(error = %err, "ignoring a malformed runner command"),
        }
        true
    }

    async fn handle(&self, message: FromRunner) -> Result<()> {
        let orchestrator = &self.orchestrator;
        let store = orchestrator.store();
        match message {
            FromRunner::Hello(_) => return Err(Error::invalid("body", Violation::SecondHello.to_string())),
            FromRunner::Heartbeat(Heartbeat { running_jobs, draining }) => {
                let ttl = orchestrator.config().lease_ttl();
                orchestrator.coord().set_online(self.runner.id, orchestrator.replica(), ttl).await?;
                let mut running = HashSet::new();
                for job in running_jobs {
                    let assignment = job.assignment;
                    if !self.owns(assignment).await? {
                        self.refuse(assignment, "the job is not assigned to this runner").await;
                    } else if leases::renew(orchestrator, self.runner.id, assignment).await? {
                        running.insert(assignment.job_id);
                    } else {
                        self.refuse(assignment, "the lease expired and the job was handed on").await;
                    }
                }
                orchestrator.registry().set_jobs(self.runner.id, running);
                if draining {
                    orchestrator.registry().set_draining(self.runner.id);
                }
            }
            FromRunner::Accepted(assignment) => match store.mark_running(self.runner.id, assignment).await? {
                Some(_) => orchestrator.job_changed(assignment.job_id).await,
                None => self.refuse(assignment, STALE).await,
            },
            FromRunner::Rejected { assignment, reason } => {
                orchestrator.registry().remove_job(self.runner.id, assignment.job_id);
                self.forget(assignment);
                let message = bounds::message(format!("runner {} rejected the job: {reason}", self.runner.name));
                if orchestrator
                    .requeue_job(Some(self.runner.id), assignment, Requeue::RunnerRejected, &message)
                    .await?
                    .is_some()
                {
                    orchestrator.coord().release_lease(assignment).await?;
                    orchestrator.job_changed(assignment.job_id).await;
                    orchestrator.announce_dispatch().await;
                }
            }
            FromRunner::StageStarted(StageStarted { assignment, stage, at }) => {
                let stage = bounds::stage_name(stage);
                if store
                    .record_stage(
                        self.runner.id,
                        assignment,
                        StageReport::new(&stage, StageState::Running, None, "", at),
                    )
                    .await?
                {
                    orchestrator.job_changed(assignment.job_id).await;
                } else {
                    self.refuse(assignment, STALE).await;
                }
            }
            FromRunner::StageFinished(StageFinished { assignment, stage, state, failure_reason, message, at }) => {
                let stage = bounds::stage_name(stage);
                let message = bounds::message(message);
                if store
                    .record_stage(
                        self.runner.id,
                        assignment,
                        StageReport::new(&stage, state, failure_reason, &message, at),
                    )
                    .await?
                {
                    orchestrator.job_changed(assignment.job_id).await;
                } else {
                    self.refuse(assignment, STALE).await;
                }
            }
            FromRunner::Logs(LogBatch { assignment, lines }) => {
                let lines: Vec<_> = lines.into_iter().map(bounds::log_line).collect();
                match store.append_logs(self.runner.id, assignment, &lines).await? {
                    Some(stored) => {
                        self.renew_on_activity(assignment).await?;
                        let fresh: Vec<_> = lines.into_iter().filter(|line| line.sequence <= stored).collect();
                        if !fresh.is_empty() {
                            let bytes: usize = fresh.iter().map(|line| line.text.len()).sum();
                            orchestrator.metrics().logs_ingested(fresh.len() as u64, bytes as u64);
                            orchestrator.logs_stored(assignment.job_id, &fresh).await;
                        }
                        self.ack(assignment.job_id, stored).await;
                    }
                    None => self.refuse(assignment, STALE).await,
                }
            }
            FromRunner::Finished(JobFinished {
                assignment,
                state,
                failure_reason,
                message,
                last_sequence,
                outputs,
            }) => {
                // Hold the finish until every line is stored; the runner resends both.
                let stored = store.last_log_sequence(assignment.job_id).await?;
                if stored < last_sequence {
                    self.ack(assignment.job_id, stored).await;
                    return Ok(());
                }
                if !state.is_terminal() || state == JobState::Lost {
                    return Err(Error::invalid(
                        "job_finished.state",
                        format!("`{state}` is not a state a runner can end a job in"),
                    ));
                }
                let (outputs, message) = bounds::outputs(outputs, message);
                let finish = Finish { state, failure_reason, message, outputs };
                orchestrator.registry().remove_job(self.runner.id, assignment.job_id);
                match orchestrator.finish_job(Some(self.runner.id), assignment, finish).await? {
                    Some(job) => {
                        self.renewed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&assignment);
                        self.forget(assignment);
                        if let Err(err) = orchestrator.coord().release_lease(assignment).await {
                            tracing::warn!(%assignment, error = %err, "cannot release the lease of a finished job; it expires by itself");
                        }
                        self.send(ToRunner::Closed(assignment)).await;
                        tracing::info!(job = %job.id, state = %job.state, "job finished");
                        orchestrator.job_changed(job.id).await;
                    }
                    None => self.refuse(assignment, STALE).await,
                }
                orchestrator.wake_dispatcher();
            }
        }
        Ok(())
    }
}
