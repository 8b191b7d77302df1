//! The executor's settings. Loading them (defaults → TOML → `RIVET_RUNNER_*` environment,
//! e.g. `RIVET_RUNNER_EXECUTOR__DEFAULT_IMAGE`) is the agent's job; this module only
//! declares them, with their defaults, where they are used.

use std::path::PathBuf;
use std::time::Duration;

use rivet_core::model::StageNetwork;
use rivet_core::text::MAX_LOG_LINE_BYTES;
use serde::{Deserialize, Serialize};

pub use crate::runtime::http::HttpPolicy;

/// The default first host id of the containers' user namespace: far above the ids of
/// users and of the usual `/etc/subuid` ranges (100000 and up).
pub const CONTAINER_UID_BASE: u32 = 1_000_000;

/// How many ids the containers' user namespace maps.
pub const CONTAINER_ID_COUNT: u32 = 65_536;

/// How the runner runs jobs: where Podman is, which limits hold for containers and for the
/// Lua scripts, and where workspaces live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecutorConfig {
    /// The Podman service's API socket, as a URI (`unix:///path`).
    pub podman_socket: String,
    /// When the socket does not answer, start a private `podman system service` for the
    /// runner's lifetime (the embedded mode needs no service installed).
    pub podman_autostart: bool,
    /// The image a stage's processes run in when the stage names no `container`.
    pub default_image: String,
    /// The directory that holds one workspace per running job (`<job id>-<attempt>`). It is
    /// owned by the runner: [`crate::executor::cleanup_leftovers`] empties it at start-up.
    pub workspace_root: PathBuf,
    /// Keep the workspace of a job that did not succeed (failed, cancelled or timed out)
    /// for inspection instead of removing it.
    pub keep_workspace_on_failure: bool,
    /// The value of the `rivet.runner` label on this runner's containers. Runners that share
    /// one Podman service need different values: `cleanup_leftovers` removes every
    /// container that carries this runner's value.
    pub instance: String,
    /// How long a stage may run, in seconds, when the pipeline gives it no `timeout`.
    pub stage_timeout_secs: u64,
    /// The most memory one process container may use, in bytes; `None` for no limit.
    pub container_memory_bytes: Option<u64>,
    /// The CPU time one process container may use, in billionths of a CPU (Docker's
    /// `NanoCpus`: 1.5 CPUs is 1_500_000_000); `None` for no limit.
    pub container_nano_cpus: Option<u64>,
    /// The most processes one container may hold at once; `None` for no limit. Stops fork
    /// bombs from exhausting the host.
    pub container_pids_limit: Option<i64>,
    /// Capabilities given back to processes after all are dropped. The default is the
    /// smallest set that lets package managers install as root in a container.
    pub container_capabilities: Vec<String>,
    /// The most memory a job's Lua state may allocate, in bytes.
    pub lua_memory_bytes: usize,
    /// The Lua time budget of one stage, in milliseconds: time spent running Lua code, not
    /// time spent waiting for processes or images.
    pub lua_time_budget_ms: u64,
    /// The most bytes `process.run` captures from one stream for the script; the rest is
    /// still logged, only not returned.
    pub max_captured_output_bytes: usize,
    /// The longest log line, in bytes: process output, `log.*` messages and runner notices
    /// alike. A longer line keeps its head and ends with a marker saying how many bytes
    /// were cut (a process's line is cut while it is read, never held whole). At most
    /// `rivet_core::text::MAX_LOG_LINE_BYTES` (64 KiB), which the orchestrator enforces too.
    pub max_log_line_bytes: usize,
    /// The most log a job may produce, in bytes (each line's text and stage name plus 64
    /// bytes). Past it, one notice line says so and later lines are dropped; the job goes on.
    pub max_job_log_bytes: u64,
    /// How long a cancelled or timed-out process has between SIGTERM and SIGKILL, in
    /// seconds.
    pub cancel_grace_secs: u64,
    /// The network of a stage's containers when the stage names none: `"default"`
    /// (Podman's bridge) or `"none"` (loopback only).
    pub default_network: StageNetwork,
    /// The host uid (and gid) that root in a job's containers maps to, in a user
    /// namespace of 65536 ids: root in a container is not root on the host, and what a job
    /// writes to its workspace belongs to this unprivileged id. Only used when the runner
    /// runs as root (rootless Podman maps ids itself); unset to share the host's ids,
    /// which makes a container escape a host-root escape.
    pub container_uid_base: Option<u32>,
    /// The largest file `fs.read` reads, in bytes.
    pub fs_max_read_bytes: u64,
    /// The most bytes one `fs.write` or `fs.append` writes.
    pub fs_max_write_bytes: u64,
    /// What the `http` module may reach, before a pipeline narrows it.
    pub http: HttpPolicy,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            podman_socket: "unix:///run/podman/podman.sock".to_owned(),
            podman_autostart: true,
            default_image: "localhost/rivet-test:latest".to_owned(),
            workspace_root: PathBuf::from("/var/lib/rivet-runner/workspaces"),
            keep_workspace_on_failure: false,
            instance: "1".to_owned(),
            stage_timeout_secs: 60 * 60,
            container_memory_bytes: Some(4 * 1024 * 1024 * 1024),
            container_nano_cpus: None,
            container_pids_limit: Some(4096),
            container_capabilities: ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID"]
                .map(str::to_owned)
                .to_vec(),
            lua_memory_bytes: 64 * 1024 * 1024,
            lua_time_budget_ms: 30_000,
            max_captured_output_bytes: 16 * 1024 * 1024,
            max_log_line_bytes: MAX_LOG_LINE_BYTES,
            max_job_log_bytes: 256 * 1024 * 1024,
            cancel_grace_secs: 5,
            default_network: StageNetwork::Default,
            container_uid_base: Some(CONTAINER_UID_BASE),
            fs_max_read_bytes: 16 * 1024 * 1024,
            fs_max_write_bytes: 16 * 1024 * 1024,
            http: HttpPolicy::default(),
        }
    }
}

