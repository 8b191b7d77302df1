//! Log lines: exactly once, in order, without gaps.

use rivet_core::{Assignment, LogLevel, LogLine};
use rivet_orchestrator::domain::bounds::{MAX_LOG_BATCH_BYTES, MAX_LOG_BATCH_LINES};
use rivet_orchestrator::domain::store::Store;
use rivet_orchestrator::storage::SeaStore;
use uuid::Uuid;

use crate::support::{self, RUNNER, backends, claim, lines, now, pipeline};

backends! {
    lines_are_stored_and_read_in_order,
    duplicates_are_dropped,
    batches_that_leave_a_gap_are_refused,
    stale_assignments_cannot_append,
    ten_thousand_lines_in_one_batch,
    unknown_jobs_have_no_logs,
    pages_are_bounded_by_bytes,
    a_batch_is_stored_up_to_its_byte_budget,
}

/// A running job's assignment.
async fn running(store: &SeaStore) -> Assignment {
    let pipeline = pipeline(store, "build", &[]).await;
    support::job(store, &pipeline).await;
    let (job, _) = claim(store, &[]).await;
    store.mark_running(RUNNER, job.assignment()).await.unwrap().unwrap().assignment()
}

/// The sequences and texts of the lines stored for a job.
async fn stored(store: &SeaStore, job: Uuid) -> Vec<(u64, String)> {
    let lines = store.read_logs(job, 0, 100_000, u64::MAX).await.unwrap();
    lines.into_iter().map(|line| (line.sequence, line.text)).collect()
}

fn texts(from: u64, to: u64, tag: &str) -> Vec<(u64, String)> {
    (from..=to).map(|sequence| (sequence, format!("{tag} {sequence}"))).collect()
}

fn tagged(from: u64, to: u64, tag: &str) -> Vec<LogLine> {
    lines(from, to).into_iter().map(|line| LogLine { text: format!("{tag} {}", line.sequence), ..line }).collect()
}

async fn lines_are_stored_and_read_in_order(store: &SeaStore) {
    let assignment = running(store).await;
    let mut batch = lines(1, 5);
    batch[2] = LogLine {
        sequence: 3,
        time: now(),
        level: LogLevel::Error,
        stage: String::new(),
        text: "naïve ünïcode, 'quotes' and \"more\"; DROP TABLE jobs; --".to_owned(),
        attempt: 1,
    };
    assert_eq!(store.append_logs(RUNNER, assignment, &batch).await.unwrap(), Some(5));
    assert_eq!(store.read_logs(assignment.job_id, 1, 100, u64::MAX).await.unwrap(), batch);
    assert_eq!(store.read_logs(assignment.job_id, 0, 100, u64::MAX).await.unwrap(), batch);
    assert_eq!(store.read_logs(assignment.job_id, 3, 2, u64::MAX).await.unwrap(), batch[2..4].to_vec());
    assert_eq!(store.read_logs(assignment.job_id, 6, 10, u64::MAX).await.unwrap(), vec![]);
    assert_eq!(store.read_logs(assignment.job_id, 1, 0, u64::MAX).await.unwrap(), vec![]);
    assert_eq!(store.read_logs(assignment.job_id, u64::MAX, 10, u64::MAX).await.unwrap(), vec![]);
    assert_eq!(store.last_log_sequence(assignment.job_id).await.unwrap(), 5);

    let more = lines(6, 7);
    assert_eq!(store.append_logs(RUNNER, assignment, &more).await.unwrap(), Some(7));
    assert_eq!(store.read_logs(assignment.job_id, 5, 10, u64::MAX).await.unwrap(), [&batch[4..], &more[..]].concat());
    assert_eq!(store.last_log_sequence(assignment.job_id).await.unwrap(), 7);
}

