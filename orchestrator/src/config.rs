//! The orchestrator's configuration: defaults < TOML file < `RIVET_*` environment
//! (`__` separates nesting levels, e.g. `RIVET_AUTH__RUNNER_TOKENS='["t1"]'`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    /// Evaluating pipeline scripts at creation time.
    pub evaluation: EvaluationConfig,
}

/// How pipeline scripts are evaluated when they are created or validated: in a pool of
/// worker processes, each killed when it overruns (see `rivet-evaluator`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluationConfig {
    /// How many worker processes evaluate at once: the most CPUs that scripts being
    /// validated can take from this replica.
    pub workers: usize,
    /// How many evaluations may wait for a worker; beyond that, requests are refused with
    /// `RESOURCE_EXHAUSTED`.
    pub queue: usize,
    /// The time budget of one evaluation, in milliseconds. The sandbox stops a script at
    /// this budget; a worker that has not answered a second later is killed.
    pub time_budget_ms: u64,
    /// The Lua heap of one evaluation, in bytes. A worker's address space (`RLIMIT_AS`) is
    /// this plus 256 MiB for the process itself.
    pub memory_bytes: usize,
    /// The program started as a worker (with a hidden argument); this executable when
    /// unset. `rivet-orchestrator`, `rivet` and `rivet-runner` all serve.
    pub worker_program: Option<PathBuf>,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        let limits = rivet_core::Limits::DEFINITION;
        EvaluationConfig {
            workers: rivet_evaluator::DEFAULT_WORKERS,
            queue: rivet_evaluator::DEFAULT_QUEUE,
            time_budget_ms: limits.time.as_millis() as u64,
            memory_bytes: limits.memory,
            worker_program: None,
        }
    }
}

impl EvaluationConfig {
    /// The smallest Lua heap accepted: the sandbox and the DSL need about a MiB to start.
    const MIN_MEMORY_BYTES: usize = 4 * 1024 * 1024;

    /// The pool these settings describe.
    pub fn pool_config(&self) -> rivet_evaluator::PoolConfig {
        let program = self
            .worker_program
            .clone()
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("rivet-orchestrator"));
        let mut limits = rivet_core::Limits::DEFINITION;
        limits.memory = self.memory_bytes;
        limits.time = Duration::from_millis(self.time_budget_ms);
        rivet_evaluator::PoolConfig {
            workers: self.workers,
            queue: self.queue,
            ..rivet_evaluator::PoolConfig::new(program, limits)
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.workers == 0 {
            return Err("evaluation.workers must be at least 1".to_owned());
        }
        if self.time_budget_ms == 0 {
            return Err("evaluation.time_budget_ms must not be 0".to_owned());
        }
        if self.memory_bytes < Self::MIN_MEMORY_BYTES {
            return Err(format!("evaluation.memory_bytes must be at least {} (4 MiB)", Self::MIN_MEMORY_BYTES));
        }
        Ok(())
    }
}

/// Credentials the orchestrator accepts. When a list is empty, that side is open (as in
/// the embedded mode, which listens on loopback only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Tokens runners present as `authorization: Bearer <token>`.
    pub runner_tokens: Vec<String>,
    /// Tokens users and clients present as `authorization: Bearer <token>`.
    pub api_tokens: Vec<String>,
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
            evaluation: EvaluationConfig::default(),
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
        self.evaluation.validate()
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
        let sections = ["auth", "evaluation"];
        let mut keys: Vec<String> =
            json.as_object().expect("an object").keys().filter(|k| !sections.contains(&k.as_str())).cloned().collect();
        for section in sections {
            assert!(text.contains(&format!("[{section}]")), "deploy/config/orchestrator.toml has no [{section}]");
            keys.extend(json[section].as_object().expect("a section").keys().cloned());
        }
        for key in keys {
            assert!(text.contains(&format!("{key} =")), "deploy/config/orchestrator.toml does not document `{key}`");
        }
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
        std::fs::write(&file, "[evaluation]\nworkers = 0").expect("write");
        let err = Config::load(Some(&file)).expect_err("no workers").to_string();
        assert!(err.contains("evaluation.workers must be at least 1"), "{err}");
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
    }
}
