//! How wire messages read: state names, times, durations, and the JSON documents of
//! `--output json` (prost types do not derive serde, so the JSON is built here, once).

use chrono::{DateTime, Local, TimeZone, Utc};
use prost_types::Timestamp;
use rivet_proto::v1 as pb;
use serde_json::{Value, json};

/// A wire enum's name without its prefix, in lowercase: `JOB_STATE_TIMED_OUT` → `timed_out`.
fn enum_name(name: Option<&str>, prefix: &str) -> String {
    match name {
        Some(name) => name.strip_prefix(prefix).unwrap_or(name).to_ascii_lowercase(),
        None => "unknown".to_owned(),
    }
}

/// A job state's name, e.g. `running`.
pub fn job_state(value: i32) -> String {
    enum_name(pb::JobState::try_from(value).ok().map(|s| s.as_str_name()), "JOB_STATE_")
}

/// A stage state's name, e.g. `succeeded`.
pub fn stage_state(value: i32) -> String {
    enum_name(pb::StageState::try_from(value).ok().map(|s| s.as_str_name()), "STAGE_STATE_")
}

/// A failure reason's name, e.g. `exit_code`; none when unspecified.
pub fn failure_reason(value: i32) -> Option<String> {
    match pb::FailureReason::try_from(value) {
        Ok(pb::FailureReason::Unspecified) => None,
        reason => Some(enum_name(reason.ok().map(|r| r.as_str_name()), "FAILURE_REASON_")),
    }
}

/// An input type's name, e.g. `number`.
pub fn input_type(value: i32) -> String {
    enum_name(pb::InputType::try_from(value).ok().map(|t| t.as_str_name()), "INPUT_TYPE_")
}

/// Whether a job state is final.
pub fn is_terminal(state: i32) -> bool {
    !matches!(
        pb::JobState::try_from(state),
        Ok(pb::JobState::Queued | pb::JobState::Assigned | pb::JobState::Running | pb::JobState::Unspecified) | Err(_)
    )
}

/// A wire timestamp; none when absent.
pub fn time(time: Option<&Timestamp>) -> Option<DateTime<Utc>> {
    let time = time?;
    Utc.timestamp_opt(time.seconds, u32::try_from(time.nanos).unwrap_or(0)).single()
}

/// A time in the local zone, to the second.
pub fn local_time(time: Option<&Timestamp>) -> String {
    match self::time(time) {
        Some(time) => time.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S").to_string(),
        None => "-".to_owned(),
    }
}

/// An RFC 3339 time for JSON; null when absent.
fn json_time(time: Option<&Timestamp>) -> Value {
    self::time(time)
        .map_or(Value::Null, |time| Value::String(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
}

/// The time from `start` to `end` (or to now, when it has not ended).
pub fn elapsed(start: Option<&Timestamp>, end: Option<&Timestamp>) -> Option<std::time::Duration> {
    let start = time(start)?;
    let end = time(end).unwrap_or_else(Utc::now);
    (end - start).to_std().ok()
}

/// A duration as people read it: `850ms`, `3.2s`, `2m05s`, `1h02m`.
pub fn duration(duration: std::time::Duration) -> String {
    let millis = duration.as_millis();
    let secs = duration.as_secs();
    if millis < 1_000 {
        format!("{millis}ms")
    } else if secs < 60 {
        format!("{:.1}s", duration.as_secs_f64())
    } else if secs < 3_600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3_600, (secs % 3_600) / 60)
    }
}

/// A typed input value as text, as the pipeline's `input.get` reads it.
pub fn input_value(value: &pb::InputValue) -> String {
    rivet_proto::convert::input_value_from_proto(value).map_or_else(String::new, |value| value.to_string())
}

fn input_value_json(value: &pb::InputValue) -> Value {
    match &value.kind {
        Some(pb::input_value::Kind::StringValue(text)) => json!(text),
        Some(pb::input_value::Kind::NumberValue(number)) => json!(number),
        Some(pb::input_value::Kind::BoolValue(flag)) => json!(flag),
        None => Value::Null,
    }
}

