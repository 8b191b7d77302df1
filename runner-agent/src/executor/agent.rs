//! The executor as the agent's [`JobRunner`], and the Podman service it talks to.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use podman_api::Podman;
use tokio_util::sync::CancellationToken;

use crate::agent::JobRunner;
use crate::config::ExecutorConfig;
use crate::executor::service::{self, Service};
use crate::executor::watcher::Watcher;
use crate::executor::{self, Error};
use crate::job::{EventSink, JobOutcome, JobSpec};

/// Runs jobs in Podman containers.
#[derive(Clone)]
pub struct PodmanRunner {
    podman: Podman,
    config: Arc<ExecutorConfig>,
    _service: Option<Arc<Service>>,
    /// Removes this runner's containers when the process dies, whatever kills it.
    _watcher: Option<Arc<Watcher>>,
}

impl std::fmt::Debug for PodmanRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodmanRunner").field("podman_socket", &self.config.podman_socket).finish_non_exhaustive()
    }
}

impl PodmanRunner {
    /// Connects to the Podman service and removes what a previous run of this runner left
    /// behind. When the configured socket does not answer and `podman_autostart` is on, the
    /// usual sockets are tried, and then a private service is started for the runner's life.
    pub async fn connect(mut config: ExecutorConfig) -> Result<PodmanRunner, Error> {
        let mut service = None;
        if config.podman_autostart {
            let dir = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
            let (uri, started) = service::find_or_start(&config.podman_socket, &dir).await?;
            if let Some(started) = started {
                tracing::info!(socket = %started.uri, "started a private podman service");
                service = Some(Arc::new(started));
            }
            config.podman_socket = uri;
        }
        let podman = executor::connect(&config)?;
        podman.ping().await.map_err(Error::podman("reach the podman service (is podman installed?)"))?;
        let report = executor::cleanup_leftovers(&podman, &config).await?;
        if report.containers > 0 || report.workspaces > 0 {
            tracing::info!(
                containers = report.containers,
                workspaces = report.workspaces,
                "removed what a previous run left behind"
            );
        }
        let socket = if service.is_some() { None } else { Some(config.podman_socket.as_str()) };
        let watcher = match Watcher::start(&config.instance, socket) {
            Ok(watcher) => Some(Arc::new(watcher)),
            Err(err) => {
                tracing::warn!(error = %err, "cannot start the watcher that stops this runner's containers if it dies");
                None
            }
        };
        Ok(PodmanRunner { podman, config: Arc::new(config), _service: service, _watcher: watcher })
    }

    /// The configuration jobs run with (its socket is the one actually used).
    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }
}

impl JobRunner for PodmanRunner {
    fn run(
        &self,
        spec: JobSpec,
        sink: Arc<dyn EventSink>,
        cancel: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = JobOutcome> + Send + 'static>> {
        let runner = self.clone();
        Box::pin(async move { executor::run_job(spec, &runner.config, &runner.podman, sink, cancel).await })
    }
}
