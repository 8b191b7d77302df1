use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn schedule(cron: &str, tz: &str) -> Schedule {
    Schedule::new(cron, tz).unwrap()
}

/// The first `n` fire times after `from`, in UTC, as RFC 3339 text.
fn fires(schedule: &Schedule, from: &str, n: usize) -> Vec<String> {
    let mut time = utc(from);
    let mut out = Vec::new();
    for _ in 0..n {
        time = schedule.next_after(time).unwrap();
        out.push(time.to_rfc3339());
    }
    out
}

#[test]
fn bad_expressions_and_zones_are_named() {
    let check = |cron: &str, tz: &str, expect: &str| {
        assert_eq!(Schedule::new(cron, tz).unwrap_err().to_string(), expect, "{cron} {tz}");
    };
    check("0 * * * * *", "UTC", "cron expression `0 * * * * *` has 6 fields; use five (minute hour day month weekday)");
    check("* * * *", "UTC", "cron expression `* * * *` has 4 fields; use five (minute hour day month weekday)");
    check("", "UTC", "cron expression `` has 0 fields; use five (minute hour day month weekday)");
    assert!(
        matches!(Schedule::new("61 * * * *", "UTC"), Err(ScheduleError::Invalid { expression, .. }) if expression == "61 * * * *")
    );
    assert!(matches!(Schedule::new("a b c d e", "UTC"), Err(ScheduleError::Invalid { .. })));
    assert!(matches!(Schedule::new("@reboot", "UTC"), Err(ScheduleError::Invalid { .. })));
    check("0 0 30 2 *", "UTC", "cron expression `0 0 30 2 *` never fires");
    check(
        "0 3 * * *",
        "Mars/Olympus_Mons",
        "unknown time zone `Mars/Olympus_Mons` (use an IANA name such as `Europe/Paris` or `UTC`)",
    );
    let long = format!("0 0 * * {}", "1,".repeat(MAX_EXPRESSION_BYTES));
    assert_eq!(Schedule::new(&long, "UTC").unwrap_err(), ScheduleError::TooLong { len: long.len() });
}

#[test]
fn next_after_is_strictly_after() {
    let quarter = schedule("*/15 * * * *", "UTC");
    assert_eq!(
        fires(&quarter, "2026-01-01T10:07:00Z", 3),
        ["2026-01-01T10:15:00+00:00", "2026-01-01T10:30:00+00:00", "2026-01-01T10:45:00+00:00"]
    );
    assert_eq!(fires(&quarter, "2026-01-01T10:15:00Z", 1), ["2026-01-01T10:30:00+00:00"]);
    assert_eq!(quarter.last_at_or_before(utc("2026-01-01T10:15:00Z")), Some(utc("2026-01-01T10:15:00Z")));
    assert_eq!(quarter.last_at_or_before(utc("2026-01-01T10:14:59Z")), Some(utc("2026-01-01T10:00:00Z")));
    let nightly = schedule("@daily", "America/New_York");
    assert_eq!(fires(&nightly, "2026-01-01T00:00:00Z", 1), ["2026-01-01T05:00:00+00:00"]);
    let leap = schedule("0 12 29 2 *", "UTC");
    assert_eq!(fires(&leap, "2025-03-01T00:00:00Z", 1), ["2028-02-29T12:00:00+00:00"]);
    assert_eq!(nightly.to_string(), "@daily (America/New_York)");
}

#[test]
fn paris_spring_forward_runs_the_skipped_time_after_the_gap() {
    // On 29 March 2026 Paris clocks jump from 02:00 CET to 03:00 CEST: 02:30 does not exist
    // that day, and the job runs at 03:00 CEST (01:00 UTC) instead.
    let daily = schedule("30 2 * * *", "Europe/Paris");
    assert_eq!(
        fires(&daily, "2026-03-27T12:00:00Z", 4),
        [
            "2026-03-28T01:30:00+00:00", // 02:30 CET
            "2026-03-29T01:00:00+00:00", // 03:00 CEST, right after the gap
            "2026-03-30T00:30:00+00:00", // 02:30 CEST
            "2026-03-31T00:30:00+00:00",
        ]
    );
}

