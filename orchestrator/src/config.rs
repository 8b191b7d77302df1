//! The orchestrator's configuration: defaults < TOML file < `RIVET_*` environment
//! (`__` separates nesting levels, e.g. `RIVET_AUTH__REGISTRATION_TOKENS='["t1"]'`).
//!
//! Every setting can be given either way, nested ones included. A `RIVET_*` variable that
//! names no setting but looks like one (`RIVET_LEASE_TLL_MS`, `RIVET_AUTH__API_TOKEN`)
//! stops the start with the variable meant; other programs' variables (the CLI's
//! `RIVET_SERVER`, the runner's `RIVET_RUNNER_*`) are left alone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use rivet_core::settings::{self, KeyPaths};
use rivet_telemetry::TelemetryConfig;
use rivet_telemetry::metrics::MetricsConfig;
use serde::{Deserialize, Serialize};

/// The prefix of the orchestrator's environment variables.
const PREFIX: &str = "RIVET_";

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
    /// runner stops it and reports it `timed_out`. 0: no job timeout (stage timeouts still
    /// apply, and nothing on the orchestrator stops a job whose runner keeps heartbeating).
    pub job_timeout_secs: u64,
    /// How long past `job_timeout_secs` the orchestrator waits for the runner to report a
    /// timed-out job before it ends the job itself (`timed_out`, reason `timeout`), refuses
    /// the runner's later reports and tells it to cancel: the backstop for a runner that
    /// keeps heartbeating but never stops the job. In seconds.
    pub job_timeout_grace_secs: u64,
    /// The largest gRPC message accepted, in bytes (pipeline sources, log batches).
    pub max_message_bytes: usize,
    /// The largest pipeline source accepted, in bytes.
    pub max_pipeline_bytes: usize,
    /// How long a shutdown waits for runners to drain before it closes their streams.
    pub shutdown_grace_ms: u64,
    /// How often a log follower re-reads the store when no live line and no job event
    /// arrives, in milliseconds: the fallback that delivers a line whose fan-out message
    /// was lost. Live lines do not wait for it.
    pub log_follow_poll_ms: u64,
    /// Credentials.
    pub auth: AuthConfig,
    /// Evaluating pipeline scripts at creation time.
    pub evaluation: EvaluationConfig,
    /// TLS for the gRPC server.
    pub tls: TlsConfig,
    /// The key that encrypts stored secrets.
    pub secrets: SecretsConfig,
    /// Traces over OTLP (off unless an endpoint is configured).
    pub telemetry: TelemetryConfig,
    /// The Prometheus `/metrics` endpoint (off unless `listen` is set).
    pub metrics: MetricsConfig,
    /// The cron scheduler every replica runs.
    pub schedules: SchedulesConfig,
    /// The forge webhook listener (off unless `listen` is set).
    pub webhooks: WebhooksConfig,
    /// Allow listening off loopback without TLS or without authentication. Never in
    /// production: anyone who can reach the port can then read and do everything. A
    /// warning is logged at every start while it is set.
    pub insecure: bool,
}

/// The forge webhook listener: plain HTTP/1 (put a TLS-terminating proxy in front of it
/// off a private network), serving only `POST /hooks/<trigger-id>`. Every delivery is
/// checked against its trigger's secret before anything is parsed or launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Where the listener listens, e.g. `0.0.0.0:7421`; unset, there is none and triggers
    /// launch nothing.
    pub listen: Option<SocketAddr>,
    /// The base URL forges reach the listener at (`https://ci.example.com`), shown as each
    /// trigger's webhook URL with `/hooks/<id>` appended; `http://<listen>` when unset.
    pub public_url: Option<String>,
    /// The largest webhook body accepted, in bytes; larger ones are refused with 413
    /// without being read. At most 4 MiB (what `rivet_core` parses).
    pub max_body_bytes: usize,
    /// How long one connection may take to send its request and get the answer, in seconds.
    pub request_timeout_secs: u64,
    /// How many connections are served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// The page a triggered job's commit status links to, with `{job}` replaced by the
    /// job's id (e.g. `https://rivet.example/jobs/{job}`); unset, statuses carry no link.
    pub job_url: Option<String>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            listen: None,
            public_url: None,
            max_body_bytes: rivet_core::forge::webhook::MAX_BODY,
            request_timeout_secs: 10,
            max_connections: 64,
            job_url: None,
        }
    }
}

impl WebhooksConfig {
    /// The most connections `max_connections` may be.
    const MAX_CONNECTIONS: usize = 4096;
    /// The longest `request_timeout_secs` may be: forges give up after 10 to 30 s.
    const MAX_TIMEOUT_SECS: u64 = 300;

