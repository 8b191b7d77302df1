//! Finding the Podman service the embedded runner drives, or starting one.
//!
//! The runner talks to Podman's REST API over a unix socket. `rivet run` should work on a
//! machine where nobody started that service, as `podman run` does, so when no socket
//! answers, a `podman system service` is started for the life of this process.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::error::Error;
use crate::exit;

/// How long a started service may take to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The Podman socket to use, and the service started for it, if any.
#[derive(Debug)]
pub struct Podman {
    /// The socket as a URI, `unix:///path`.
    pub socket_uri: String,
    /// The service this process started; stopped by [`Podman::stop`] or when `rivet` exits.
    service: Option<Child>,
}

/// Whether a unix socket accepts connections.
fn answers(path: &Path) -> bool {
    UnixStream::connect(path).is_ok()
}

/// The path of a `unix://` URI.
fn socket_path(uri: &str) -> Option<PathBuf> {
    uri.strip_prefix("unix://").map(PathBuf::from)
}

/// The sockets tried before starting a service: `CONTAINER_HOST` (Podman's own setting),
/// the system service, then the user's (rootless) service.
fn candidates() -> Vec<String> {
    let mut sockets = Vec::new();
    if let Some(host) = std::env::var("CONTAINER_HOST").ok().filter(|host| host.starts_with("unix://")) {
        sockets.push(host);
    }
    sockets.push("unix:///run/podman/podman.sock".to_owned());
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        sockets.push(format!("unix://{}/podman/podman.sock", PathBuf::from(runtime).display()));
    }
    sockets
}

impl Podman {
    /// A running Podman service: one whose socket answers, or one started with its socket
    /// in `dir`.
    pub async fn find_or_start(dir: &Path) -> Result<Podman, Error> {
        for uri in candidates() {
            if socket_path(&uri).is_some_and(|path| answers(&path)) {
                return Ok(Podman { socket_uri: uri, service: None });
            }
        }
        let socket = dir.join("podman.sock");
        let _ = std::fs::remove_file(&socket);
        let uri = format!("unix://{}", socket.display());
        // The service runs under a small shell that kills it when its stdin closes, which
        // happens however this process ends (even SIGKILL), so it never outlives us.
        let child = Command::new("sh")
            .args(["-c", r#"podman system service --time=0 "$1" & pid=$!; read -r _; kill "$pid"; wait "$pid""#, "sh"])
            .arg(&uri)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            // Its own process group: a Ctrl-C on the terminal must not stop the service
            // while the runner still needs it to stop the job's containers.
            .process_group(0)
            .spawn()
            .map_err(|err| {
                Error::new(exit::FAILURE, format!("cannot start `podman system service`: {err}"))
                    .hint("install podman, or start its service and set CONTAINER_HOST=unix:///path/to/podman.sock")
            })?;
        let mut podman = Podman { socket_uri: uri, service: Some(child) };
        let started = tokio::time::Instant::now();
        while !answers(&socket) {
            if let Some(service) = podman.service.as_mut()
                && let Ok(Some(status)) = service.try_wait()
            {
                return Err(Error::new(exit::FAILURE, format!("`podman system service` exited at once ({status})"))
                    .hint("check that `podman info` works"));
            }
            if started.elapsed() > START_TIMEOUT {
                podman.stop().await;
                return Err(Error::new(exit::FAILURE, "`podman system service` did not open its socket within 20 s")
                    .hint("check that `podman info` works"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(podman)
    }

    /// Stops the service this process started, if any.
    pub async fn stop(&mut self) {
        if let Some(mut service) = self.service.take() {
            // Closing its stdin makes the shell stop the service and wait for it.
            drop(service.stdin.take());
            if tokio::time::timeout(Duration::from_secs(5), service.wait()).await.is_err() {
                let _ = service.kill().await;
            }
        }
    }
}
