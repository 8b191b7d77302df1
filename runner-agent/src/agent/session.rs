//! One stream's runner protocol, on domain messages only: the hello, the welcome (jobs to
//! abandon, acks of the jobs kept), then the message loop (assignments, cancels, acks,
//! refusals, drains in; heartbeats and the outbox's reports out) until the stream ends or
//! the runner has stopped and reported everything. The order of the messages is
//! `rivet_core::protocol::Lifecycle`'s.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use rivet_core::protocol::{FromRunner, Heartbeat, Hello, Lifecycle, PROTOCOL_VERSION, ToRunner, Violation};
use tokio::sync::mpsc;

use crate::agent::connection::{Inbound, Link};
use crate::agent::{Agent, Ended, Stop};

/// Log lines per batch, at most (bytes are bounded by `max_log_batch_bytes`).
const BATCH_LINES: usize = 500;
/// The shortest heartbeat interval the runner keeps, whatever the welcome says.
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);

impl Agent {
    /// A new stream's lifecycle and the hello that opens it.
    pub(super) fn greeting(&self) -> (Lifecycle, FromRunner) {
        let hello = FromRunner::Hello(Hello {
            protocol_versions: vec![PROTOCOL_VERSION],
            runner_id: self.runner_id,
            name: self.config.runner_name(),
            labels: self.labels(),
            capacity: self.config.capacity,
            running_jobs: self.outbox.running_jobs(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        });
        let mut lifecycle = Lifecycle::new();
        // A fresh lifecycle always takes a hello.
        let _ = lifecycle.from_runner(&hello);
        (lifecycle, hello)
    }

    /// Serves one stream whose hello is sent, until it ends.
    pub(super) async fn serve(
        &self,
        link: Link,
        mut lifecycle: Lifecycle,
        stop: &Stop,
    ) -> Result<Ended, tonic::Status> {
        let Link { outgoing: sender, mut incoming } = link;
        let welcome = match incoming.next().await {
            Some(Ok(Inbound::Message(message))) => {
                lifecycle.to_runner(&message).map_err(|violation| tonic::Status::internal(violation.to_string()))?;
                match message {
                    ToRunner::Welcome(welcome) => welcome,
                    _ => return Err(tonic::Status::internal(Violation::WelcomeFirst.to_string())),
                }
            }
            Some(Ok(Inbound::Malformed(reason))) => {
                return Err(tonic::Status::internal(format!("{}: {reason}", Violation::WelcomeFirst)));
            }
            Some(Err(status)) => return Err(status),
            None => return Err(tonic::Status::internal(Violation::WelcomeFirst.to_string())),
        };
        for assignment in &welcome.abandon {
            tracing::warn!(%assignment, "the orchestrator handed this job to another runner: stopping it");
            self.jobs.stop(assignment.job_id);
            self.outbox.close(assignment.job_id);
        }
        self.outbox.rewind();
        for ack in &welcome.acks {
            self.outbox.ack(ack.job_id, ack.sequence);
        }
        tracing::info!(runner = %self.runner_id, protocol = welcome.protocol_version, "connected to the orchestrator");
        let mut heartbeat = tokio::time::interval(welcome.heartbeat_interval.max(MIN_HEARTBEAT));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_acks = BTreeMap::new();
        let mut draining = false;
        let mut stopped_now = false;
        loop {
            self.flush(&sender).await;
            if (draining || stop.drain.is_cancelled() || stop.now.is_cancelled()) && self.outbox.is_empty() {
                return Ok(if stop.drain.is_cancelled() || stop.now.is_cancelled() {
                    Ended::Done
                } else {
                    Ended::Reconnect
                });
            }
            tokio::select! {
                message = incoming.next() => match message {
                    Some(Ok(Inbound::Message(message))) => {
                        if let Err(violation) = lifecycle.to_runner(&message) {
                            tracing::warn!(%violation, "ignoring a message out of order");
                        } else if let Some(ended) = self.handle(message, &sender, stop, draining).await {
                            return Ok(ended);
                        }
                    }
                    Some(Ok(Inbound::Malformed(reason))) => {
                        tracing::error!(%reason, "ignoring a malformed message from the orchestrator");
                    }
                    Some(Err(status)) => return Err(status),
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
                    self.jobs.stop_all();
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

    /// Handles one orchestrator message; `Some` ends the stream.
    async fn handle(
        &self,
        message: ToRunner,
        sender: &mpsc::Sender<FromRunner>,
        stop: &Stop,
        draining: bool,
    ) -> Option<Ended> {
        match message {
            // The lifecycle lets one welcome through, and `serve` took it.
            ToRunner::Welcome(_) => {}
            ToRunner::Assign(spec) => {
                let assignment = spec.assignment;
                let full = self.jobs.len() as u32 >= self.config.capacity;
                if draining || stop.drain.is_cancelled() || full {
                    let reason = if full { "the runner is at capacity" } else { "the runner is draining" };
                    let _ = sender.send(FromRunner::Rejected { assignment, reason: reason.to_owned() }).await;
                    return None;
                }
                let _ = sender.send(FromRunner::Accepted(assignment)).await;
                self.jobs.start(spec);
            }
            ToRunner::Cancel { assignment, .. } => {
                tracing::info!(%assignment, "cancel requested");
                self.jobs.stop(assignment.job_id);
            }
            ToRunner::LogAck(ack) => self.outbox.ack(ack.job_id, ack.sequence),
            ToRunner::Drain { reason } => {
                tracing::info!(%reason, "the orchestrator asked this runner to reconnect elsewhere");
                return Some(Ended::Reconnect);
            }
            ToRunner::Refused { assignment, reason } => {
                tracing::warn!(%assignment, %reason, "the orchestrator refused a report: dropping the job");
                self.jobs.stop(assignment.job_id);
                self.outbox.close(assignment.job_id);
            }
            ToRunner::Closed(assignment) => self.outbox.close(assignment.job_id),
        }
        None
    }

    async fn heartbeat(&self, sender: &mpsc::Sender<FromRunner>, draining: bool) {
        let beat = Heartbeat { running_jobs: self.outbox.running_jobs(), draining };
        let _ = sender.send(FromRunner::Heartbeat(beat)).await;
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

    /// Sends what the outbox holds that this stream has not sent yet.
    async fn flush(&self, sender: &mpsc::Sender<FromRunner>) {
        for message in self.outbox.next_batch(BATCH_LINES, self.config.max_log_batch_bytes) {
            if sender.send(message).await.is_err() {
                return;
            }
        }
    }
}