async fn duplicates_are_dropped(store: &SeaStore) {
    let assignment = running(store).await;
    assert_eq!(store.append_logs(RUNNER, assignment, &tagged(1, 5, "first")).await.unwrap(), Some(5));
    // A resend overlapping what is stored: only 6..=8 are new.
    assert_eq!(store.append_logs(RUNNER, assignment, &tagged(3, 8, "resent")).await.unwrap(), Some(8));
    // A resend of stored lines only.
    assert_eq!(store.append_logs(RUNNER, assignment, &tagged(1, 8, "again")).await.unwrap(), Some(8));
    assert_eq!(store.append_logs(RUNNER, assignment, &[]).await.unwrap(), Some(8));
    assert_eq!(stored(store, assignment.job_id).await, [texts(1, 5, "first"), texts(6, 8, "resent")].concat());
}

async fn batches_that_leave_a_gap_are_refused(store: &SeaStore) {
    let assignment = running(store).await;
    assert_eq!(store.append_logs(RUNNER, assignment, &tagged(1, 5, "first")).await.unwrap(), Some(5));
    // Starts past the next sequence.
    assert_eq!(store.append_logs(RUNNER, assignment, &tagged(7, 9, "gap")).await.unwrap(), Some(5));
    // Continues, but has a hole inside.
    let holed = [tagged(6, 6, "hole"), tagged(8, 9, "hole")].concat();
    assert_eq!(store.append_logs(RUNNER, assignment, &holed).await.unwrap(), Some(5));
    // Continues, but repeats a sequence.
    let repeated = [tagged(6, 7, "repeat"), tagged(7, 8, "repeat")].concat();
    assert_eq!(store.append_logs(RUNNER, assignment, &repeated).await.unwrap(), Some(5));
    assert_eq!(stored(store, assignment.job_id).await, texts(1, 5, "first"));
    // The resend from the ack is stored.
    assert_eq!(store.append_logs(RUNNER, assignment, &tagged(6, 9, "resend")).await.unwrap(), Some(9));
    assert_eq!(stored(store, assignment.job_id).await, [texts(1, 5, "first"), texts(6, 9, "resend")].concat());
}

async fn stale_assignments_cannot_append(store: &SeaStore) {
    let assignment = running(store).await;
    assert_eq!(store.append_logs(RUNNER, assignment, &tagged(1, 2, "first")).await.unwrap(), Some(2));
    store.requeue_job(None, assignment, "lease expired").await.unwrap().unwrap();
    // The lost runner's lines are refused, whether the job waits or has a new runner.
    assert_eq!(store.append_logs(RUNNER, assignment, &tagged(3, 4, "lost")).await.unwrap(), None);
    let (next, next_log) = claim(store, &[]).await;
    assert_eq!(next_log, 3);
    assert_eq!(store.append_logs(RUNNER, assignment, &tagged(3, 4, "lost")).await.unwrap(), None);
    assert_eq!(store.last_log_sequence(next.id).await.unwrap(), 2);
    assert_eq!(store.append_logs(RUNNER, next.assignment(), &tagged(3, 4, "new")).await.unwrap(), Some(4));
    assert_eq!(stored(store, next.id).await, [texts(1, 2, "first"), texts(3, 4, "new")].concat());
}

async fn ten_thousand_lines_in_one_batch(store: &SeaStore) {
    let assignment = running(store).await;
    let batch = tagged(1, 10_000, "bulk");
    assert_eq!(store.append_logs(RUNNER, assignment, &batch).await.unwrap(), Some(10_000));
    assert_eq!(store.last_log_sequence(assignment.job_id).await.unwrap(), 10_000);
    let read = store.read_logs(assignment.job_id, 1, 20_000, u64::MAX).await.unwrap();
    // Not assert_eq!: a failure would print 20,000 lines.
    assert!(read == batch, "the 10,000 lines read back differ from those appended");
    let page = store.read_logs(assignment.job_id, 9_990, 5, u64::MAX).await.unwrap();
    assert_eq!(page, batch[9_989..9_994].to_vec());
    // A resend of the whole batch plus one new line stores just that line.
    let resend = [batch.clone(), tagged(10_001, 10_001, "new")].concat();
    assert_eq!(store.append_logs(RUNNER, assignment, &resend).await.unwrap(), Some(10_001));
    let read = store.read_logs(assignment.job_id, 1, 20_000, u64::MAX).await.unwrap();
    assert!(read == resend, "the resend stored something other than its one new line");
}

