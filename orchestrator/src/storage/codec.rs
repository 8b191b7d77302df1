//! Conversions between the domain's values and their stored form, and the mapping of
//! database errors to [`StoreError`].
//!
//! Nothing read from the database is trusted: every decoding failure is a
//! [`StoreError::Corrupt`] naming the column, never a panic.

use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::DbErr;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::store::StoreError;

/// Maps a sea-orm error. Row decoding failures are corrupt data; everything else is the
/// database failing. sqlx's messages carry the database's error text, never the statement.
pub(crate) fn db_err(err: DbErr) -> StoreError {
    match err {
        DbErr::Type(_) | DbErr::Json(_) | DbErr::TryIntoErr { .. } => StoreError::Corrupt(err.to_string()),
        _ => StoreError::Unavailable(err.to_string()),
    }
}

/// The current time at the precision both backends store (microseconds), so that a record
/// returned by a write equals the same record read back.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A caller's timestamp at the stored precision.
pub(crate) fn stored_time(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// Decodes a stored JSON column.
pub(crate) fn from_json<T: DeserializeOwned>(value: serde_json::Value, column: &str) -> Result<T, StoreError> {
    serde_json::from_value(value).map_err(|err| StoreError::Corrupt(format!("{column}: {err}")))
}

/// Encodes a value for a JSON column.
pub(crate) fn to_json<T: Serialize>(value: &T, column: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|err| StoreError::Corrupt(format!("{column}: cannot encode: {err}")))
}

/// Decodes a stored enum name (`JobState`, `FailureReason`, ...).
pub(crate) fn parse<T>(text: &str, column: &str) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|err| StoreError::Corrupt(format!("{column}: {err}")))
}

/// Decodes an optional stored enum name.
pub(crate) fn parse_opt<T>(text: Option<&str>, column: &str) -> Result<Option<T>, StoreError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    text.map(|text| parse(text, column)).transpose()
}

/// Decodes a stored non-negative integer.
pub(crate) fn to_u32(value: i32, column: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column}: negative value {value}")))
}

/// Decodes a stored non-negative big integer.
pub(crate) fn to_u64(value: i64, column: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column}: negative value {value}")))
}

/// Encodes a count for an `integer` column. Values past `i32::MAX` cannot be stored.
pub(crate) fn from_u32(value: u32, column: &str) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column}: {value} is too large to store")))
}

/// Encodes a sequence or epoch for a `bigint` column. Values past `i64::MAX` cannot be
/// stored.
pub(crate) fn from_u64(value: u64, column: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column}: {value} is too large to store")))
}

#[cfg(test)]
mod tests {
    use rivet_core::JobState;

    use super::*;

    #[test]
    fn decoding_failures_are_corrupt() {
        assert!(matches!(parse::<JobState>("bogus", "jobs.state"), Err(StoreError::Corrupt(_))));
        assert!(matches!(to_u32(-1, "jobs.attempt"), Err(StoreError::Corrupt(_))));
        assert!(matches!(to_u64(-1, "jobs.epoch"), Err(StoreError::Corrupt(_))));
        assert!(matches!(from_json::<Vec<u32>>(serde_json::json!({"a": 1}), "x"), Err(StoreError::Corrupt(_))));
        assert!(matches!(db_err(DbErr::Type("bad".into())), StoreError::Corrupt(_)));
        assert!(matches!(db_err(DbErr::Custom("down".into())), StoreError::Unavailable(_)));
    }

    #[test]
    fn stored_times_have_microsecond_precision() {
        let at = stored_time(Utc::now());
        assert_eq!(at.timestamp_subsec_nanos() % 1000, 0);
    }
}
