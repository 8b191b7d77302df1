//! Runner identity over real gRPC: registration tokens, per-runner credentials, sessions
//! bound to the credential's runner, reports fenced by the assigned runner, revocation,
//! and the real agent registering and reconnecting with its credential.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use rivet_proto::v1::{self as pb, connect_request};
use rivet_runner::agent::{Agent, AgentConfig, AgentError, Credential, Stop};
use tonic::Code;
use uuid::Uuid;

use crate::both_backends;
use crate::resilience::ScriptedRunner;
use crate::support::{Api, Backend, Cluster, FakeRunner, PATIENCE, pipeline_source, register};

/// The registration token the clusters of these tests are configured with.
const REGISTRATION: &str = "compose-registration-secret";

/// One replica that needs runner credentials (the API stays open for the tests' clients).
async fn closed_cluster(backend: Backend) -> Cluster {
    Cluster::with(backend, 1, |config| config.auth.registration_tokens = vec![REGISTRATION.to_owned()]).await
}

/// A registered runner: its id and credential.
struct Registered {
    id: Uuid,
    credential: String,
}

async fn registered(cluster: &Cluster, labels: &[(&str, &str)]) -> Registered {
    let response = register(cluster.addr(0), REGISTRATION, labels).await.expect("registers");
    Registered { id: response.runner_id.parse().expect("a uuid"), credential: response.credential }
}

async fn connect(cluster: &Cluster, runner: &Registered, labels: &[(&str, &str)]) -> FakeRunner {
    FakeRunner::connect_as(cluster.addr(0), runner.id, 1, labels, Vec::new(), Some(&runner.credential))
        .await
        .expect("the runner connects with its credential")
}

async fn create_token(api: &mut Api, labels: &[(&str, &str)], expires: u64, uses: u32) -> String {
    let request = pb::CreateRegistrationTokenRequest {
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        expires_in_seconds: expires,
        uses,
    };
    api.runners.create_registration_token(request).await.expect("token created").into_inner().token
}

async fn runner_row(api: &mut Api, id: Uuid) -> pb::Runner {
    let runners = api
        .runners
        .list_runners(pb::ListRunnersRequest { include_offline: true })
        .await
        .expect("list runners")
        .into_inner()
        .runners;
    runners.into_iter().find(|runner| runner.id == id.to_string()).expect("the runner is listed")
}

async fn impersonation(backend: Backend) {
    let cluster = closed_cluster(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("victim", &[])).await;
    let victim = registered(&cluster, &[]).await;
    let attacker = registered(&cluster, &[]).await;
    let mut victim_stream = connect(&cluster, &victim, &[]).await;
    let job = api.launch("victim", &[("image", "app")]).await.unwrap();
    let assign = victim_stream.assignment().await;
    victim_stream.accept(&assign).await;
    api.wait_for(&job.id, pb::JobState::Running).await;

    // The attacker's valid credential does not let it claim the victim's id, with or
    // without claiming the victim's job.
    let running = vec![pb::RunningJob { assignment: assign.assignment.clone(), last_sequence: 0 }];
    for reported in [Vec::new(), running] {
        let refused = FakeRunner::connect_as(cluster.addr(0), victim.id, 1, &[], reported, Some(&attacker.credential))
            .await
            .err()
            .expect("an impersonating hello is refused");
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert!(refused.message().contains(&format!("belongs to runner {}", attacker.id)), "{}", refused.message());
    }
    // Without a credential, claiming a registered runner's id is not even authenticated.
    let refused = FakeRunner::connect_as(cluster.addr(0), victim.id, 1, &[], Vec::new(), None).await.err().unwrap();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // The victim kept its stream and its job: it finishes it.
    victim_stream.log(&assign, 1..=3).await;
    victim_stream.acked(&assign, 3).await;
    victim_stream.finish(&assign, pb::JobState::Succeeded, 3).await;
    let done = api.wait_for(&job.id, pb::JobState::Succeeded).await;
    assert_eq!(done.attempt, 1, "the victim never lost its job");
    assert_eq!(api.follow(&job.id, 0).await.len(), 3);
    assert_eq!(runner_row(&mut api, victim.id).await.state(), pb::RunnerState::Online);
}
both_backends!(a_runner_impersonating_another_is_refused_and_the_victim_keeps_its_stream_and_jobs, impersonation);

