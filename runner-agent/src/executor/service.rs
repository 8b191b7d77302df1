//! Finding the Podman service the runner drives, or starting one.
//!
//! The runner talks to Podman's REST API over a unix socket. A runner (and `rivet run`)
//! should work on a machine where nobody started that service, as `podman run` does, so
//! when no socket answers, a `podman system service` is started for the runner's life.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::executor::Error;

/// How long a started service may take to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether the unix socket of a `unix://` URI accepts connections.
pub fn answers(uri: &str) -> bool {
    uri.strip_prefix("unix://").is_some_and(|path| UnixStream::connect(path).is_ok())
}

/// The sockets tried after the configured one: `CONTAINER_HOST` (Podman's own setting),
/// the system service, then the user's (rootless) service.
pub fn candidates() -> Vec<String> {
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

/// The socket to use: `configured` when it answers, else the first of [`candidates`] that
/// does, else a private service started with its socket in `dir` (returned with it, so it
/// lives as long as its caller keeps it).
pub async fn find_or_start(configured: &str, dir: &Path) -> Result<(String, Option<Service>), Error> {
    if answers(configured) {
        return Ok((configured.to_owned(), None));
    }
    if let Some(uri) = candidates().into_iter().find(|uri| answers(uri)) {
        return Ok((uri, None));
    }
    let service = Service::start(dir).await?;
    Ok((service.uri.clone(), Some(service)))
}

/// A `podman system service` this process started. It stops when this value is dropped,
/// and also when the process dies in any way (even SIGKILL): it runs under a small shell
/// that kills it once its stdin, a pipe from this process, closes.
#[derive(Debug)]
pub struct Service {
    child: Child,
    stdin: Option<ChildStdin>,
    socket: PathBuf,
    /// The socket as a URI, `unix:///path`.
    pub uri: String,
}

impl Service {
    /// Starts a service with its socket in `dir`, and waits until it answers.
    pub async fn start(dir: &Path) -> Result<Service, Error> {
        std::fs::create_dir_all(dir).map_err(Error::PodmanService)?;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let socket =
            dir.join(format!("rivet-podman-{}-{}.sock", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_file(&socket);
        let uri = format!("unix://{}", socket.display());
        let mut child = Command::new("sh")
            .args(["-c", r#"podman system service --time=0 "$1" & pid=$!; read -r _; kill "$pid"; wait "$pid""#, "sh"])
            .arg(&uri)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C on the terminal must not stop the service
            // while the runner still needs it to stop the job's containers.
            .process_group(0)
            .spawn()
            .map_err(Error::PodmanService)?;
        let stdin = child.stdin.take();
        let mut service = Service { child, stdin, socket, uri };
        let started = tokio::time::Instant::now();
        while !answers(&service.uri) {
            if let Ok(Some(status)) = service.child.try_wait() {
                let message =
                    format!("`podman system service` exited at once ({status}); check that `podman info` works");
                return Err(Error::PodmanService(std::io::Error::other(message)));
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(Error::PodmanService(std::io::Error::other(
                    "`podman system service` did not open its socket within 20 s",
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(service)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Closing its stdin makes the shell stop the service and wait for it.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}