/// A pipeline definition as JSON.
pub fn definition_json(definition: &pb::PipelineDefinition) -> Value {
    json!({
        "name": definition.name,
        "description": definition.description,
        "inputs": definition.inputs.iter().map(|input| json!({
            "name": input.name,
            "type": input_type(input.r#type),
            "description": input.description,
            "default": input.default_value.as_ref().map_or(Value::Null, input_value_json),
            "options": input.options.iter().map(input_value_json).collect::<Vec<_>>(),
            "required": input.required,
        })).collect::<Vec<_>>(),
        "runner_tags": definition.runner_tags.iter().map(|tag| format!("{}={}", tag.key, tag.value)).collect::<Vec<_>>(),
        "plugins": definition.plugins,
        "secrets": definition.secrets,
        "http": definition.http.as_ref().map(|http| json!({ "hosts": http.hosts, "methods": http.methods })),
        "stages": definition.stages.iter().map(|stage| json!({
            "name": stage.name,
            "container": (!stage.container.is_empty()).then_some(&stage.container),
            "has_condition": stage.has_condition,
            "timeout_seconds": (stage.timeout_seconds > 0).then_some(stage.timeout_seconds),
            "network": (!stage.network.is_empty()).then_some(&stage.network),
        })).collect::<Vec<_>>(),
    })
}

/// A pipeline version as JSON; the source only when asked for.
pub fn pipeline_json(pipeline: &pb::Pipeline, with_source: bool) -> Value {
    let mut value = json!({
        "id": pipeline.id,
        "name": pipeline.name,
        "version": pipeline.version,
        "file_name": pipeline.file_name,
        "create_time": json_time(pipeline.create_time.as_ref()),
        "definition": pipeline.definition.as_ref().map_or(Value::Null, definition_json),
        "plugin_pins": pipeline.plugin_pins.iter().map(|pin| json!({
            "name": pin.name,
            "version": pin.version,
            "sha256": pin.sha256,
        })).collect::<Vec<_>>(),
    });
    if with_source {
        value["source"] = json!(pipeline.source);
    }
    value
}

fn millis(duration: Option<std::time::Duration>) -> Value {
    duration.map_or(Value::Null, |duration| json!(duration.as_millis() as u64))
}

/// A job as JSON.
pub fn job_json(job: &pb::Job) -> Value {
    let ended = is_terminal(job.state);
    json!({
        "id": job.id,
        "pipeline_id": job.pipeline_id,
        "pipeline_name": job.pipeline_name,
        "pipeline_version": job.pipeline_version,
        "state": job_state(job.state),
        "failure_reason": failure_reason(job.failure_reason),
        "message": job.message,
        "inputs": job.inputs.iter().map(|(name, value)| (name.clone(), input_value_json(value))).collect::<serde_json::Map<_, _>>(),
        "outputs": job.outputs,
        "attempt": job.attempt,
        "runner_id": (!job.runner_id.is_empty()).then_some(&job.runner_id),
        "trace_id": (!job.trace_id.is_empty()).then_some(&job.trace_id),
        "origin": origin_json(job.origin.as_ref()),
        "create_time": json_time(job.create_time.as_ref()),
        "start_time": json_time(job.start_time.as_ref()),
        "end_time": json_time(job.end_time.as_ref()),
        "duration_ms": millis(if ended { elapsed(job.start_time.as_ref(), job.end_time.as_ref()) } else { None }),
        "stages": job.stages.iter().map(|stage| json!({
            "name": stage.name,
            "state": stage_state(stage.state),
            "failure_reason": failure_reason(stage.failure_reason),
            "message": stage.message,
            "start_time": json_time(stage.start_time.as_ref()),
            "end_time": json_time(stage.end_time.as_ref()),
            "duration_ms": millis(stage.end_time.as_ref().and(elapsed(stage.start_time.as_ref(), stage.end_time.as_ref()))),
        })).collect::<Vec<_>>(),
        "transitions": job.transitions.iter().map(|transition| json!({
            "state": job_state(transition.state),
            "time": json_time(transition.time.as_ref()),
            "message": transition.message,
        })).collect::<Vec<_>>(),
    })
}

/// A runner as JSON.
pub fn runner_json(runner: &pb::Runner) -> Value {
    json!({
        "id": runner.id,
        "name": runner.name,
        "labels": runner.labels,
        "capacity": runner.capacity,
        "online": runner.online,
        "state": runner_state(runner),
        "registered": runner.registered,
        "running_job_ids": runner.running_job_ids,
        "last_seen_time": json_time(runner.last_seen_time.as_ref()),
        "version": runner.version,
    })
}

/// A runner's state: online, offline or revoked.
pub fn runner_state(runner: &pb::Runner) -> &'static str {
    match runner.state() {
        pb::RunnerState::Revoked => "revoked",
        pb::RunnerState::Online => "online",
        pb::RunnerState::Offline => "offline",
        // An older orchestrator sends only `online`.
        pb::RunnerState::Unspecified if runner.online => "online",
        pb::RunnerState::Unspecified => "offline",
    }
}

/// A token role's name.
pub fn role(value: i32) -> String {
    enum_name(pb::Role::try_from(value).ok().map(|r| r.as_str_name()), "ROLE_")
}

/// Whether a token works now: `active`, `revoked` or `expired`.
pub fn token_status(token: &pb::ApiToken) -> &'static str {
    if token.revoke_time.is_some() {
        "revoked"
    } else if time(token.expire_time.as_ref()).is_some_and(|at| at <= Utc::now()) {
        "expired"
    } else {
        "active"
    }
}

