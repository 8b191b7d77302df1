//! PipelineService, health, reflection, limits and authentication.

use rivet_proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::support::{Backend, Cluster, FakeRunner, pipeline_source, register};

async fn versions_and_listing(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    let first = api.create(&pipeline_source("build", &[])).await;
    assert_eq!(first.version, 1);
    let second = api.create(&pipeline_source("build", &[("os", "linux")])).await;
    assert_eq!(second.version, 2);
    api.create(&pipeline_source("deploy", &[])).await;

    // The old version stays readable, by id and by number; the name gives the latest.
    let old =
        api.pipelines.get_pipeline(pb::GetPipelineRequest { pipeline: first.id.clone(), version: 0 }).await.unwrap();
    assert_eq!(old.into_inner().pipeline.unwrap().version, 1);
    let by_number =
        api.pipelines.get_pipeline(pb::GetPipelineRequest { pipeline: "build".into(), version: 1 }).await.unwrap();
    assert_eq!(by_number.into_inner().pipeline.unwrap().id, first.id);
    let latest =
        api.pipelines.get_pipeline(pb::GetPipelineRequest { pipeline: "build".into(), version: 0 }).await.unwrap();
    let latest = latest.into_inner().pipeline.unwrap();
    assert_eq!(latest.version, 2);
    assert_eq!(latest.definition.unwrap().runner_tags[0].value, "linux");

    // Paginated listing, latest version per name.
    let page = api.pipelines.list_pipelines(pb::ListPipelinesRequest { page_size: 1, page_token: String::new() }).await;
    let page = page.unwrap().into_inner();
    assert_eq!(page.pipelines.len(), 1);
    assert_eq!(page.pipelines[0].name, "build");
    assert_eq!(page.pipelines[0].version, 2);
    let next = api
        .pipelines
        .list_pipelines(pb::ListPipelinesRequest { page_size: 1, page_token: page.next_page_token })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.pipelines[0].name, "deploy");
    assert!(next.next_page_token.is_empty());

    let deleted = api.pipelines.delete_pipeline(pb::DeletePipelineRequest { pipeline: "build".into() }).await.unwrap();
    assert_eq!(deleted.into_inner().deleted_versions, 2);
    let gone = api.pipelines.get_pipeline(pb::GetPipelineRequest { pipeline: "build".into(), version: 0 }).await;
    assert_eq!(gone.unwrap_err().code(), Code::NotFound);
}
both_backends!(pipeline_versions_and_listing, versions_and_listing);