async fn foreign_reports(backend: Backend) {
    let cluster = closed_cluster(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("owned", &[("pool", "a")])).await;
    let owner = registered(&cluster, &[("pool", "a")]).await;
    let other = registered(&cluster, &[("pool", "b")]).await;
    let mut owner_stream = connect(&cluster, &owner, &[("pool", "a")]).await;
    let mut other_stream = connect(&cluster, &other, &[("pool", "b")]).await;
    let job = api.launch("owned", &[("image", "app")]).await.unwrap();
    let assign = owner_stream.assignment().await;
    owner_stream.accept(&assign).await;
    owner_stream.log(&assign, 1..=2).await;
    owner_stream.acked(&assign, 2).await;
    let before = api.wait_for(&job.id, pb::JobState::Running).await;

    // The other runner quotes the owner's exact assignment: every report is refused.
    let stage = pb::StageStarted { assignment: assign.assignment.clone(), stage: "evil".into(), time: None };
    other_stream.send(connect_request::Body::StageStarted(stage)).await;
    assert!(other_stream.refused(&assign).await.contains("not (or no longer) assigned to this runner"));
    other_stream.log(&assign, 3..=5).await;
    other_stream.refused(&assign).await;
    other_stream
        .send(connect_request::Body::JobAccepted(pb::JobAccepted { assignment: assign.assignment.clone() }))
        .await;
    other_stream.refused(&assign).await;
    let mut outputs = HashMap::new();
    outputs.insert("stolen".to_owned(), "yes".to_owned());
    let finished = pb::JobFinished {
        assignment: assign.assignment.clone(),
        state: pb::JobState::Failed as i32,
        last_sequence: 2,
        outputs,
        ..Default::default()
    };
    other_stream.send(connect_request::Body::JobFinished(finished)).await;
    other_stream.refused(&assign).await;
    // A heartbeat cannot renew the lease of a job the runner does not hold.
    let beat = pb::RunnerHeartbeat {
        running_jobs: vec![pb::RunningJob { assignment: assign.assignment.clone(), last_sequence: 0 }],
        draining: false,
    };
    other_stream.send(connect_request::Body::Heartbeat(beat)).await;
    assert_eq!(other_stream.refused(&assign).await, "the job is not assigned to this runner");
    // Rejecting it does not requeue it either.
    let rejected = pb::JobRejected { assignment: assign.assignment.clone(), reason: "mine now".into() };
    other_stream.send(connect_request::Body::JobRejected(rejected)).await;
    // Messages of one stream are handled in order: once this is refused, so was that.
    other_stream.log(&assign, 3..=3).await;
    other_stream.refused(&assign).await;

    let after = api.job(&job.id).await;
    assert_eq!(after.state(), pb::JobState::Running);
    assert_eq!((after.attempt, after.stages.len(), after.outputs.len()), (before.attempt, 0, 0));
    owner_stream.finish(&assign, pb::JobState::Succeeded, 2).await;
    let done = api.wait_for(&job.id, pb::JobState::Succeeded).await;
    assert!(done.outputs.is_empty());
    let texts: Vec<String> = api.follow(&job.id, 0).await.into_iter().map(|line| line.text).collect();
    assert_eq!(texts, ["line 1", "line 2"], "only the owner's lines are stored");
}
both_backends!(a_report_for_a_job_assigned_to_another_runner_is_refused, foreign_reports);

