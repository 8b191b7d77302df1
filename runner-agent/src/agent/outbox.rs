//! What the runner owes the orchestrator: per job, the stage events and log lines it
//! produced and the finish, kept until the orchestrator has acknowledged them, so that a
//! reconnect resends exactly what is missing. Log lines are bounded in memory; past the
//! bound they spill to a file and are read back as acks free memory. The spill file is
//! bounded too: a job that would pass it is told so through [`EventSink::try_emit`] and fails.
//!
//! The connection sees operations, not state: [`Outbox::next_batch`] hands out the
//! messages not yet sent on the current stream, [`Outbox::ack`] and [`Outbox::close`]
//! record the orchestrator's answers, and [`Outbox::rewind`] starts a new stream.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rivet_core::protocol::{FromRunner, JobFinished, LogBatch, RunningJob, StageFinished, StageStarted};
use rivet_core::{Assignment, LogLine};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::executor::line_cost;
use crate::job::{EventSink, JobEvent, JobOutcome, SinkError};

/// Lines read back from a spill file at a time, at most; memory bounds it in bytes too.
const REFILL_LINES: usize = 2_000;
/// Log batches of one job per [`Outbox::next_batch`], at most, so that one chatty job
/// cannot starve the heartbeats and the other jobs.
const BATCHES_PER_JOB: usize = 8;
/// Log lines of one job sent but not yet acknowledged, at most, in batches of the size
/// [`Outbox::next_batch`] is given. Without this window a job that logs faster than the
/// orchestrator stores sends its whole backlog at once: the acks then queue behind it,
/// [`Outbox::resend_stalled`] takes the late acks for a refused batch and sends the backlog
/// again, and the orchestrator spends its time on duplicates while the lease runs out.
const IN_FLIGHT_BATCHES: u64 = 16;

/// One job's unacknowledged output.
#[derive(Debug)]
struct JobOutbox {
    /// The assignment everything is reported under.
    assignment: Assignment,
    /// Stage events in order; resent in full after a reconnect (they are idempotent).
    stage_events: Vec<JobEvent>,
    /// How many stage events were sent on the current connection.
    stage_events_sent: usize,
    /// The highest log sequence produced.
    produced: u64,
    /// The highest log sequence the orchestrator stored.
    acked: u64,
    /// The highest log sequence sent on the current connection.
    sent: u64,
    /// The outcome, once the job ended.
    outcome: Option<JobOutcome>,
    /// Whether the finish was sent on the current connection.
    finish_sent: bool,
    logs: LogBuffer,
}

impl JobOutbox {
    /// Log lines after `sent`: up to `max` of them and, unless the first alone is larger, up
    /// to `max_bytes` (counted as [`line_cost`]).
    fn unsent_lines(&mut self, max: usize, max_bytes: usize) -> std::io::Result<Vec<LogLine>> {
        self.logs.lines_after(self.sent, max, max_bytes)
    }

    /// Appends to `messages` what this job owes the current stream, marking it sent: new
    /// stage events, up to [`BATCHES_PER_JOB`] log batches while no more than
    /// [`IN_FLIGHT_BATCHES`] batches' worth of lines await their ack, and the finish once
    /// every line is acknowledged.
    fn next_batch(&mut self, max_lines: usize, max_bytes: usize, messages: &mut Vec<FromRunner>) {
        let assignment = self.assignment;
        for event in &self.stage_events[self.stage_events_sent..] {
            messages.extend(stage_message(assignment, event));
        }
        self.stage_events_sent = self.stage_events.len();
        let window = IN_FLIGHT_BATCHES.saturating_mul(max_lines as u64);
        for _ in 0..BATCHES_PER_JOB {
            let in_flight = self.sent.saturating_sub(self.acked);
            if in_flight >= window {
                break;
            }
            let room = usize::try_from(window - in_flight).unwrap_or(usize::MAX);
            let lines = match self.unsent_lines(max_lines.min(room), max_bytes) {
                Ok(lines) => lines,
                Err(err) => {
                    tracing::error!(job = %assignment.job_id, error = %err, "cannot read spilled log lines");
                    break;
                }
            };
            let Some(last) = lines.last().map(|line| line.sequence) else { break };
            self.sent = last;
            messages.push(FromRunner::Logs(LogBatch { assignment, lines }));
        }
        if let Some(outcome) = &self.outcome
            && !self.finish_sent
            && self.acked >= self.produced
        {
            self.finish_sent = true;
            messages.push(FromRunner::Finished(JobFinished {
                assignment,
                state: outcome.state,
                failure_reason: outcome.failure_reason,
                message: outcome.message.clone(),
                last_sequence: outcome.last_sequence,
                outputs: outcome.outputs.clone(),
            }));
        }
    }
}

