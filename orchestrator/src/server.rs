//! Assembles and runs the gRPC server: the services behind the role guard, health,
//! reflection, message limits, the webhook listener, and the background tasks (dispatcher,
//! lease sweeper, scheduler, commit statuses); shuts down gracefully.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rivet_core::protocol::ToRunner;
use rivet_proto::v1::job_service_server::JobServiceServer;
use rivet_proto::v1::log_service_server::LogServiceServer;
use rivet_proto::v1::pipeline_service_server::PipelineServiceServer;
use rivet_proto::v1::plugin_service_server::PluginServiceServer;
use rivet_proto::v1::runner_service_server::RunnerServiceServer;
use rivet_proto::v1::schedule_service_server::ScheduleServiceServer;
use rivet_proto::v1::secret_service_server::SecretServiceServer;
use rivet_proto::v1::token_service_server::TokenServiceServer;
use rivet_proto::v1::trigger_service_server::TriggerServiceServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use rivet_telemetry::metrics::MetricsServer;
use rivet_telemetry::rpc::RpcLayer;

use crate::api::auth::Auth;
use crate::api::guard::GuardLayer;
use crate::api::{
    jobs::Jobs, logs::Logs, pipelines::Pipelines, plugins::Plugins, runners::Runners, schedules::Schedules,
    secrets::Secrets, tokens::Tokens, triggers::Triggers,
};
use crate::config::{Config, TlsConfig, redact_url};
use crate::coord::{MemoryCoordinator, RedisCoordinator};
use crate::domain::access::Access;
use crate::domain::coord::Coordinator;
use crate::domain::keyring::Keyring;
use crate::domain::orchestrator::Orchestrator;
use crate::domain::store::Store;
use crate::domain::{dispatch, leases, metrics, schedules, statuses};
use crate::storage::SeaStore;
use crate::webhooks::WebhookServer;

/// Connects the store and the coordinator the configuration names.
pub async fn connect_backends(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn Coordinator>)> {
    let store = SeaStore::connect(&config.database_url)
        .await
        .map_err(|err| anyhow::anyhow!("cannot open the database {}: {err}", redact_url(&config.database_url)))?;
    let coord: Arc<dyn Coordinator> = match &config.redis_url {
        Some(url) => Arc::new(
            RedisCoordinator::connect(url, &config.redis_namespace)
                .await
                .map_err(|err| anyhow::anyhow!("cannot connect to Redis at {}: {err}", redact_url(url)))?,
        ),
        None => Arc::new(MemoryCoordinator::new()),
    };
    Ok((Arc::new(store), coord))
}

/// The server's TLS settings, read from the configured files; `None` without TLS.
fn tls_config(tls: &TlsConfig) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) else { return Ok(None) };
    let read = |what: &str, path: &Path| {
        std::fs::read(path).with_context(|| format!("cannot read the TLS {what} {}", path.display()))
    };
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(read("certificate", cert)?, read("key", key)?));
    if let Some(ca) = &tls.client_ca_file {
        // Users' clients need no certificate; runners may be required to present one
        // (checked on their stream, see `api::runners`).
        config = config.client_ca_root(Certificate::from_pem(read("client CA file", ca)?)).client_auth_optional(true);
    }
    Ok(Some(config))
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
    metrics_server: Option<MetricsServer>,
    webhook_server: Option<WebhookServer>,
    /// Where the webhook listener listens, when it is on.
    pub webhooks_addr: Option<SocketAddr>,
}

