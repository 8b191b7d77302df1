//! Log lines: stored exactly once per (job, sequence), without gaps.

use rivet_core::{Assignment, LogLine};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::codec::{db_err, from_u32, from_u64, parse, stored_time, to_u32, to_u64};
use super::entity::{job, log_line};
use super::lifecycle::fenced;
use super::store::{Backend, SeaStore};
use crate::domain::bounds::{self, MAX_LOG_BATCH_BYTES, MAX_LOG_BATCH_LINES};
use crate::domain::store::StoreResult;

/// Rows per log insert on PostgreSQL; see `append`.
const POSTGRES_ROWS_PER_INSERT: usize = 100;

/// Stores the lines of `lines` above the job's highest stored sequence, when they
/// continue it without a gap, up to [`MAX_LOG_BATCH_LINES`] lines and
/// [`MAX_LOG_BATCH_BYTES`] bytes of them, and returns the highest stored sequence afterwards.
///
/// One transaction locks the job's row (so appends of one job are serialised and see
/// each other's sequence), checks the assignment and the runner, inserts the new lines with multi-row
/// inserts sized under the backend's parameter limit, and raises the job's sequence.
pub(super) async fn append(
    store: &SeaStore,
    runner: Uuid,
    assignment: Assignment,
    lines: &[LogLine],
) -> StoreResult<Option<u64>> {
    let txn = store.write().await?;
    let Some((model, _)) = fenced(&*txn, Some(runner), assignment).await? else { return Ok(None) };
    let stored = to_u64(model.log_sequence, "jobs.log_sequence")?;
    let fresh: Vec<&LogLine> = lines.iter().filter(|line| line.sequence > stored).collect();
    let continues = fresh.first().is_some_and(|first| Some(first.sequence) == stored.checked_add(1))
        && fresh.windows(2).all(|pair| Some(pair[1].sequence) == pair[0].sequence.checked_add(1));
    if !continues {
        // Only duplicates, or a batch that would leave a gap: the runner resends from the
        // sequence it is told.
        return Ok(Some(stored));
    }
    // Past the batch budget, lines wait for the next batch (the ack says where it starts);
    // the first line always fits, so long lines still progress.
    let mut budget = MAX_LOG_BATCH_BYTES;
    let mut fits = 0;
    for line in fresh.iter().take(MAX_LOG_BATCH_LINES) {
        let bytes = bounds::log_line_bytes(line);
        if fits > 0 && bytes > budget {
            break;
        }
        budget = budget.saturating_sub(bytes);
        fits += 1;
    }
    let fresh = &fresh[..fits];
    let Some(last) = fresh.last() else { return Ok(Some(stored)) };
    let last = last.sequence;
    let rows = fresh
        .iter()
        .map(|line| {
            Ok(log_line::ActiveModel {
                job_id: Set(assignment.job_id),
                sequence: Set(from_u64(line.sequence, "log_lines.sequence")?),
                attempt: Set(from_u32(line.attempt, "log_lines.attempt")?),
                at: Set(stored_time(line.time)),
                level: Set(line.level.as_str().to_owned()),
                stage: Set(line.stage.clone()),
                text: Set(line.text.clone()),
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    // On PostgreSQL, statements stay small: sqlx 0.9.0 leaves Nagle's algorithm on for its
    // connections (sqlx issue 4335), so a statement that spans TCP segments waits ~40 ms for
    // a delayed ACK; 100 rows stay within one segment (measured by the dispatch bench).
    let per_insert = match store.backend {
        Backend::Postgres => POSTGRES_ROWS_PER_INSERT,
        Backend::Sqlite => store.backend.max_parameters() / log_line::COLUMNS,
    };
    for chunk in rows.chunks(per_insert) {
        log_line::Entity::insert_many(chunk.iter().cloned()).exec_without_returning(&*txn).await.map_err(db_err)?;
    }
    let mut active = model.into_active_model();
    active.log_sequence = Set(from_u64(last, "jobs.log_sequence")?);
    active.update(&*txn).await.map_err(db_err)?;
    txn.commit().await?;
    Ok(Some(last))
}

/// Lines with sequence >= `from`, in order: at most `limit` of them, and no more than fit
/// in `max_bytes` of text and stage names (but at least one, when there is one).
///
/// A first query reads only each line's size, so a page of long lines is never loaded
/// whole: the second one reads the lines that fit.
pub(super) async fn read(
    store: &SeaStore,
    job: Uuid,
    from: u64,
    limit: u64,
    max_bytes: u64,
) -> StoreResult<Vec<LogLine>> {
    // No stored sequence is past i64::MAX.
    let Ok(from) = i64::try_from(from) else { return Ok(Vec::new()) };
    // Byte lengths, as 64-bit integers: PostgreSQL's and SQLite's `length` count characters.
    let size = match store.backend {
        Backend::Postgres => r#"CAST(octet_length("text") + octet_length("stage") AS BIGINT)"#,
        Backend::Sqlite => r#"length(CAST("text" AS BLOB)) + length(CAST("stage" AS BLOB))"#,
    };
    let sizes: Vec<(i64, Option<i64>)> = log_line::Entity::find()
        .select_only()
        .column(log_line::Column::Sequence)
        .column_as(Expr::cust(size), "bytes")
        .filter(log_line::Column::JobId.eq(job))
        .filter(log_line::Column::Sequence.gte(from))
        .order_by_asc(log_line::Column::Sequence)
        .limit(limit)
        .into_tuple()
        .all(&store.db)
        .await
        .map_err(db_err)?;
    let mut budget = max_bytes;
    let mut last = None;
    for (sequence, bytes) in sizes {
        let bytes = u64::try_from(bytes.unwrap_or(0)).unwrap_or(0);
        if last.is_some() && bytes > budget {
            break;
        }
        budget = budget.saturating_sub(bytes);
        last = Some(sequence);
    }
    let Some(last) = last else { return Ok(Vec::new()) };
    let models = log_line::Entity::find()
        .filter(log_line::Column::JobId.eq(job))
        .filter(log_line::Column::Sequence.gte(from))
        .filter(log_line::Column::Sequence.lte(last))
        .order_by_asc(log_line::Column::Sequence)
        .all(&store.db)
        .await
        .map_err(db_err)?;
    models
        .into_iter()
        .map(|model| {
            Ok(LogLine {
                sequence: to_u64(model.sequence, "log_lines.sequence")?,
                time: model.at,
                level: parse(&model.level, "log_lines.level")?,
                stage: model.stage,
                text: model.text,
                attempt: to_u32(model.attempt, "log_lines.attempt")?,
            })
        })
        .collect()
}

/// The highest stored sequence of a job; 0 for none or an unknown job.
pub(super) async fn last_sequence(store: &SeaStore, job: Uuid) -> StoreResult<u64> {
    let sequence: Option<i64> = job::Entity::find_by_id(job)
        .select_only()
        .column(job::Column::LogSequence)
        .into_tuple()
        .one(&store.db)
        .await
        .map_err(db_err)?;
    sequence.map_or(Ok(0), |sequence| to_u64(sequence, "jobs.log_sequence"))
}
