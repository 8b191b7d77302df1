//! The runner protocol as domain types: what a runner and the orchestrator say to each
//! other on the one long-lived stream the runner opens, in plain Rust. Both sides work on
//! these types only; `rivet-proto` decodes and encodes them at the edge (a missing or
//! malformed field is an error there, once), so no prost type reaches the orchestrator's
//! domain or the runner's session.
//!
//! # The lifecycle of a stream
//!
//! 1. The runner opens the stream and says [`FromRunner::Hello`]: the protocol versions it
//!    speaks, its id and labels, its capacity, and the jobs it still runs from an earlier
//!    stream ([`RunningJob`]).
//! 2. The orchestrator answers [`ToRunner::Welcome`] with the version chosen
//!    ([`PROTOCOL_VERSION`]), the lease TTL and heartbeat interval, the jobs the runner
//!    must stop because they were handed to someone else (`abandon`), and for each job it
//!    keeps, the highest log sequence stored (`acks`).
//! 3. The stream is then open. The runner sends a [`FromRunner::Heartbeat`] every interval
//!    (it renews the leases of the jobs it names, and says whether the runner drains); the
//!    orchestrator pushes work and answers reports.
//!
//! [`Lifecycle`] checks this order; each end keeps one per stream and feeds it every
//! message it sends and receives, so the rules live in one place.
//!
//! # The lifecycle of a job on a stream
//!
//! Every message about a job names its [`Assignment`] `(job, attempt, epoch)`; anything
//! under an assignment that is no longer the job's current one is answered with
//! [`ToRunner::Refused`], and the runner stops working on it.
//!
//! - [`ToRunner::Assign`] hands a job to the runner, which answers
//!   [`FromRunner::Accepted`] (it runs it) or [`FromRunner::Rejected`] (draining or full;
//!   the job is queued again).
//! - While it runs: [`FromRunner::StageStarted`], [`FromRunner::StageFinished`] and
//!   [`FromRunner::Logs`] (numbered lines, acknowledged by [`ToRunner::LogAck`] with the
//!   highest sequence stored; the runner keeps every unacknowledged line and resends it on
//!   the next stream).
//! - [`FromRunner::Finished`] ends it, sent once every line is acknowledged; the
//!   orchestrator holds it until every line up to its `last_sequence` is stored and answers
//!   [`ToRunner::Closed`], after which the runner forgets the job.
//! - [`ToRunner::Cancel`] asks the runner to stop a job (it still reports how it ended).
//! - [`ToRunner::Drain`] asks the runner to finish its jobs, take no new ones, and connect
//!   again (possibly to another replica).

mod lifecycle;
mod messages;

pub use lifecycle::{Lifecycle, Phase, Violation};
pub use messages::{
    AssignJob, FromRunner, Heartbeat, Hello, JobFinished, LogAck, LogBatch, RunningJob, StageFinished, StageStarted,
    ToRunner, Welcome,
};

pub use crate::job::{Assignment, PROTOCOL_VERSION};