async fn invalid_lua(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    let source = "return pipeline.define {\n  name = \"\",\n  stages = { { name = \"a b\", contianer = \"x\", script = function() end } },\n}";
    let request = pb::CreatePipelineRequest { source: source.into(), file_name: "ci/bad.lua".into() };
    let status = api.pipelines.create_pipeline(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let violations = status.get_details_bad_request().expect("bad request details").field_violations;
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert!(fields.contains(&"ci/bad.lua:2:name"), "{fields:?}");
    assert!(fields.contains(&"ci/bad.lua:3:stages[1].name"), "{fields:?}");
    assert!(fields.contains(&"ci/bad.lua:3:stages[1].contianer"), "{fields:?}");
    assert!(status.message().contains("did you mean `container`"), "{}", status.message());

    let syntax = api
        .pipelines
        .create_pipeline(pb::CreatePipelineRequest {
            source: "return pipeline.define {".into(),
            file_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(syntax.code(), Code::InvalidArgument);
    assert!(syntax.message().contains("pipeline.lua:1: syntax error"), "{}", syntax.message());

    // Validate reports without storing; nothing was half-written.
    let validated = api
        .pipelines
        .validate_pipeline(pb::ValidatePipelineRequest { source: source.into(), file_name: "x.lua".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!validated.valid);
    assert_eq!(validated.diagnostics.len(), 3);
    let list = api.pipelines.list_pipelines(pb::ListPipelinesRequest::default()).await.unwrap().into_inner();
    assert!(list.pipelines.is_empty());
}
both_backends!(invalid_lua_is_invalid_argument, invalid_lua);

#[tokio::test]
async fn unknown_pipeline_is_not_found() {
    let cluster = Cluster::start(Backend::Sqlite).await;
    let mut api = cluster.api(0).await;
    let status = api.launch("nope", &[]).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("pipeline `nope` not found"));
    let status =
        api.pipelines.get_pipeline(pb::GetPipelineRequest { pipeline: String::new(), version: 0 }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let cluster = Cluster::with(Backend::Sqlite, 1, |c| {
        c.max_message_bytes = 64 * 1024;
        c.max_pipeline_bytes = 16 * 1024;
    })
    .await;
    let mut api = cluster.api(0).await;
    let padding = "-- padding\n".repeat(10_000);
    let huge = format!("{padding}{}", pipeline_source("big", &[]));
    let status = api
        .pipelines
        .create_pipeline(pb::CreatePipelineRequest { source: huge, file_name: String::new() })
        .await
        .unwrap_err();
    assert!(matches!(status.code(), Code::ResourceExhausted | Code::OutOfRange), "{status:?}");
    let big = format!("{}{}", "-- pad\n".repeat(3_000), pipeline_source("big", &[]));
    let status = api
        .pipelines
        .create_pipeline(pb::CreatePipelineRequest { source: big, file_name: String::new() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("pipeline scripts may be at most 16384"), "{}", status.message());
    let list = api.pipelines.list_pipelines(pb::ListPipelinesRequest::default()).await.unwrap().into_inner();
    assert!(list.pipelines.is_empty(), "nothing may be stored");
}

#[tokio::test]
async fn calls_need_the_right_token() {
    let cluster = Cluster::with(Backend::Sqlite, 1, |c| {
        c.auth.api_tokens = vec!["api-secret".into()];
        c.auth.registration_tokens = vec!["runner-secret".into()];
    })
    .await;
    let mut api = cluster.api(0).await;
    let status = api.pipelines.list_pipelines(pb::ListPipelinesRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let mut request = tonic::Request::new(pb::ListPipelinesRequest::default());
    request.metadata_mut().insert("authorization", "Bearer wrong".parse().unwrap());
    assert_eq!(api.pipelines.list_pipelines(request).await.unwrap_err().code(), Code::Unauthenticated);

    let mut request = tonic::Request::new(pb::ListPipelinesRequest::default());
    request.metadata_mut().insert("authorization", "Bearer api-secret".parse().unwrap());
    assert!(api.pipelines.list_pipelines(request).await.is_ok());

    // Runners need their own credential; neither an API token nor a registration token is
    // one, and an API token does not register a runner.
    let addr = cluster.addr(0);
    let id = uuid::Uuid::new_v4();
    for token in [Some("api-secret"), Some("runner-secret"), None] {
        let refused = FakeRunner::connect_as(addr, id, 1, &[], Vec::new(), token).await.err().expect("refused");
        assert_eq!(refused.code(), Code::Unauthenticated, "{token:?}: {refused:?}");
    }
    assert_eq!(register(addr, "api-secret", &[]).await.unwrap_err().code(), Code::Unauthenticated);
    let registered = register(addr, "runner-secret", &[]).await.unwrap();
    let id = registered.runner_id.parse().unwrap();
    assert!(FakeRunner::connect_as(addr, id, 1, &[], Vec::new(), Some(&registered.credential)).await.is_ok());
}

#[tokio::test]
async fn health_and_reflection_answer() {
    let cluster = Cluster::start(Backend::Sqlite).await;
    let channel = crate::support::channel(cluster.addr(0)).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest { service: "rivet.v1.JobService".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(serving.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        reflection.server_reflection_info(tokio_stream::iter(vec![request])).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("no service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in ["rivet.v1.PipelineService", "rivet.v1.JobService", "rivet.v1.LogService", "rivet.v1.RunnerService"]
    {
        assert!(names.iter().any(|n| n == service), "{service} missing from {names:?}");
    }
}