/// Starts serving on `listener` with the given backends.
pub async fn start(
    config: Config,
    store: Arc<dyn Store>,
    coord: Arc<dyn Coordinator>,
    listener: TcpListener,
) -> anyhow::Result<RunningServer> {
    let addr = listener.local_addr()?;
    // The same rule as the configuration's: a server built in code (tests, the embedded
    // mode) cannot be exposed by accident either.
    config.validate().map_err(|message| anyhow::anyhow!(message))?;
    if config.insecure && !config.exposure().is_empty() {
        tracing::warn!(
            listen = %config.listen,
            missing = %config.exposure().join(" and "),
            "INSECURE: serving off loopback without TLS or authentication because `insecure = true`"
        );
    }
    let tls = tls_config(&config.tls)?;
    let auth = Auth::new(&config.auth.api_tokens, config.auth.all_registration_tokens());
    let access = Access::new(store.clone(), &config.auth.api_tokens);
    let limit = config.max_message_bytes;
    let keyring = Keyring::load(&config.secrets).context("cannot load the secrets keys")?;
    if keyring.current_id().is_none() {
        tracing::info!("no secrets key is configured (secrets.key_file): secrets cannot be set");
    }
    // Bound before anything serves, so that trigger URLs name the bound port.
    let webhook_listener = match config.webhooks.listen {
        Some(listen) => Some(WebhookServer::bind(listen).await?),
        None => None,
    };
    let webhook_base = match &webhook_listener {
        Some(listener) => Some(config.webhooks.base_url(listener.local_addr()?)),
        None => None,
    };
    let orchestrator = Orchestrator::new(store, coord, config, keyring);

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<PipelineServiceServer<Pipelines>>().await;
    health.set_serving::<JobServiceServer<Jobs>>().await;
    health.set_serving::<LogServiceServer<Logs>>().await;
    health.set_serving::<RunnerServiceServer<Runners>>().await;
    health.set_serving::<TokenServiceServer<Tokens>>().await;
    health.set_serving::<PluginServiceServer<Plugins>>().await;
    health.set_serving::<SecretServiceServer<Secrets>>().await;
    health.set_serving::<ScheduleServiceServer<Schedules>>().await;
    health.set_serving::<TriggerServiceServer<Triggers>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(rivet_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(rivet_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

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
    let tokens = TokenServiceServer::new(Tokens::new(access.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let plugins = PluginServiceServer::new(Plugins::new(orchestrator.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let secrets = SecretServiceServer::new(Secrets::new(orchestrator.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let triggers = TriggerServiceServer::new(Triggers::new(orchestrator.clone(), webhook_base.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);

    let schedules = ScheduleServiceServer::new(Schedules::new(orchestrator.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);

    let stop_serving = CancellationToken::new();
    let stop = stop_serving.clone();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).context("invalid TLS configuration")?;
    }
    let router = builder
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // Every call is a span and a latency observation, refused ones too.
        .layer(RpcLayer::new(Some(orchestrator.metrics().rpc())))
        // Every call passes the role table first; see `api::roles`.
        .layer(GuardLayer::new(access))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(pipelines)
        .add_service(jobs)
        .add_service(logs)
        .add_service(runners)
        .add_service(tokens)
        .add_service(plugins)
        .add_service(secrets)
        .add_service(schedules)
        .add_service(triggers);
    // No Nagle: every pushed message (an assignment, an ack) is small and must go out at
    // once; with the default, each waited ~40 ms for the runner's delayed ACK.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await }));

    let tasks = TaskTracker::new();
    let shutdown = orchestrator.shutdown_token().clone();
    let metrics_server = match orchestrator.config().metrics.listen {
        Some(listen) => {
            let rendered = orchestrator.metrics().clone();
            let server = MetricsServer::bind(listen, move || rendered.render()).await?;
            tasks.spawn(metrics::run(orchestrator.clone(), shutdown.clone()));
            tracing::info!(addr = %server.addr, "serving metrics");
            Some(server)
        }
        None => None,
    };
    let webhook_server = webhook_listener.map(|listener| {
        let server = WebhookServer::serve(listener, orchestrator.clone(), &orchestrator.config().webhooks);
        tracing::info!(addr = %server.addr, url = webhook_base.as_deref().unwrap_or_default(), "serving forge webhooks");
        server
    });
    let webhooks_addr = webhook_server.as_ref().map(|server| server.addr);
    tasks.spawn(dispatch::run(orchestrator.clone(), shutdown.clone()));
    tasks.spawn(statuses::run(orchestrator.clone(), shutdown.clone()));
    tasks.spawn(leases::run(orchestrator.clone(), shutdown.clone()));
    tasks.spawn(schedules::run(orchestrator.clone(), shutdown.clone()));
    tasks.spawn(watch_coordination(orchestrator.clone(), health.clone(), shutdown));
    tasks.close();
    tracing::info!(%addr, replica = orchestrator.replica(), "orchestrator serving");
    Ok(RunningServer {
        addr,
        orchestrator,
        server,
        stop_serving,
        tasks,
        health,
        metrics_server,
        webhook_server,
        webhooks_addr,
    })
}

/// The health service name that reports whether the coordinator (Redis) answers. The
/// replica's own services stay SERVING while it does not: API reads, log ingest into the
/// database and log followers (which then read the database) keep working; leases are not
/// swept, dispatch waits, and runners cannot connect anew. A load balancer should check the
/// services; an operator's alert, this one.
pub const COORDINATION_HEALTH: &str = "rivet.coordination";

/// How often the coordination health is checked.
const COORDINATION_CHECK: Duration = Duration::from_secs(1);

/// Reports [`COORDINATION_HEALTH`] until `shutdown`: SERVING while the coordinator
/// answers, NOT_SERVING (degraded) while it does not.
async fn watch_coordination(
    orchestrator: Orchestrator,
    health: tonic_health::server::HealthReporter,
    shutdown: CancellationToken,
) {
    let mut reachable = None;
    loop {
        let now = orchestrator.coord().generation().await.is_ok();
        if reachable != Some(now) {
            let status =
                if now { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
            if reachable.is_some() {
                match now {
                    true => tracing::info!("coordination is reachable again"),
                    false => tracing::warn!("coordination is unreachable: this replica is degraded"),
                }
            }
            health.set_service_status(COORDINATION_HEALTH, status).await;
            reachable = Some(now);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(COORDINATION_CHECK) => {}
        }
    }
}

impl RunningServer {
    /// Shuts down gracefully: reports NOT_SERVING, stops dispatching, asks runners to
    /// drain (they reconnect elsewhere), waits up to the grace period for them to leave,
    /// then stops serving.
    pub async fn shutdown(self) {
        self.health.set_not_serving::<RunnerServiceServer<Runners>>().await;
        self.health.set_not_serving::<JobServiceServer<Jobs>>().await;
        // No new deliveries; the ones under way finish (each within its timeout).
        if let Some(webhooks) = self.webhook_server {
            webhooks.shutdown().await;
        }
        self.orchestrator.shutdown_token().cancel();
        let registry = self.orchestrator.registry();
        for runner in registry.drain_all() {
            let drain = ToRunner::Drain { reason: "the orchestrator is shutting down".to_owned() };
            registry.send(runner, drain).await;
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
        if let Some(metrics) = self.metrics_server {
            metrics.shutdown().await;
        }
        tracing::info!("orchestrator stopped");
    }

    /// Stops at once, like a crash: no drain, no goodbye. For tests of failover.
    pub fn abort(self) {
        if let Some(webhooks) = &self.webhook_server {
            webhooks.abort();
        }
        self.orchestrator.shutdown_token().cancel();
        self.server.abort();
    }
}