async fn unknown_jobs_have_no_logs(store: &SeaStore) {
    let unknown = Uuid::new_v4();
    assert_eq!(store.read_logs(unknown, 0, 10, u64::MAX).await.unwrap(), vec![]);
    assert_eq!(store.last_log_sequence(unknown).await.unwrap(), 0);
    let assignment = Assignment { job_id: unknown, attempt: 1, epoch: 1 };
    assert_eq!(store.append_logs(RUNNER, assignment, &lines(1, 2)).await.unwrap(), None);
}

/// Lines of `bytes` bytes of text each (multi-byte characters, so that characters and
/// bytes differ), numbered `from..=to`.
fn sized(from: u64, to: u64, bytes: usize) -> Vec<LogLine> {
    lines(from, to)
        .into_iter()
        .map(|line| LogLine { text: "é".repeat(bytes / 2), stage: String::new(), ..line })
        .collect()
}

async fn pages_are_bounded_by_bytes(store: &SeaStore) {
    let assignment = running(store).await;
    assert_eq!(store.append_logs(RUNNER, assignment, &sized(1, 10, 1_000)).await.unwrap(), Some(10));
    let page = |from, max_bytes| store.read_logs(assignment.job_id, from, 100, max_bytes);
    let sequences = |lines: Vec<LogLine>| lines.into_iter().map(|line| line.sequence).collect::<Vec<_>>();
    // 1,000 bytes a line: 3,500 bytes hold three (not seven, as characters would count).
    assert_eq!(sequences(page(1, 3_500).await.unwrap()), [1, 2, 3]);
    assert_eq!(sequences(page(4, 3_000).await.unwrap()), [4, 5, 6]);
    // A line larger than the page still comes, alone, so a reader always progresses.
    assert_eq!(sequences(page(7, 10).await.unwrap()), [7]);
    assert_eq!(sequences(page(8, u64::MAX).await.unwrap()), [8, 9, 10]);
    assert_eq!(sequences(store.read_logs(assignment.job_id, 1, 2, u64::MAX).await.unwrap()), [1, 2]);
}

async fn a_batch_is_stored_up_to_its_byte_budget(store: &SeaStore) {
    let assignment = running(store).await;
    // 64 lines of 128 KiB: twice the budget. The first half is stored; the rest waits for
    // the next batch, which the ack asks for.
    let line_bytes = 128 * 1024;
    let batch = sized(1, 64, line_bytes);
    let fit = (MAX_LOG_BATCH_BYTES / line_bytes) as u64;
    assert_eq!(store.append_logs(RUNNER, assignment, &batch).await.unwrap(), Some(fit));
    assert_eq!(store.append_logs(RUNNER, assignment, &batch).await.unwrap(), Some(64));
    let stored = stored(store, assignment.job_id).await;
    assert_eq!(stored.iter().map(|(sequence, _)| *sequence).collect::<Vec<_>>(), (1..=64).collect::<Vec<_>>());
    // One line over the budget is stored alone rather than never.
    let huge = sized(65, 66, MAX_LOG_BATCH_BYTES + 2);
    assert_eq!(store.append_logs(RUNNER, assignment, &huge).await.unwrap(), Some(65));
    // Empty lines cost no bytes, but rows: a batch stores at most MAX_LOG_BATCH_LINES.
    let empty = sized(66, 66 + MAX_LOG_BATCH_LINES as u64, 0);
    assert_eq!(store.append_logs(RUNNER, assignment, &empty).await.unwrap(), Some(65 + MAX_LOG_BATCH_LINES as u64));
}
