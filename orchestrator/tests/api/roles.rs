//! Users and roles over real gRPC: every RPC with the role it needs, refused below it with
//! `PERMISSION_DENIED` and without a valid token with `UNAUTHENTICATED`; tokens created,
//! listed and revoked through `TokenService`, stored only as hashes. Secrets: admins set
//! and delete, operators list.

use std::time::Duration;

use rivet_orchestrator::api::roles::{Need, ROLE_TABLE};
use rivet_orchestrator::domain::tokens::{Role, TokenDigest};
use rivet_orchestrator::storage::SeaStore;
use rivet_proto::v1 as pb;
use rivet_proto::v1::plugin_service_client::PluginServiceClient;
use rivet_proto::v1::schedule_service_client::ScheduleServiceClient;
use rivet_proto::v1::secret_service_client::SecretServiceClient;
use rivet_proto::v1::token_service_client::TokenServiceClient;
use rivet_proto::v1::trigger_service_client::TriggerServiceClient;
use sea_orm::{ConnectionTrait, Statement};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::both_backends;
use crate::support::{Api, Backend, Cluster, FakeRunner, PATIENCE, channel, pipeline_source};

/// The bootstrap token every test cluster here is configured with.
const BOOTSTRAP: &str = "bootstrap-admin-token";

/// Every user-facing RPC. Connect and RegisterRunner are not here: they need a runner
/// credential or a registration token, not a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    CreatePipeline,
    ValidatePipeline,
    GetPipeline,
    ListPipelines,
    DeletePipeline,
    PublishPlugin,
    GetPlugin,
    ListPlugins,
    LaunchJob,
    GetJob,
    ListJobs,
    CancelJob,
    RerunJob,
    WatchJob,
    StreamLogs,
    ListRunners,
    CreateRegistrationToken,
    RevokeRunner,
    CreateToken,
    ListTokens,
    RevokeToken,
    SetSecret,
    ListSecrets,
    DeleteSecret,
    CreateSchedule,
    GetSchedule,
    ListSchedules,
    DeleteSchedule,
    PauseSchedule,
    ResumeSchedule,
    CreateTrigger,
    GetTrigger,
    ListTriggers,
    DeleteTrigger,
}