/// A stage event as a runner message; `None` for log lines (they travel in batches).
fn stage_message(assignment: Assignment, event: &JobEvent) -> Option<FromRunner> {
    match event {
        JobEvent::StageStarted { stage, at } => {
            Some(FromRunner::StageStarted(StageStarted { assignment, stage: stage.clone(), at: *at }))
        }
        JobEvent::StageFinished { stage, state, failure_reason, message, at } => {
            Some(FromRunner::StageFinished(StageFinished {
                assignment,
                stage: stage.clone(),
                state: *state,
                failure_reason: *failure_reason,
                message: message.clone(),
                at: *at,
            }))
        }
        JobEvent::Log(_) => None,
    }
}

/// Every job's outbox, shared by the executors (which fill it) and the connection (which
/// drains it). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    inner: Arc<Mutex<BTreeMap<Uuid, JobOutbox>>>,
    changed: Arc<Notify>,
    spill_dir: PathBuf,
    memory_limit: usize,
    spill_limit: u64,
}

impl Outbox {
    /// An outbox that keeps up to `memory_limit` bytes of log text per job in memory and
    /// spills the rest into `spill_dir`, up to `spill_limit` bytes per job.
    pub fn new(spill_dir: PathBuf, memory_limit: usize, spill_limit: u64) -> Outbox {
        Outbox { inner: Arc::default(), changed: Arc::new(Notify::new()), spill_dir, memory_limit, spill_limit }
    }

    /// Bytes of log lines held until acknowledged, in memory and spilled.
    pub fn held_bytes(&self) -> u64 {
        self.lock()
            .values()
            .map(|job| {
                job.logs.memory_bytes as u64
                    + job.logs.spill.as_ref().map_or(0, |spill| spill.written - spill.read_offset)
            })
            .sum()
    }

    /// Locks the jobs. Every update is a whole-field write, so a poisoned lock is usable.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<Uuid, JobOutbox>> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The messages every job owes the current stream and that were not sent on it yet,
    /// marked sent: log batches of at most `max_lines` lines and (past their first line)
    /// `max_bytes`, no more than [`IN_FLIGHT_BATCHES`] × `max_lines` lines of a job ahead of
    /// its ack.
    pub fn next_batch(&self, max_lines: usize, max_bytes: usize) -> Vec<FromRunner> {
        let mut messages = Vec::new();
        for outbox in self.lock().values_mut() {
            outbox.next_batch(max_lines, max_bytes, &mut messages);
        }
        messages
    }

    /// Whether nothing is owed: every job's finish is confirmed.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Every job the orchestrator must still hear about (running, or finished but not yet
    /// confirmed), with the highest log sequence produced.
    pub fn running_jobs(&self) -> Vec<RunningJob> {
        self.lock()
            .values()
            .map(|outbox| RunningJob { assignment: outbox.assignment, last_sequence: outbox.produced })
            .collect()
    }

    /// The highest log sequence a job produced, while the outbox tracks it.
    pub fn produced(&self, job: Uuid) -> Option<u64> {
        self.lock().get(&job).map(|outbox| outbox.produced)
    }

    /// The stage events a job reported, while the outbox tracks it.
    pub fn stage_events(&self, job: Uuid) -> Vec<JobEvent> {
        self.lock().get(&job).map(|outbox| outbox.stage_events.clone()).unwrap_or_default()
    }

