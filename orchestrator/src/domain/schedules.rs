//! Cron schedules: a pipeline launched with fixed inputs at the due times of a cron
//! expression in a time zone (the pure logic is `rivet_core::schedule`; this module wires
//! it to the store and to launches).
//!
//! Every replica runs the scheduler ([`run`]): each tick reads the schedules, asks
//! [`due_fires`] which due time to fire, and starts at most one job per due time across
//! all replicas. Exactly once rests on two guards:
//! - the claim ([`Store::claim_fire`]): one transaction inserts the `(schedule, due)` fire
//!   row (`ON CONFLICT DO NOTHING`) and advances the schedule's `last_due`; only the
//!   replica whose insert won launches;
//! - the launch's idempotency key `schedule:<id>:<due>`: should a claim ever race, the
//!   second launch returns the first job.
//!
//! A launch that fails (the pipeline was deleted, the inputs no longer type) is logged with
//! the schedule's id and not retried: the fire is spent, the next due time is tried as
//! usual. The clock is a parameter of [`Scheduler::tick`], so tests tick simulated minutes.
//!
//! [`Store::claim_fire`]: crate::domain::store::Store::claim_fire

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use rivet_core::JobOrigin;
use rivet_core::schedule::{MissedPolicy, Schedule, ScheduleError, due_fires};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::error::{Error, Result};
use crate::domain::orchestrator::{Launch, Orchestrator};

/// The most schedules stored; creating one more is `RESOURCE_EXHAUSTED`.
pub const MAX_SCHEDULES: u64 = 10_000;
/// The most fixed inputs a schedule may carry (a pipeline declares at most as many).
pub const MAX_INPUTS: usize = rivet_core::limits::MAX_INPUTS;
/// The longest fixed input value, in bytes.
pub const MAX_INPUT_VALUE_BYTES: usize = 16 * 1024;
/// The longest time zone name, in bytes (IANA names are far shorter).
pub const MAX_TIME_ZONE_BYTES: usize = 64;
/// How many schedules one read of a tick loads.
const TICK_PAGE: u64 = 500;

/// A stored schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    /// Its id (UUIDv7: ids sort by creation).
    pub id: Uuid,
    /// The pipeline's name: each fire launches its latest version.
    pub pipeline: String,
    /// The five-field cron expression.
    pub cron: String,
    /// The IANA time zone the expression is read in.
    pub time_zone: String,
    /// Raw input values by name, typed against the pipeline at each launch.
    pub inputs: BTreeMap<String, String>,
    /// What to do about due times missed while no replica ticked.
    pub missed: MissedPolicy,
    /// A paused schedule fires nothing; resuming does not fire what passed meanwhile.
    pub paused: bool,
    /// The latest due time handled (fired or skipped); the creation time at first.
    pub last_due: DateTime<Utc>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl ScheduleRecord {
    /// The parsed schedule.
    pub fn schedule(&self) -> Result<Schedule, ScheduleError> {
        Schedule::new(&self.cron, &self.time_zone)
    }

    /// The next due time after `now` (and after the last one handled), if any; `None` too
    /// while paused.
    pub fn next_time(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.paused {
            return None;
        }
        self.schedule().ok()?.next_after(now.max(self.last_due))
    }
}

/// A schedule to create, as a client asks for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewSchedule {
    /// A pipeline name (or a version id, whose name is kept).
    pub pipeline: String,
    /// The five-field cron expression.
    pub cron: String,
    /// The IANA time zone; `UTC` when empty.
    pub time_zone: String,
    /// Raw input values by name.
    pub inputs: BTreeMap<String, String>,
    /// `skip` or `run-once`; `skip` when empty.
    pub missed: String,
}