/// THE specification: each RPC with the role it needs. The guard's table must agree.
const EXPECTED: &[(Rpc, &str, Role)] = &[
    (Rpc::CreatePipeline, "/rivet.v1.PipelineService/CreatePipeline", Role::Admin),
    (Rpc::ValidatePipeline, "/rivet.v1.PipelineService/ValidatePipeline", Role::Viewer),
    (Rpc::GetPipeline, "/rivet.v1.PipelineService/GetPipeline", Role::Viewer),
    (Rpc::ListPipelines, "/rivet.v1.PipelineService/ListPipelines", Role::Viewer),
    (Rpc::DeletePipeline, "/rivet.v1.PipelineService/DeletePipeline", Role::Admin),
    (Rpc::PublishPlugin, "/rivet.v1.PluginService/PublishPlugin", Role::Admin),
    (Rpc::GetPlugin, "/rivet.v1.PluginService/GetPlugin", Role::Viewer),
    (Rpc::ListPlugins, "/rivet.v1.PluginService/ListPlugins", Role::Viewer),
    (Rpc::LaunchJob, "/rivet.v1.JobService/LaunchJob", Role::Operator),
    (Rpc::GetJob, "/rivet.v1.JobService/GetJob", Role::Viewer),
    (Rpc::ListJobs, "/rivet.v1.JobService/ListJobs", Role::Viewer),
    (Rpc::CancelJob, "/rivet.v1.JobService/CancelJob", Role::Operator),
    (Rpc::RerunJob, "/rivet.v1.JobService/RerunJob", Role::Operator),
    (Rpc::WatchJob, "/rivet.v1.JobService/WatchJob", Role::Viewer),
    (Rpc::StreamLogs, "/rivet.v1.LogService/StreamLogs", Role::Viewer),
    (Rpc::ListRunners, "/rivet.v1.RunnerService/ListRunners", Role::Viewer),
    (Rpc::CreateRegistrationToken, "/rivet.v1.RunnerService/CreateRegistrationToken", Role::Admin),
    (Rpc::RevokeRunner, "/rivet.v1.RunnerService/RevokeRunner", Role::Admin),
    (Rpc::CreateToken, "/rivet.v1.TokenService/CreateToken", Role::Admin),
    (Rpc::ListTokens, "/rivet.v1.TokenService/ListTokens", Role::Admin),
    (Rpc::RevokeToken, "/rivet.v1.TokenService/RevokeToken", Role::Admin),
    (Rpc::SetSecret, "/rivet.v1.SecretService/SetSecret", Role::Admin),
    (Rpc::ListSecrets, "/rivet.v1.SecretService/ListSecrets", Role::Operator),
    (Rpc::DeleteSecret, "/rivet.v1.SecretService/DeleteSecret", Role::Admin),
    (Rpc::CreateSchedule, "/rivet.v1.ScheduleService/CreateSchedule", Role::Operator),
    (Rpc::GetSchedule, "/rivet.v1.ScheduleService/GetSchedule", Role::Viewer),
    (Rpc::ListSchedules, "/rivet.v1.ScheduleService/ListSchedules", Role::Viewer),
    (Rpc::DeleteSchedule, "/rivet.v1.ScheduleService/DeleteSchedule", Role::Operator),
    (Rpc::PauseSchedule, "/rivet.v1.ScheduleService/PauseSchedule", Role::Operator),
    (Rpc::ResumeSchedule, "/rivet.v1.ScheduleService/ResumeSchedule", Role::Operator),
    (Rpc::CreateTrigger, "/rivet.v1.TriggerService/CreateTrigger", Role::Admin),
    (Rpc::GetTrigger, "/rivet.v1.TriggerService/GetTrigger", Role::Viewer),
    (Rpc::ListTriggers, "/rivet.v1.TriggerService/ListTriggers", Role::Viewer),
    (Rpc::DeleteTrigger, "/rivet.v1.TriggerService/DeleteTrigger", Role::Admin),
];

/// `message` with `authorization: Bearer <token>` when a token is given.
fn call<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ASCII token"));
    }
    request
}

/// Clients, and what the calls need to exist.
struct Bench {
    api: Api,
    tokens: TokenServiceClient<Channel>,
    plugins: PluginServiceClient<Channel>,
    secrets: SecretServiceClient<Channel>,
    schedules: ScheduleServiceClient<Channel>,
    triggers: TriggerServiceClient<Channel>,
    /// A trigger GetTrigger must find.
    trigger: String,
    job: String,
    /// A schedule that the schedule calls read, pause and resume.
    schedule: String,
    /// A registered runner that ListRunners must list.
    runner: Registered,
}

/// A runner registered through the API, and the runner secrets that made it.
struct Registered {
    /// The one-use registration token it registered with.
    registration: String,
    id: String,
    /// The credential its stream presents.
    credential: String,
}

impl Bench {
    async fn new(cluster: &Cluster) -> Bench {
        let mut api = cluster.api(0).await;
        let tokens = TokenServiceClient::new(channel(cluster.addr(0)).await);
        let secrets = SecretServiceClient::new(channel(cluster.addr(0)).await);
        let created = api
            .pipelines
            .create_pipeline(call(create_request("roles"), Some(BOOTSTRAP)))
            .await
            .expect("the bootstrap token creates pipelines");
        let pipeline = created.into_inner().pipeline.expect("pipeline");
        let job = launch(&mut api, &pipeline.name, Some(BOOTSTRAP)).await.expect("the bootstrap token launches");
        let mut plugins = PluginServiceClient::new(channel(cluster.addr(0)).await);
        plugins.publish_plugin(call(plugin_request(), Some(BOOTSTRAP))).await.expect("the bootstrap token publishes");
        let runner = register_runner(&mut api).await;
        let mut schedules = ScheduleServiceClient::new(channel(cluster.addr(0)).await);
        let schedule = create_schedule(&mut schedules, Some(BOOTSTRAP)).await.expect("the bootstrap token schedules");
        let mut triggers = TriggerServiceClient::new(channel(cluster.addr(0)).await);
        let created = triggers.create_trigger(call(trigger_request(), Some(BOOTSTRAP))).await;
        let trigger = created.expect("the bootstrap token creates triggers").into_inner().trigger.expect("trigger").id;
        Bench { api, tokens, plugins, secrets, schedules, job, schedule, triggers, trigger, runner }
    }