    /// How long one connection may last.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// The base URL of trigger webhooks when the listener is bound to `bound`: the
    /// configured public URL without a trailing `/`, else `http://<bound>`.
    pub fn base_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }

    /// The link of job `job`'s commit statuses, when `job_url` is set.
    pub fn job_link(&self, job: uuid::Uuid) -> Option<String> {
        self.job_url.as_ref().map(|template| template.replace("{job}", &job.to_string()))
    }

    /// Checks the settings, every problem at once.
    fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let max_body = rivet_core::forge::webhook::MAX_BODY;
        if self.max_body_bytes == 0 || self.max_body_bytes > max_body {
            problems.push(format!("webhooks.max_body_bytes must be between 1 and {max_body} (4 MiB)"));
        }
        if self.request_timeout_secs == 0 || self.request_timeout_secs > Self::MAX_TIMEOUT_SECS {
            problems.push(format!("webhooks.request_timeout_secs must be between 1 and {}", Self::MAX_TIMEOUT_SECS));
        }
        if self.max_connections == 0 || self.max_connections > Self::MAX_CONNECTIONS {
            problems.push(format!("webhooks.max_connections must be between 1 and {}", Self::MAX_CONNECTIONS));
        }
        if let Some(url) = &self.public_url {
            match url::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
                    if parsed.query().is_some() || parsed.fragment().is_some() {
                        problems.push(format!("webhooks.public_url `{url}` must have no query or fragment"));
                    }
                }
                _ => problems.push(format!(
                    "webhooks.public_url `{url}` is not an http:// or https:// URL, e.g. https://ci.example.com"
                )),
            }
        }
        if let Some(template) = &self.job_url {
            let example = template.replace("{job}", "00000000-0000-0000-0000-000000000000");
            let web = url::Url::parse(&example).is_ok_and(|url| matches!(url.scheme(), "http" | "https"));
            if !template.contains("{job}") || !web || template.len() > 2048 {
                problems.push(format!(
                    "webhooks.job_url `{}` must be an http(s) URL naming the job as {{job}}, e.g. https://rivet.example/jobs/{{job}}",
                    rivet_core::text::truncate(template, 128)
                ));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
    }
}

