//! Assembles and runs the gRPC server: the four services, health, reflection, message
//! limits, and the background tasks (dispatcher, lease sweeper); shuts down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rivet_proto::v1::job_service_server::JobServiceServer;
use rivet_proto::v1::log_service_server::LogServiceServer;
use rivet_proto::v1::pipeline_service_server::PipelineServiceServer;
use rivet_proto::v1::runner_service_server::RunnerServiceServer;
use rivet_proto::v1::{ConnectResponse, Drain, connect_response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::auth::Auth;
use crate::api::{jobs::Jobs, logs::Logs, pipelines::Pipelines, runners::Runners};
use crate::config::Config;
use crate::coord::{MemoryCoordinator, RedisCoordinator};
use crate::domain::coord::Coordinator;
use crate::domain::orchestrator::Orchestrator;
use crate::domain::store::Store;
use crate::domain::{dispatch, leases};
use crate::storage::SeaStore;

/// Connects the store and the coordinator the configuration names.
pub async fn connect_backends(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn Coordinator>)> {
    let store = SeaStore::connect(&config.database_url)
        .await
        .map_err(|err| anyhow::anyhow!("cannot open the database {}: {err}", redact(&config.database_url)))?;
    let coord: Arc<dyn Coordinator> = match &config.redis_url {
        Some(url) => Arc::new(
            RedisCoordinator::connect(url, &config.redis_namespace)
                .await
                .map_err(|err| anyhow::anyhow!("cannot connect to Redis at {}: {err}", redact(url)))?,
        ),
        None => Arc::new(MemoryCoordinator::new()),
    };
    Ok((Arc::new(store), coord))
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// A running orchestrator.
#[derive(Debug)]
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its core, for embedding and tests.
    pub orchestrator: Orchestrator,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    stop_serving: CancellationToken,
    tasks: TaskTracker,
    health: tonic_health::server::HealthReporter,
}

/// Starts serving on `listener` with the given backends.
pub async fn start(
    config: Config,
    store: Arc<dyn Store>,
    coord: Arc<dyn Coordinator>,
    listener: TcpListener,
) -> anyhow::Result<RunningServer> {
    let addr = listener.local_addr()?;
    let auth = Auth::new(config.auth.api_tokens.clone(), config.auth.all_registration_tokens());
    let limit = config.max_message_bytes;
    let orchestrator = Orchestrator::new(store, coord, config);

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<PipelineServiceServer<Pipelines>>().await;
    health.set_serving::<JobServiceServer<Jobs>>().await;
    health.set_serving::<LogServiceServer<Logs>>().await;
    health.set_serving::<RunnerServiceServer<Runners>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(rivet_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(rivet_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let interceptor = auth.api_interceptor();
    let pipelines = PipelineServiceServer::new(Pipelines::new(orchestrator.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let jobs = JobServiceServer::new(Jobs::new(orchestrator.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let logs = LogServiceServer::new(Logs::new(orchestrator.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let runners = RunnerServiceServer::new(Runners::new(orchestrator.clone(), auth))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);

    let stop_serving = CancellationToken::new();
    let stop = stop_serving.clone();
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(tonic::service::interceptor::InterceptedService::new(pipelines, interceptor.clone()))
        .add_service(tonic::service::interceptor::InterceptedService::new(jobs, interceptor.clone()))
        .add_service(tonic::service::interceptor::InterceptedService::new(logs, interceptor))
        .add_service(runners);
    // No Nagle: every pushed message (an assignment, an ack) is small and must go out at
    // once; with the default, each waited ~40 ms for the runner's delayed ACK.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await }));

    let tasks = TaskTracker::new();
    let shutdown = orchestrator.shutdown_token().clone();
    tasks.spawn(dispatch::run(orchestrator.clone(), shutdown.clone()));
    tasks.spawn(leases::run(orchestrator.clone(), shutdown));
    tasks.close();
    tracing::info!(%addr, replica = orchestrator.replica(), "orchestrator serving");
    Ok(RunningServer { addr, orchestrator, server, stop_serving, tasks, health })
}

impl RunningServer {
    /// Shuts down gracefully: reports NOT_SERVING, stops dispatching, asks runners to
    /// drain (they reconnect elsewhere), waits up to the grace period for them to leave,
    /// then stops serving.
    pub async fn shutdown(self) {
        self.health.set_not_serving::<RunnerServiceServer<Runners>>().await;
        self.health.set_not_serving::<JobServiceServer<Jobs>>().await;
        self.orchestrator.shutdown_token().cancel();
        let registry = self.orchestrator.registry();
        for runner in registry.drain_all() {
            let drain = Drain { reason: "the orchestrator is shutting down".to_owned() };
            registry.send(runner, ConnectResponse { body: Some(connect_response::Body::Drain(drain)) }).await;
        }
        let grace = Duration::from_millis(self.orchestrator.config().shutdown_grace_ms);
        let deadline = tokio::time::Instant::now() + grace;
        while !registry.snapshot().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.tasks.wait().await;
        self.stop_serving.cancel();
        match tokio::time::timeout(Duration::from_secs(5), self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!(error = %err, "server stopped with an error"),
            Ok(Err(err)) => tracing::warn!(error = %err, "server task failed"),
            Err(_) => tracing::warn!("server did not stop within 5 s"),
        }
        tracing::info!("orchestrator stopped");
    }

    /// Stops at once, like a crash: no drain, no goodbye. For tests of failover.
    pub fn abort(self) {
        self.orchestrator.shutdown_token().cancel();
        self.server.abort();
    }
}