    /// Creates a token with `role` (as the bootstrap admin) and returns it.
    async fn token(&mut self, role: pb::Role, ttl: Option<Duration>) -> (pb::ApiToken, String) {
        let request = pb::CreateTokenRequest {
            role: role as i32,
            name: format!("{role:?}").to_lowercase(),
            ttl: ttl.map(|ttl| prost_types::Duration::try_from(ttl).expect("ttl")),
        };
        let created = self.tokens.create_token(call(request, Some(BOOTSTRAP))).await.expect("create token");
        let created = created.into_inner();
        (created.token.expect("token"), created.secret)
    }

    /// Makes the call `rpc` with `token`. Calls that consume something (delete, cancel,
    /// revoke) get a fresh one made by the bootstrap admin first, so each allowed call can
    /// succeed.
    async fn call(&mut self, rpc: Rpc, token: Option<&str>) -> Result<(), Status> {
        let api = &mut self.api;
        match rpc {
            Rpc::CreatePipeline => api.pipelines.create_pipeline(call(create_request("roles"), token)).await.map(drop),
            Rpc::ValidatePipeline => {
                let request = pb::ValidatePipelineRequest {
                    source: pipeline_source("roles", &[]),
                    file_name: "roles.lua".into(),
                };
                api.pipelines.validate_pipeline(call(request, token)).await.map(drop)
            }
            Rpc::GetPipeline => {
                let request = pb::GetPipelineRequest { pipeline: "roles".into(), version: 0 };
                api.pipelines.get_pipeline(call(request, token)).await.map(drop)
            }
            Rpc::ListPipelines => {
                api.pipelines.list_pipelines(call(pb::ListPipelinesRequest::default(), token)).await.map(drop)
            }
            Rpc::DeletePipeline => {
                api.pipelines
                    .create_pipeline(call(create_request("doomed"), Some(BOOTSTRAP)))
                    .await
                    .expect("create a pipeline to delete");
                let request = pb::DeletePipelineRequest { pipeline: "doomed".into() };
                api.pipelines.delete_pipeline(call(request, token)).await.map(drop)
            }
            Rpc::PublishPlugin => self.plugins.publish_plugin(call(plugin_request(), token)).await.map(drop),
            Rpc::GetPlugin => {
                let request = pb::GetPluginRequest { name: "roles".into(), version: String::new() };
                self.plugins.get_plugin(call(request, token)).await.map(drop)
            }
            Rpc::ListPlugins => {
                self.plugins.list_plugins(call(pb::ListPluginsRequest::default(), token)).await.map(drop)
            }
            Rpc::LaunchJob => launch(api, "roles", token).await.map(drop),
            Rpc::GetJob => {
                api.jobs.get_job(call(pb::GetJobRequest { job_id: self.job.clone() }, token)).await.map(drop)
            }
            Rpc::ListJobs => api.jobs.list_jobs(call(pb::ListJobsRequest::default(), token)).await.map(drop),
            Rpc::CancelJob => {
                let job = launch(api, "roles", Some(BOOTSTRAP)).await.expect("launch a job to cancel");
                api.jobs.cancel_job(call(pb::CancelJobRequest { job_id: job }, token)).await.map(drop)
            }
            Rpc::RerunJob => {
                api.jobs.rerun_job(call(pb::RerunJobRequest { job_id: self.job.clone() }, token)).await.map(drop)
            }
            Rpc::WatchJob => {
                let request = pb::WatchJobRequest { job_id: self.job.clone() };
                let mut stream = api.jobs.watch_job(call(request, token)).await?.into_inner();
                let first = stream.message().await?.expect("the job's current state");
                assert_eq!(first.job.expect("job").id, self.job);
                Ok(())
            }
            Rpc::StreamLogs => {
                let request = pb::StreamLogsRequest { job_id: self.job.clone(), from_sequence: 0, follow: false };
                let mut stream = api.logs.stream_logs(call(request, token)).await?.into_inner();
                while stream.message().await?.is_some() {}
                Ok(())
            }
            Rpc::ListRunners => {
                let request = pb::ListRunnersRequest { include_offline: true };
                let runners = api.runners.list_runners(call(request, token)).await?.into_inner().runners;
                let listed = runners.iter().find(|runner| runner.id == self.runner.id);
                assert!(listed.is_some_and(|runner| runner.registered), "the registered runner is listed: {runners:?}");
                Ok(())
            }
            Rpc::CreateRegistrationToken => {
                let request = pb::CreateRegistrationTokenRequest { uses: 1, ..Default::default() };
                api.runners.create_registration_token(call(request, token)).await.map(drop)
            }
            Rpc::RevokeRunner => {
                let runner_id = register_runner(&mut self.api).await.id;
                let request = pb::RevokeRunnerRequest { runner_id };
                self.api.runners.revoke_runner(call(request, token)).await.map(drop)
            }
            Rpc::CreateToken => {
                let request = pb::CreateTokenRequest { role: pb::Role::Viewer as i32, name: "made".into(), ttl: None };
                self.tokens.create_token(call(request, token)).await.map(drop)
            }
            Rpc::ListTokens => self.tokens.list_tokens(call(pb::ListTokensRequest {}, token)).await.map(drop),
            Rpc::RevokeToken => {
                let (victim, _) = self.token(pb::Role::Viewer, None).await;
                let request = pb::RevokeTokenRequest { token_id: victim.id };
                self.tokens.revoke_token(call(request, token)).await.map(drop)
            }
            Rpc::SetSecret => {
                let request =
                    pb::SetSecretRequest { name: "ROLES".into(), pipeline: String::new(), value: "roles-value".into() };
                self.secrets.set_secret(call(request, token)).await.map(drop)
            }
            Rpc::ListSecrets => {
                self.secrets.list_secrets(call(pb::ListSecretsRequest::default(), token)).await.map(drop)
            }
            Rpc::DeleteSecret => {
                let set =
                    pb::SetSecretRequest { name: "DOOMED".into(), pipeline: "p".into(), value: "doomed-value".into() };
                self.secrets.set_secret(call(set, Some(BOOTSTRAP))).await.expect("set a secret to delete");
                let request = pb::DeleteSecretRequest { name: "DOOMED".into(), pipeline: "p".into() };
                self.secrets.delete_secret(call(request, token)).await.map(drop)
            }
            Rpc::CreateSchedule => create_schedule(&mut self.schedules, token).await.map(drop),
            Rpc::GetSchedule => {
                let request = pb::GetScheduleRequest { schedule_id: self.schedule.clone() };
                self.schedules.get_schedule(call(request, token)).await.map(drop)
            }
            Rpc::ListSchedules => {
                self.schedules.list_schedules(call(pb::ListSchedulesRequest::default(), token)).await.map(drop)
            }
            Rpc::DeleteSchedule => {
                let doomed = create_schedule(&mut self.schedules, Some(BOOTSTRAP)).await.expect("a schedule to delete");
                let request = pb::DeleteScheduleRequest { schedule_id: doomed };
                self.schedules.delete_schedule(call(request, token)).await.map(drop)
            }
            Rpc::PauseSchedule => {
                let request = pb::PauseScheduleRequest { schedule_id: self.schedule.clone() };
                self.schedules.pause_schedule(call(request, token)).await.map(drop)
            }
            Rpc::ResumeSchedule => {
                let request = pb::ResumeScheduleRequest { schedule_id: self.schedule.clone() };
                self.schedules.resume_schedule(call(request, token)).await.map(drop)
            }
            Rpc::CreateTrigger => self.triggers.create_trigger(call(trigger_request(), token)).await.map(drop),
            Rpc::GetTrigger => {
                let request = pb::GetTriggerRequest { trigger_id: self.trigger.clone() };
                self.triggers.get_trigger(call(request, token)).await.map(drop)
            }
            Rpc::ListTriggers => self.triggers.list_triggers(call(pb::ListTriggersRequest {}, token)).await.map(drop),
            Rpc::DeleteTrigger => {
                let created = self.triggers.create_trigger(call(trigger_request(), Some(BOOTSTRAP))).await;
                let doomed = created.expect("create a trigger to delete").into_inner().trigger.expect("trigger").id;
                let request = pb::DeleteTriggerRequest { trigger_id: doomed };
                self.triggers.delete_trigger(call(request, token)).await.map(drop)
            }
        }
    }
}