    /// Resolves when something was added.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Starts tracking a job whose first log line will be `first_sequence`.
    pub fn open(&self, assignment: Assignment, first_sequence: u64) {
        let before = first_sequence.saturating_sub(1);
        let spill = self.spill_dir.join(format!("{}-{}.jsonl", assignment.job_id, assignment.epoch));
        let outbox = JobOutbox {
            assignment,
            stage_events: Vec::new(),
            stage_events_sent: 0,
            produced: before,
            acked: before,
            sent: before,
            outcome: None,
            finish_sent: false,
            logs: LogBuffer::new(spill, self.memory_limit, self.spill_limit),
        };
        self.lock().insert(assignment.job_id, outbox);
    }

    /// Records how a job ended; the finish is sent once every line is acknowledged.
    pub fn finish(&self, job: Uuid, outcome: JobOutcome) {
        if let Some(outbox) = self.lock().get_mut(&job) {
            outbox.outcome = Some(outcome);
        }
        self.changed.notify_one();
    }

    /// Forgets a job (its finish is stored, or it was handed to someone else).
    pub fn close(&self, job: Uuid) {
        if let Some(outbox) = self.lock().remove(&job) {
            outbox.logs.remove_spill();
        }
    }

    /// Records the orchestrator's ack of a job's logs up to `sequence`.
    pub fn ack(&self, job: Uuid, sequence: u64) {
        if let Some(outbox) = self.lock().get_mut(&job)
            && sequence > outbox.acked
        {
            outbox.acked = sequence.min(outbox.produced);
            outbox.logs.drop_through(outbox.acked);
        }
        self.changed.notify_one();
    }

    /// Resends the lines of jobs whose acks stopped while lines were in flight (a batch the
    /// orchestrator could not store): called on every heartbeat with the acks seen at the
    /// previous one. Duplicates are harmless; the orchestrator drops them.
    pub fn resend_stalled(&self, previous_acks: &BTreeMap<Uuid, u64>) -> BTreeMap<Uuid, u64> {
        let mut jobs = self.lock();
        for (id, outbox) in jobs.iter_mut() {
            if outbox.sent > outbox.acked && previous_acks.get(id) == Some(&outbox.acked) {
                outbox.sent = outbox.acked;
            }
        }
        let acks = jobs.iter().map(|(id, outbox)| (*id, outbox.acked)).collect();
        drop(jobs);
        self.changed.notify_one();
        acks
    }

    /// A new connection: everything unacknowledged goes out again.
    pub fn rewind(&self) {
        for outbox in self.lock().values_mut() {
            outbox.sent = outbox.acked;
            outbox.stage_events_sent = 0;
            outbox.finish_sent = false;
        }
        self.changed.notify_one();
    }
}

impl EventSink for Outbox {
    fn emit(&self, assignment: Assignment, event: JobEvent) {
        // The error is logged where it happens.
        let _ = self.try_emit(assignment, event);
    }

    fn try_emit(&self, assignment: Assignment, event: JobEvent) -> Result<(), SinkError> {
        let mut jobs = self.lock();
        // Events of a job handed elsewhere are dropped: nobody wants them any more.
        let Some(outbox) = jobs.get_mut(&assignment.job_id).filter(|o| o.assignment == assignment) else {
            return Ok(());
        };
        match event {
            JobEvent::Log(line) => {
                let sequence = line.sequence;
                if let Err(err) = outbox.logs.push(line) {
                    tracing::error!(job = %assignment.job_id, error = %err, "cannot keep a log line");
                    return Err(err);
                }
                outbox.produced = outbox.produced.max(sequence);
            }
            other => outbox.stage_events.push(other),
        }
        drop(jobs);
        self.changed.notify_one();
        Ok(())
    }
}

/// Log lines not yet acknowledged: the oldest in memory, the rest in a spill file.
#[derive(Debug)]
struct LogBuffer {
    memory: VecDeque<LogLine>,
    memory_bytes: usize,
    memory_limit: usize,
    spill_path: PathBuf,
    spill_limit: u64,
    spill: Option<Spill>,
}