/// TLS for the gRPC server (rustls). Off loopback, the orchestrator refuses to start
/// without it unless `insecure` is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain, PEM. Setting it (with `key_file`) turns TLS on.
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file`, PEM.
    pub key_file: Option<PathBuf>,
    /// A PEM file of CA certificates that sign client certificates. When set, clients may
    /// present a certificate (mutual TLS), and `require_runner_certificate` can demand one
    /// of runners.
    pub client_ca_file: Option<PathBuf>,
    /// Refuse a runner stream whose connection did not present a client certificate
    /// signed by `client_ca_file`.
    pub require_runner_certificate: bool,
}

impl TlsConfig {
    /// Whether the server speaks TLS.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some()
    }
}

/// The key that encrypts the secrets pipelines read (XChaCha20-Poly1305). A key is 32
/// random bytes written as 64 hex digits (`openssl rand -hex 32`) or in standard base64.
/// Without one, `SetSecret` is refused with `FAILED_PRECONDITION` naming these settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// A file that holds the current key (it should be readable by the orchestrator only).
    pub key_file: Option<PathBuf>,
    /// The current key itself, for deployments that pass it in the environment
    /// (`RIVET_SECRETS__KEY`); used when `key_file` is unset.
    pub key: Option<String>,
    /// Files with earlier keys, still accepted to decrypt while a rotation is under way.
    pub previous_key_files: Vec<PathBuf>,
    /// Earlier keys themselves, still accepted to decrypt.
    pub previous_keys: Vec<String>,
}

/// The cron scheduler (`domain::schedules`): every replica ticks, and the database makes
/// each due time fire once among them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulesConfig {
    /// How often a replica looks for due schedules, in milliseconds (at least 10). A job
    /// starts up to this long after its due time.
    pub tick_ms: u64,
    /// Under the `skip` missed-run policy, how late a due time may still fire, in seconds:
    /// a tick a little late runs it, a restart after longer downtime does not.
    pub grace_secs: u64,
}

impl Default for SchedulesConfig {
    fn default() -> Self {
        SchedulesConfig { tick_ms: 1_000, grace_secs: 60 }
    }
}

impl SchedulesConfig {
    /// The shortest tick accepted.
    const MIN_TICK_MS: u64 = 10;

    fn validate(&self) -> Result<(), String> {
        if self.tick_ms < Self::MIN_TICK_MS {
            return Err(format!("schedules.tick_ms must be at least {} (got {})", Self::MIN_TICK_MS, self.tick_ms));
        }
        Ok(())
    }
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

/// Credentials the orchestrator accepts. With no bootstrap API token configured and none
/// ever created through `TokenService`, the API is open; with no bootstrap API token and no
/// registration token configured, runners connect without a credential (as in the
/// embedded mode, which listens on loopback only).
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
    /// Bootstrap tokens users and clients present as `authorization: Bearer <token>`: each
    /// has the `admin` role, so it can create the per-user tokens (with their roles) that
    /// the database keeps hashed. Compared by SHA-256 digest in constant time. Empty by
    /// default.
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
            job_timeout_secs: 3_600,
            job_timeout_grace_secs: 60,
            max_message_bytes: 8 * 1024 * 1024,
            max_pipeline_bytes: 1024 * 1024,
            shutdown_grace_ms: 10_000,
            log_follow_poll_ms: 1_000,
            auth: AuthConfig::default(),
            evaluation: EvaluationConfig::default(),
            tls: TlsConfig::default(),
            secrets: SecretsConfig::default(),
            telemetry: TelemetryConfig::default(),
            metrics: MetricsConfig::default(),
            schedules: SchedulesConfig::default(),
            webhooks: WebhooksConfig::default(),
            insecure: false,
        }
    }
}

/// Variables with the `RIVET_` prefix that are not the orchestrator's settings: the file
/// option, the CLI's, the runner's and the tests'.
const FOREIGN_VARIABLES: &[&str] =
    &["RIVET_CONFIG", "RIVET_SERVER", "RIVET_TOKEN", "RIVET_CA_FILE", "RIVET_RUNNER_*", "RIVET_TEST_*"];

/// Settings under their old names: still read, never serialized when unset.
const OLD_NAMES: &[&str] = &["auth.runner_tokens"];

/// What `--print-config` shows instead of a secret, and the redaction of URLs: shared
/// with the runner.
pub use rivet_core::settings::{REDACTED, redact_url};

impl Config {
    /// Loads defaults, then `file` (when given, it must exist), then `RIVET_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        // The old name of a setting is skipped when serialized, but still read.
        let keys = KeyPaths::from_defaults(&serde_json::to_value(Config::default()).unwrap_or_default())
            .with_leaves(OLD_NAMES.iter().copied());
        let vars: Vec<String> = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()).collect();
        let report = settings::check_env(PREFIX, vars.iter().map(String::as_str), &keys, FOREIGN_VARIABLES);
        if !report.typos.is_empty() {
            return Err(Box::new(figment::Error::from(settings_typos(&report.typos))));
        }
        for var in &report.unknown {
            tracing::warn!(variable = %var, "ignoring an environment variable that names no orchestrator setting");
        }
        // Only variables that name a setting reach figment. Figment's `split` has already
        // turned `__` into `.` when the filter runs, so the filter sees dotted paths.
        let env =
            Env::prefixed(PREFIX).split("__").filter(move |key| keys.contains(&key.as_str().to_ascii_lowercase()));
        let config: Config = figment.merge(env).extract().map_err(Box::new)?;
        config.validate().map_err(|message| Box::new(figment::Error::from(message)))?;
        Ok(config)
    }

    /// The configuration with every secret replaced by [`REDACTED`]: tokens, and the
    /// passwords in database and Redis URLs. What `--print-config` prints.
    pub fn redacted(&self) -> Config {
        let mut config = self.clone();
        config.database_url = redact_url(&config.database_url);
        config.redis_url = config.redis_url.as_deref().map(redact_url);
        let auth = &mut config.auth;
        for token in auth.api_tokens.iter_mut().chain(&mut auth.registration_tokens).chain(&mut auth.runner_tokens) {
            *token = REDACTED.to_owned();
        }
        let secrets = &mut config.secrets;
        for key in secrets.key.iter_mut().chain(&mut secrets.previous_keys) {
            *key = REDACTED.to_owned();
        }
        config.telemetry.otlp_endpoint = config.telemetry.otlp_endpoint.as_deref().map(redact_url);
        config.webhooks.public_url = config.webhooks.public_url.as_deref().map(redact_url);
        config
    }

    /// Whether both the API and the runner endpoint demand credentials: a bootstrap API
    /// token, and a registration token (under either name) for runners to register with.
    /// With neither, runners connect without a credential.
    pub fn authenticated(&self) -> bool {
        !self.auth.api_tokens.is_empty()
            && (!self.auth.registration_tokens.is_empty() || !self.auth.runner_tokens.is_empty())
    }

    /// What is missing for listening on `listen` safely: TLS and authentication, both
    /// required off loopback. Empty when nothing is.
    pub fn exposure(&self) -> Vec<&'static str> {
        if self.listen.ip().is_loopback() {
            return Vec::new();
        }
        let mut missing = Vec::new();
        if !self.tls.enabled() {
            missing.push("TLS (tls.cert_file and tls.key_file)");
        }
        if !self.authenticated() {
            missing.push("authentication (auth.api_tokens and auth.registration_tokens)");
        }
        missing
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
        if self.log_follow_poll_ms == 0 {
            return Err("log_follow_poll_ms must be at least 1".to_owned());
        }
        if self.max_pipeline_bytes > self.max_message_bytes {
            return Err("max_pipeline_bytes must not exceed max_message_bytes".to_owned());
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err("tls.cert_file and tls.key_file must be set together".to_owned());
        }
        if self.tls.client_ca_file.is_some() && !self.tls.enabled() {
            return Err("tls.client_ca_file needs tls.cert_file and tls.key_file".to_owned());
        }
        if self.tls.require_runner_certificate && self.tls.client_ca_file.is_none() {
            return Err("tls.require_runner_certificate needs tls.client_ca_file".to_owned());
        }
        let missing = self.exposure();
        if !missing.is_empty() && !self.insecure {
            return Err(format!(
                "refusing to listen on {} without {}: anyone who can reach it could read and do everything. \
                 Configure them, listen on a loopback address, or set `insecure = true` (RIVET_INSECURE=true) \
                 to accept the risk",
                self.listen,
                missing.join(" and ")
            ));
        }
        self.telemetry.validate()?;
        if self.metrics.listen.is_some_and(|metrics| metrics == self.listen && metrics.port() != 0) {
            return Err(format!("metrics.listen ({}) must differ from listen", self.listen));
        }
        self.schedules.validate()?;
        self.webhooks.validate()?;
        if let Some(webhooks) = self.webhooks.listen
            && webhooks.port() != 0
        {
            if webhooks == self.listen {
                return Err(format!("webhooks.listen ({webhooks}) must differ from listen"));
            }
            if self.metrics.listen == Some(webhooks) {
                return Err(format!("webhooks.listen ({webhooks}) must differ from metrics.listen"));
            }
        }
        self.evaluation.validate()
    }

    /// How often a log follower re-reads the store without a live line or a job event.
    pub fn log_follow_poll(&self) -> Duration {
        Duration::from_millis(self.log_follow_poll_ms)
    }

    /// The lease TTL.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }

    /// The heartbeat interval.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// The job timeout the runner enforces; `None` when jobs have none.
    pub fn job_timeout(&self) -> Option<Duration> {
        (self.job_timeout_secs > 0).then(|| Duration::from_secs(self.job_timeout_secs))
    }

    /// How long a job may run before the orchestrator ends it without waiting for its
    /// runner: the job timeout plus its grace; `None` when jobs have no timeout.
    pub fn job_deadline(&self) -> Option<Duration> {
        self.job_timeout().map(|timeout| timeout + Duration::from_secs(self.job_timeout_grace_secs))
    }
}