/// Creates a daily schedule of the `roles` pipeline; returns its id.
async fn create_schedule(client: &mut ScheduleServiceClient<Channel>, token: Option<&str>) -> Result<String, Status> {
    let request = pb::CreateScheduleRequest {
        pipeline: "roles".into(),
        cron: "@daily".into(),
        inputs: [("image".to_owned(), "alpine".to_owned())].into_iter().collect(),
        ..Default::default()
    };
    let created = client.create_schedule(call(request, token)).await?.into_inner();
    Ok(created.schedule.expect("schedule").id)
}

/// A trigger of the bench's pipeline.
fn trigger_request() -> pb::CreateTriggerRequest {
    pb::CreateTriggerRequest {
        pipeline: "roles".into(),
        forge: "github".into(),
        repository: "acme/roles".into(),
        ..Default::default()
    }
}

/// Publishing the same version with the same content again succeeds, so every allowed call
/// can.
fn plugin_request() -> pb::PublishPluginRequest {
    pb::PublishPluginRequest { name: "roles".into(), version: "1.0.0".into(), source: "return {}".into() }
}

/// Registers a runner with a one-use registration token the bootstrap admin creates.
async fn register_runner(api: &mut Api) -> Registered {
    let request = pb::CreateRegistrationTokenRequest { uses: 1, ..Default::default() };
    let created = api.runners.create_registration_token(call(request, Some(BOOTSTRAP))).await;
    let registration = created.expect("the bootstrap token creates registration tokens").into_inner().token;
    let request = pb::RegisterRunnerRequest { name: "victim".into(), ..Default::default() };
    let registered = api.runners.register_runner(call(request, Some(&registration))).await;
    let registered = registered.expect("the registration token registers a runner").into_inner();
    Registered { registration, id: registered.runner_id, credential: registered.credential }
}