async fn token_limits(backend: Backend) {
    let cluster = closed_cluster(backend).await;
    let mut api = cluster.api(0).await;
    let addr = cluster.addr(0);

    let twice = create_token(&mut api, &[], 0, 2).await;
    assert!(twice.starts_with("rivet-reg_"), "{twice}");
    register(addr, &twice, &[]).await.expect("first use");
    register(addr, &twice, &[]).await.expect("second use");
    let spent = register(addr, &twice, &[]).await.unwrap_err();
    assert_eq!(spent.code(), Code::Unauthenticated);
    assert!(spent.message().contains("has no uses left"), "{}", spent.message());

    // Wait (by asking, not by sleeping a guessed time) until the 1 s token expired.
    let brief = create_token(&mut api, &[], 1, 0).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let expired = loop {
        match register(addr, &brief, &[]).await {
            Ok(_) => assert!(tokio::time::Instant::now() < deadline, "the 1 s registration token never expired"),
            Err(status) => break status,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(expired.code(), Code::Unauthenticated);
    assert!(expired.message().contains("expired at"), "{}", expired.message());

    // A forged token with a real token's id, and a made-up one, are both unknown.
    let forged = format!("{}{}", &twice[..twice.len() - 4], "0000");
    for bad in [forged.as_str(), "rivet-reg_nonsense", "guess"] {
        let refused = register(addr, bad, &[]).await.unwrap_err();
        assert_eq!((refused.code(), refused.message()), (Code::Unauthenticated, "invalid registration token"));
    }
    // The configured token has no limit.
    for _ in 0..3 {
        register(addr, REGISTRATION, &[]).await.expect("the configured token registers");
    }
    let too_long = pb::CreateRegistrationTokenRequest { expires_in_seconds: u64::MAX, ..Default::default() };
    let refused = api.runners.create_registration_token(too_long).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("ten years"), "{}", refused.message());
}
both_backends!(registration_tokens_expire_and_run_out_of_uses, token_limits);

async fn ungranted_labels(backend: Backend) {
    let cluster = closed_cluster(backend).await;
    let mut api = cluster.api(0).await;
    let addr = cluster.addr(0);
    let token = create_token(&mut api, &[("pool", "ci")], 0, 0).await;
    let response = register(addr, &token, &[("os", "linux"), ("pool", "secure")]).await.unwrap();
    let granted: Vec<(String, String)> = {
        let mut labels: Vec<_> = response.labels.into_iter().collect();
        labels.sort();
        labels
    };
    assert_eq!(granted, [("os".to_owned(), "linux".to_owned()), ("pool".to_owned(), "ci".to_owned())]);
    let runner = Registered { id: response.runner_id.parse().unwrap(), credential: response.credential };
    for labels in [&[("pool", "secure")][..], &[("pool", "ci"), ("gpu", "true")][..]] {
        let refused =
            FakeRunner::connect_as(addr, runner.id, 1, labels, Vec::new(), Some(&runner.credential)).await.err();
        let refused = refused.expect("labels not granted are refused");
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert!(refused.message().contains("was not granted to runner"), "{}", refused.message());
    }
    // The granted labels, or fewer, are fine.
    connect(&cluster, &runner, &[("pool", "ci")]).await;
    connect(&cluster, &runner, &[("pool", "ci"), ("os", "linux")]).await;
}
both_backends!(labels_a_registration_did_not_grant_are_refused, ungranted_labels);

async fn revocation(backend: Backend) {
    let cluster = closed_cluster(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("revoked", &[])).await;
    let runner = registered(&cluster, &[]).await;
    let mut stream = connect(&cluster, &runner, &[]).await;
    let job = api.launch("revoked", &[("image", "app")]).await.unwrap();
    let assign = stream.assignment().await;
    stream.accept(&assign).await;
    api.wait_for(&job.id, pb::JobState::Running).await;

    let response = api
        .runners
        .revoke_runner(pb::RevokeRunnerRequest { runner_id: runner.id.to_string() })
        .await
        .expect("revoked")
        .into_inner();
    assert_eq!(response.requeued_job_ids, std::slice::from_ref(&job.id));
    stream.closed().await;
    let requeued = api.job(&job.id).await;
    assert_eq!((requeued.state(), requeued.attempt), (pb::JobState::Queued, 2));
    assert!(requeued.message.contains("was revoked"), "{}", requeued.message);
    let refused = FakeRunner::connect_as(cluster.addr(0), runner.id, 1, &[], Vec::new(), Some(&runner.credential))
        .await
        .err()
        .expect("a revoked credential is refused");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("was revoked"), "{}", refused.message());
    assert_eq!(runner_row(&mut api, runner.id).await.state(), pb::RunnerState::Revoked);

    // Another runner takes the job over.
    let other = registered(&cluster, &[]).await;
    let mut other_stream = connect(&cluster, &other, &[]).await;
    let next = other_stream.assignment().await;
    assert_eq!(next.assignment.as_ref().map(|a| (a.job_id.clone(), a.attempt)), Some((job.id.clone(), 2)));

    let unknown = api.runners.revoke_runner(pb::RevokeRunnerRequest { runner_id: Uuid::new_v4().to_string() }).await;
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
}
both_backends!(revoking_a_runner_ends_its_session_and_requeues_its_job, revocation);

async fn replacement(backend: Backend) {
    let cluster = closed_cluster(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("twice", &[])).await;
    let runner = registered(&cluster, &[]).await;
    let mut first = connect(&cluster, &runner, &[]).await;
    let job = api.launch("twice", &[("image", "app")]).await.unwrap();
    let assign = first.assignment().await;
    first.accept(&assign).await;
    first.log(&assign, 1..=2).await;
    first.acked(&assign, 2).await;

    // The same runner connects again (its old connection looks alive): the old session
    // is fenced before the new one takes over, and the new one keeps the job.
    let running = vec![pb::RunningJob { assignment: assign.assignment.clone(), last_sequence: 2 }];
    let second =
        FakeRunner::connect_as(cluster.addr(0), runner.id, 1, &[], running, Some(&runner.credential)).await.unwrap();
    assert!(second.welcome.abandon.is_empty());
    assert_eq!(second.welcome.acks.iter().map(|ack| ack.sequence).collect::<Vec<_>>(), [2]);
    first.closed().await;
    second.log(&assign, 3..=4).await;
    second.finish(&assign, pb::JobState::Succeeded, 4).await;
    let done = api.wait_for(&job.id, pb::JobState::Succeeded).await;
    assert_eq!(done.attempt, 1);
    assert_eq!(api.follow(&job.id, 0).await.len(), 4);
}
both_backends!(a_second_connection_of_a_runner_replaces_the_first_after_fencing_it, replacement);

