//! The runner's configuration: defaults < TOML file < `RIVET_RUNNER_*` environment
//! (`__` separates nesting levels, e.g. `RIVET_RUNNER_EXECUTOR__DEFAULT_IMAGE=alpine`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::config::ExecutorConfig;

/// Everything the runner agent can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// The orchestrator's gRPC address (or its load balancer's).
    pub orchestrator_url: String,
    /// A registration token (from `rivet runner token create`, or one of the
    /// orchestrator's `auth.registration_tokens`). A runner without a credential in its
    /// state directory presents it once to register, and from then on connects with the
    /// credential it received.
    pub registration_token: Option<String>,
    /// The old name of `registration_token` (the token every runner shared, before runners
    /// registered): still read, as the registration token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The runner's name; defaults to the host name.
    pub name: Option<String>,
    /// Extra labels; `os` and `arch` are always added from the machine.
    pub labels: BTreeMap<String, String>,
    /// How many jobs it runs at once.
    pub capacity: u32,
    /// Where it keeps its id, its credential (`credential.json`, mode 0600) and spilled log
    /// lines.
    pub state_dir: PathBuf,
    /// How many bytes of unacknowledged log text per job stay in memory before the rest
    /// spills to disk.
    pub log_memory_bytes: usize,
    /// The first reconnect delay, in milliseconds; doubles up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    /// The longest reconnect delay, in milliseconds.
    pub reconnect_max_ms: u64,
    /// The largest gRPC message sent or received, in bytes.
    pub max_message_bytes: usize,
    /// How jobs run.
    pub executor: ExecutorConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            orchestrator_url: "http://127.0.0.1:7420".to_owned(),
            registration_token: None,
            token: None,
            name: None,
            labels: BTreeMap::new(),
            capacity: 2,
            state_dir: PathBuf::from("/var/lib/rivet-runner"),
            log_memory_bytes: 16 * 1024 * 1024,
            reconnect_min_ms: 200,
            reconnect_max_ms: 30_000,
            max_message_bytes: 8 * 1024 * 1024,
            executor: ExecutorConfig::default(),
        }
    }
}

impl AgentConfig {
    /// Loads defaults, then `file` (when given, it must exist), then the environment.
    pub fn load(file: Option<&Path>) -> Result<AgentConfig, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(AgentConfig::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        // RIVET_RUNNER_CONFIG names the file; it is not a setting.
        let env = Env::prefixed("RIVET_RUNNER_").split("__").filter(|key| !key.as_str().eq_ignore_ascii_case("config"));
        let config: AgentConfig = figment.merge(env).extract().map_err(Box::new)?;
        if config.capacity == 0 {
            return Err(Box::new(figment::Error::from("capacity must be at least 1".to_owned())));
        }
        Ok(config)
    }

    /// The registration token, under either name.
    pub fn registration_token(&self) -> Option<&str> {
        self.registration_token.as_deref().or(self.token.as_deref())
    }

    /// The labels announced in the hello: the configured ones plus `os` and `arch`.
    pub fn announced_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.entry("os".to_owned()).or_insert_with(|| std::env::consts::OS.to_owned());
        labels.entry("arch".to_owned()).or_insert_with(|| std::env::consts::ARCH.to_owned());
        labels
    }

    /// The runner's name.
    pub fn runner_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "rivet-runner".to_owned())
        })
    }

    /// Reconnect delays: exponential from the minimum to the maximum.
    pub fn reconnect_bounds(&self) -> (Duration, Duration) {
        (
            Duration::from_millis(self.reconnect_min_ms.max(1)),
            Duration::from_millis(self.reconnect_max_ms.max(self.reconnect_min_ms)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config/runner.toml");

    /// The documented example configuration must load, hold the defaults, and mention
    /// every setting: it is the configuration reference.
    #[test]
    fn the_example_configuration_is_complete_and_current() {
        let config = AgentConfig::load(Some(Path::new(EXAMPLE))).expect("the example loads");
        assert_eq!(config, AgentConfig::default());
        let text = std::fs::read_to_string(EXAMPLE).expect("the example exists");
        let json = serde_json::to_value(AgentConfig::default()).expect("serializable");
        let top = json.as_object().expect("an object");
        let executor = top["executor"].as_object().expect("executor settings");
        for key in top.keys().chain(executor.keys()).filter(|k| *k != "executor" && *k != "labels") {
            assert!(text.contains(&format!("{key} =")), "deploy/config/runner.toml does not document `{key}`");
        }
    }

    /// `token` (the shared runner token before runners registered) still loads, as the
    /// registration token.
    #[test]
    fn the_old_token_setting_is_read_as_the_registration_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("old.toml");
        std::fs::write(&file, "token = \"shared\"").expect("write");
        let config = AgentConfig::load(Some(&file)).expect("the old name loads");
        assert_eq!(config.registration_token(), Some("shared"));
    }

    #[test]
    fn labels_always_name_the_platform() {
        let labels = AgentConfig::default().announced_labels();
        assert_eq!(labels["os"], std::env::consts::OS);
        assert_eq!(labels["arch"], std::env::consts::ARCH);
    }
}