/// Validates and stores a schedule, created at `at`: nothing due at or before `at` fires.
/// Reports every malformed field at once (`InvalidFields`); an unknown pipeline is
/// `NotFound`.
pub async fn create(orchestrator: &Orchestrator, new: NewSchedule, at: DateTime<Utc>) -> Result<ScheduleRecord> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let time_zone = if new.time_zone.trim().is_empty() { "UTC".to_owned() } else { new.time_zone.trim().to_owned() };
    if time_zone.len() > MAX_TIME_ZONE_BYTES {
        problems.push((
            "time_zone".to_owned(),
            format!("is {} bytes; the limit is {MAX_TIME_ZONE_BYTES}", time_zone.len()),
        ));
    } else if let Err(err) = Schedule::new("@daily", &time_zone) {
        problems.push(("time_zone".to_owned(), err.to_string()));
    }
    match Schedule::new(&new.cron, "UTC") {
        Err(err) if new.cron.trim().is_empty() => {
            problems.push(("cron".to_owned(), format!("is required, e.g. `0 3 * * 1-5` ({err})")))
        }
        Err(err) => problems.push(("cron".to_owned(), err.to_string())),
        Ok(_) => {}
    }
    let missed = match new.missed.as_str() {
        "" => MissedPolicy::Skip,
        text => text.parse().unwrap_or_else(|_| {
            let quoted = rivet_core::text::truncate(text, 64);
            problems.push(("missed".to_owned(), format!("`{quoted}` is not a policy; use `skip` or `run-once`")));
            MissedPolicy::Skip
        }),
    };
    if new.inputs.len() > MAX_INPUTS {
        problems.push(("inputs".to_owned(), format!("{} inputs; the limit is {MAX_INPUTS}", new.inputs.len())));
    }
    for (name, value) in new.inputs.iter().take(MAX_INPUTS) {
        if value.len() > MAX_INPUT_VALUE_BYTES {
            let name = rivet_core::text::truncate(name, rivet_core::limits::MAX_NAME_BYTES);
            problems.push((
                format!("inputs.{name}"),
                format!("is {} bytes; the limit is {MAX_INPUT_VALUE_BYTES}", value.len()),
            ));
        }
    }
    let pipeline = match orchestrator.find_pipeline(&new.pipeline, 0).await {
        Ok(pipeline) => Some(pipeline),
        Err(Error::NotFound { .. }) if problems.is_empty() => {
            return Err(Error::NotFound { what: "pipeline", id: new.pipeline });
        }
        Err(Error::NotFound { .. }) => None,
        Err(Error::InvalidArgument { field, message }) => {
            problems.push((field, message));
            None
        }
        Err(err) => return Err(err),
    };
    // The fixed inputs must type now; a later pipeline version that no longer takes them
    // makes that fire fail, logged.
    if let Some(pipeline) = &pipeline
        && new.inputs.len() <= MAX_INPUTS
        && let Err(errors) = rivet_core::resolve(&pipeline.definition.inputs, &new.inputs)
    {
        problems.extend(errors.0.into_iter().map(|e| (format!("inputs.{}", e.input), e.message)));
    }
    let Some(pipeline) = pipeline.filter(|_| problems.is_empty()) else {
        return Err(Error::InvalidFields(problems));
    };
    // Microseconds: the precision both backends store.
    let at = at.trunc_subsecs(6);
    let record = ScheduleRecord {
        id: Uuid::now_v7(),
        pipeline: pipeline.name,
        cron: new.cron.trim().to_owned(),
        time_zone,
        inputs: new.inputs,
        missed,
        paused: false,
        last_due: at,
        created_at: at,
    };
    if !orchestrator.store().create_schedule(&record).await? {
        return Err(Error::ResourceExhausted(format!("{MAX_SCHEDULES} schedules are stored; delete one first")));
    }
    Ok(record)
}

/// A schedule by id.
pub async fn get(orchestrator: &Orchestrator, id: Uuid) -> Result<ScheduleRecord> {
    orchestrator.store().schedule(id).await?.ok_or_else(|| not_found(id))
}

/// Deletes a schedule; its jobs stay.
pub async fn delete(orchestrator: &Orchestrator, id: Uuid) -> Result<()> {
    match orchestrator.store().delete_schedule(id).await? {
        true => Ok(()),
        false => Err(not_found(id)),
    }
}

/// Pauses (`true`) or resumes a schedule at `at`.
pub async fn set_paused(
    orchestrator: &Orchestrator,
    id: Uuid,
    paused: bool,
    at: DateTime<Utc>,
) -> Result<ScheduleRecord> {
    orchestrator.store().set_schedule_paused(id, paused, at).await?.ok_or_else(|| not_found(id))
}

fn not_found(id: Uuid) -> Error {
    Error::NotFound { what: "schedule", id: id.to_string() }
}

/// The idempotency key of a schedule's launch for `due`.
pub fn idempotency_key(schedule: Uuid, due: DateTime<Utc>) -> String {
    format!("schedule:{schedule}:{}", due.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Runs the scheduler until `shutdown`: a tick every `schedules.tick_ms`, on the wall clock.
pub async fn run(orchestrator: Orchestrator, shutdown: CancellationToken) {
    let period = Duration::from_millis(orchestrator.config().schedules.tick_ms);
    let mut scheduler = Scheduler::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        if let Err(err) = scheduler.tick(&orchestrator, Utc::now()).await {
            tracing::warn!(error = %err, "schedule tick failed; the next tick tries again");
        }
    }
}

/// A job a tick launched.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// The schedule.
    pub schedule: Uuid,
    /// The due time it fired for.
    pub due: DateTime<Utc>,
    /// The job.
    pub job: Uuid,
}

/// One replica's scheduler. It remembers, per schedule, when the next due time is, so
/// that a tick does cron searches only for schedules that may be due.
#[derive(Debug, Default)]
pub struct Scheduler {
    /// Schedule → (its `last_due` when computed, its next due time after that tick).
    next: HashMap<Uuid, (DateTime<Utc>, Option<DateTime<Utc>>)>,
}

