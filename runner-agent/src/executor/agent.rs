//! The executor as the agent's [`JobRunner`], and the Podman service it talks to.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use podman_api::Podman;
use tokio_util::sync::CancellationToken;

use crate::agent::JobRunner;
use crate::config::ExecutorConfig;
use crate::executor::{self, Error};
use crate::job::{EventSink, JobOutcome, JobSpec};

/// How long a started Podman service may take to answer.
const SERVICE_START: Duration = Duration::from_secs(20);

/// Runs jobs in Podman containers.
#[derive(Clone)]
pub struct PodmanRunner {
    podman: Podman,
    config: Arc<ExecutorConfig>,
    _service: Option<Arc<Service>>,
}

impl std::fmt::Debug for PodmanRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodmanRunner").field("podman_socket", &self.config.podman_socket).finish_non_exhaustive()
    }
}

/// A `podman system service` this runner started; stopped when the last runner clone goes.
struct Service {
    child: Child,
    socket: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl PodmanRunner {
    /// Connects to the Podman service (starting a private one when the configured socket
    /// does not answer and `podman_autostart` is on) and removes what a previous run of
    /// this runner left behind.
    pub async fn connect(mut config: ExecutorConfig) -> Result<PodmanRunner, Error> {
        let mut podman = executor::connect(&config)?;
        let mut service = None;
        if podman.ping().await.is_err() && config.podman_autostart {
            let (started, socket) = start_service().await?;
            tracing::info!(socket = %socket, "started a private podman service");
            config.podman_socket = socket;
            podman = executor::connect(&config)?;
            service = Some(Arc::new(started));
        }
        podman.ping().await.map_err(Error::podman("reach the podman service (is podman installed?)"))?;
        let report = executor::cleanup_leftovers(&podman, &config).await?;
        if report.containers > 0 || report.workspaces > 0 {
            tracing::info!(
                containers = report.containers,
                workspaces = report.workspaces,
                "removed what a previous run left behind"
            );
        }
        Ok(PodmanRunner { podman, config: Arc::new(config), _service: service })
    }

    /// The configuration jobs run with (its socket is the one actually used).
    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }
}

/// Starts `podman system service` on a private socket and waits until it answers.
async fn start_service() -> Result<(Service, String), Error> {
    let dir = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let socket = dir.join(format!("rivet-podman-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let uri = format!("unix://{}", socket.display());
    let child = Command::new("podman")
        .args(["system", "service", "--time=0", &uri])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(Error::PodmanService)?;
    let service = Service { child, socket: socket.clone() };
    let podman = Podman::unix(&socket);
    let deadline = tokio::time::Instant::now() + SERVICE_START;
    while tokio::time::Instant::now() < deadline {
        if socket.exists() && podman.ping().await.is_ok() {
            return Ok((service, uri));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    podman.ping().await.map_err(Error::podman("start a podman service"))?;
    Ok((service, uri))
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
