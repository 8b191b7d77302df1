//! `rivet schedule create|list|delete|pause|resume`: cron schedules that launch a
//! pipeline with fixed inputs. The server checks everything at creation (the expression,
//! the time zone, the inputs against the pipeline) and reports every problem at once.

use rivet_proto::v1::schedule_service_client::ScheduleServiceClient;
use rivet_proto::v1::{
    self as pb, CreateScheduleRequest, DeleteScheduleRequest, ListSchedulesRequest, PauseScheduleRequest,
    ResumeScheduleRequest,
};
use serde_json::json;

use crate::client::Client;
use crate::commands::job::{collect_inputs, parse_input};
use crate::error::{Error, Subject};
use crate::view::{self, Table};
use crate::{Format, exit};

/// The most schedules `list` and id prefixes read (the server stores at most 10,000).
const MAX_LISTED: usize = 10_000;
/// One page of the listing.
const PAGE_SIZE: u32 = 500;

/// What a schedule does about due times missed while no orchestrator ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MissedArg {
    /// Run a due time only while it is fresh (within the server's grace); drop older ones.
    Skip,
    /// Run once for everything missed, at the latest missed time.
    RunOnce,
}

impl MissedArg {
    fn as_str(self) -> &'static str {
        match self {
            MissedArg::Skip => "skip",
            MissedArg::RunOnce => "run-once",
        }
    }
}

/// The `rivet schedule` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ScheduleCommand {
    /// Launch a pipeline on a cron schedule (operators and admins). Each due time starts
    /// one job of the pipeline's latest version, with these inputs.
    Create {
        /// The pipeline's name.
        pipeline: String,
        /// Five fields: minute hour day-of-month month day-of-week, e.g. "0 3 * * 1-5"; or
        /// @hourly, @daily, @weekly, @monthly, @yearly.
        #[arg(long, value_name = "EXPRESSION")]
        cron: String,
        /// The IANA time zone the expression is read in, e.g. Europe/Paris.
        #[arg(long, value_name = "ZONE", default_value = "UTC")]
        tz: String,
        /// What to do about due times missed while no orchestrator ran.
        #[arg(long, value_enum, default_value = "skip")]
        missed: MissedArg,
        /// An input value every launch passes; repeat for each input.
        #[arg(long = "input", short, value_name = "NAME=VALUE", value_parser = parse_input)]
        inputs: Vec<(String, String)>,
    },
    /// List the schedules, with their next due times.
    List,
    /// Delete a schedule (operators and admins); the jobs it started stay.
    Delete {
        /// A schedule id or the start of one.
        id: String,
    },
    /// Pause a schedule: it starts nothing until resumed.
    Pause {
        /// A schedule id or the start of one.
        id: String,
    },
    /// Resume a paused schedule from now: what fell due while it was paused does not run.
    Resume {
        /// A schedule id or the start of one.
        id: String,
    },
}

/// Runs a `rivet schedule` command.
pub async fn run(client: &Client, command: ScheduleCommand, format: Format) -> Result<u8, Error> {
    match command {
        ScheduleCommand::Create { pipeline, cron, tz, missed, inputs } => {
            let request = CreateScheduleRequest {
                pipeline,
                cron,
                time_zone: tz,
                inputs: collect_inputs(inputs)?.into_iter().collect(),
                missed: missed.as_str().to_owned(),
            };
            create(client, request, format).await
        }
        ScheduleCommand::List => list(client, format).await,
        ScheduleCommand::Delete { id } => delete(client, &id).await,
        ScheduleCommand::Pause { id } => set_paused(client, &id, true, format).await,
        ScheduleCommand::Resume { id } => set_paused(client, &id, false, format).await,
    }
}

fn service(client: &Client) -> ScheduleServiceClient<crate::client::Service> {
    client.schedules.clone()
}

async fn create(client: &Client, request: CreateScheduleRequest, format: Format) -> Result<u8, Error> {
    let subject = Subject::Pipeline;
    let response =
        service(client).create_schedule(request).await.map_err(|status| client.error(status, subject))?.into_inner();
    let schedule = response.schedule.ok_or_else(|| Error::new(exit::FAILURE, "the server sent no schedule"))?;
    match format {
        Format::Json => view::print_json(&schedule_json(&schedule)),
        Format::Table => println!(
            "created schedule {} of {} ({} {}); next run {}",
            schedule.id,
            schedule.pipeline,
            schedule.cron,
            schedule.time_zone,
            next(&schedule)
        ),
    }
    Ok(exit::OK)
}

