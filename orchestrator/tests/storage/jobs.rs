//! Creating, reading, listing and cancelling jobs.

use std::collections::{BTreeMap, BTreeSet};

use rivet_core::{FailureReason, JobState};
use rivet_orchestrator::domain::store::{CancelOutcome, Finish, JobCursor, JobFilter, NewJob, Store, StoreError};
use rivet_orchestrator::storage::SeaStore;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::support::{self, RUNNER, backends, claim, inputs, labels, new_job, pipeline};

backends! {
    a_new_job_is_queued_with_its_pipelines_tags,
    an_idempotency_key_returns_the_first_job,
    concurrent_launches_with_one_key_create_one_job,
    jobs_are_listed_newest_first_with_cursor_and_filters,
    cancel_depends_on_the_jobs_state,
    a_job_of_an_unknown_pipeline_is_refused,
    corrupt_rows_are_reported_not_trusted,
}

async fn a_new_job_is_queued_with_its_pipelines_tags(store: &SeaStore) {
    let pipeline = pipeline(store, "build", &[("os", "linux"), ("arch", "amd64")]).await;
    let new = new_job(&pipeline);
    let (job, created) = store.create_job(new.clone()).await.unwrap();
    assert!(created);
    assert_eq!(job.id, new.id);
    assert_eq!(job.pipeline_id, pipeline.id);
    assert_eq!((job.pipeline_name.as_str(), job.pipeline_version), ("build", 1));
    assert_eq!(job.tags, labels(&[("os", "linux"), ("arch", "amd64")]));
    assert_eq!(job.state, JobState::Queued);
    assert_eq!((job.attempt, job.epoch, job.max_attempts), (1, 0, 3));
    assert_eq!(job.inputs, inputs());
    assert_eq!((job.runner_id, job.failure_reason, job.started_at, job.finished_at), (None, None, None, None));
    assert_eq!(job.outputs, BTreeMap::new());
    assert_eq!(job.trace.map(|trace| trace.to_string()).as_deref(), Some(support::TRACE));
    assert_eq!(job.origin, new.origin);
    assert_eq!(store.job(job.id).await.unwrap(), Some(job.clone()));
    let untraced = store.create_job(NewJob { trace: None, ..new_job(&pipeline) }).await.unwrap().0;
    assert_eq!(store.job(untraced.id).await.unwrap().map(|job| job.trace), Some(None));

    let transitions = store.transitions(job.id).await.unwrap();
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0].state, JobState::Queued);
    assert_eq!(transitions[0].at, job.created_at);

    assert_eq!(store.job(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(store.transitions(Uuid::new_v4()).await.unwrap(), vec![]);
    assert!(!store.cancel_requested(job.id).await.unwrap());
    assert!(!store.cancel_requested(Uuid::new_v4()).await.unwrap());
}

async fn an_idempotency_key_returns_the_first_job(store: &SeaStore) {
    let pipeline = pipeline(store, "build", &[]).await;
    let first = NewJob { idempotency_key: Some("launch-1".to_owned()), ..new_job(&pipeline) };
    let (job, created) = store.create_job(first.clone()).await.unwrap();
    assert!(created);
    assert_eq!(job.idempotency_key.as_deref(), Some("launch-1"));

    // A retry (with a new id, as a client that lost the answer would send) gets the first job.
    let retry = NewJob { idempotency_key: Some("launch-1".to_owned()), ..new_job(&pipeline) };
    let (again, created) = store.create_job(retry.clone()).await.unwrap();
    assert!(!created);
    assert_eq!(again, job);
    assert_eq!(store.job(retry.id).await.unwrap(), None);
    assert_eq!(store.transitions(job.id).await.unwrap().len(), 1);

    // Other keys, and no key, make new jobs.
    let (other, created) =
        store.create_job(NewJob { idempotency_key: Some("launch-2".to_owned()), ..new_job(&pipeline) }).await.unwrap();
    assert!(created);
    assert_ne!(other.id, job.id);
    let (a, created_a) = store.create_job(new_job(&pipeline)).await.unwrap();
    let (b, created_b) = store.create_job(new_job(&pipeline)).await.unwrap();
    assert!(created_a && created_b);
    assert_ne!(a.id, b.id);
}

async fn concurrent_launches_with_one_key_create_one_job(store: &SeaStore) {
    let pipeline = pipeline(store, "build", &[]).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let new = NewJob { idempotency_key: Some("same".to_owned()), ..new_job(&pipeline) };
            tokio::spawn(async move { store.create_job(new).await })
        })
        .collect();
    let mut ids = BTreeSet::new();
    let mut created = 0;
    for task in tasks {
        let (job, was_created) = task.await.unwrap().unwrap();
        ids.insert(job.id);
        created += usize::from(was_created);
    }
    assert_eq!((ids.len(), created), (1, 1));
    let all = store.list_jobs(&JobFilter::default(), None, 100).await.unwrap();
    assert_eq!(all.len(), 1);
}

