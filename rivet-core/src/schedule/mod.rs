//! Cron schedules in a time zone, and what to do about the fire times a stopped
//! orchestrator missed.
//!
//! A [`Schedule`] is a five-field cron expression (minute, hour, day of month, month, day of
//! week; `@daily` and the other nicknames too) read in an IANA time zone, so that "02:30
//! every day in Europe/Paris" stays at 02:30 local time across daylight saving changes.
//! Times go in and out in UTC. On the spring-forward day a fire time inside the skipped
//! hour runs at the first minute after the gap; in the repeated autumn hour a fixed-time
//! schedule fires once, on the first pass (croner follows Vixie cron and the Open Cron
//! Pattern Specification).
//!
//! The orchestrator keeps, per schedule, the last due time it handled, and on each tick
//! asks [`due_fires`] what to start: at most one run, whatever the downtime was, and the next
//! time to wake up for. Nothing here does I/O or reads the clock.

mod missed;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};

pub use self::missed::{Fires, MissedPolicy, due_fires};

/// The longest cron expression, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 256;
/// How much of a refused expression or time zone an error quotes, in bytes.
const MAX_QUOTED_BYTES: usize = 64;

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The expression is longer than [`MAX_EXPRESSION_BYTES`].
    #[error("cron expression of {len} bytes; the limit is {MAX_EXPRESSION_BYTES}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The expression has six or seven fields: Rivet schedules to the minute.
    #[error("cron expression `{expression}` has {fields} fields; use five (minute hour day month weekday)")]
    WrongFieldCount {
        /// The expression.
        expression: String,
        /// How many fields it has.
        fields: usize,
    },
    /// The expression does not parse.
    #[error("invalid cron expression `{expression}`: {reason}")]
    Invalid {
        /// The expression.
        expression: String,
        /// What croner found wrong.
        reason: String,
    },
    /// The expression parses but names no time that exists, such as `0 0 30 2 *`.
    #[error("cron expression `{expression}` never fires")]
    NeverFires {
        /// The expression.
        expression: String,
    },
    /// The time zone is not in the IANA database.
    #[error("unknown time zone `{name}` (use an IANA name such as `Europe/Paris` or `UTC`)")]
    UnknownTimeZone {
        /// The name given.
        name: String,
    },
}

/// A cron expression read in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    /// Parses the five-field `cron` expression, to be read in the IANA time zone `tz`.
    pub fn new(cron: &str, tz: &str) -> Result<Schedule, ScheduleError> {
        let expression = cron.trim();
        if expression.len() > MAX_EXPRESSION_BYTES {
            return Err(ScheduleError::TooLong { len: expression.len() });
        }
        let quoted = || crate::text::truncate(expression, MAX_QUOTED_BYTES).into_owned();
        let fields = expression.split_whitespace().count();
        if !expression.starts_with('@') && fields != 5 {
            return Err(ScheduleError::WrongFieldCount { expression: quoted(), fields });
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let parsed = parser
            .parse(expression)
            .map_err(|e| ScheduleError::Invalid { expression: quoted(), reason: explain(&parser, expression, &e) })?;
        let tz = Tz::from_str(tz.trim()).map_err(|_| ScheduleError::UnknownTimeZone {
            name: crate::text::truncate(tz, MAX_QUOTED_BYTES).into_owned(),
        })?;
        let schedule = Schedule { expression: expression.to_owned(), cron: parsed, tz };
        // An expression that matches no date (30 February) would make every search run to
        // croner's limit; refuse it once, here. Leap days come back within eight years.
        if schedule.next_after(DateTime::UNIX_EPOCH).is_none() {
            return Err(ScheduleError::NeverFires { expression: quoted() });
        }
        Ok(schedule)
    }

    /// The first fire time strictly after `time`, or `None` if there is none croner can
    /// find (past the year 5000, or a search limit).
    pub fn next_after(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = time.with_timezone(&self.tz);
        self.cron.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc))
    }

    /// The last fire time at or before `time`.
    pub fn last_at_or_before(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = time.with_timezone(&self.tz);
        self.cron.find_previous_occurrence(&local, true).ok().map(|t| t.with_timezone(&Utc))
    }

    /// The cron expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone it is read in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }
}

/// The five fields, in order.
const FIELDS: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];

/// Why croner refused `expression`, naming the field at fault when one alone is: each field
/// is tried with the others `*`.
fn explain(parser: &CronParser, expression: &str, error: &CronError) -> String {
    let message = match error {
        // croner quotes the field upper-cased; the field is quoted below as written.
        CronError::IllegalCharacters(_) => "characters cron does not allow".to_owned(),
        CronError::ComponentError(m) | CronError::InvalidPattern(m) => m.clone(),
        other => other.to_string(),
    };
    // croner's messages are sentences; ours are lowercase fragments.
    let message = message.trim_end_matches('.');
    let mut chars = message.chars();
    let message = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    if expression.starts_with('@') {
        return "unknown nickname (use @yearly, @annually, @monthly, @weekly, @daily or @hourly)".to_owned();
    }
    let fields: Vec<&str> = expression.split_whitespace().collect();
    for (i, field) in fields.iter().enumerate() {
        let alone: Vec<&str> = (0..fields.len()).map(|j| if j == i { *field } else { "*" }).collect();
        if parser.parse(&alone.join(" ")).is_err() {
            let field = crate::text::truncate(field, MAX_QUOTED_BYTES);
            return format!("{} field `{field}`: {message}", FIELDS.get(i).copied().unwrap_or("a"));
        }
    }
    message
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        self.expression == other.expression && self.tz == other.tz
    }
}

impl Eq for Schedule {}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expression, self.tz.name())
    }
}

#[cfg(test)]
mod tests;
