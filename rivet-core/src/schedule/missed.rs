//! What a schedule owes after a pause: the orchestrator stopped, a tick came late, or the
//! clock jumped.
//!
//! Each answer costs three cron searches whatever the downtime: the first due time after the
//! last one handled, the most recent one at or before now (searched backwards from now),
//! and the next one after now. A schedule that fires every minute and was stopped for a
//! year is not walked minute by minute.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Schedule;
use crate::job::UnknownValue;

/// What to do about fire times that passed while nothing was watching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissedPolicy {
    /// Run only a due time that is still fresh (within the grace given to [`due_fires`]);
    /// drop older ones. For work that only makes sense on time, such as a nightly report.
    #[default]
    Skip,
    /// Run once for everything missed, at the most recent missed time. For work that must
    /// happen eventually, such as a backup.
    RunOnce,
}

impl MissedPolicy {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            MissedPolicy::Skip => "skip",
            MissedPolicy::RunOnce => "run-once",
        }
    }
}

impl FromStr for MissedPolicy {
    type Err = UnknownValue;
    fn from_str(text: &str) -> Result<MissedPolicy, UnknownValue> {
        match text {
            "skip" => Ok(MissedPolicy::Skip),
            "run-once" => Ok(MissedPolicy::RunOnce),
            _ => Err(UnknownValue { kind: "missed-run policy", value: text.to_owned() }),
        }
    }
}

impl fmt::Display for MissedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a schedule wants now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fires {
    /// The due time to start a run for now, if any.
    pub fire: Option<DateTime<Utc>>,
    /// The most recent due time at or before now, fired or skipped, if any was due. The
    /// orchestrator stores it as the schedule's last due time, in the same transaction as
    /// the run it starts, so that no due time is handled twice.
    pub latest_due: Option<DateTime<Utc>>,
    /// Whether due times were passed over without a run (for the log).
    pub skipped: bool,
    /// The next due time after now: when to look again. `None` if the schedule has no
    /// further time croner can find.
    pub next: Option<DateTime<Utc>>,
}

/// Which due time of `schedule` to fire `now`, given that every due time up to and
/// including `last_due` has been handled, and when the next one is.
///
/// The due times are those after `last_due` and at or before `now`. With none, nothing
/// fires. Otherwise only the most recent of them is a candidate: under
/// [`MissedPolicy::RunOnce`] it fires; under [`MissedPolicy::Skip`] it fires if it is at
/// most `grace` old, so that a tick a few seconds late still runs the job and a restart
/// after hours of downtime does not. The rest are skipped either way. A `now` before
/// `last_due` (the clock went back) fires nothing until the clock is past it again.
pub fn due_fires(
    schedule: &Schedule,
    last_due: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: MissedPolicy,
    grace: Duration,
) -> Fires {
    let first = schedule.next_after(last_due);
    let next = if now > last_due { schedule.next_after(now) } else { first };
    let Some(first) = first.filter(|first| *first <= now) else {
        return Fires { fire: None, latest_due: None, skipped: false, next };
    };
    // Never earlier than `first`: both searches agree on which instants are due, but take
    // the safe side should croner's backward walk land before it.
    let latest = schedule.last_at_or_before(now).filter(|latest| *latest >= first).unwrap_or(first);
    let fire = match policy {
        MissedPolicy::RunOnce => Some(latest),
        MissedPolicy::Skip => {
            let late = (now - latest).to_std().unwrap_or(Duration::ZERO);
            (late <= grace).then_some(latest)
        }
    };
    Fires { fire, latest_due: Some(latest), skipped: fire.is_none() || latest != first, next }
}