impl ExecutorConfig {
    /// The default stage timeout.
    pub fn stage_timeout(&self) -> Duration {
        Duration::from_secs(self.stage_timeout_secs)
    }

    /// The Lua time budget of one stage.
    pub fn lua_time_budget(&self) -> Duration {
        Duration::from_millis(self.lua_time_budget_ms)
    }

    /// The grace period between SIGTERM and SIGKILL.
    pub fn cancel_grace(&self) -> Duration {
        Duration::from_secs(self.cancel_grace_secs)
    }

    /// Checks the settings that depend on each other or on fixed limits.
    pub fn check(&self) -> Result<(), String> {
        if !(MIN_LOG_LINE_BYTES..=MAX_LOG_LINE_BYTES).contains(&self.max_log_line_bytes) {
            return Err(format!(
                "executor.max_log_line_bytes must be between {MIN_LOG_LINE_BYTES} and {MAX_LOG_LINE_BYTES}, not {}",
                self.max_log_line_bytes
            ));
        }
        Ok(())
    }
}

/// A size for messages: whole MiB or KiB when it is one, else bytes.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    match bytes {
        0 => "0 bytes".to_owned(),
        _ if bytes.is_multiple_of(MIB) => format!("{} MiB", bytes / MIB),
        _ if bytes.is_multiple_of(KIB) => format!("{} KiB", bytes / KIB),
        _ => format!("{bytes} bytes"),
    }
}

/// The shortest line limit: room for some text and the truncation marker.
pub const MIN_LOG_LINE_BYTES: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_their_defaults() {
        let config: ExecutorConfig =
            serde_json::from_str(r#"{"default_image": "alpine:3.20", "cancel_grace_secs": 1}"#).expect("valid config");
        assert_eq!(config.default_image, "alpine:3.20");
        assert_eq!(config.cancel_grace(), Duration::from_secs(1));
        assert_eq!(config.podman_socket, ExecutorConfig::default().podman_socket);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(256 * 1024 * 1024), "256 MiB");
        assert_eq!(human_bytes(64 * 1024), "64 KiB");
        assert_eq!(human_bytes(100_000), "100000 bytes");
    }
}
