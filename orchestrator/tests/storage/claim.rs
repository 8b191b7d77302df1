//! Claiming queued jobs: matching tags, order, and exactly-once under concurrency.

use std::collections::BTreeSet;

use rivet_core::JobState;
use rivet_orchestrator::domain::store::{JobFilter, Store};
use rivet_orchestrator::storage::{Backend, SeaStore};
use uuid::Uuid;

use crate::support::{self, RUNNER, backends, claim, labels, lines, pipeline, replicas};

backends! {
    claim_takes_the_oldest_job_the_runner_can_run,
    claim_looks_past_a_full_batch_of_jobs_it_cannot_run,
    a_requeued_job_resumes_its_log_sequence,
}

replicas! {
    2: concurrent_claims_take_each_job_once,
}

async fn claim_takes_the_oldest_job_the_runner_can_run(store: &SeaStore) {
    let gpu = pipeline(store, "train", &[("gpu", "true")]).await;
    let any = pipeline(store, "lint", &[]).await;
    let linux = pipeline(store, "build", &[("os", "linux")]).await;
    let gpu_job = support::job(store, &gpu).await;
    let any_job = support::job(store, &any).await;
    let linux_job = support::job(store, &linux).await;
    let later_any_job = support::job(store, &any).await;

    assert_eq!(
        store.claim_job(Uuid::new_v4(), &labels(&[("os", "windows")])).await.unwrap().map(|(job, _)| job.id),
        Some(any_job.id)
    );
    let runner = Uuid::new_v4();
    let (job, next_log) =
        store.claim_job(runner, &labels(&[("os", "linux"), ("arch", "arm64")])).await.unwrap().unwrap();
    assert_eq!(
        (job.id, job.state, job.runner_id, job.epoch, next_log),
        (linux_job.id, JobState::Assigned, Some(runner), 1, 1)
    );
    // A tag's value must match, not just its key.
    assert_eq!(
        store.claim_job(Uuid::new_v4(), &labels(&[("gpu", "false")])).await.unwrap().map(|(job, _)| job.id),
        Some(later_any_job.id)
    );
    assert_eq!(store.claim_job(Uuid::new_v4(), &labels(&[("os", "linux")])).await.unwrap(), None);
    let (job, _) = claim(store, &[("gpu", "true"), ("os", "linux")]).await;
    assert_eq!(job.id, gpu_job.id);
    assert_eq!(store.claim_job(Uuid::new_v4(), &labels(&[("gpu", "true")])).await.unwrap(), None);

    let transitions = store.transitions(linux_job.id).await.unwrap();
    assert_eq!(transitions.iter().map(|t| t.state).collect::<Vec<_>>(), vec![JobState::Queued, JobState::Assigned]);
    assert!(transitions[1].message.contains(&runner.to_string()));
    assert_eq!(store.job(linux_job.id).await.unwrap().map(|job| job.state), Some(JobState::Assigned));
}

async fn claim_looks_past_a_full_batch_of_jobs_it_cannot_run(store: &SeaStore) {
    let gpu = pipeline(store, "train", &[("gpu", "true")]).await;
    let any = pipeline(store, "lint", &[]).await;
    // More than one claim batch (64) of jobs the runner cannot run come first.
    for _ in 0..130 {
        support::job(store, &gpu).await;
    }
    let last = support::job(store, &any).await;
    let (job, _) = claim(store, &[("os", "linux")]).await;
    assert_eq!(job.id, last.id);
    assert_eq!(store.claim_job(Uuid::new_v4(), &labels(&[("os", "linux")])).await.unwrap(), None);
}

async fn a_requeued_job_resumes_its_log_sequence(store: &SeaStore) {
    let any = pipeline(store, "lint", &[]).await;
    support::job(store, &any).await;
    let (first, next_log) = claim(store, &[]).await;
    assert_eq!(next_log, 1);
    assert_eq!(store.append_logs(RUNNER, first.assignment(), &lines(1, 3)).await.unwrap(), Some(3));
    store.requeue_job(None, first.assignment(), "runner lost").await.unwrap().unwrap();
    let (second, next_log) = claim(store, &[]).await;
    assert_eq!((second.id, second.attempt, second.epoch, next_log), (first.id, 2, 2, 4));
}

/// Many claimers on several stores (as replicas would be) take every job exactly once.
/// Half the jobs need a GPU and half the claimers have one, so claims for different tags
/// run side by side.
async fn concurrent_claims_take_each_job_once(stores: &[SeaStore]) {
    let (jobs, claimers) = match stores[0].backend() {
        Backend::Postgres => (200, 10),
        // SQLite serialises writers: fewer jobs keep the test quick.
        Backend::Sqlite => (60, 6),
    };
    let lint = pipeline(&stores[0], "lint", &[]).await;
    let train = pipeline(&stores[0], "train", &[("gpu", "true")]).await;
    let mut created = BTreeSet::new();
    let mut needs_gpu = BTreeSet::new();
    for index in 0..jobs {
        let job = support::job(&stores[0], if index % 2 == 0 { &lint } else { &train }).await;
        created.insert(job.id);
        if index % 2 == 1 {
            needs_gpu.insert(job.id);
        }
    }

    let tasks: Vec<_> = (0..claimers)
        .map(|index| {
            let store = stores[index % stores.len()].clone();
            let gpu = index % 2 == 0;
            tokio::spawn(async move {
                let runner = Uuid::new_v4();
                let labels = if gpu { labels(&[("gpu", "true")]) } else { labels(&[]) };
                let mut claimed = Vec::new();
                while let Some((job, next_log)) = store.claim_job(runner, &labels).await.expect("claim") {
                    assert_eq!((job.runner_id, job.epoch, next_log), (Some(runner), 1, 1));
                    claimed.push((job.id, gpu));
                }
                claimed
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    let unique: BTreeSet<_> = claimed.iter().map(|(id, _)| *id).collect();
    assert_eq!(claimed.len(), jobs, "every job claimed once");
    assert_eq!(unique, created);
    assert!(claimed.iter().all(|(id, gpu)| *gpu || !needs_gpu.contains(id)), "a GPU job went to a runner without one");

    let filter = JobFilter { pipeline_name: None, states: vec![JobState::Assigned] };
    let assigned = stores[1].list_jobs(&filter, None, 1000).await.unwrap();
    assert_eq!(assigned.len(), jobs);
    assert!(assigned.iter().all(|job| job.epoch == 1));
    for id in unique.iter().take(20) {
        assert_eq!(stores[1].transitions(*id).await.unwrap().len(), 2, "one assigned transition per job");
    }
}