#[derive(Debug)]
struct Spill {
    writer: BufWriter<File>,
    read_offset: u64,
    unread: usize,
    /// Bytes written to the file, which only shrinks when it is read back whole.
    written: u64,
}

/// Collects lines for a batch: up to a count and, past the first line, a size.
struct Batch {
    lines: Vec<LogLine>,
    bytes: usize,
    max: usize,
    max_bytes: usize,
}

impl Batch {
    /// Adds `line` if it fits; `false` when the batch is full.
    fn add(&mut self, line: &LogLine) -> bool {
        let cost = line_cost(line);
        if self.lines.len() >= self.max || (!self.lines.is_empty() && self.bytes + cost > self.max_bytes) {
            return false;
        }
        self.bytes += cost;
        self.lines.push(line.clone());
        true
    }
}

impl LogBuffer {
    fn new(spill_path: PathBuf, memory_limit: usize, spill_limit: u64) -> LogBuffer {
        LogBuffer { memory: VecDeque::new(), memory_bytes: 0, memory_limit, spill_path, spill_limit, spill: None }
    }

    fn push(&mut self, line: LogLine) -> Result<(), SinkError> {
        let size = line_cost(&line);
        if self.spill.is_none() && self.memory_bytes + size <= self.memory_limit {
            self.memory_bytes += size;
            self.memory.push_back(line);
            return Ok(());
        }
        let mut json = serde_json::to_vec(&line).map_err(std::io::Error::from)?;
        json.push(b'\n');
        let written = self.spill.as_ref().map_or(0, |spill| spill.written);
        if written + json.len() as u64 > self.spill_limit {
            return Err(SinkError::SpillFull { limit: self.spill_limit });
        }
        let spill = match &mut self.spill {
            Some(spill) => spill,
            None => self.spill.insert(Spill::create(&self.spill_path)?),
        };
        spill.writer.write_all(&json)?;
        spill.written += json.len() as u64;
        spill.unread += 1;
        Ok(())
    }

    fn drop_through(&mut self, sequence: u64) {
        while self.memory.front().is_some_and(|line| line.sequence <= sequence) {
            if let Some(line) = self.memory.pop_front() {
                self.memory_bytes = self.memory_bytes.saturating_sub(line_cost(&line));
            }
        }
    }

    /// Lines with sequence > `after`, at most `max` of them and (past the first) at most
    /// `max_bytes`, reading the spill back into memory as needed.
    fn lines_after(&mut self, after: u64, max: usize, max_bytes: usize) -> std::io::Result<Vec<LogLine>> {
        let mut batch = Batch { lines: Vec::new(), bytes: 0, max, max_bytes };
        for line in self.memory.iter().filter(|l| l.sequence > after) {
            if !batch.add(line) {
                return Ok(batch.lines);
            }
        }
        while self.spill.as_ref().is_some_and(|s| s.unread > 0) {
            let refilled = self.refill()?;
            for line in refilled.iter().filter(|l| l.sequence > after) {
                if !batch.add(line) {
                    return Ok(batch.lines);
                }
            }
        }
        Ok(batch.lines)
    }

    /// Moves the next lines of the spill file into memory and returns copies of them.
    fn refill(&mut self) -> std::io::Result<Vec<LogLine>> {
        // Read back no more than memory holds: lines may be 64 KiB each.
        let budget = self.memory_limit.saturating_sub(self.memory_bytes);
        let Some(spill) = &mut self.spill else { return Ok(Vec::new()) };
        spill.writer.flush()?;
        let mut file = File::open(&self.spill_path)?;
        file.seek(SeekFrom::Start(spill.read_offset))?;
        let mut reader = BufReader::new(file);
        let mut lines = Vec::new();
        let mut bytes = 0;
        let mut text = String::new();
        while lines.len() < REFILL_LINES && spill.unread > 0 && (lines.is_empty() || bytes < budget) {
            text.clear();
            let read = reader.read_line(&mut text)?;
            if read == 0 {
                break;
            }
            spill.read_offset += read as u64;
            spill.unread -= 1;
            let line: LogLine = serde_json::from_str(text.trim_end())
                .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))?;
            bytes += line_cost(&line);
            lines.push(line);
        }
        for line in &lines {
            self.memory_bytes += line_cost(line);
            self.memory.push_back(line.clone());
        }
        if spill.unread == 0 {
            self.remove_spill_file();
        }
        Ok(lines)
    }

    fn remove_spill_file(&mut self) {
        if self.spill.take().is_some() {
            let _ = std::fs::remove_file(&self.spill_path);
        }
    }

    fn remove_spill(mut self) {
        self.remove_spill_file();
    }
}