/// The start-up error for mistyped variables, each with the one meant when known.
pub fn settings_typos(typos: &[(String, Option<String>)]) -> String {
    let lines: Vec<String> = typos
        .iter()
        .map(|(var, meant)| match meant {
            Some(meant) => format!("{var} names no setting (did you mean {meant}?)"),
            None => format!("{var} names no setting"),
        })
        .collect();
    format!("unknown environment variable(s): {}", lines.join("; "))
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
        let keys = KeyPaths::from_defaults(&serde_json::to_value(Config::default()).expect("serializable"));
        for path in keys.all() {
            let key = path.rsplit('.').next().unwrap_or(path);
            assert!(text.contains(&format!("{key} =")), "deploy/config/orchestrator.toml does not document `{path}`");
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
    fn off_loopback_needs_tls_and_authentication_unless_insecure() {
        let exposed = SocketAddr::from(([0, 0, 0, 0], 7420));
        let mut config = Config { listen: exposed, ..Config::default() };
        let err = config.validate().expect_err("open and plain text off loopback");
        assert!(err.contains("without TLS (tls.cert_file and tls.key_file) and authentication"), "{err}");
        config.auth = AuthConfig { api_tokens: vec!["a".into()], ..AuthConfig::default() };
        let err = config.validate().expect_err("runners can connect without a credential");
        assert!(err.contains("authentication (auth.api_tokens and auth.registration_tokens)"), "{err}");
        // The old name of registration tokens counts as well.
        config.auth =
            AuthConfig { api_tokens: vec!["a".into()], runner_tokens: vec!["r".into()], ..AuthConfig::default() };
        let err = config.validate().expect_err("plain text off loopback");
        assert!(err.contains("without TLS") && !err.contains("authentication"), "{err}");
        config.auth =
            AuthConfig { api_tokens: vec!["a".into()], registration_tokens: vec!["r".into()], ..AuthConfig::default() };
        let err = config.validate().expect_err("plain text off loopback");
        assert!(err.contains("without TLS") && !err.contains("authentication"), "{err}");
        config.tls.cert_file = Some("cert.pem".into());
        config.tls.key_file = Some("key.pem".into());
        assert_eq!(config.validate(), Ok(()));
        let insecure = Config { listen: exposed, insecure: true, ..Config::default() };
        assert_eq!(insecure.validate(), Ok(()));
        assert_eq!(Config::default().exposure(), Vec::<&str>::new());
    }

    #[test]
    fn redaction_hides_tokens_and_passwords() {
        let config = Config {
            database_url: "postgres://rivet:hunter2@db:5432/rivet?sslmode=require".to_owned(),
            redis_url: Some("rediss://default:pa55@cache:6380/0".to_owned()),
            auth: AuthConfig {
                api_tokens: vec!["t1".into()],
                registration_tokens: vec!["t2".into(), "t3".into()],
                runner_tokens: vec!["t4".into()],
            },
            telemetry: TelemetryConfig {
                otlp_endpoint: Some("https://rivet:s3cret@collector:4317".into()),
                ..TelemetryConfig::default()
            },
            ..Config::default()
        };
        let redacted = config.redacted();
        assert_eq!(redacted.telemetry.otlp_endpoint.as_deref(), Some("https://rivet:REDACTED@collector:4317/"));
        assert_eq!(redacted.database_url, "postgres://rivet:REDACTED@db:5432/rivet?sslmode=require");
        assert_eq!(redacted.redis_url.as_deref(), Some("rediss://default:REDACTED@cache:6380/0"));
        assert_eq!(redacted.auth.api_tokens, vec![REDACTED]);
        assert_eq!(redacted.auth.registration_tokens, vec![REDACTED, REDACTED]);
        assert_eq!(redacted.auth.runner_tokens, vec![REDACTED]);
        assert_eq!(redact_url("sqlite://rivet.db?mode=rwc"), "sqlite://rivet.db?mode=rwc");
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
        std::fs::write(&file, "log_follow_poll_ms = 0").expect("write");
        let err = Config::load(Some(&file)).expect_err("a follower must not spin").to_string();
        assert!(err.contains("log_follow_poll_ms must be at least 1"), "{err}");
        std::fs::write(&file, "[schedules]\ntick_ms = 9").expect("write");
        let err = Config::load(Some(&file)).expect_err("a scheduler must not spin").to_string();
        assert!(err.contains("schedules.tick_ms must be at least 10"), "{err}");
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
    }

    #[test]
    fn webhook_settings_are_bounded_and_their_url_defaults_to_the_listener() {
        let check = |webhooks: WebhooksConfig| Config { webhooks, ..Config::default() }.validate();
        assert_eq!(check(WebhooksConfig::default()), Ok(()));
        let err = check(WebhooksConfig {
            max_body_bytes: 5 * 1024 * 1024,
            request_timeout_secs: 0,
            max_connections: 0,
            public_url: Some("ci.example.com".into()),
            ..WebhooksConfig::default()
        })
        .expect_err("every setting is wrong");
        for setting in ["max_body_bytes", "request_timeout_secs", "max_connections", "public_url"] {
            assert!(err.contains(&format!("webhooks.{setting}")), "{err}");
        }
        let taken = Config {
            webhooks: WebhooksConfig { listen: Some(Config::default().listen), ..WebhooksConfig::default() },
            ..Config::default()
        };
        assert!(taken.validate().expect_err("same port").contains("must differ from listen"));
        let bound = SocketAddr::from(([127, 0, 0, 1], 7421));
        assert_eq!(WebhooksConfig::default().base_url(bound), "http://127.0.0.1:7421");
        let public = WebhooksConfig { public_url: Some("https://ci.example.com/".into()), ..WebhooksConfig::default() };
        assert_eq!(public.base_url(bound), "https://ci.example.com");
    }
}
