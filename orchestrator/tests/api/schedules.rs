//! Cron schedules through the real orchestrator: exactly one job per due time when two
//! replicas tick the same minutes on one PostgreSQL database, missed due times after a
//! downtime (skip fires nothing stale, run-once fires one), pause and resume, the
//! validation of CreateSchedule, deletion, and a launch that fails without a retry.
//!
//! The replicas' own scheduler tasks never tick here (`tick_ms` is an hour): the tests
//! call `Scheduler::tick` with simulated times instead, so no test waits for a real minute.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rivet_core::schedule::Schedule;
use rivet_orchestrator::config::Config;
use rivet_orchestrator::domain::orchestrator::Orchestrator;
use rivet_orchestrator::domain::schedules::{Fired, Scheduler};
use rivet_proto::v1 as pb;
use rivet_proto::v1::schedule_service_client::ScheduleServiceClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::support::{Api, Backend, Cluster, channel, pipeline_source};

/// The replicas' own ticks wait an hour: only the test's simulated ticks fire.
fn no_wall_clock_ticks(config: &mut Config) {
    config.schedules.tick_ms = 3_600_000;
}

async fn schedules_client(cluster: &Cluster, index: usize) -> ScheduleServiceClient<Channel> {
    ScheduleServiceClient::new(channel(cluster.addr(index)).await)
}

fn request(pipeline: &str, cron: &str, missed: &str, inputs: &[(&str, &str)]) -> pb::CreateScheduleRequest {
    pb::CreateScheduleRequest {
        pipeline: pipeline.to_owned(),
        cron: cron.to_owned(),
        time_zone: String::new(),
        inputs: inputs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        missed: missed.to_owned(),
    }
}

async fn create(client: &mut ScheduleServiceClient<Channel>, request: pb::CreateScheduleRequest) -> pb::Schedule {
    client.create_schedule(request).await.expect("create schedule").into_inner().schedule.expect("schedule")
}

fn orchestrator(cluster: &Cluster, index: usize) -> &Orchestrator {
    &cluster.replicas[index].as_ref().expect("replica running").orchestrator
}

fn time(timestamp: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    let timestamp = timestamp.expect("a time");
    DateTime::from_timestamp(timestamp.seconds, u32::try_from(timestamp.nanos).expect("nanos")).expect("valid time")
}

/// The first whole minute strictly after `at`.
fn minute_after(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::minutes(1)).expect("truncate") + TimeDelta::minutes(1)
}

/// Every job of `pipeline` with the due time its schedule origin names.
async fn scheduled_jobs(api: &mut Api, pipeline: &str) -> BTreeMap<DateTime<Utc>, Vec<(String, String)>> {
    let request = pb::ListJobsRequest { pipeline: pipeline.to_owned(), page_size: 500, ..Default::default() };
    let jobs = api.jobs.list_jobs(request).await.expect("list jobs").into_inner().jobs;
    let mut by_due: BTreeMap<DateTime<Utc>, Vec<(String, String)>> = BTreeMap::new();
    for job in jobs {
        let origin = job.origin.and_then(|origin| origin.kind);
        let Some(pb::job_origin::Kind::Schedule(schedule)) = origin else {
            panic!("job {} of {pipeline} was not started by a schedule: {origin:?}", job.id)
        };
        by_due.entry(time(schedule.due_time.as_ref())).or_default().push((job.id, schedule.schedule_id));
    }
    by_due
}

/// Two replicas tick every simulated minute at once (each twice, the second a little
/// later): each due time starts exactly one job, whose origin names the schedule and the
/// due time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fire_each_schedule_due_time_exactly_once() {
    let cluster = Cluster::with(Backend::Postgres, 2, no_wall_clock_ticks).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("every-minute", &[])).await;
    let mut client = schedules_client(&cluster, 1).await;
    let schedule = create(&mut client, request("every-minute", "* * * * *", "", &[("image", "alpine")])).await;
    assert_eq!((schedule.missed.as_str(), schedule.time_zone.as_str()), ("skip", "UTC"));
    let first = minute_after(time(schedule.create_time.as_ref()));
    assert_eq!(time(schedule.next_time.as_ref()), first, "the next due time is the first minute after creation");

    let (mut a, mut b) = (Scheduler::default(), Scheduler::default());
    let (one, two) = (orchestrator(&cluster, 0), orchestrator(&cluster, 1));
    let mut fired: Vec<Fired> = Vec::new();
    let minutes = 6;
    for minute in 0..minutes {
        let due = first + TimeDelta::minutes(minute);
        for late in [TimeDelta::zero(), TimeDelta::milliseconds(1_500)] {
            let (x, y) = tokio::join!(a.tick(one, due + late), b.tick(two, due + late + TimeDelta::milliseconds(3)));
            fired.extend(x.expect("replica 0 ticks"));
            fired.extend(y.expect("replica 1 ticks"));
        }
    }
    let dues: Vec<DateTime<Utc>> = fired.iter().map(|f| f.due).collect();
    let expected: Vec<DateTime<Utc>> = (0..minutes).map(|m| first + TimeDelta::minutes(m)).collect();
    let mut sorted = dues.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "the replicas together fired each due time once");

    let jobs = scheduled_jobs(&mut api, "every-minute").await;
    assert_eq!(jobs.keys().copied().collect::<Vec<_>>(), expected, "one job per due time: {jobs:?}");
    for (due, jobs) in &jobs {
        assert_eq!(jobs.len(), 1, "due time {due} started {} jobs", jobs.len());
        assert_eq!(jobs[0].1, schedule.id, "the origin names the schedule");
    }
    let got = client
        .get_schedule(pb::GetScheduleRequest { schedule_id: schedule.id.clone() })
        .await
        .expect("get schedule")
        .into_inner()
        .schedule
        .expect("schedule");
    assert_eq!(time(got.last_due_time.as_ref()), *expected.last().expect("a due time"));
}