async fn jobs_are_listed_newest_first_with_cursor_and_filters(store: &SeaStore) {
    let build = pipeline(store, "build", &[]).await;
    let deploy = pipeline(store, "deploy", &[]).await;
    let mut created = Vec::new();
    for index in 0..5 {
        let pipeline = if index % 2 == 0 { &build } else { &deploy };
        created.push(support::job(store, pipeline).await);
    }
    let newest_first: Vec<_> = created.iter().rev().cloned().collect();

    // Pages of two, each continuing after the previous page's last job.
    let all = JobFilter::default();
    let mut pages = Vec::new();
    let mut cursor: Option<JobCursor> = None;
    loop {
        let page = store.list_jobs(&all, cursor.as_ref(), 2).await.unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(JobCursor { created_at: last.created_at, id: last.id });
        pages.push(page);
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
    assert_eq!(pages.concat(), newest_first);

    // A cursor sharing its timestamp with other jobs is ordered by id.
    let tie = JobCursor { created_at: created[2].created_at, id: Uuid::max() };
    let after_tie = store.list_jobs(&all, Some(&tie), 10).await.unwrap();
    assert_eq!(after_tie, newest_first[2..].to_vec());

    let by_name = JobFilter { pipeline_name: Some("deploy".to_owned()), states: vec![] };
    let deploys = store.list_jobs(&by_name, None, 10).await.unwrap();
    assert_eq!(deploys, vec![created[3].clone(), created[1].clone()]);

    // Move two jobs on, then filter by state.
    let (claimed, _) = claim(store, &[]).await;
    assert_eq!(claimed.id, created[0].id);
    store.cancel_job(created[1].id).await.unwrap();
    let queued = JobFilter { pipeline_name: None, states: vec![JobState::Queued] };
    let ids: Vec<_> = store.list_jobs(&queued, None, 10).await.unwrap().iter().map(|job| job.id).collect();
    assert_eq!(ids, vec![created[4].id, created[3].id, created[2].id]);
    let ended = JobFilter { pipeline_name: None, states: vec![JobState::Cancelled, JobState::Assigned] };
    let ids: Vec<_> = store.list_jobs(&ended, None, 10).await.unwrap().iter().map(|job| job.id).collect();
    assert_eq!(ids, vec![created[1].id, created[0].id]);
    let both = JobFilter { pipeline_name: Some("build".to_owned()), states: vec![JobState::Assigned] };
    let ids: Vec<_> = store.list_jobs(&both, None, 10).await.unwrap().iter().map(|job| job.id).collect();
    assert_eq!(ids, vec![created[0].id]);
}

async fn cancel_depends_on_the_jobs_state(store: &SeaStore) {
    let pipeline = pipeline(store, "build", &[]).await;
    assert_eq!(store.cancel_job(Uuid::new_v4()).await.unwrap(), None);

    // Queued: cancelled at once.
    let queued = support::job(store, &pipeline).await;
    let Some(CancelOutcome::Cancelled(cancelled)) = store.cancel_job(queued.id).await.unwrap() else {
        panic!("a queued job is cancelled at once");
    };
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(cancelled.failure_reason, Some(FailureReason::Cancelled));
    assert!(cancelled.finished_at.is_some());
    assert_eq!(store.job(queued.id).await.unwrap(), Some(cancelled.clone()));
    let states: Vec<_> = store.transitions(queued.id).await.unwrap().iter().map(|t| t.state).collect();
    assert_eq!(states, vec![JobState::Queued, JobState::Cancelled]);
    // A cancelled job is never claimed.
    assert_eq!(store.claim_job(Uuid::new_v4(), &labels(&[])).await.unwrap(), None);

    // Assigned, then running: marked for the runner to stop.
    let queued = support::job(store, &pipeline).await;
    let (assigned, _) = claim(store, &[]).await;
    assert_eq!(assigned.id, queued.id);
    let Some(CancelOutcome::Requested(requested)) = store.cancel_job(assigned.id).await.unwrap() else {
        panic!("an assigned job is asked to stop");
    };
    assert_eq!(requested.state, JobState::Assigned);
    assert!(store.cancel_requested(assigned.id).await.unwrap());
    let running = store.mark_running(RUNNER, assigned.assignment()).await.unwrap().unwrap();
    assert!(
        matches!(store.cancel_job(running.id).await.unwrap(), Some(CancelOutcome::Requested(job)) if job.state == JobState::Running)
    );
    assert!(store.cancel_requested(running.id).await.unwrap());

    // The runner reports the end; a later cancel finds it ended.
    let finish = Finish {
        state: JobState::Cancelled,
        failure_reason: Some(FailureReason::Cancelled),
        message: "stopped".to_owned(),
        outputs: BTreeMap::new(),
    };
    let ended = store.finish_job(Some(RUNNER), running.assignment(), finish).await.unwrap().unwrap();
    assert_eq!(store.cancel_job(ended.id).await.unwrap(), Some(CancelOutcome::AlreadyEnded(ended.clone())));
    assert_eq!(store.cancel_job(cancelled.id).await.unwrap(), Some(CancelOutcome::AlreadyEnded(cancelled)));
    let states: Vec<_> = store.transitions(ended.id).await.unwrap().iter().map(|t| t.state).collect();
    assert_eq!(states, vec![JobState::Queued, JobState::Assigned, JobState::Running, JobState::Cancelled]);
}

async fn a_job_of_an_unknown_pipeline_is_refused(store: &SeaStore) {
    let pipeline = pipeline(store, "build", &[]).await;
    let orphan = NewJob { pipeline_id: Uuid::new_v4(), ..new_job(&pipeline) };
    assert!(matches!(store.create_job(orphan.clone()).await, Err(StoreError::Corrupt(_))));
    assert_eq!(store.job(orphan.id).await.unwrap(), None);
}

async fn corrupt_rows_are_reported_not_trusted(store: &SeaStore) {
    let pipeline = pipeline(store, "build", &[]).await;
    let good = support::job(store, &pipeline).await;
    let bad = support::job(store, &pipeline).await;
    let db = store.connection();

    // A job whose tags cannot be decoded is never claimed, and does not block the queue.
    db.execute_unprepared(&format!("UPDATE jobs SET tags = '[1, 2]' WHERE id = {}", uuid_literal(store, good.id)))
        .await
        .unwrap();
    let (claimed, _) = claim(store, &[]).await;
    assert_eq!(claimed.id, bad.id);
    assert!(matches!(store.job(good.id).await, Err(StoreError::Corrupt(_))));

    // An unknown state name is corrupt data, wherever it is read.
    db.execute_unprepared(&format!("UPDATE jobs SET state = 'bogus' WHERE id = {}", uuid_literal(store, bad.id)))
        .await
        .unwrap();
    let err = store.job(bad.id).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt(message) if message.contains("bogus")), "{err}");
    assert!(matches!(store.list_jobs(&JobFilter::default(), None, 10).await, Err(StoreError::Corrupt(_))));
    assert!(matches!(store.mark_running(RUNNER, claimed.assignment()).await, Err(StoreError::Corrupt(_))));
}

/// A uuid as an SQL literal: PostgreSQL stores uuids natively, SQLite as 16-byte blobs.
fn uuid_literal(store: &SeaStore, id: Uuid) -> String {
    match store.backend() {
        rivet_orchestrator::storage::Backend::Postgres => format!("'{id}'"),
        rivet_orchestrator::storage::Backend::Sqlite => format!("X'{}'", id.simple()),
    }
}