#[test]
fn paris_autumn_repeat_hour_fires_once() {
    // On 25 October 2026 Paris clocks go back from 03:00 CEST to 02:00 CET: 02:30 happens at
    // 00:30 UTC and again at 01:30 UTC. A daily job runs once, on the first.
    let daily = schedule("30 2 * * *", "Europe/Paris");
    assert_eq!(
        fires(&daily, "2026-10-23T12:00:00Z", 3),
        ["2026-10-24T00:30:00+00:00", "2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
    );
    // The same through due_fires: after the first 02:30, the second one is not due.
    let first = utc("2026-10-25T00:30:00Z");
    let after_repeat = due_fires(&daily, first, utc("2026-10-25T01:31:00Z"), MissedPolicy::RunOnce, Duration::ZERO);
    assert_eq!(
        after_repeat,
        Fires { fire: None, latest_due: None, skipped: false, next: Some(utc("2026-10-26T01:30:00Z")) }
    );
    // An hourly job runs in both passes of the hour: they are different hours.
    let hourly = schedule("30 * * * *", "Europe/Paris");
    assert_eq!(
        fires(&hourly, "2026-10-24T23:45:00Z", 3),
        ["2026-10-25T00:30:00+00:00", "2026-10-25T01:30:00+00:00", "2026-10-25T02:30:00+00:00"]
    );
}

#[test]
fn nothing_due_waits_for_the_next_time() {
    let hourly = schedule("0 * * * *", "UTC");
    let fires = due_fires(
        &hourly,
        utc("2026-05-01T10:00:00Z"),
        utc("2026-05-01T10:59:59Z"),
        MissedPolicy::Skip,
        Duration::from_secs(60),
    );
    assert_eq!(fires, Fires { fire: None, latest_due: None, skipped: false, next: Some(utc("2026-05-01T11:00:00Z")) });
    // The clock went back past the last due time: nothing fires, the next time stays.
    let fires = due_fires(
        &hourly,
        utc("2026-05-01T10:00:00Z"),
        utc("2026-05-01T09:30:00Z"),
        MissedPolicy::RunOnce,
        Duration::ZERO,
    );
    assert_eq!(fires, Fires { fire: None, latest_due: None, skipped: false, next: Some(utc("2026-05-01T11:00:00Z")) });
}

#[test]
fn an_on_time_tick_fires_under_both_policies() {
    let hourly = schedule("0 * * * *", "UTC");
    let last = utc("2026-05-01T10:00:00Z");
    let now = utc("2026-05-01T11:00:20Z");
    for policy in [MissedPolicy::Skip, MissedPolicy::RunOnce] {
        let fires = due_fires(&hourly, last, now, policy, Duration::from_secs(60));
        let due = Some(utc("2026-05-01T11:00:00Z"));
        assert_eq!(
            fires,
            Fires { fire: due, latest_due: due, skipped: false, next: Some(utc("2026-05-01T12:00:00Z")) }
        );
    }
}

#[test]
fn after_downtime_skip_drops_stale_times_and_run_once_runs_the_latest() {
    let hourly = schedule("0 * * * *", "UTC");
    let last = utc("2026-05-01T10:00:00Z");
    let latest = Some(utc("2026-05-01T15:00:00Z"));
    let next = Some(utc("2026-05-01T16:00:00Z"));
    let grace = Duration::from_secs(120);

    // Back at 15:01: the 15:00 run is within grace and runs; 11:00 to 14:00 are skipped.
    let now = utc("2026-05-01T15:01:00Z");
    assert_eq!(
        due_fires(&hourly, last, now, MissedPolicy::Skip, grace),
        Fires { fire: latest, latest_due: latest, skipped: true, next }
    );
    // Back at 15:30: even 15:00 is stale.
    let now = utc("2026-05-01T15:30:00Z");
    assert_eq!(
        due_fires(&hourly, last, now, MissedPolicy::Skip, grace),
        Fires { fire: None, latest_due: latest, skipped: true, next }
    );
    // One missed time, late: skipped too.
    let now = utc("2026-05-01T11:30:00Z");
    let one = Some(utc("2026-05-01T11:00:00Z"));
    let fires = due_fires(&hourly, last, now, MissedPolicy::Skip, grace);
    assert_eq!(fires, Fires { fire: None, latest_due: one, skipped: true, next: Some(utc("2026-05-01T12:00:00Z")) });
    // RunOnce runs the most recent one, once.
    let now = utc("2026-05-01T15:30:00Z");
    assert_eq!(
        due_fires(&hourly, last, now, MissedPolicy::RunOnce, grace),
        Fires { fire: latest, latest_due: latest, skipped: true, next }
    );
}

#[test]
fn a_year_of_missed_minutes_costs_a_few_searches() {
    let minutely = schedule("* * * * *", "Europe/Paris");
    let last = utc("2025-05-01T10:00:00Z");
    let now = utc("2026-05-01T10:00:30Z");
    let fires = due_fires(&minutely, last, now, MissedPolicy::RunOnce, Duration::ZERO);
    let latest = Some(utc("2026-05-01T10:00:00Z"));
    assert_eq!(
        fires,
        Fires { fire: latest, latest_due: latest, skipped: true, next: Some(utc("2026-05-01T10:01:00Z")) }
    );
    let fires = due_fires(&minutely, last, now, MissedPolicy::Skip, Duration::from_secs(10));
    assert_eq!(fires, Fires { fire: None, latest_due: latest, skipped: true, next: Some(utc("2026-05-01T10:01:00Z")) });
}

#[test]
fn missed_policies_have_names() {
    for policy in [MissedPolicy::Skip, MissedPolicy::RunOnce] {
        assert_eq!(policy.to_string().parse::<MissedPolicy>(), Ok(policy));
    }
    assert_eq!(MissedPolicy::RunOnce.to_string(), "run-once");
    assert_eq!("catch-up".parse::<MissedPolicy>().unwrap_err().to_string(), "unknown missed-run policy `catch-up`");
    assert_eq!(serde_json::to_string(&MissedPolicy::RunOnce).unwrap(), "\"run-once\"");
}

#[test]
fn backward_and_forward_searches_agree_across_daylight_saving() {
    // The most recent due time, searched backwards from now, is one the forward search
    // gives: the spring gap's replacement 03:00 and the autumn repeat's first 02:30.
    let daily = schedule("30 2 * * *", "Europe/Paris");
    assert_eq!(daily.last_at_or_before(utc("2026-03-29T01:31:00Z")), Some(utc("2026-03-29T01:00:00Z")));
    assert_eq!(daily.last_at_or_before(utc("2026-03-29T00:59:00Z")), Some(utc("2026-03-28T01:30:00Z")));
    assert_eq!(daily.last_at_or_before(utc("2026-10-25T01:31:00Z")), Some(utc("2026-10-25T00:30:00Z")));
    // Down through the whole repeated hour: one run, for its first pass.
    let fires = due_fires(
        &daily,
        utc("2026-10-24T00:30:00Z"),
        utc("2026-10-25T01:31:00Z"),
        MissedPolicy::RunOnce,
        Duration::ZERO,
    );
    let due = Some(utc("2026-10-25T00:30:00Z"));
    assert_eq!(fires, Fires { fire: due, latest_due: due, skipped: false, next: Some(utc("2026-10-26T01:30:00Z")) });
}