/// Sixteen claims of the same due time, from tasks on both replicas at once: one wins, and
/// it advanced the schedule; a claim of an earlier due time then loses too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_of_one_due_time_have_one_winner() {
    let cluster = Cluster::with(Backend::Postgres, 2, no_wall_clock_ticks).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("contended", &[])).await;
    let mut client = schedules_client(&cluster, 0).await;
    let schedule = create(&mut client, request("contended", "* * * * *", "", &[("image", "alpine")])).await;
    let id: uuid::Uuid = schedule.id.parse().expect("a UUID");
    let due = minute_after(time(schedule.create_time.as_ref())) + TimeDelta::minutes(2);
    let claims: Vec<_> = (0..16)
        .map(|n| {
            let server = orchestrator(&cluster, n % 2).clone();
            tokio::spawn(async move { server.store().claim_fire(id, due, due).await.expect("claim") })
        })
        .collect();
    let mut won = 0;
    for claim in claims {
        won += usize::from(claim.await.expect("the claim task"));
    }
    assert_eq!(won, 1, "claims of one due time that won");
    let store = orchestrator(&cluster, 1).store();
    assert_eq!(store.schedule(id).await.expect("read").expect("the schedule").last_due, due);
    let earlier = due - TimeDelta::minutes(1);
    assert!(!store.claim_fire(id, earlier, earlier).await.expect("claim"), "a due time behind last_due was claimed");
}

/// After a downtime of ten hourly due times, a `skip` schedule fires nothing stale (it
/// moves on to the next due time) and a `run-once` schedule fires once, for the latest.
async fn a_downtime_skips_or_runs_once(backend: Backend) {
    let cluster = Cluster::with(backend, 1, no_wall_clock_ticks).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("skipper", &[])).await;
    api.create(&pipeline_source("catcher", &[])).await;
    let mut client = schedules_client(&cluster, 0).await;
    let skip = create(&mut client, request("skipper", "0 * * * *", "skip", &[("image", "alpine")])).await;
    let once = create(&mut client, request("catcher", "0 * * * *", "run-once", &[("image", "alpine")])).await;
    assert_eq!(once.missed, "run-once");
    let created = time(skip.create_time.as_ref()).max(time(once.create_time.as_ref()));

    let hourly = Schedule::new("0 * * * *", "UTC").expect("hourly");
    let back = created + TimeDelta::hours(10) + TimeDelta::minutes(30);
    let latest = hourly.last_at_or_before(back).expect("a due time");
    let mut scheduler = Scheduler::default();
    let server = orchestrator(&cluster, 0);
    let fired = scheduler.tick(server, back).await.expect("tick");
    assert_eq!(fired.len(), 1, "only the run-once schedule fired: {fired:?}");
    assert_eq!((fired[0].schedule.to_string(), fired[0].due), (once.id.clone(), latest));
    // Ticking again (on a fresh scheduler, as after a restart) fires nothing more.
    assert_eq!(Scheduler::default().tick(server, back + TimeDelta::seconds(5)).await.expect("tick"), vec![]);
    assert!(scheduled_jobs(&mut api, "skipper").await.is_empty(), "skip fired a stale due time");
    let caught = scheduled_jobs(&mut api, "catcher").await;
    assert_eq!(caught.keys().copied().collect::<Vec<_>>(), vec![latest], "run-once ran once, for the latest");

    // The skipped schedule moved on: the next due time, on time, fires for both.
    let next = hourly.next_after(back).expect("next");
    let skipped = client
        .get_schedule(pb::GetScheduleRequest { schedule_id: skip.id.clone() })
        .await
        .expect("get")
        .into_inner()
        .schedule
        .expect("schedule");
    assert_eq!(time(skipped.last_due_time.as_ref()), latest, "the skipped due times are handled");
    let fired = scheduler.tick(server, next + TimeDelta::seconds(2)).await.expect("tick");
    let ids: BTreeSet<(String, DateTime<Utc>)> = fired.iter().map(|f| (f.schedule.to_string(), f.due)).collect();
    assert_eq!(ids, BTreeSet::from([(skip.id.clone(), next), (once.id.clone(), next)]));
}
both_backends!(a_downtime_skips_or_runs_once_on, a_downtime_skips_or_runs_once);