/// Every schedule, a page at a time, at most [`MAX_LISTED`].
async fn all(client: &Client) -> Result<Vec<pb::Schedule>, Error> {
    let mut schedules = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListSchedulesRequest { page_size: PAGE_SIZE, page_token };
        let page = service(client)
            .list_schedules(request)
            .await
            .map_err(|status| client.error(status, Subject::Other))?
            .into_inner();
        schedules.extend(page.schedules);
        if page.next_page_token.is_empty() || schedules.len() >= MAX_LISTED {
            return Ok(schedules);
        }
        page_token = page.next_page_token;
    }
}

async fn list(client: &Client, format: Format) -> Result<u8, Error> {
    let schedules = all(client).await?;
    match format {
        Format::Json => view::print_json(&serde_json::Value::Array(schedules.iter().map(schedule_json).collect())),
        Format::Table if schedules.is_empty() => {
            eprintln!("no schedules: create one with `rivet schedule create PIPELINE --cron \"0 3 * * *\"`")
        }
        Format::Table => {
            let mut table = Table::new(&["ID", "PIPELINE", "CRON", "TIME ZONE", "MISSED", "NEXT"]);
            for schedule in &schedules {
                table.row(vec![
                    schedule.id.clone(),
                    schedule.pipeline.clone(),
                    schedule.cron.clone(),
                    schedule.time_zone.clone(),
                    schedule.missed.clone(),
                    next(schedule),
                ]);
            }
            print!("{}", table.render());
        }
    }
    Ok(exit::OK)
}

async fn delete(client: &Client, reference: &str) -> Result<u8, Error> {
    let id = schedule_id(client, reference).await?;
    service(client)
        .delete_schedule(DeleteScheduleRequest { schedule_id: id.clone() })
        .await
        .map_err(|status| client.error(status, Subject::Other))?;
    println!("deleted schedule {id}");
    Ok(exit::OK)
}

async fn set_paused(client: &Client, reference: &str, paused: bool, format: Format) -> Result<u8, Error> {
    let id = schedule_id(client, reference).await?;
    let schedule = if paused {
        let request = PauseScheduleRequest { schedule_id: id };
        service(client).pause_schedule(request).await.map(|r| r.into_inner().schedule)
    } else {
        let request = ResumeScheduleRequest { schedule_id: id };
        service(client).resume_schedule(request).await.map(|r| r.into_inner().schedule)
    };
    let schedule = schedule
        .map_err(|status| client.error(status, Subject::Other))?
        .ok_or_else(|| Error::new(exit::FAILURE, "the server sent no schedule"))?;
    match format {
        Format::Json => view::print_json(&schedule_json(&schedule)),
        Format::Table if paused => println!("paused schedule {}", schedule.id),
        Format::Table => println!("resumed schedule {}; next run {}", schedule.id, next(&schedule)),
    }
    Ok(exit::OK)
}

/// The id `reference` names: a full id, or the unique start of one.
async fn schedule_id(client: &Client, reference: &str) -> Result<String, Error> {
    let reference = reference.trim();
    let hint = "`rivet schedule list` shows the schedules; give an id or the start of one";
    if reference.is_empty() || !reference.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(Error::new(exit::NOT_FOUND, format!("`{reference}` is not a schedule id")).hint(hint));
    }
    if reference.len() == 36 {
        return Ok(reference.to_ascii_lowercase());
    }
    let matches: Vec<String> = all(client)
        .await?
        .into_iter()
        .map(|schedule| schedule.id)
        .filter(|id| id.len() >= reference.len() && id[..reference.len()].eq_ignore_ascii_case(reference))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::new(exit::NOT_FOUND, format!("no schedule id starts with `{reference}`")).hint(hint)),
        many => Err(Error::new(
            exit::USAGE,
            format!("`{reference}` is the start of {} schedule ids: {}", many.len(), many.join(", ")),
        )
        .hint("give more of the id")),
    }
}

/// The next due time, local, or why there is none.
fn next(schedule: &pb::Schedule) -> String {
    match &schedule.next_time {
        _ if schedule.paused => "paused".to_owned(),
        Some(time) => view::local_time(Some(time)),
        None => "never".to_owned(),
    }
}

fn schedule_json(schedule: &pb::Schedule) -> serde_json::Value {
    json!({
        "id": schedule.id,
        "pipeline": schedule.pipeline,
        "cron": schedule.cron,
        "time_zone": schedule.time_zone,
        "inputs": schedule.inputs,
        "missed": schedule.missed,
        "paused": schedule.paused,
        "next_time": schedule.next_time.as_ref().map(|t| view::local_time(Some(t))),
        "last_due_time": view::local_time(schedule.last_due_time.as_ref()),
        "create_time": view::local_time(schedule.create_time.as_ref()),
    })
}
