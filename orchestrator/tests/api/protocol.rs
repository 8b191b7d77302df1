//! The runner protocol's edge over real gRPC: a stream that does not open with a well-formed
//! hello is refused with `INVALID_ARGUMENT` naming what is wrong, and a malformed or
//! out-of-order message on an open stream is skipped without ending it.

use std::net::SocketAddr;

use rivet_proto::v1::runner_service_client::RunnerServiceClient;
use rivet_proto::v1::{self as pb, connect_request};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::support::{Backend, Cluster, FakeRunner, channel, pipeline_source};

/// Opens a runner stream that says `first` and returns how the orchestrator refused it.
async fn refusal(addr: SocketAddr, first: pb::ConnectRequest) -> tonic::Status {
    let mut client = RunnerServiceClient::new(channel(addr).await);
    let (sender, receiver) = mpsc::channel(1);
    sender.send(first).await.expect("queue the first message");
    let answer = client.connect(ReceiverStream::new(receiver)).await;
    // The stream stays open until the orchestrator has answered, as a runner's would.
    drop(sender);
    match answer {
        Ok(mut stream) => match stream.get_mut().message().await {
            Err(status) => status,
            Ok(message) => panic!("the stream was accepted and answered {message:?}"),
        },
        Err(status) => status,
    }
}

fn hello(runner_id: &str, running_jobs: Vec<pb::RunningJob>) -> pb::ConnectRequest {
    let hello = pb::RunnerHello {
        protocol_versions: vec![rivet_core::job::PROTOCOL_VERSION],
        runner_id: runner_id.to_owned(),
        capacity: 1,
        running_jobs,
        ..pb::RunnerHello::default()
    };
    pb::ConnectRequest { body: Some(connect_request::Body::Hello(hello)) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_a_well_formed_hello_is_refused_naming_the_field() {
    let cluster = Cluster::start(Backend::Sqlite).await;
    let addr = cluster.addr(0);
    let id = uuid::Uuid::new_v4().to_string();
    let heartbeat = pb::RunnerHeartbeat { running_jobs: Vec::new(), draining: false };
    let cases = [
        (
            pb::ConnectRequest { body: Some(connect_request::Body::Heartbeat(heartbeat)) },
            "body: the first message on a runner stream must be a hello",
        ),
        (pb::ConnectRequest { body: None }, "body: is required"),
        (hello("runner-7", Vec::new()), "hello.runner_id: is not a UUID"),
        (
            hello(&id, vec![pb::RunningJob { assignment: None, last_sequence: 3 }]),
            "hello.running_jobs.assignment: is required",
        ),
    ];
    for (first, expected) in cases {
        let status = refusal(addr, first).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(expected), "expected `{expected}` in `{}`", status.message());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_or_out_of_order_message_is_skipped_and_the_stream_goes_on() {
    let cluster = Cluster::start(Backend::Sqlite).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("skips", &[])).await;
    let mut runner = FakeRunner::connect(cluster.addr(0), 1, &[]).await;
    // No assignment, then a second hello: neither is acted on, neither ends the stream.
    runner.send(connect_request::Body::JobAccepted(pb::JobAccepted { assignment: None })).await;
    let again = pb::RunnerHello { runner_id: runner.id.to_string(), capacity: 1, ..pb::RunnerHello::default() };
    runner.send(connect_request::Body::Hello(again)).await;
    let job = api.launch("skips", &[("image", "app")]).await.expect("launch");
    let assign = runner.assignment().await;
    runner.accept(&assign).await;
    runner.finish(&assign, pb::JobState::Succeeded, 0).await;
    api.wait_for(&job.id, pb::JobState::Succeeded).await;
}