impl Spill {
    fn create(path: &Path) -> std::io::Result<Spill> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).truncate(true).write(true).open(path)?;
        Ok(Spill { writer: BufWriter::new(file), read_offset: 0, unread: 0, written: 0 })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::Utc;
    use rivet_core::LogLevel;

    use super::*;

    /// The sequences of the log lines among `messages`.
    fn sequences(messages: &[FromRunner]) -> Vec<u64> {
        messages
            .iter()
            .flat_map(|message| match message {
                FromRunner::Logs(batch) => batch.lines.iter().map(|line| line.sequence).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn line(sequence: u64) -> LogLine {
        LogLine {
            sequence,
            time: Utc::now(),
            level: LogLevel::Info,
            stage: "s".into(),
            text: format!("line {sequence}"),
            attempt: 1,
        }
    }

    #[test]
    fn spills_past_the_memory_limit_and_reads_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path().to_owned(), 1_000, 1 << 30);
        let assignment = Assignment { job_id: Uuid::new_v4(), attempt: 1, epoch: 1 };
        outbox.open(assignment, 1);
        for sequence in 1..=5_000 {
            outbox.try_emit(assignment, JobEvent::Log(line(sequence))).unwrap();
        }
        assert!(std::fs::read_dir(dir.path()).unwrap().count() == 1, "expected a spill file");
        let mut seen = Vec::new();
        loop {
            let batch = sequences(&outbox.next_batch(700, usize::MAX));
            let Some(&last) = batch.last() else { break };
            seen.extend(batch);
            outbox.ack(assignment.job_id, last);
        }
        assert_eq!(seen, (1..=5_000).collect::<Vec<_>>());
        outbox.close(assignment.job_id);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "spill file left behind");
    }

    /// An outbox with room in memory for every line, tracking `assignment` with the lines
    /// of `sequences` emitted; the directory holds its spill files while it lives.
    fn filled(assignment: Assignment, sequences: std::ops::RangeInclusive<u64>) -> (tempfile::TempDir, Outbox) {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path().to_owned(), 1 << 20, 1 << 30);
        outbox.open(assignment, *sequences.start());
        for sequence in sequences {
            outbox.try_emit(assignment, JobEvent::Log(line(sequence))).unwrap();
        }
        (dir, outbox)
    }

    #[test]
    fn rewind_resends_everything_unacknowledged() {
        let assignment = Assignment { job_id: Uuid::new_v4(), attempt: 2, epoch: 7 };
        let (_dir, outbox) = filled(assignment, 11..=20);
        assert_eq!(sequences(&outbox.next_batch(100, usize::MAX)), (11..=20).collect::<Vec<_>>());
        assert!(outbox.next_batch(100, usize::MAX).is_empty(), "sent lines went out twice on one stream");
        outbox.ack(assignment.job_id, 14);
        outbox.rewind();
        assert_eq!(sequences(&outbox.next_batch(100, usize::MAX)), (15..=20).collect::<Vec<_>>());
    }

    /// A job that logs faster than the orchestrator acks keeps a bounded window in flight,
    /// and a batch the orchestrator refused is resent from its ack, not after the backlog.
    #[test]
    fn lines_ahead_of_the_ack_are_bounded_and_a_refused_batch_is_resent() {
        let assignment = Assignment { job_id: Uuid::new_v4(), attempt: 1, epoch: 1 };
        let (_dir, outbox) = filled(assignment, 1..=1_000);
        let window = IN_FLIGHT_BATCHES * 3;
        let mut sent = Vec::new();
        loop {
            let batch = sequences(&outbox.next_batch(3, usize::MAX));
            if batch.is_empty() {
                break;
            }
            sent.extend(batch);
        }
        assert_eq!(sent, (1..=window).collect::<Vec<_>>(), "sent ahead of the ack");
        // The orchestrator stored the first batch and refused the others (the acks stay at 3).
        outbox.ack(assignment.job_id, 3);
        assert_eq!(sequences(&outbox.next_batch(3, usize::MAX)), (window + 1..=window + 3).collect::<Vec<_>>());
        let acks = outbox.resend_stalled(&BTreeMap::new());
        outbox.ack(assignment.job_id, 3);
        outbox.resend_stalled(&acks);
        let resent = sequences(&outbox.next_batch(3, usize::MAX));
        assert_eq!(resent.first(), Some(&4), "a stalled job resends from its ack: {resent:?}");
        assert!(resent.len() as u64 <= window, "{} lines resent", resent.len());
    }

    #[test]
    fn events_of_another_assignment_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path().to_owned(), 1 << 20, 1 << 30);
        let assignment = Assignment { job_id: Uuid::new_v4(), attempt: 1, epoch: 1 };
        outbox.open(assignment, 1);
        outbox.try_emit(Assignment { epoch: 2, ..assignment }, JobEvent::Log(line(1))).unwrap();
        assert_eq!(outbox.produced(assignment.job_id), Some(0));
    }

    fn long_line(sequence: u64, bytes: usize) -> LogLine {
        LogLine { text: "x".repeat(bytes), ..line(sequence) }
    }

    #[test]
    fn batches_are_bounded_by_bytes_as_well_as_lines() {
        let dir = tempfile::tempdir().unwrap();
        // Little memory, so that batches are also read back from the spill file.
        let outbox = Outbox::new(dir.path().to_owned(), 100_000, 1 << 30);
        let assignment = Assignment { job_id: Uuid::new_v4(), attempt: 1, epoch: 1 };
        outbox.open(assignment, 1);
        for sequence in 1..=40 {
            outbox.try_emit(assignment, JobEvent::Log(long_line(sequence, 10_000))).unwrap();
        }
        let mut seen = Vec::new();
        loop {
            let messages = outbox.next_batch(500, 50_000);
            if messages.is_empty() {
                break;
            }
            for message in &messages {
                let FromRunner::Logs(batch) = message else { panic!("not a log batch: {message:?}") };
                let bytes: usize = batch.lines.iter().map(line_cost).sum();
                assert!(bytes <= 50_000, "a batch of {bytes} bytes");
                assert_eq!(batch.lines.len(), 4, "10 KB lines, 50 KB batches");
            }
            seen.extend(sequences(&messages));
        }
        assert_eq!(seen, (1..=40).collect::<Vec<_>>());
        // A line larger than the batch limit still goes, alone.
        outbox.rewind();
        let messages = outbox.next_batch(500, 10);
        assert_eq!(messages.len(), BATCHES_PER_JOB, "{messages:?}");
        assert!(messages.iter().all(|message| matches!(message, FromRunner::Logs(batch) if batch.lines.len() == 1)));
    }

    #[test]
    fn a_job_past_the_spill_limit_is_refused_without_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path().to_owned(), 1_000, 100_000);
        let assignment = Assignment { job_id: Uuid::new_v4(), attempt: 1, epoch: 1 };
        outbox.open(assignment, 1);
        let mut refused = None;
        for sequence in 1..=1_000 {
            if let Err(err) = outbox.try_emit(assignment, JobEvent::Log(long_line(sequence, 1_000))) {
                refused = Some((sequence, err.to_string()));
                break;
            }
        }
        let (sequence, message) = refused.expect("the spill limit was reached");
        assert!(
            message.contains("exceeds the 100000 bytes spill limit of this runner (max_log_spill_bytes)"),
            "{message}"
        );
        assert_eq!(outbox.produced(assignment.job_id), Some(sequence - 1), "a refused line is not counted");
        let spilled = std::fs::metadata(dir.path().join(format!("{}-1.jsonl", assignment.job_id))).unwrap().len();
        assert!(spilled <= 100_000, "{spilled} bytes spilled");
        // Stage events are still kept.
        let event = JobEvent::StageStarted { stage: "s".into(), at: Utc::now() };
        outbox.try_emit(assignment, event).unwrap();
    }

    /// The orchestrator's side of the log protocol, as `orchestrator/src/storage/logs.rs`
    /// has it: a batch is stored when its lines above the stored sequence continue it
    /// without a gap, and every batch is answered with the stored sequence.
    fn store(stored: &mut u64, lines: &[LogLine]) -> u64 {
        let fresh: Vec<u64> = lines.iter().map(|line| line.sequence).filter(|&s| s > *stored).collect();
        let continues = fresh.first() == Some(&(*stored + 1)) && fresh.windows(2).all(|pair| pair[1] == pair[0] + 1);
        if continues {
            *stored = *fresh.last().unwrap();
        }
        *stored
    }

    /// Every line reaches the orchestrator once, in order, and the finish follows, whatever
    /// the memory limit (so whichever line is the first spilled), the batch size, how far
    /// acks lag behind the batches, and when the stream is rewound or a stall resent.
    #[test]
    fn every_line_and_the_finish_arrive_across_the_spill_boundary_whatever_the_order() {
        const LINES: u64 = 60;
        let cost = line_cost(&line(10));
        for memory_lines in [0, 1, 2, 3, 5, 8, 13] {
            for batch_lines in [1, 2, 3, 7] {
                for ack_lag in 0..4 {
                    for rewind_every in [0, 2, 3, 5] {
                        let dir = tempfile::tempdir().unwrap();
                        let outbox = Outbox::new(dir.path().to_owned(), memory_lines * cost, 1 << 30);
                        let assignment = Assignment { job_id: Uuid::new_v4(), attempt: 1, epoch: 1 };
                        let case = format!(
                            "memory for {memory_lines} lines, batches of {batch_lines}, acks {ack_lag} behind, rewind every {rewind_every}"
                        );
                        outbox.open(assignment, 1);
                        let mut stored = 0;
                        let mut acks = VecDeque::new();
                        let mut stalled = BTreeMap::new();
                        let mut finished = false;
                        let mut produced = 0;
                        for step in 1..=2_000 {
                            // Lines arrive while batches are in flight, two at a time.
                            for _ in 0..2 {
                                if produced < LINES {
                                    produced += 1;
                                    outbox.try_emit(assignment, JobEvent::Log(line(produced))).unwrap();
                                }
                            }
                            if produced == LINES && step % 7 == 0 {
                                let outcome = JobOutcome {
                                    state: rivet_core::JobState::Succeeded,
                                    failure_reason: None,
                                    message: String::new(),
                                    last_sequence: LINES,
                                    outputs: BTreeMap::new(),
                                };
                                outbox.finish(assignment.job_id, outcome);
                            }
                            for message in outbox.next_batch(batch_lines, usize::MAX) {
                                match message {
                                    FromRunner::Logs(batch) => acks.push_back(store(&mut stored, &batch.lines)),
                                    FromRunner::Finished(finish) => {
                                        assert_eq!(stored, finish.last_sequence, "{case}: finish before every line");
                                        finished = true;
                                    }
                                    _ => {}
                                }
                            }
                            while acks.len() > ack_lag {
                                outbox.ack(assignment.job_id, acks.pop_front().unwrap());
                            }
                            if rewind_every > 0 && step % rewind_every == 0 {
                                // A new stream: the acks in flight on the old one are lost,
                                // the welcome says what is stored.
                                acks.clear();
                                outbox.rewind();
                                outbox.ack(assignment.job_id, stored);
                            }
                            if step % 4 == 0 {
                                stalled = outbox.resend_stalled(&stalled);
                            }
                            if finished {
                                break;
                            }
                        }
                        assert_eq!(stored, LINES, "{case}: lines stored");
                        assert!(finished, "{case}: the finish was never sent");
                    }
                }
            }
        }
    }
}
