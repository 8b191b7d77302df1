//! What the runner owes the orchestrator: per job, the stage events and log lines it
//! produced and the finish, kept until the orchestrator has acknowledged them, so that a
//! reconnect resends exactly what is missing. Log lines are bounded in memory; past the
//! bound they spill to a file and are read back as acks free memory.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rivet_core::{Assignment, LogLine};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::job::{EventSink, JobEvent, JobOutcome};

/// Lines read back from a spill file at a time.
const REFILL_LINES: usize = 2_000;

/// One job's unacknowledged output.
#[derive(Debug)]
pub struct JobOutbox {
    /// The assignment everything is reported under.
    pub assignment: Assignment,
    /// Stage events in order; resent in full after a reconnect (they are idempotent).
    pub stage_events: Vec<JobEvent>,
    /// How many stage events were sent on the current connection.
    pub stage_events_sent: usize,
    /// The highest log sequence produced.
    pub produced: u64,
    /// The highest log sequence the orchestrator stored.
    pub acked: u64,
    /// The highest log sequence sent on the current connection.
    pub sent: u64,
    /// The outcome, once the job ended.
    pub outcome: Option<JobOutcome>,
    /// Whether the finish was sent on the current connection.
    pub finish_sent: bool,
    logs: LogBuffer,
}

impl JobOutbox {
    /// Log lines after `sent`, up to `max` of them.
    pub fn unsent_lines(&mut self, max: usize) -> std::io::Result<Vec<LogLine>> {
        self.logs.lines_after(self.sent, max)
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
}

impl Outbox {
    /// An outbox that keeps up to `memory_limit` bytes of log text per job in memory and
    /// spills the rest into `spill_dir`.
    pub fn new(spill_dir: PathBuf, memory_limit: usize) -> Outbox {
        Outbox { inner: Arc::default(), changed: Arc::new(Notify::new()), spill_dir, memory_limit }
    }

    /// Locks the jobs. Every update is a whole-field write, so a poisoned lock is usable.
    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<Uuid, JobOutbox>> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
            logs: LogBuffer::new(spill, self.memory_limit),
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
        let mut jobs = self.lock();
        let Some(outbox) = jobs.get_mut(&assignment.job_id).filter(|o| o.assignment == assignment) else { return };
        match event {
            JobEvent::Log(line) => {
                outbox.produced = outbox.produced.max(line.sequence);
                if let Err(err) = outbox.logs.push(line) {
                    tracing::error!(job = %assignment.job_id, error = %err, "cannot spill log lines to disk");
                }
            }
            other => outbox.stage_events.push(other),
        }
        drop(jobs);
        self.changed.notify_one();
    }
}

/// Log lines not yet acknowledged: the oldest in memory, the rest in a spill file.
#[derive(Debug)]
struct LogBuffer {
    memory: VecDeque<LogLine>,
    memory_bytes: usize,
    memory_limit: usize,
    spill_path: PathBuf,
    spill: Option<Spill>,
}

#[derive(Debug)]
struct Spill {
    writer: BufWriter<File>,
    read_offset: u64,
    unread: usize,
}

impl LogBuffer {
    fn new(spill_path: PathBuf, memory_limit: usize) -> LogBuffer {
        LogBuffer { memory: VecDeque::new(), memory_bytes: 0, memory_limit, spill_path, spill: None }
    }

    fn push(&mut self, line: LogLine) -> std::io::Result<()> {
        let size = line.text.len() + line.stage.len() + 64;
        if self.spill.is_none() && self.memory_bytes + size <= self.memory_limit {
            self.memory_bytes += size;
            self.memory.push_back(line);
            return Ok(());
        }
        let spill = match &mut self.spill {
            Some(spill) => spill,
            None => self.spill.insert(Spill::create(&self.spill_path)?),
        };
        serde_json::to_writer(&mut spill.writer, &line)?;
        spill.writer.write_all(b"\n")?;
        spill.unread += 1;
        Ok(())
    }

    fn drop_through(&mut self, sequence: u64) {
        while self.memory.front().is_some_and(|line| line.sequence <= sequence) {
            if let Some(line) = self.memory.pop_front() {
                self.memory_bytes = self.memory_bytes.saturating_sub(line.text.len() + line.stage.len() + 64);
            }
        }
    }

