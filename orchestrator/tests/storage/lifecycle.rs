//! The fenced state changes: mark running, finish, requeue, stage reports.

use std::collections::BTreeMap;

use rivet_core::{Assignment, FailureReason, JobState, StageState};
use rivet_orchestrator::domain::bounds::MAX_STAGES_PER_JOB;
use rivet_orchestrator::domain::store::{Finish, NewJob, StageRecord, StageReport, Store};
use rivet_orchestrator::storage::SeaStore;
use uuid::Uuid;

use crate::support::{self, RUNNER, backends, claim, lines, new_job, now, pipeline};

backends! {
    a_job_runs_through_its_lifecycle,
    stale_assignments_change_nothing,
    only_assigned_or_running_jobs_finish,
    requeue_retries_until_attempts_run_out,
    requeue_of_a_job_with_a_cancel_requested_cancels_it,
    active_jobs_are_the_assigned_and_running_ones,
    stages_are_upserted_in_the_order_they_start,
    stages_past_the_cap_are_not_stored,
}

fn finish(state: JobState, reason: Option<FailureReason>) -> Finish {
    Finish {
        state,
        failure_reason: reason,
        message: format!("ended {state}"),
        outputs: BTreeMap::from([("artifact".to_owned(), "app.tar".to_owned())]),
    }
}

