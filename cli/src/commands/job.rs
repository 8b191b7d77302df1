//! `rivet job launch|list|show|logs|cancel`: jobs on the server.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use rivet_proto::v1::{
    self as pb, CancelJobRequest, GetJobRequest, LaunchJobRequest, ListJobsRequest, RerunJobRequest,
};

use crate::client::Client;
use crate::error::{Error, Subject};
use crate::logs;
use crate::view::{self, Table};
use crate::{Format, exit, prompt, resolve};

/// How a launch gets its inputs and what it does after.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Raw `--input NAME=VALUE` values.
    pub inputs: BTreeMap<String, String>,
    /// Never prompt, even on a terminal.
    pub no_input: bool,
    /// Follow the job's log until it ends.
    pub follow: bool,
    /// Makes a retried launch return the first job.
    pub idempotency_key: Option<String>,
}

/// Parses `NAME=VALUE` for `--input`.
pub fn parse_input(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

/// Collects `--input` pairs, refusing a name given twice.
pub fn collect_inputs(pairs: Vec<(String, String)>) -> Result<BTreeMap<String, String>, Error> {
    let mut inputs = BTreeMap::new();
    for (name, value) in pairs {
        if inputs.insert(name.clone(), value).is_some() {
            return Err(Error::new(exit::USAGE, format!("input `{name}` is given twice")));
        }
    }
    Ok(inputs)
}

/// Whether to ask for inputs: stdin is a terminal and `--no-input` is not set.
pub fn interactive(no_input: bool) -> bool {
    !no_input && std::io::stdin().is_terminal()
}

/// Launches a job of `pipeline` (already resolved), asking for inputs on a terminal.
pub async fn launch_job(client: &Client, pipeline: &pb::Pipeline, launch: &Launch) -> Result<pb::Job, Error> {
    let mut inputs = launch.inputs.clone();
    if interactive(launch.no_input) {
        let definition = pipeline.definition.clone().unwrap_or_default();
        inputs = tokio::task::spawn_blocking(move || prompt::ask_inputs(&definition, &mut inputs).map(|()| inputs))
            .await
            .map_err(|err| Error::new(exit::FAILURE, format!("the prompt failed: {err}")))??;
    }
    let request = LaunchJobRequest {
        pipeline: pipeline.id.clone(),
        inputs: inputs.into_iter().collect(),
        idempotency_key: launch.idempotency_key.clone().unwrap_or_default(),
    };
    let response =
        client.jobs.clone().launch_job(request).await.map_err(|status| client.error(status, Subject::Pipeline))?;
    response.into_inner().job.ok_or_else(|| Error::new(exit::FAILURE, "the server sent no job"))
}

/// `rivet job launch PIPELINE`.
pub async fn launch(client: &Client, reference: &str, launch: &Launch, format: Format) -> Result<u8, Error> {
    let pipeline = resolve::pipeline(client, reference, 0).await?;
    let job = launch_job(client, &pipeline, launch).await?;
    if launch.follow {
        eprintln!("launched job {} ({} v{})", job.id, job.pipeline_name, job.pipeline_version);
        return logs::show(client, &job.id, true, log_format(format, false), logs::Interrupt::Detach).await;
    }
    match format {
        Format::Json => view::print_json(&view::job_json(&job)),
        Format::Table => {
            println!(
                "launched job {} ({} v{}, {})",
                job.id,
                job.pipeline_name,
                job.pipeline_version,
                view::job_state(job.state)
            );
            eprintln!("follow it with `rivet job logs --follow {}`", job.id);
        }
    }
    Ok(exit::OK)
}

/// How `--output` and `--timestamps` shape a log.
pub fn log_format(format: Format, timestamps: bool) -> logs::Format {
    match format {
        Format::Json => logs::Format::JsonLines,
        Format::Table => logs::Format::Text { timestamps },
    }
}

/// `rivet job list [--pipeline P] [--state S]... [--limit N]`.
pub async fn list(
    client: &Client,
    pipeline: Option<&str>,
    states: &[pb::JobState],
    limit: u32,
    format: Format,
) -> Result<u8, Error> {
    let pipeline = match pipeline {
        Some(reference) => resolve::pipeline(client, reference, 0).await?.name,
        None => String::new(),
    };
    let mut jobs: Vec<pb::Job> = Vec::new();
    let mut page_token = String::new();
    while (jobs.len() as u32) < limit {
        let request = ListJobsRequest {
            pipeline: pipeline.clone(),
            states: states.iter().map(|state| *state as i32).collect(),
            page_size: (limit - jobs.len() as u32).min(500),
            page_token,
        };
        let page = client.jobs.clone().list_jobs(request).await.map_err(|status| client.error(status, Subject::Job))?;
        let page = page.into_inner();
        jobs.extend(page.jobs);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    match format {
        Format::Json => view::print_json(&serde_json::Value::Array(jobs.iter().map(view::job_json).collect())),
        Format::Table if jobs.is_empty() => eprintln!("no jobs: `rivet job launch PIPELINE` starts one"),
        Format::Table => {
            let mut table = Table::new(&["ID", "PIPELINE", "STATE", "CREATED", "DURATION"]);
            for job in &jobs {
                let mut state = view::job_state(job.state);
                if let Some(reason) = view::failure_reason(job.failure_reason) {
                    state.push_str(&format!(" ({reason})"));
                }
                table.row(vec![
                    job.id.clone(),
                    format!("{} v{}", job.pipeline_name, job.pipeline_version),
                    state,
                    view::local_time(job.create_time.as_ref()),
                    view::elapsed(job.start_time.as_ref(), job.end_time.as_ref())
                        .map_or_else(|| "-".to_owned(), view::duration),
                ]);
            }
            print!("{}", table.render());
        }
    }
    Ok(exit::OK)
}

/// `rivet job show JOB`.
pub async fn show(client: &Client, reference: &str, format: Format) -> Result<u8, Error> {
    let id = resolve::job_id(client, reference).await?;
    let response = client
        .jobs
        .clone()
        .get_job(GetJobRequest { job_id: id })
        .await
        .map_err(|status| client.error(status, Subject::Job))?;
    let job = response.into_inner().job.ok_or_else(|| Error::new(exit::FAILURE, "the server sent no job"))?;
    match format {
        Format::Json => view::print_json(&view::job_json(&job)),
        Format::Table => print!("{}", describe(&job)),
    }
    Ok(exit::OK)
}

/// A job's summary, as `job show` prints it.
fn describe(job: &pb::Job) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: &str| out.push_str(&format!("{name:<10}{value}\n"));
    field("job", &job.id);
    field("pipeline", &format!("{} v{} ({})", job.pipeline_name, job.pipeline_version, job.pipeline_id));
    let mut state = view::job_state(job.state);
    if let Some(reason) = view::failure_reason(job.failure_reason) {
        state.push_str(&format!(" ({reason})"));
    }
    if !job.message.is_empty() {
        state.push_str(&format!(": {}", job.message));
    }
    field("state", &state);
    field("attempt", &job.attempt.to_string());
    if !job.runner_id.is_empty() {
        field("runner", &job.runner_id);
    }
    if let Some(origin) = view::origin(job.origin.as_ref()) {
        field("started by", &origin);
    }
    if !job.trace_id.is_empty() {
        field("trace", &job.trace_id);
    }
    field("created", &view::local_time(job.create_time.as_ref()));
    if job.start_time.is_some() {
        field("started", &view::local_time(job.start_time.as_ref()));
    }
    if job.end_time.is_some() {
        let took = view::elapsed(job.start_time.as_ref(), job.end_time.as_ref()).map(view::duration);
        let ended = view::local_time(job.end_time.as_ref());
        field("ended", &took.map_or_else(|| ended.clone(), |took| format!("{ended} (took {took})")));
    }
    let pairs =
        |map: Vec<(String, String)>| map.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    let mut inputs: Vec<(String, String)> = job.inputs.iter().map(|(k, v)| (k.clone(), view::input_value(v))).collect();
    inputs.sort();
    field("inputs", &if inputs.is_empty() { "none".to_owned() } else { pairs(inputs) });
    if !job.outputs.is_empty() {
        let mut outputs: Vec<(String, String)> = job.outputs.clone().into_iter().collect();
        outputs.sort();
        field("outputs", &pairs(outputs));
    }
    if !job.stages.is_empty() {
        out.push_str("stages\n");
        let mut table = Table::new(&["  NAME", "STATE", "DURATION", "REASON"]);
        for stage in &job.stages {
            let took = match stage.start_time {
                Some(_) => view::elapsed(stage.start_time.as_ref(), stage.end_time.as_ref())
                    .map_or_else(|| "-".to_owned(), view::duration),
                None => "-".to_owned(),
            };
            let mut reason = view::failure_reason(stage.failure_reason).unwrap_or_default();
            if !stage.message.is_empty() {
                reason = if reason.is_empty() { stage.message.clone() } else { format!("{reason}: {}", stage.message) };
            }
            table.row(vec![format!("  {}", stage.name), view::stage_state(stage.state), took, reason]);
        }
        out.push_str(&table.render());
    }
    if !job.transitions.is_empty() {
        out.push_str("history\n");
        let mut table = Table::new(&["  TIME", "STATE", "MESSAGE"]);
        for transition in &job.transitions {
            table.row(vec![
                format!("  {}", view::local_time(transition.time.as_ref())),
                view::job_state(transition.state),
                transition.message.clone(),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}

/// `rivet job logs JOB [--follow]`.
pub async fn logs(
    client: &Client,
    reference: &str,
    follow: bool,
    timestamps: bool,
    format: Format,
) -> Result<u8, Error> {
    let id = resolve::job_id(client, reference).await?;
    logs::show(client, &id, follow, log_format(format, timestamps), logs::Interrupt::Detach).await
}

/// `rivet job cancel JOB`.
pub async fn cancel(client: &Client, reference: &str, format: Format) -> Result<u8, Error> {
    let id = resolve::job_id(client, reference).await?;
    let response = client
        .jobs
        .clone()
        .cancel_job(CancelJobRequest { job_id: id.clone() })
        .await
        .map_err(|status| client.error(status, Subject::Job))?;
    let job = response.into_inner().job.ok_or_else(|| Error::new(exit::FAILURE, "the server sent no job"))?;
    match format {
        Format::Json => view::print_json(&view::job_json(&job)),
        Format::Table => println!("cancel requested for job {id}: now {}", view::job_state(job.state)),
    }
    Ok(exit::OK)
}

/// `rivet job rerun JOB`.
pub async fn rerun(client: &Client, reference: &str, format: Format) -> Result<u8, Error> {
    let id = resolve::job_id(client, reference).await?;
    let response = client
        .jobs
        .clone()
        .rerun_job(RerunJobRequest { job_id: id.clone() })
        .await
        .map_err(|status| client.error(status, Subject::Job))?;
    let job = response.into_inner().job.ok_or_else(|| Error::new(exit::FAILURE, "the server sent no job"))?;
    match format {
        Format::Json => view::print_json(&view::job_json(&job)),
        Format::Table => println!("job {} queued: a rerun of {id}", job.id),
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_name_equals_value() {
        assert_eq!(parse_input("who=a=b"), Ok(("who".to_owned(), "a=b".to_owned())));
        assert_eq!(parse_input("empty="), Ok(("empty".to_owned(), String::new())));
        assert!(parse_input("novalue").is_err());
        assert!(parse_input("=x").is_err());
    }

    #[test]
    fn an_input_given_twice_is_refused() {
        let pairs = vec![("a".to_owned(), "1".to_owned()), ("a".to_owned(), "2".to_owned())];
        assert_eq!(collect_inputs(pairs).expect_err("twice").code, exit::USAGE);
    }
}
