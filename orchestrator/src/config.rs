//! The orchestrator's configuration: defaults < TOML file < `RIVET_*` environment
//! (`__` separates nesting levels, e.g. `RIVET_AUTH__REGISTRATION_TOKENS='["t1"]'`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Everything the orchestrator can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the gRPC server listens.
    pub listen: SocketAddr,
    /// The database: `postgres://…` for distributed mode, `sqlite://path?mode=rwc` (or
    /// `sqlite::memory:`) for embedded mode.
    pub database_url: String,
    /// Redis for presence, leases and fan-out across replicas; unset for the in-memory
    /// coordinator of a single replica.
    pub redis_url: Option<String>,
    /// The prefix of every Redis key and channel.
    pub redis_namespace: String,
    /// This replica's name in presence records; defaults to a random id.
    pub replica_id: Option<String>,
    /// How long a job's lease lasts without a heartbeat, in milliseconds.
    pub lease_ttl_ms: u64,
    /// How often runners send heartbeats, in milliseconds. Well under the lease TTL.
    pub heartbeat_interval_ms: u64,
    /// How many times a job may be assigned before a lost runner makes it `lost`.
    pub max_attempts: u32,
    /// The longest a job may run, in seconds, sent to its runner with the assignment; the
    /// runner stops it and reports it `timed_out`. Unset: only stage timeouts apply.
    pub job_timeout_secs: Option<u64>,
    /// The largest gRPC message accepted, in bytes (pipeline sources, log batches).
    pub max_message_bytes: usize,
    /// The largest pipeline source accepted, in bytes.
    pub max_pipeline_bytes: usize,
    /// How long a shutdown waits for runners to drain before it closes their streams.
    pub shutdown_grace_ms: u64,
    /// Credentials.
    pub auth: AuthConfig,
}

/// Credentials the orchestrator accepts. With no API token and no registration token,
/// both sides are open (as in the embedded mode, which listens on loopback only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Registration tokens a new runner may present once to `RegisterRunner` to receive
    /// its own credential, for deployments where no CLI runs before the runners (compose,
    /// Kubernetes). They grant the labels each runner asks for, have no use limit and no
    /// expiry; `rivet runner token create` makes narrower ones.
    pub registration_tokens: Vec<String>,
    /// The old name of `registration_tokens` (a token every runner shared, before runners
    /// had their own credentials): still read, as registration tokens.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runner_tokens: Vec<String>,
    /// Tokens users and clients present as `authorization: Bearer <token>`.
    pub api_tokens: Vec<String>,
}

impl AuthConfig {
    /// Every registration token configured, under either name.
    pub fn all_registration_tokens(&self) -> Vec<String> {
        self.registration_tokens.iter().chain(&self.runner_tokens).cloned().collect()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7420)),
            database_url: "sqlite://rivet.db?mode=rwc".to_owned(),
            redis_url: None,
            redis_namespace: "rivet".to_owned(),
            replica_id: None,
            lease_ttl_ms: 15_000,
            heartbeat_interval_ms: 3_000,
            max_attempts: 3,
            job_timeout_secs: None,
            max_message_bytes: 8 * 1024 * 1024,
            max_pipeline_bytes: 1024 * 1024,
            shutdown_grace_ms: 10_000,
            auth: AuthConfig::default(),
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (when given, it must exist), then `RIVET_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        // Only variables naming a setting: RIVET_SERVER (the CLI's), RIVET_RUNNER_* (the
        // runner's) and RIVET_TEST_* (the tests') are someone else's.
        let known = Config::top_level_keys();
        let env = Env::prefixed("RIVET_").split("__").filter(move |key| {
            let first = key.as_str().split("__").next().unwrap_or_default().to_ascii_lowercase();
            known.contains(&first)
        });
        let config: Config = figment.merge(env).extract().map_err(Box::new)?;
        config.validate().map_err(|message| Box::new(figment::Error::from(message)))?;
        Ok(config)
    }

    fn top_level_keys() -> Vec<String> {
        match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Checks relations between settings that serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_interval_ms == 0 || self.lease_ttl_ms < 2 * self.heartbeat_interval_ms {
            return Err(format!(
                "lease_ttl_ms ({}) must be at least twice heartbeat_interval_ms ({}), which must not be 0",
                self.lease_ttl_ms, self.heartbeat_interval_ms
            ));
        }
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".to_owned());
        }
        if self.max_pipeline_bytes > self.max_message_bytes {
            return Err("max_pipeline_bytes must not exceed max_message_bytes".to_owned());
        }
        Ok(())
    }

    /// The lease TTL.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }

    /// The heartbeat interval.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config/orchestrator.toml");

    /// The documented example configuration must load, hold the defaults, and mention
    /// every setting: it is the configuration reference.
    #[test]
    fn the_example_configuration_is_complete_and_current() {
        let config = Config::load(Some(Path::new(EXAMPLE))).expect("the example loads");
        assert_eq!(config, Config::default());
        let text = std::fs::read_to_string(EXAMPLE).expect("the example exists");
        let json = serde_json::to_value(Config::default()).expect("serializable");
        let mut keys: Vec<String> =
            json.as_object().expect("an object").keys().filter(|k| *k != "auth").cloned().collect();
        keys.extend(["api_tokens".to_owned(), "registration_tokens".to_owned()]);
        for key in keys {
            assert!(text.contains(&format!("{key} =")), "deploy/config/orchestrator.toml does not document `{key}`");
        }
    }

    /// `auth.runner_tokens` (the shared runner token before runners had their own
    /// credentials) still loads, as registration tokens.
    #[test]
    fn the_old_runner_tokens_setting_is_read_as_registration_tokens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("old.toml");
        std::fs::write(&file, "[auth]\nrunner_tokens = [\"shared\"]").expect("write");
        let config = Config::load(Some(&file)).expect("the old name loads");
        assert_eq!(config.auth.all_registration_tokens(), ["shared"]);
    }

    #[test]
    fn unknown_and_inconsistent_settings_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "lease_tll_ms = 5").expect("write");
        let err = Config::load(Some(&file)).expect_err("a typo must not pass").to_string();
        assert!(err.contains("lease_tll_ms"), "{err}");
        std::fs::write(&file, "lease_ttl_ms = 1000\nheartbeat_interval_ms = 900").expect("write");
        let err = Config::load(Some(&file)).expect_err("inconsistent").to_string();
        assert!(err.contains("at least twice"), "{err}");
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
    }
}