fn create_request(name: &str) -> pb::CreatePipelineRequest {
    pb::CreatePipelineRequest { source: pipeline_source(name, &[]), file_name: format!("{name}.lua") }
}

async fn launch(api: &mut Api, pipeline: &str, token: Option<&str>) -> Result<String, Status> {
    let request = pb::LaunchJobRequest {
        pipeline: pipeline.to_owned(),
        inputs: [("image".to_owned(), "alpine".to_owned())].into(),
        idempotency_key: String::new(),
    };
    let job = api.jobs.launch_job(call(request, token)).await?.into_inner().job.expect("job");
    Ok(job.id)
}

fn expect_code(result: Result<(), Status>, code: Code, what: &str) -> Status {
    match result {
        Ok(()) => panic!("{what}: expected {code:?}, the call succeeded"),
        Err(status) => {
            assert_eq!(status.code(), code, "{what}: {status:?}");
            status
        }
    }
}

/// The guard's table and this test's table name the same role for every user RPC, and
/// every other entry is the runner stream, health or reflection.
#[test]
fn the_role_table_is_the_one_this_test_checks() {
    for (rpc, path, role) in EXPECTED {
        let entry = ROLE_TABLE.iter().find(|(method, _)| method == path);
        assert_eq!(entry.map(|(_, need)| *need), Some(Need::Role(*role)), "{rpc:?} ({path})");
    }
    for (method, need) in ROLE_TABLE {
        if let Need::Role(_) = need {
            assert!(EXPECTED.iter().any(|(_, path, _)| path == method), "{method} is not tested here");
        } else {
            let runner = ["/rivet.v1.RunnerService/Connect", "/rivet.v1.RunnerService/RegisterRunner"];
            let runner_or_public = method.starts_with("/grpc.") || runner.contains(method);
            assert!(
                runner_or_public,
                "{method} needs no role: only health, reflection, Connect and RegisterRunner may"
            );
        }
    }
}

