//! The embedded mode: an orchestrator on SQLite with in-memory coordination, and a runner
//! agent, both in this process. `rivet run` uses one for a single job in a temporary
//! directory; `rivet dev` keeps one up for other `rivet` commands to talk to.
//!
//! It is the same code as the distributed mode: the orchestrator serves gRPC on a loopback
//! port and the agent connects to it like any remote runner would.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rivet_orchestrator::config::{AuthConfig, Config, SecretsConfig};
use rivet_orchestrator::domain::{identity, keyring};
use rivet_orchestrator::server::{self, RunningServer};
use rivet_runner::agent::{Agent, AgentConfig, AgentError, Stop, credential};
use rivet_runner::config::ExecutorConfig;
use rivet_runner::executor::PodmanRunner;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::exit;

/// How long a shutdown waits for the runner to report and leave.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The address to serve on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The SQLite database file.
    pub database: PathBuf,
    /// The runner's state: its id, spilled logs, job workspaces, a Podman socket.
    pub state_dir: PathBuf,
    /// The runner's name in `rivet runner list`.
    pub runner_name: String,
    /// How many jobs the runner takes at once.
    pub capacity: u32,
    /// API tokens clients must present; none leaves the API open (it listens on loopback).
    pub api_tokens: Vec<String>,
    /// Serve off loopback although the embedded mode speaks plain text and its runner
    /// endpoint is open (`rivet dev --insecure`).
    pub insecure: bool,
}

/// A running orchestrator and runner.
#[derive(Debug)]
pub struct Embedded {
    /// Where the orchestrator listens.
    pub addr: SocketAddr,
    server: RunningServer,
    agent: JoinHandle<Result<(), AgentError>>,
    stop: Stop,
}

/// The label value that tells this runner's containers from other runners' on a shared
/// Podman service: derived from the state directory, so a restarted `rivet dev` cleans up
/// what its previous run left, and two instances never touch each other's containers.
fn instance(state_dir: &Path) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    state_dir.hash(&mut hasher);
    format!("rivet-embedded-{:016x}", hasher.finish())
}

