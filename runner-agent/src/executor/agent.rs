//! The executor as the agent's [`JobRunner`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use podman_api::Podman;
use tokio_util::sync::CancellationToken;

use crate::agent::JobRunner;
use crate::config::ExecutorConfig;
use crate::executor::{self, Error};
use crate::job::{EventSink, JobOutcome, JobSpec};

/// Runs jobs in Podman containers.
#[derive(Clone)]
pub struct PodmanRunner {
    podman: Podman,
    config: Arc<ExecutorConfig>,
}

impl std::fmt::Debug for PodmanRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodmanRunner").field("podman_socket", &self.config.podman_socket).finish_non_exhaustive()
    }
}

impl PodmanRunner {
    /// Connects to the Podman service and removes what a previous run left behind.
    pub async fn connect(config: ExecutorConfig) -> Result<PodmanRunner, Error> {
        let podman = executor::connect(&config)?;
        let report = executor::cleanup_leftovers(&podman, &config).await?;
        if report.containers > 0 || report.workspaces > 0 {
            tracing::info!(
                containers = report.containers,
                workspaces = report.workspaces,
                "removed what a previous run left behind"
            );
        }
        Ok(PodmanRunner { podman, config: Arc::new(config) })
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