/// A paused schedule fires nothing; resumed, it fires its next due time and nothing that
/// passed while it was paused.
async fn a_paused_schedule_fires_nothing_until_resumed(backend: Backend) {
    let cluster = Cluster::with(backend, 1, no_wall_clock_ticks).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("pausable", &[])).await;
    let mut client = schedules_client(&cluster, 0).await;
    let schedule = create(&mut client, request("pausable", "* * * * *", "run-once", &[("image", "alpine")])).await;
    let first = minute_after(time(schedule.create_time.as_ref()));
    let id = schedule.id.clone();
    let paused = client
        .pause_schedule(pb::PauseScheduleRequest { schedule_id: id.clone() })
        .await
        .expect("pause")
        .into_inner()
        .schedule
        .expect("schedule");
    assert!(paused.paused && paused.next_time.is_none(), "paused, with no next time: {paused:?}");

    let mut scheduler = Scheduler::default();
    let server = orchestrator(&cluster, 0);
    for minute in 0..3 {
        let fired = scheduler.tick(server, first + TimeDelta::minutes(minute)).await.expect("tick");
        assert!(fired.is_empty(), "a paused schedule fired: {fired:?}");
    }
    assert!(scheduled_jobs(&mut api, "pausable").await.is_empty());

    let resumed = client
        .resume_schedule(pb::ResumeScheduleRequest { schedule_id: id.clone() })
        .await
        .expect("resume")
        .into_inner()
        .schedule
        .expect("schedule");
    assert!(!resumed.paused && resumed.next_time.is_some(), "resumed: {resumed:?}");
    let due = first + TimeDelta::minutes(3);
    let fired = scheduler.tick(server, due + TimeDelta::seconds(1)).await.expect("tick");
    assert_eq!(fired.iter().map(|f| f.due).collect::<Vec<_>>(), vec![due], "the next due time fired, once");
    assert_eq!(scheduled_jobs(&mut api, "pausable").await.len(), 1);
}
both_backends!(a_paused_schedule_fires_nothing_until_resumed_on, a_paused_schedule_fires_nothing_until_resumed);

/// The fields of a status's bad-request violations, with their descriptions.
fn violations(status: &tonic::Status) -> BTreeMap<String, String> {
    let details = status.get_details_bad_request().expect("bad request details");
    details.field_violations.into_iter().map(|v| (v.field, v.description)).collect()
}

/// CreateSchedule refuses a bad cron expression, an unknown time zone, a bad policy and
/// inputs the pipeline refuses with INVALID_ARGUMENT, every problem at once and each
/// named; an unknown pipeline with NOT_FOUND.
async fn create_schedule_names_every_problem(backend: Backend) {
    let cluster = Cluster::with(backend, 1, no_wall_clock_ticks).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("checked", &[])).await;
    let mut client = schedules_client(&cluster, 0).await;

    let mut bad = request("checked", "61 * * * *", "sometimes", &[("image", "alpine")]);
    bad.time_zone = "Mars/Olympus_Mons".to_owned();
    let status = client.create_schedule(bad).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let found = violations(&status);
    assert_eq!(found.keys().map(String::as_str).collect::<Vec<_>>(), ["cron", "missed", "time_zone"], "{found:?}");
    assert!(found["cron"].contains("minute field `61`"), "{found:?}");
    assert!(found["time_zone"].contains("unknown time zone `Mars/Olympus_Mons`"), "{found:?}");
    assert!(found["missed"].contains("use `skip` or `run-once`"), "{found:?}");
    assert!(status.message().contains("cron:") && status.message().contains("time_zone:"), "{}", status.message());

    let status =
        client.create_schedule(request("checked", "* * * *", "", &[("image", "a")])).await.expect_err("4 fields");
    assert!(violations(&status)["cron"].contains("has 4 fields; use five"), "{status:?}");

    let inputs = [("count", "many"), ("colour", "red")];
    let status = client.create_schedule(request("checked", "@daily", "", &inputs)).await.expect_err("bad inputs");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let found = violations(&status);
    for field in ["inputs.count", "inputs.colour", "inputs.image"] {
        assert!(found.contains_key(field), "{field} is not named: {found:?}");
    }

    let status =
        client.create_schedule(request("no-such-pipeline", "@daily", "", &[])).await.expect_err("unknown pipeline");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("no-such-pipeline"), "{}", status.message());

    let mut paris = request("checked", "30 2 * * 1-5", "", &[("image", "alpine")]);
    paris.time_zone = "Europe/Paris".to_owned();
    let created = create(&mut client, paris).await;
    assert_eq!((created.cron.as_str(), created.time_zone.as_str()), ("30 2 * * 1-5", "Europe/Paris"));
}
both_backends!(create_schedule_names_every_problem_on, create_schedule_names_every_problem);