async fn a_job_runs_through_its_lifecycle(store: &SeaStore) {
    let pipeline = pipeline(store, "build", &[("os", "linux")]).await;
    let queued = support::job(store, &pipeline).await;
    let runner = RUNNER;
    let (assigned, next_log) = store.claim_job(runner, &support::labels(&[("os", "linux")])).await.unwrap().unwrap();
    assert_eq!(next_log, 1);
    assert_eq!(assigned.id, queued.id);
    assert_eq!(
        (assigned.state, assigned.runner_id, assigned.epoch, assigned.attempt),
        (JobState::Assigned, Some(runner), 1, 1)
    );
    assert_eq!(assigned.assignment(), Assignment { job_id: queued.id, attempt: 1, epoch: 1 });

    let running = store.mark_running(RUNNER, assigned.assignment()).await.unwrap().unwrap();
    assert_eq!(running.state, JobState::Running);
    assert!(running.started_at.is_some());
    // A repeated report changes nothing.
    assert_eq!(store.mark_running(RUNNER, assigned.assignment()).await.unwrap(), Some(running.clone()));

    let at = now();
    assert!(
        store
            .record_stage(RUNNER, running.assignment(), StageReport::new("build", StageState::Running, None, "", at))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_stage(
                RUNNER,
                running.assignment(),
                StageReport::new("build", StageState::Succeeded, None, "ok", at)
            )
            .await
            .unwrap()
    );

    let done = store
        .finish_job(Some(RUNNER), running.assignment(), finish(JobState::Failed, Some(FailureReason::ExitCode)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.state, JobState::Failed);
    assert_eq!(done.failure_reason, Some(FailureReason::ExitCode));
    assert_eq!(done.message, "ended failed");
    assert_eq!(done.outputs, BTreeMap::from([("artifact".to_owned(), "app.tar".to_owned())]));
    assert_eq!(done.runner_id, None);
    assert_eq!(done.started_at, running.started_at);
    assert!(done.finished_at.is_some_and(|finished| Some(finished) >= done.started_at));
    assert_eq!(store.job(done.id).await.unwrap(), Some(done.clone()));

    let transitions = store.transitions(done.id).await.unwrap();
    let states: Vec<_> = transitions.iter().map(|t| t.state).collect();
    assert_eq!(states, vec![JobState::Queued, JobState::Assigned, JobState::Running, JobState::Failed]);
    assert!(transitions.windows(2).all(|pair| pair[0].at <= pair[1].at));
    assert_eq!(transitions[0].at, done.created_at);
    assert_eq!(Some(transitions[2].at), done.started_at);
    assert_eq!(Some(transitions[3].at), done.finished_at);
    assert_eq!(transitions[3].message, "ended failed");
}

async fn stale_assignments_change_nothing(store: &SeaStore) {
    let pipeline = pipeline(store, "build", &[]).await;
    support::job(store, &pipeline).await;
    let (first, _) = claim(store, &[]).await;
    let stale = first.assignment();
    store.requeue_job(None, stale, "runner lost").await.unwrap().unwrap();
    let (second, next_log) = claim(store, &[]).await;
    assert_eq!((second.id, second.epoch, second.attempt, next_log), (first.id, 2, 2, 1));

    let before = store.job(second.id).await.unwrap();
    let transitions = store.transitions(second.id).await.unwrap();
    let forged = Assignment { epoch: 99, ..second.assignment() };
    let old_attempt = Assignment { attempt: 1, ..second.assignment() };
    let unknown = Assignment { job_id: Uuid::new_v4(), ..second.assignment() };
    for assignment in [stale, forged, old_attempt, unknown] {
        assert_eq!(store.mark_running(RUNNER, assignment).await.unwrap(), None);
        assert_eq!(store.finish_job(Some(RUNNER), assignment, finish(JobState::Succeeded, None)).await.unwrap(), None);
        assert_eq!(store.requeue_job(None, assignment, "stale").await.unwrap(), None);
        assert!(
            !store
                .record_stage(RUNNER, assignment, StageReport::new("build", StageState::Running, None, "", now()))
                .await
                .unwrap()
        );
        assert_eq!(store.append_logs(RUNNER, assignment, &lines(1, 3)).await.unwrap(), None);
    }
    assert_eq!(store.job(second.id).await.unwrap(), before);
    assert_eq!(store.transitions(second.id).await.unwrap(), transitions);
    assert_eq!(store.stages(second.id).await.unwrap(), vec![]);
    assert_eq!(store.last_log_sequence(second.id).await.unwrap(), 0);

    // The current assignment still works.
    assert_eq!(store.append_logs(RUNNER, second.assignment(), &lines(1, 3)).await.unwrap(), Some(3));
    assert!(store.mark_running(RUNNER, second.assignment()).await.unwrap().is_some());
}

async fn only_assigned_or_running_jobs_finish(store: &SeaStore) {
    let pipeline = pipeline(store, "build", &[]).await;
    let queued = support::job(store, &pipeline).await;
    // A queued job has no assignment yet; its epoch-0 "assignment" holds nothing.
    assert_eq!(
        store.finish_job(Some(RUNNER), queued.assignment(), finish(JobState::Succeeded, None)).await.unwrap(),
        None
    );
    assert_eq!(store.mark_running(RUNNER, queued.assignment()).await.unwrap(), None);
    assert_eq!(store.requeue_job(None, queued.assignment(), "x").await.unwrap(), None);
    assert!(
        !store
            .record_stage(RUNNER, queued.assignment(), StageReport::new("build", StageState::Running, None, "", now()))
            .await
            .unwrap()
    );
    assert_eq!(store.job(queued.id).await.unwrap(), Some(queued));

    // Finishing straight from assigned is allowed (e.g. the runner rejected its inputs).
    let (assigned, _) = claim(store, &[]).await;
    // A non-terminal state is not an end.
    assert_eq!(
        store.finish_job(Some(RUNNER), assigned.assignment(), finish(JobState::Running, None)).await.unwrap(),
        None
    );
    assert_eq!(store.job(assigned.id).await.unwrap(), Some(assigned.clone()));
    let done = store
        .finish_job(Some(RUNNER), assigned.assignment(), finish(JobState::Failed, Some(FailureReason::InvalidInput)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.state, JobState::Failed);

    // Once ended, the same assignment can change nothing more.
    assert_eq!(
        store.finish_job(Some(RUNNER), assigned.assignment(), finish(JobState::Succeeded, None)).await.unwrap(),
        None
    );
    assert_eq!(store.mark_running(RUNNER, assigned.assignment()).await.unwrap(), None);
    assert_eq!(store.requeue_job(None, assigned.assignment(), "x").await.unwrap(), None);
    assert!(
        !store
            .record_stage(
                RUNNER,
                assigned.assignment(),
                StageReport::new("build", StageState::Running, None, "", now())
            )
            .await
            .unwrap()
    );
    assert_eq!(store.job(done.id).await.unwrap(), Some(done));
}

async fn requeue_retries_until_attempts_run_out(store: &SeaStore) {
    let pipeline = pipeline(store, "build", &[]).await;
    let (job, _) = store.create_job(NewJob { max_attempts: 2, ..new_job(&pipeline) }).await.unwrap();

    let (first, _) = claim(store, &[]).await;
    store.mark_running(RUNNER, first.assignment()).await.unwrap().unwrap();
    let requeued = store.requeue_job(None, first.assignment(), "lease expired").await.unwrap().unwrap();
    assert_eq!(requeued.state, JobState::Queued);
    assert_eq!((requeued.attempt, requeued.epoch, requeued.runner_id), (2, 1, None));
    assert_eq!((requeued.started_at, requeued.finished_at, requeued.failure_reason), (None, None, None));
    assert_eq!(requeued.message, "lease expired");

    let (second, _) = claim(store, &[]).await;
    assert_eq!((second.id, second.attempt, second.epoch), (job.id, 2, 2));
    let lost = store.requeue_job(None, second.assignment(), "runner rejected the job").await.unwrap().unwrap();
    assert_eq!(lost.state, JobState::Lost);
    assert_eq!(lost.failure_reason, Some(FailureReason::RunnerLost));
    assert_eq!((lost.attempt, lost.runner_id), (2, None));
    assert!(lost.finished_at.is_some());
    assert_eq!(store.claim_job(Uuid::new_v4(), &support::labels(&[])).await.unwrap(), None);

    let transitions = store.transitions(job.id).await.unwrap();
    let states: Vec<_> = transitions.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        vec![
            JobState::Queued,
            JobState::Assigned,
            JobState::Running,
            JobState::Queued,
            JobState::Assigned,
            JobState::Lost
        ]
    );
    assert_eq!(transitions[3].message, "lease expired");
}

async fn requeue_of_a_job_with_a_cancel_requested_cancels_it(store: &SeaStore) {
    let pipeline = pipeline(store, "build", &[]).await;
    support::job(store, &pipeline).await;
    let (assigned, _) = claim(store, &[]).await;
    store.cancel_job(assigned.id).await.unwrap().unwrap();
    let cancelled = store.requeue_job(None, assigned.assignment(), "lease expired").await.unwrap().unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(cancelled.failure_reason, Some(FailureReason::Cancelled));
    assert_eq!(cancelled.runner_id, None);
    assert!(cancelled.finished_at.is_some());
}

async fn active_jobs_are_the_assigned_and_running_ones(store: &SeaStore) {
    let pipeline = pipeline(store, "build", &[]).await;
    for _ in 0..4 {
        support::job(store, &pipeline).await;
    }
    support::job(store, &pipeline).await;
    assert_eq!(store.active_jobs(None).await.unwrap(), vec![]);
    let (assigned, _) = claim(store, &[]).await;
    let (running, _) = claim(store, &[]).await;
    let running = store.mark_running(RUNNER, running.assignment()).await.unwrap().unwrap();
    let (done, _) = claim(store, &[]).await;
    store.finish_job(Some(RUNNER), done.assignment(), finish(JobState::Succeeded, None)).await.unwrap().unwrap();
    let other_runner = Uuid::from_u128(RUNNER.as_u128() + 1);
    let (other, _) = store.claim_job(other_runner, &BTreeMap::new()).await.unwrap().unwrap();
    assert_eq!(store.active_jobs(None).await.unwrap(), vec![assigned.clone(), running.clone(), other.clone()]);
    assert_eq!(store.active_jobs(Some(RUNNER)).await.unwrap(), vec![assigned, running]);
    assert_eq!(store.active_jobs(Some(other_runner)).await.unwrap(), vec![other]);
    assert_eq!(store.active_jobs(Some(Uuid::now_v7())).await.unwrap(), vec![]);
}

async fn stages_are_upserted_in_the_order_they_start(store: &SeaStore) {
    let pipeline = pipeline(store, "build", &[]).await;
    support::job(store, &pipeline).await;
    let (job, _) = claim(store, &[]).await;
    let a = job.assignment();
    let t0 = now();
    let t1 = t0 + chrono::Duration::milliseconds(5);
    let t2 = t0 + chrono::Duration::milliseconds(9);
    assert!(store.record_stage(RUNNER, a, StageReport::new("build", StageState::Running, None, "", t0)).await.unwrap());
    assert!(
        store
            .record_stage(RUNNER, a, StageReport::new("build", StageState::Succeeded, None, "built", t1))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_stage(RUNNER, a, StageReport::new("lint", StageState::Skipped, None, "condition was false", t1))
            .await
            .unwrap()
    );
    assert!(store.record_stage(RUNNER, a, StageReport::new("test", StageState::Running, None, "", t1)).await.unwrap());
    assert!(
        store
            .record_stage(
                RUNNER,
                a,
                StageReport::new("test", StageState::Failed, Some(FailureReason::Timeout), "too slow", t2)
            )
            .await
            .unwrap()
    );

    let stages = store.stages(job.id).await.unwrap();
    assert_eq!(
        stages,
        vec![
            StageRecord {
                name: "build".to_owned(),
                state: StageState::Succeeded,
                started_at: Some(t0),
                finished_at: Some(t1),
                failure_reason: None,
                message: "built".to_owned(),
            },
            StageRecord {
                name: "lint".to_owned(),
                state: StageState::Skipped,
                started_at: None,
                finished_at: Some(t1),
                failure_reason: None,
                message: "condition was false".to_owned(),
            },
            StageRecord {
                name: "test".to_owned(),
                state: StageState::Failed,
                started_at: Some(t1),
                finished_at: Some(t2),
                failure_reason: Some(FailureReason::Timeout),
                message: "too slow".to_owned(),
            },
        ]
    );
    assert_eq!(store.stages(Uuid::new_v4()).await.unwrap(), vec![]);
}

async fn stages_past_the_cap_are_not_stored(store: &SeaStore) {
    let pipeline = pipeline(store, "build", &[]).await;
    support::job(store, &pipeline).await;
    let (job, _) = claim(store, &[]).await;
    let a = job.assignment();
    for index in 0..MAX_STAGES_PER_JOB + 5 {
        let stage = format!("stage {index}");
        // Accepted (the runner is not told to give the job up), but not stored.
        assert!(
            store
                .record_stage(RUNNER, a, StageReport::new(&stage, StageState::Running, None, "", now()))
                .await
                .unwrap()
        );
    }
    let stages = store.stages(job.id).await.unwrap();
    assert_eq!(stages.len() as u64, MAX_STAGES_PER_JOB);
    assert_eq!(stages.last().unwrap().name, format!("stage {}", MAX_STAGES_PER_JOB - 1));
    // A stage already stored is still updated.
    assert!(
        store
            .record_stage(RUNNER, a, StageReport::new("stage 0", StageState::Succeeded, None, "done", now()))
            .await
            .unwrap()
    );
    assert_eq!(store.stages(job.id).await.unwrap()[0].state, StageState::Succeeded);
}