/// An API token (never with its secret) for `--output json`.
pub fn token_json(token: &pb::ApiToken) -> Value {
    json!({
        "id": token.id,
        "name": token.name,
        "role": role(token.role),
        "status": token_status(token),
        "create_time": json_time(token.create_time.as_ref()),
        "last_use_time": json_time(token.last_use_time.as_ref()),
        "expire_time": json_time(token.expire_time.as_ref()),
        "revoke_time": json_time(token.revoke_time.as_ref()),
    })
}

/// `text` as one shell word: quoted when it holds anything but plain characters.
pub fn shell_word(text: &str) -> String {
    let plain = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+".contains(c));
    if plain { text.to_owned() } else { format!("'{}'", text.replace('\'', "'\\''")) }
}

/// Prints a JSON document on stdout.
pub fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

/// Columns aligned on their widest cell, separated by two spaces.
#[derive(Debug)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with a header row.
    pub fn new(headers: &[&str]) -> Table {
        Table { rows: vec![headers.iter().map(|header| (*header).to_owned()).collect()] }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, without trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|column| {
                self.rows.iter().filter_map(|row| row.get(column)).map(|cell| cell.chars().count()).max().unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if column + 1 < row.len() {
                    line.push_str(&" ".repeat(widths[column] - cell.chars().count() + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// What started a job, in words: `API (API token …)`, `trigger T, delivery D (push of
/// SHA on REF)`, `schedule S, due TIME`, `rerun of JOB`.
pub fn origin(origin: Option<&pb::JobOrigin>) -> Option<String> {
    use pb::job_origin::Kind;
    Some(match origin?.kind.as_ref()? {
        Kind::Api(api) if api.caller.is_empty() => "API".to_owned(),
        Kind::Api(api) => format!("API ({})", api.caller),
        Kind::Trigger(trigger) => format!(
            "trigger {}, delivery {} ({} of {} on {})",
            trigger.trigger_id, trigger.delivery_id, trigger.event, trigger.sha, trigger.r#ref
        ),
        Kind::Schedule(schedule) => {
            format!("schedule {}, due {}", schedule.schedule_id, local_time(schedule.due_time.as_ref()))
        }
        Kind::Rerun(rerun) => format!("rerun of job {}", rerun.job_id),
    })
}

/// What started a job, as JSON: `{"kind": "api" | "trigger" | "schedule" | "rerun", ...}`.
pub fn origin_json(origin: Option<&pb::JobOrigin>) -> serde_json::Value {
    use pb::job_origin::Kind;
    match origin.and_then(|origin| origin.kind.as_ref()) {
        None => serde_json::Value::Null,
        Some(Kind::Api(api)) => json!({ "kind": "api", "caller": (!api.caller.is_empty()).then_some(&api.caller) }),
        Some(Kind::Trigger(trigger)) => json!({
            "kind": "trigger",
            "trigger_id": trigger.trigger_id,
            "delivery_id": trigger.delivery_id,
            "event": trigger.event,
            "sha": trigger.sha,
            "ref": trigger.r#ref,
        }),
        Some(Kind::Schedule(schedule)) => json!({
            "kind": "schedule",
            "schedule_id": schedule.schedule_id,
            "due_time": json_time(schedule.due_time.as_ref()),
        }),
        Some(Kind::Rerun(rerun)) => json!({ "kind": "rerun", "job_id": rerun.job_id }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations_read_naturally() {
        let check = |millis: u64, expect: &str| assert_eq!(duration(Duration::from_millis(millis)), expect);
        check(850, "850ms");
        check(3_240, "3.2s");
        check(125_000, "2m05s");
        check(3_720_000, "1h02m");
    }

    #[test]
    fn enum_names_lose_their_prefix() {
        assert_eq!(job_state(pb::JobState::TimedOut as i32), "timed_out");
        assert_eq!(stage_state(pb::StageState::Skipped as i32), "skipped");
        assert_eq!(failure_reason(pb::FailureReason::ExitCode as i32).as_deref(), Some("exit_code"));
        assert_eq!(failure_reason(0), None);
        assert_eq!(job_state(99), "unknown");
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("hello"), "hello");
        assert_eq!(shell_word("Inputs and logs"), "'Inputs and logs'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }

    #[test]
    fn tables_align_columns() {
        let mut table = Table::new(&["NAME", "VERSION"]);
        table.row(vec!["hello".to_owned(), "1".to_owned()]);
        table.row(vec!["a-much-longer-name".to_owned(), "12".to_owned()]);
        assert_eq!(table.render(), "NAME                VERSION\nhello               1\na-much-longer-name  12\n");
    }
}