fn agent_config(cluster: &Cluster, state: &std::path::Path, registration_token: Option<&str>) -> AgentConfig {
    AgentConfig {
        orchestrator_url: format!("http://{}", cluster.addr(0)),
        registration_token: registration_token.map(str::to_owned),
        capacity: 1,
        state_dir: state.to_owned(),
        reconnect_min_ms: 50,
        reconnect_max_ms: 400,
        ..AgentConfig::default()
    }
}

async fn real_agent(backend: Backend) {
    let cluster = closed_cluster(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("agent", &[])).await;
    let state = tempfile::tempdir().unwrap();
    let runner = Arc::new(ScriptedRunner { lines: 5, pause: Duration::from_millis(10) });

    // First start: registers with the token and stores its credential.
    let agent = Agent::new(agent_config(&cluster, state.path(), Some(REGISTRATION)), runner.clone()).unwrap();
    assert!(agent.credential().is_none());
    let stop = Stop::default();
    let task = tokio::spawn(agent.run(stop.clone()));
    let job = api.launch("agent", &[("image", "x")]).await.unwrap();
    api.wait_for(&job.id, pb::JobState::Succeeded).await;
    stop.drain.cancel();
    tokio::time::timeout(PATIENCE, task).await.expect("the agent stops").unwrap().expect("it ran cleanly");
    let file = state.path().join("credential.json");
    let mode = std::fs::metadata(&file).expect("the credential is stored").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let credential: Credential = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(credential.credential.starts_with("rivet-runner_"));
    let row = runner_row(&mut api, credential.runner_id).await;
    assert!(row.registered);
    assert_eq!(row.labels.get("os").map(String::as_str), Some(std::env::consts::OS));

    // Second start, without the registration token: it connects with its credential.
    let agent = Agent::new(agent_config(&cluster, state.path(), None), runner.clone()).unwrap();
    assert_eq!(agent.runner_id(), credential.runner_id);
    let stop = Stop::default();
    let task = tokio::spawn(agent.run(stop.clone()));
    let job = api.launch("agent", &[("image", "x")]).await.unwrap();
    api.wait_for(&job.id, pb::JobState::Succeeded).await;
    let runners = api.runners.list_runners(pb::ListRunnersRequest { include_offline: true }).await.unwrap();
    assert_eq!(runners.into_inner().runners.len(), 1, "the same runner came back");

    // Revoked: the agent stops with an error naming its credential file.
    api.runners.revoke_runner(pb::RevokeRunnerRequest { runner_id: credential.runner_id.to_string() }).await.unwrap();
    let ended = tokio::time::timeout(PATIENCE, task).await.expect("a revoked agent stops").unwrap();
    let Err(err @ AgentError::CredentialRefused { .. }) = ended else {
        panic!("expected a refused credential: {ended:?}")
    };
    let message = err.to_string();
    assert!(message.contains("credential.json") && message.contains("was revoked"), "{message}");
}
both_backends!(the_real_agent_registers_stores_its_credential_and_reconnects_with_it, real_agent);

/// Across replicas (PostgreSQL + Redis): a new connection on another replica fences the
/// old session, and a revoke on one replica ends the session held by another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_and_revocation_reach_other_replicas() {
    let cluster =
        Cluster::with(Backend::Postgres, 2, |config| config.auth.registration_tokens = vec![REGISTRATION.to_owned()])
            .await;
    let runner = registered(&cluster, &[]).await;
    let connect_to = |replica: usize| {
        FakeRunner::connect_as(cluster.addr(replica), runner.id, 1, &[], Vec::new(), Some(&runner.credential))
    };
    let mut first = connect_to(0).await.expect("connects to replica 0");
    let mut second = connect_to(1).await.expect("connects to replica 1");
    first.closed().await;

    let mut api = cluster.api(0).await;
    api.runners.revoke_runner(pb::RevokeRunnerRequest { runner_id: runner.id.to_string() }).await.expect("revoked");
    second.closed().await;
    assert_eq!(connect_to(1).await.err().map(|status| status.code()), Some(Code::Unauthenticated));
}
