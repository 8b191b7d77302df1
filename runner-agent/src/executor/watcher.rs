//! The watcher outside the runner: when the runner process dies in any way (even SIGKILL),
//! the containers labelled with its instance are removed within a second or so, so a job
//! never goes on running after its runner is gone (its lease expires, or the restarted
//! runner's hello says it no longer runs it, and the job is given to another runner).
//!
//! It is a small shell whose stdin is a pipe from this process, the way the private Podman
//! service is tied to it (`service.rs`): the kernel closes the pipe when the runner dies,
//! `read` returns, and the shell removes the containers through the Podman command line,
//! which does not need the runner's (private) service to be alive. On a normal exit it runs
//! too and finds nothing left.

use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::executor::LABEL_RUNNER;

/// The shell: waits for its stdin to close, then removes every container, running or not,
/// that carries the runner's label. `$1` is the label filter; the rest is the `podman`
/// command with its connection options.
const SCRIPT: &str = r#"label="$1"; shift
read -r _
ids=$("$@" ps -aq --filter "label=$label")
[ -n "$ids" ] && "$@" rm -f -t 0 $ids >/dev/null 2>&1
exit 0"#;

/// The running watcher; dropping it lets it do its work and waits for it briefly.
#[derive(Debug)]
pub struct Watcher {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Watcher {
    /// Starts a watcher for the containers labelled `rivet.runner=<instance>`. `socket` is
    /// the Podman service the runner uses, or `None` for a private service of the runner
    /// (which dies with it): the local Podman is used then.
    pub fn start(instance: &str, socket: Option<&str>) -> std::io::Result<Watcher> {
        let mut command = Command::new("sh");
        command.args(["-c", SCRIPT, "sh"]).arg(format!("{LABEL_RUNNER}={instance}")).arg("podman");
        if let Some(socket) = socket {
            command.args(["--remote", "--url", socket]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C on the runner's terminal must not stop it.
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take();
        Ok(Watcher { child, stdin })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Closing the pipe is what the kernel does when the runner dies: the watcher
        // removes what is left. It is not waited for long: the runner removed its
        // containers itself on a normal stop.
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