impl Scheduler {
    /// Fires what is due at `now`: for every unpaused schedule, the due time
    /// [`due_fires`] names, claimed once across replicas, then launched; skipped due times
    /// advance the schedule. Returns the jobs this replica launched. A failure of one
    /// schedule is logged and the others go on; only a failed read of the schedules fails
    /// the tick.
    pub async fn tick(&mut self, orchestrator: &Orchestrator, now: DateTime<Utc>) -> Result<Vec<Fired>> {
        let grace = Duration::from_secs(orchestrator.config().schedules.grace_secs);
        let mut fired = Vec::new();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = orchestrator.store().list_schedules(after, TICK_PAGE).await?;
            after = page.last().map(|record| record.id);
            for record in &page {
                seen.push(record.id);
                if record.paused {
                    continue;
                }
                if let Some((last_due, next)) = self.next.get(&record.id)
                    && *last_due == record.last_due
                    && next.is_none_or(|next| now < next)
                {
                    continue;
                }
                match self.handle(orchestrator, record, now, grace).await {
                    Ok(Some(one)) => fired.push(one),
                    Ok(None) => {}
                    Err(err) => tracing::warn!(schedule = %record.id, error = %err, "schedule not handled this tick"),
                }
            }
            if (page.len() as u64) < TICK_PAGE {
                break;
            }
        }
        self.next.retain(|id, _| seen.contains(id));
        Ok(fired)
    }

    async fn handle(
        &mut self,
        orchestrator: &Orchestrator,
        record: &ScheduleRecord,
        now: DateTime<Utc>,
        grace: Duration,
    ) -> Result<Option<Fired>> {
        let schedule = record.schedule().map_err(|err| Error::Internal(format!("stored schedule: {err}")))?;
        let fires = due_fires(&schedule, record.last_due, now, record.missed, grace);
        // Whatever happens below, nothing is due before `next` unless `last_due` changes.
        let handled = fires.latest_due.unwrap_or(record.last_due).max(record.last_due);
        self.next.insert(record.id, (handled, fires.next));
        let store = orchestrator.store();
        let Some(due) = fires.fire else {
            if let Some(latest) = fires.latest_due.filter(|latest| *latest > record.last_due) {
                tracing::info!(schedule = %record.id, skipped_to = %latest, "due times missed beyond the grace; skipped");
                store.advance_schedule(record.id, latest).await?;
            }
            return Ok(None);
        };
        // A replica shutting down would claim a fire it can no longer launch: leave the due
        // time to the others (or to this one's restart, within the missed-run policy).
        if orchestrator.shutdown_token().is_cancelled() {
            return Ok(None);
        }
        if !store.claim_fire(record.id, due, fires.latest_due.unwrap_or(due)).await? {
            // Another replica fired it (or the schedule changed meanwhile).
            return Ok(None);
        }
        if fires.skipped {
            tracing::info!(schedule = %record.id, %due, "earlier missed due times were skipped");
        }
        let launch = Launch {
            pipeline: record.pipeline.clone(),
            inputs: record.inputs.clone(),
            idempotency_key: Some(idempotency_key(record.id, due)),
            origin: JobOrigin::Schedule { schedule_id: record.id, due },
        };
        match orchestrator.launch(launch).await {
            Ok(job) => {
                tracing::info!(schedule = %record.id, %due, job = %job.id, pipeline = %record.pipeline, "scheduled job launched");
                store.record_fire_job(record.id, due, job.id).await?;
                Ok(Some(Fired { schedule: record.id, due, job: job.id }))
            }
            Err(err) => {
                // The fire is spent: a launch that cannot succeed must not be retried every tick.
                tracing::warn!(schedule = %record.id, %due, pipeline = %record.pipeline, error = %err, "scheduled launch failed; this due time is skipped");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;

    fn record(cron: &str, paused: bool, last_due: DateTime<Utc>) -> ScheduleRecord {
        ScheduleRecord {
            id: Uuid::nil(),
            pipeline: "p".to_owned(),
            cron: cron.to_owned(),
            time_zone: "Europe/Paris".to_owned(),
            inputs: BTreeMap::new(),
            missed: MissedPolicy::Skip,
            paused,
            last_due,
            created_at: last_due,
        }
    }

    #[test]
    fn the_next_time_is_after_now_and_after_the_last_due_and_none_while_paused() {
        let at = |h, m| Utc.with_ymd_and_hms(2026, 12, 7, h, m, 0).single().expect("a time");
        // 03:00 in Paris is 02:00 UTC in winter.
        let nightly = record("0 3 * * *", false, at(1, 0));
        assert_eq!(nightly.next_time(at(1, 30)), Some(at(2, 0)));
        let handled_later = record("0 3 * * *", false, at(2, 0));
        assert_eq!(handled_later.next_time(at(1, 30)), Some(at(2, 0) + TimeDelta::days(1)));
        assert_eq!(record("0 3 * * *", true, at(1, 0)).next_time(at(1, 30)), None);
    }

    #[test]
    fn the_idempotency_key_names_the_schedule_and_the_due_time_to_the_second() {
        let due = Utc.with_ymd_and_hms(2026, 12, 7, 2, 0, 0).single().expect("a time");
        let id = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001);
        assert_eq!(idempotency_key(id, due), format!("schedule:{id}:2026-12-07T02:00:00Z"));
    }
}