/// A deleted schedule is gone: not got, not listed, not fired; deleting it again is
/// NOT_FOUND.
async fn a_deleted_schedule_is_gone(backend: Backend) {
    let cluster = Cluster::with(backend, 1, no_wall_clock_ticks).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("doomed", &[])).await;
    let mut client = schedules_client(&cluster, 0).await;
    let kept = create(&mut client, request("doomed", "* * * * *", "", &[("image", "alpine")])).await;
    let doomed = create(&mut client, request("doomed", "* * * * *", "", &[("image", "alpine")])).await;
    let listed = client.list_schedules(pb::ListSchedulesRequest::default()).await.expect("list").into_inner();
    assert_eq!(listed.schedules.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), [kept.id.clone(), doomed.id.clone()]);
    let page = client
        .list_schedules(pb::ListSchedulesRequest { page_size: 1, page_token: String::new() })
        .await
        .expect("list a page")
        .into_inner();
    assert_eq!((page.schedules.len(), page.next_page_token.as_str()), (1, kept.id.as_str()));

    client.delete_schedule(pb::DeleteScheduleRequest { schedule_id: doomed.id.clone() }).await.expect("delete");
    let status =
        client.get_schedule(pb::GetScheduleRequest { schedule_id: doomed.id.clone() }).await.expect_err("gone");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status =
        client.delete_schedule(pb::DeleteScheduleRequest { schedule_id: doomed.id.clone() }).await.expect_err("gone");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let listed = client.list_schedules(pb::ListSchedulesRequest::default()).await.expect("list").into_inner();
    assert_eq!(listed.schedules.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), [kept.id.as_str()]);

    let due = minute_after(time(doomed.create_time.as_ref()).max(time(kept.create_time.as_ref())));
    let fired = Scheduler::default().tick(orchestrator(&cluster, 0), due).await.expect("tick");
    assert_eq!(fired.iter().map(|f| f.schedule.to_string()).collect::<Vec<_>>(), [kept.id.as_str()]);
}
both_backends!(a_deleted_schedule_is_gone_on, a_deleted_schedule_is_gone);

/// A launch that fails (the pipeline was deleted) is skipped, not retried every tick; the
/// schedule fires again once the pipeline is back.
async fn a_failed_launch_is_not_retried(backend: Backend) {
    let cluster = Cluster::with(backend, 1, no_wall_clock_ticks).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("fleeting", &[])).await;
    let mut client = schedules_client(&cluster, 0).await;
    let schedule = create(&mut client, request("fleeting", "* * * * *", "", &[("image", "alpine")])).await;
    api.pipelines
        .delete_pipeline(pb::DeletePipelineRequest { pipeline: "fleeting".to_owned() })
        .await
        .expect("delete the pipeline");
    let first = minute_after(time(schedule.create_time.as_ref()));
    let mut scheduler = Scheduler::default();
    let server = orchestrator(&cluster, 0);
    for late in [1, 2, 3] {
        let fired =
            scheduler.tick(server, first + TimeDelta::seconds(late)).await.expect("a failed launch is no failed tick");
        assert!(fired.is_empty(), "{fired:?}");
    }
    let got = client
        .get_schedule(pb::GetScheduleRequest { schedule_id: schedule.id.clone() })
        .await
        .expect("get")
        .into_inner()
        .schedule
        .expect("schedule");
    assert_eq!(time(got.last_due_time.as_ref()), first, "the failed due time is spent");

    api.create(&pipeline_source("fleeting", &[])).await;
    let next = first + TimeDelta::minutes(1);
    let fired = scheduler.tick(server, next).await.expect("tick");
    assert_eq!(fired.iter().map(|f| f.due).collect::<Vec<_>>(), vec![next]);
    assert_eq!(scheduled_jobs(&mut api, "fleeting").await.keys().copied().collect::<Vec<_>>(), vec![next]);
}
both_backends!(a_failed_launch_is_not_retried_on, a_failed_launch_is_not_retried);