async fn every_rpc_needs_its_role(backend: Backend) {
    let cluster = Cluster::with(backend, 1, |c| c.auth.api_tokens = vec![BOOTSTRAP.into()]).await;
    let mut bench = Bench::new(&cluster).await;
    let (_, viewer) = bench.token(pb::Role::Viewer, None).await;
    let (_, operator) = bench.token(pb::Role::Operator, None).await;
    let (_, admin) = bench.token(pb::Role::Admin, None).await;
    let (revoked_token, revoked) = bench.token(pb::Role::Admin, None).await;
    let revoke = pb::RevokeTokenRequest { token_id: revoked_token.id.clone() };
    bench.tokens.revoke_token(call(revoke, Some(&admin))).await.expect("an admin token revokes");
    let (expiring_token, expired) = bench.token(pb::Role::Admin, Some(Duration::from_secs(1))).await;
    // An id that exists with a secret that does not.
    let forged = format!("{}{}", &admin[..admin.len() - 4], if admin.ends_with("0000") { "1111" } else { "0000" });

    // Wait (by asking, not by sleeping a guessed time) until the short-lived token expired.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match bench.call(Rpc::ListPipelines, Some(&expired)).await {
            Ok(()) => assert!(tokio::time::Instant::now() < deadline, "the 1 s token never expired"),
            Err(status) => {
                assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
                let expected = format!("API token {} expired at", expiring_token.id);
                assert!(status.message().contains(&expected), "{}", status.message());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A runner's secrets are not API tokens: its credential (valid on its stream) and the
    // registration token it registered with are refused on every user RPC.
    let (credential, registration) = (bench.runner.credential.clone(), bench.runner.registration.clone());

    let by_role = [(Role::Viewer, viewer.as_str()), (Role::Operator, operator.as_str()), (Role::Admin, admin.as_str())];
    for (rpc, path, needed) in EXPECTED {
        let refused = [
            (None, "missing `authorization: Bearer <token>` metadata"),
            (Some("not-a-token"), "invalid API token"),
            (Some(forged.as_str()), "invalid API token"),
            (Some(revoked.as_str()), "was revoked at"),
            (Some(expired.as_str()), "expired at"),
            (Some(credential.as_str()), "invalid API token"),
            (Some(registration.as_str()), "invalid API token"),
        ];
        for (token, message) in refused {
            let status =
                expect_code(bench.call(*rpc, token).await, Code::Unauthenticated, &format!("{path} {token:?}"));
            assert!(status.message().contains(message), "{path}: {}", status.message());
        }
        for (role, token) in by_role {
            let result = bench.call(*rpc, Some(token)).await;
            if role < *needed {
                let status = expect_code(result, Code::PermissionDenied, &format!("{path} as {role}"));
                let expected = format!("{path} needs the {needed} role; API token ");
                assert!(status.message().starts_with(&expected), "{}", status.message());
                assert!(status.message().ends_with(&format!("has the {role} role")), "{}", status.message());
            } else {
                result.unwrap_or_else(|status| panic!("{path} as {role} must succeed: {status:?}"));
            }
        }
        bench.call(*rpc, Some(BOOTSTRAP)).await.unwrap_or_else(|status| panic!("{path} as bootstrap: {status:?}"));
    }
    // The credential refused above is a valid one: it opens the runner's stream.
    let id = bench.runner.id.parse().expect("a runner id");
    FakeRunner::connect_as(cluster.addr(0), id, 1, &[], Vec::new(), Some(&credential))
        .await
        .expect("the runner's credential opens its stream");
}
both_backends!(every_rpc_needs_its_role_and_a_valid_token, every_rpc_needs_its_role);

/// Methods outside the table are refused whoever calls, even the bootstrap admin;
/// health and reflection answer without a token on a closed server.
#[tokio::test]
async fn unlisted_methods_are_refused_and_health_stays_public() {
    let cluster = Cluster::with(Backend::Sqlite, 1, |c| c.auth.api_tokens = vec![BOOTSTRAP.into()]).await;
    let channel = channel(cluster.addr(0)).await;
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/rivet.v1.JobService/DropAllJobs");
    let codec: tonic_prost::ProstCodec<pb::ListJobsRequest, pb::ListJobsResponse> = tonic_prost::ProstCodec::default();
    let refused = grpc.unary(call(pb::ListJobsRequest::default(), Some(BOOTSTRAP)), path, codec).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(refused.message(), "/rivet.v1.JobService/DropAllJobs has no entry in the role table, so it is refused");

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest { service: "rivet.v1.TokenService".into() })
        .await
        .expect("health needs no token")
        .into_inner();
    assert_eq!(serving.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
}

/// With no bootstrap token, the API is open until the first token is created; from then
/// on it is closed on every replica, and revoking that token does not reopen it.
async fn the_first_token_closes_an_open_api(backend: Backend) {
    let cluster = Cluster::with(backend, 2, |_| {}).await;
    let last = cluster.addrs.len() - 1;
    let mut first = cluster.api(0).await;
    let mut other = cluster.api(last).await;
    let mut tokens = TokenServiceClient::new(channel(cluster.addr(0)).await);
    other.pipelines.list_pipelines(pb::ListPipelinesRequest::default()).await.expect("open while no token exists");

    let request = pb::CreateTokenRequest { role: pb::Role::Admin as i32, name: "first".into(), ttl: None };
    let created = tokens.create_token(call(request, None)).await.expect("an open API lets anyone create a token");
    let created = created.into_inner();
    let token = created.token.expect("token");
    assert!(created.secret.starts_with("rivet_"), "{}", created.secret);

    for api in [&mut first, &mut other] {
        let status = api.pipelines.list_pipelines(pb::ListPipelinesRequest::default()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        api.pipelines
            .list_pipelines(call(pb::ListPipelinesRequest::default(), Some(&created.secret)))
            .await
            .expect("the token works on every replica");
    }
    let revoke = pb::RevokeTokenRequest { token_id: token.id.clone() };
    let revoked = tokens.revoke_token(call(revoke, Some(&created.secret))).await.expect("revoke").into_inner();
    assert!(revoked.token.expect("token").revoke_time.is_some());
    let status = other.pipelines.list_pipelines(pb::ListPipelinesRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "revoking the last token must not reopen the API");
    let status = first.pipelines.list_pipelines(call(pb::ListPipelinesRequest::default(), Some(&created.secret))).await;
    assert!(status.unwrap_err().message().contains("was revoked at"));
}
both_backends!(the_first_token_closes_an_open_api, the_first_token_closes_an_open_api);

/// Tokens are listed without secrets, with their last use; the table holds only hashes;
/// bad requests are refused field by field.
async fn tokens_are_stored_hashed_and_listed_without_secrets(backend: Backend) {
    let cluster = Cluster::with(backend, 1, |c| c.auth.api_tokens = vec![BOOTSTRAP.into()]).await;
    let mut tokens = TokenServiceClient::new(channel(cluster.addr(0)).await);
    let mut api = cluster.api(0).await;
    let mut secrets = Vec::new();
    for (role, name) in [(pb::Role::Viewer, "dashboard"), (pb::Role::Operator, "ci"), (pb::Role::Admin, "")] {
        let ttl = (role == pb::Role::Operator).then_some(prost_types::Duration { seconds: 3600, nanos: 0 });
        let request = pb::CreateTokenRequest { role: role as i32, name: name.into(), ttl };
        let created = tokens.create_token(call(request, Some(BOOTSTRAP))).await.expect("create").into_inner();
        let token = created.token.expect("token");
        assert_eq!((token.role, token.name.as_str()), (role as i32, name));
        assert_eq!(token.expire_time.is_some(), role == pb::Role::Operator);
        assert!(token.last_use_time.is_none());
        secrets.push((token.id, created.secret));
    }
    api.pipelines
        .list_pipelines(call(pb::ListPipelinesRequest::default(), Some(&secrets[0].1)))
        .await
        .expect("the viewer token reads");

    let listed = tokens.list_tokens(call(pb::ListTokensRequest {}, Some(BOOTSTRAP))).await.expect("list").into_inner();
    let ids: Vec<&str> = listed.tokens.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, secrets.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), "oldest first");
    assert!(listed.tokens[0].last_use_time.is_some(), "the viewer token's use is recorded");
    assert!(listed.tokens[1].last_use_time.is_none(), "the operator token was never used");
    let operator = &listed.tokens[1];
    let lifetime = operator.expire_time.expect("expiry").seconds - operator.create_time.expect("created").seconds;
    assert_eq!(lifetime, 3600);

    // Read the table raw: hashes only.
    let store = SeaStore::connect(cluster.database_url()).await.expect("store");
    let db = store.connection();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT name, role, secret_sha256 FROM api_tokens",
        ))
        .await
        .expect("read api_tokens");
    assert_eq!(rows.len(), secrets.len());
    let mut hashes = Vec::new();
    for row in rows {
        for column in ["name", "role", "secret_sha256"] {
            let value: String = row.try_get("", column).expect("text");
            for (_, secret) in &secrets {
                assert!(!value.contains(&secret[secret.len() - 64..]), "api_tokens.{column} holds a token's secret");
            }
        }
        hashes.push(row.try_get::<String>("", "secret_sha256").expect("secret_sha256"));
    }
    for (id, secret) in &secrets {
        assert!(hashes.contains(&TokenDigest::of(secret).to_hex()), "token {id} is stored as its SHA-256");
    }

    // Bad requests, each refused with the field and the limit.
    let cases = [
        (
            pb::CreateTokenRequest { role: 0, name: String::new(), ttl: None },
            "role: required: viewer, operator or admin",
        ),
        (
            pb::CreateTokenRequest { role: 1, name: "n".repeat(201), ttl: None },
            "name: 201 bytes exceed the 200-byte token name limit",
        ),
        (
            pb::CreateTokenRequest {
                role: 1,
                name: String::new(),
                ttl: Some(prost_types::Duration { seconds: 0, nanos: 0 }),
            },
            "ttl: must be positive",
        ),
        (
            pb::CreateTokenRequest {
                role: 1,
                name: String::new(),
                ttl: Some(prost_types::Duration { seconds: 3651 * 86_400, nanos: 0 }),
            },
            "ttl: exceeds the 3650-day token lifetime limit",
        ),
    ];
    for (request, message) in cases {
        let status = tokens.create_token(call(request, Some(BOOTSTRAP))).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), message);
    }
    // Revoking twice keeps the first revocation's time.
    let revoke = pb::RevokeTokenRequest { token_id: secrets[1].0.clone() };
    let first = tokens.revoke_token(call(revoke.clone(), Some(BOOTSTRAP))).await.expect("revoke").into_inner();
    let again = tokens.revoke_token(call(revoke, Some(BOOTSTRAP))).await.expect("revoke again").into_inner();
    let first_time = first.token.expect("token").revoke_time.expect("revoked");
    assert_eq!(again.token.expect("token").revoke_time, Some(first_time));

    let missing = pb::RevokeTokenRequest { token_id: uuid::Uuid::new_v4().to_string() };
    let status = tokens.revoke_token(call(missing.clone(), Some(BOOTSTRAP))).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), format!("API token `{}` not found", missing.token_id));
}
both_backends!(
    tokens_are_stored_hashed_and_listed_without_secrets,
    tokens_are_stored_hashed_and_listed_without_secrets
);