    /// Lines with sequence > `after`, reading the spill back into memory as needed.
    fn lines_after(&mut self, after: u64, max: usize) -> std::io::Result<Vec<LogLine>> {
        let mut out: Vec<LogLine> = self.memory.iter().filter(|l| l.sequence > after).take(max).cloned().collect();
        while out.len() < max && self.spill.as_ref().is_some_and(|s| s.unread > 0) {
            let refilled = self.refill()?;
            out.extend(refilled.into_iter().filter(|l| l.sequence > after).take(max - out.len()));
        }
        Ok(out)
    }

    /// Moves the next lines of the spill file into memory and returns copies of them.
    fn refill(&mut self) -> std::io::Result<Vec<LogLine>> {
        let Some(spill) = &mut self.spill else { return Ok(Vec::new()) };
        spill.writer.flush()?;
        let mut file = File::open(&self.spill_path)?;
        file.seek(SeekFrom::Start(spill.read_offset))?;
        let mut reader = BufReader::new(file);
        let mut lines = Vec::new();
        let mut text = String::new();
        while lines.len() < REFILL_LINES && spill.unread > 0 {
            text.clear();
            let read = reader.read_line(&mut text)?;
            if read == 0 {
                break;
            }
            spill.read_offset += read as u64;
            spill.unread -= 1;
            let line: LogLine = serde_json::from_str(text.trim_end())
                .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))?;
            lines.push(line);
        }
        for line in &lines {
            self.memory_bytes += line.text.len() + line.stage.len() + 64;
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
        Ok(Spill { writer: BufWriter::new(file), read_offset: 0, unread: 0 })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::Utc;
    use rivet_core::LogLevel;

    use super::*;

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
        let outbox = Outbox::new(dir.path().to_owned(), 1_000);
        let assignment = Assignment { job_id: Uuid::new_v4(), attempt: 1, epoch: 1 };
        outbox.open(assignment, 1);
        for sequence in 1..=5_000 {
            outbox.emit(assignment, JobEvent::Log(line(sequence)));
        }
        assert!(std::fs::read_dir(dir.path()).unwrap().count() == 1, "expected a spill file");
        let mut seen = Vec::new();
        loop {
            let batch = {
                let mut jobs = outbox.lock();
                let job = jobs.get_mut(&assignment.job_id).unwrap();
                let batch = job.unsent_lines(700).unwrap();
                if let Some(last) = batch.last() {
                    job.sent = last.sequence;
                }
                batch
            };
            if batch.is_empty() {
                break;
            }
            let last = batch.last().unwrap().sequence;
            seen.extend(batch.iter().map(|l| l.sequence));
            outbox.ack(assignment.job_id, last);
        }
        assert_eq!(seen, (1..=5_000).collect::<Vec<_>>());
        outbox.close(assignment.job_id);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "spill file left behind");
    }

    #[test]
    fn rewind_resends_everything_unacknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path().to_owned(), 1 << 20);
        let assignment = Assignment { job_id: Uuid::new_v4(), attempt: 2, epoch: 7 };
        outbox.open(assignment, 11);
        for sequence in 11..=20 {
            outbox.emit(assignment, JobEvent::Log(line(sequence)));
        }
        outbox.lock().get_mut(&assignment.job_id).unwrap().sent = 20;
        outbox.ack(assignment.job_id, 14);
        outbox.rewind();
        let mut jobs = outbox.lock();
        let unsent = jobs.get_mut(&assignment.job_id).unwrap().unsent_lines(100).unwrap();
        assert_eq!(unsent.first().unwrap().sequence, 15);
        assert_eq!(unsent.len(), 6);
    }

    #[test]
    fn events_of_another_assignment_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path().to_owned(), 1 << 20);
        let assignment = Assignment { job_id: Uuid::new_v4(), attempt: 1, epoch: 1 };
        outbox.open(assignment, 1);
        outbox.emit(Assignment { epoch: 2, ..assignment }, JobEvent::Log(line(1)));
        assert_eq!(outbox.lock()[&assignment.job_id].produced, 0);
    }
}