impl Embedded {
    /// Starts the orchestrator, then the runner (finding or starting a Podman service).
    pub async fn start(options: Options) -> Result<Embedded, Error> {
        let setup = |what: &str, err: &dyn std::fmt::Display| Error::new(exit::FAILURE, format!("{what}: {err}"));
        std::fs::create_dir_all(&options.state_dir)
            .map_err(|err| setup(&format!("cannot create {}", options.state_dir.display()), &err))?;
        if let Some(parent) = options.database.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|err| setup(&format!("cannot create {}", parent.display()), &err))?;
        }
        // A credential belongs to the database that issued it: with a new database, the
        // runner must register again rather than fail on a credential nobody knows.
        if !options.database.exists() {
            let _ = std::fs::remove_file(credential::path(&options.state_dir.join("runner")));
        }
        // The in-process runner registers like any other, with a registration token made
        // up for this process: no other runner can join without one from the operator.
        // After its first start it connects with the credential in its state directory.
        let registration_token =
            identity::random_secret().map_err(|err| setup("cannot make a registration token for the runner", &err))?;
        // Secrets need a key; the embedded mode keeps its own beside its state, made on
        // first use and readable by this user only.
        let key_file = options.state_dir.join("secrets.key");
        keyring::ensure_key_file(&key_file)
            .map_err(|err| setup(&format!("cannot make the secrets key {}", key_file.display()), &err))?;
        let config = Config {
            listen: options.listen,
            secrets: SecretsConfig { key_file: Some(key_file), ..SecretsConfig::default() },
            database_url: format!("sqlite://{}?mode=rwc", options.database.display()),
            redis_url: None,
            shutdown_grace_ms: SHUTDOWN_GRACE.as_millis() as u64,
            auth: AuthConfig {
                api_tokens: options.api_tokens.clone(),
                registration_tokens: vec![registration_token.clone()],
                ..AuthConfig::default()
            },
            insecure: options.insecure,
            ..Config::default()
        };
        let missing = config.exposure();
        if !missing.is_empty() && !options.insecure {
            return Err(Error::new(
                exit::USAGE,
                format!("refusing to listen on {} without {}", options.listen, missing.join(" and ")),
            )
            .hint(
                "the embedded server speaks plain text: listen on 127.0.0.1, or pass --insecure to accept \
                 that anyone who can reach it may read what it carries",
            ));
        }
        // The runner finds (or starts, for its lifetime) a Podman service while the
        // database opens: both take a moment.
        let executor = ExecutorConfig {
            workspace_root: options.state_dir.join("workspaces"),
            instance: instance(&options.state_dir),
            ..ExecutorConfig::default()
        };
        let (runner, backends) =
            tokio::join!(PodmanRunner::connect(executor.clone()), server::connect_backends(&config));
        let runner = runner.map_err(|err| {
            setup("cannot use podman", &err)
                .hint("check that `podman info` works, or point CONTAINER_HOST at a running podman service")
        })?;
        let (store, coord) = backends.map_err(|err| setup("cannot open the embedded database", &format!("{err:#}")))?;
        let listener = match tokio::net::TcpListener::bind(options.listen).await {
            Ok(listener) => listener,
            Err(err) => {
                let error = Error::new(exit::FAILURE, format!("cannot listen on {}: {err}", options.listen));
                return Err(if err.kind() == std::io::ErrorKind::AddrInUse {
                    error.hint("is another `rivet dev` running? Use --listen 127.0.0.1:PORT for another port")
                } else {
                    error
                });
            }
        };
        let server = match server::start(config, store, coord, listener).await {
            Ok(server) => server,
            Err(err) => {
                return Err(setup("cannot start the embedded orchestrator", &format!("{err:#}")));
            }
        };
        let addr = server.addr;

        let agent_config = AgentConfig {
            orchestrator_url: format!("http://{addr}"),
            registration_token: Some(registration_token),
            name: Some(options.runner_name.clone()),
            capacity: options.capacity,
            state_dir: options.state_dir.join("runner"),
            reconnect_min_ms: 20,
            executor: runner.config().clone(),
            ..AgentConfig::default()
        };
        let agent = match Agent::new(agent_config, Arc::new(runner)) {
            Ok(agent) => agent,
            Err(err) => {
                server.shutdown().await;
                return Err(setup("cannot start the runner", &err));
            }
        };
        let stop = Stop::default();
        let agent = tokio::spawn(agent.run(stop.clone()));
        Ok(Embedded { addr, server, agent, stop })
    }

    /// The URL clients use.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the runner (cancelling its jobs when `cancel_jobs`, else letting them
    /// finish), then the orchestrator.
    pub async fn shutdown(self, cancel_jobs: bool) {
        if cancel_jobs {
            self.stop.now.cancel();
        }
        self.stop.drain.cancel();
        let mut agent = self.agent;
        match tokio::time::timeout(SHUTDOWN_GRACE * 2, &mut agent).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!(error = %err, "the runner stopped with an error"),
            Ok(Err(err)) => tracing::warn!(error = %err, "the runner task failed"),
            Err(_) => {
                tracing::warn!("the runner did not stop in time");
                agent.abort();
            }
        }
        // The runner, and with it a Podman service it started, is gone by now.
        self.server.shutdown().await;
    }
}

/// Logs of the embedded server and runner on stderr (`RUST_LOG` decides, else `default`),
/// and their spans over OTLP when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` names a
/// collector. The returned guard flushes the last spans when shut down.
pub fn init_tracing(default: &str) -> Option<rivet_telemetry::Telemetry> {
    let config = rivet_telemetry::TelemetryConfig::default();
    match rivet_telemetry::trace::init(&config, "rivet", default, rivet_telemetry::LogOutput::Stderr) {
        Ok(telemetry) => Some(telemetry),
        Err(rivet_telemetry::TelemetryError::AlreadyInstalled) => None,
        Err(err) => {
            eprintln!("rivet: telemetry is off: {err}");
            None
        }
    }
}
