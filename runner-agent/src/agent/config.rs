//! The runner's configuration: defaults < TOML file < `RIVET_RUNNER_*` environment
//! (`__` separates nesting levels, e.g. `RIVET_RUNNER_EXECUTOR__DEFAULT_IMAGE=alpine`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use rivet_core::text::MAX_MESSAGE_BYTES;
use serde::{Deserialize, Serialize};

use rivet_core::settings::{self, EnvReport, KeyPaths};

use crate::config::ExecutorConfig;
use crate::executor::LINE_OVERHEAD;
use crate::executor::context::{MAX_OUTPUT_KEY, MAX_OUTPUT_VALUE, MAX_OUTPUTS};

/// Room in a message for what surrounds a log batch (the envelope, the assignment).
const ENVELOPE_BYTES: usize = 64 * 1024;
/// The smallest message limit: a job's finish carries its message and every output, each
/// value up to its cap after secrets are masked (masking may lengthen a value).
const MIN_MESSAGE_BYTES: usize = MAX_OUTPUTS * (MAX_OUTPUT_KEY + MAX_OUTPUT_VALUE) + MAX_MESSAGE_BYTES + ENVELOPE_BYTES;
/// A bound on stage names for sizing batches (validation keeps them far shorter).
const MAX_STAGE_NAME_BYTES: usize = 1024;

/// The prefix of the runner's environment variables.
const PREFIX: &str = "RIVET_RUNNER_";

/// Every variable with the runner's prefix must name a setting: the runner has its own
/// prefix, so anything else under it is a mistake, whether it resembles a setting or not.
fn unknown_variables(report: &EnvReport) -> Option<String> {
    let mut lines: Vec<String> = report
        .typos
        .iter()
        .map(|(var, meant)| match meant {
            Some(meant) => format!("{var} (did you mean {meant}?)"),
            None => var.clone(),
        })
        .collect();
    lines.extend(report.unknown.iter().cloned());
    (!lines.is_empty()).then(|| format!("environment variable(s) naming no runner setting: {}", lines.join("; ")))
}

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
    /// The most bytes of unacknowledged log lines one job may spill to disk. A job that
    /// would spill more (the orchestrator has not confirmed its lines for that long) fails
    /// with a message naming this limit.
    pub max_log_spill_bytes: u64,
    /// The largest log batch sent, in bytes (each line's text and stage name plus 64
    /// bytes). Must stay below `max_message_bytes` (and the orchestrator's) with room to
    /// spare: a batch that does not fit a message would break the stream on every resend.
    pub max_log_batch_bytes: usize,
    /// The ceiling of the first reconnect delay, in milliseconds; it doubles up to
    /// `reconnect_max_ms`, and each delay is drawn uniformly below its ceiling (full jitter).
    pub reconnect_min_ms: u64,
    /// The largest ceiling of a reconnect delay, in milliseconds.
    pub reconnect_max_ms: u64,
    /// The largest gRPC message sent or received, in bytes; at least 4341760 (a job's finish
    /// carries up to 256 outputs of 16 KiB each and its message).
    pub max_message_bytes: usize,
    /// TLS towards an `https://` orchestrator.
    pub tls: TlsFiles,
    /// How jobs run.
    pub executor: ExecutorConfig,
    /// Traces over OTLP (off unless an endpoint is configured).
    pub telemetry: rivet_telemetry::TelemetryConfig,
    /// The Prometheus `/metrics` endpoint (off unless `listen` is set).
    pub metrics: rivet_telemetry::metrics::MetricsConfig,
}

/// The TLS files of the runner's connection to an `https://` orchestrator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsFiles {
    /// A PEM file of CA certificates to trust besides the public web roots (an
    /// orchestrator with a private CA).
    pub ca_file: Option<PathBuf>,
    /// The runner's client certificate, PEM, for an orchestrator that requires mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file`, PEM.
    pub key_file: Option<PathBuf>,
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
            max_log_spill_bytes: 1024 * 1024 * 1024,
            max_log_batch_bytes: 1024 * 1024,
            reconnect_min_ms: 200,
            reconnect_max_ms: 30_000,
            max_message_bytes: 8 * 1024 * 1024,
            tls: TlsFiles::default(),
            executor: ExecutorConfig::default(),
            telemetry: rivet_telemetry::TelemetryConfig::default(),
            metrics: rivet_telemetry::metrics::MetricsConfig::default(),
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
        // RIVET_RUNNER_CONFIG names the file; it is not a setting. Any other variable with
        // the prefix must name one: a typo stops the start, naming the variable meant.
        // `token`, the old name of `registration_token`, is skipped when serialized but
        // still read, from the environment too (`RIVET_RUNNER_TOKEN`).
        let keys = KeyPaths::from_defaults(&serde_json::to_value(AgentConfig::default()).unwrap_or_default())
            .with_leaves(["token"]);
        let vars: Vec<String> = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()).collect();
        let report = settings::check_env(PREFIX, vars.iter().map(String::as_str), &keys, &["RIVET_RUNNER_CONFIG"]);
        if let Some(message) = unknown_variables(&report) {
            return Err(Box::new(figment::Error::from(message)));
        }
        let env = Env::prefixed(PREFIX).split("__").filter(|key| !key.as_str().eq_ignore_ascii_case("config"));
        let config: AgentConfig = figment.merge(env).extract().map_err(Box::new)?;
        config.check().map_err(|message| Box::new(figment::Error::from(message)))?;
        Ok(config)
    }

    /// The registration token, under either name.
    pub fn registration_token(&self) -> Option<&str> {
        self.registration_token.as_deref().or(self.token.as_deref())
    }

    /// Checks the settings that depend on each other: every message the runner sends must
    /// fit `max_message_bytes`.
    pub fn check(&self) -> Result<(), String> {
        if self.capacity == 0 {
            return Err("capacity must be at least 1".to_owned());
        }
        self.telemetry.validate()?;
        self.executor.check()?;
        if self.max_message_bytes < MIN_MESSAGE_BYTES {
            return Err(format!(
                "max_message_bytes must be at least {MIN_MESSAGE_BYTES} (a job's outputs and messages travel in one), not {}",
                self.max_message_bytes
            ));
        }
        let line = self.executor.max_log_line_bytes + LINE_OVERHEAD + MAX_STAGE_NAME_BYTES;
        if self.max_log_batch_bytes < line || self.max_log_batch_bytes > self.max_message_bytes - ENVELOPE_BYTES {
            return Err(format!(
                "max_log_batch_bytes must be between {line} (one line) and max_message_bytes - {ENVELOPE_BYTES} ({}), not {}",
                self.max_message_bytes - ENVELOPE_BYTES,
                self.max_log_batch_bytes
            ));
        }
        Ok(())
    }

    /// The configuration with its secrets replaced by `REDACTED`, for `--print-config`.
    pub fn redacted(&self) -> AgentConfig {
        let mut config = self.clone();
        for token in [&mut config.registration_token, &mut config.token].into_iter().flatten() {
            *token = settings::REDACTED.to_owned();
        }
        config.telemetry.otlp_endpoint = config.telemetry.otlp_endpoint.as_deref().map(settings::redact_url);
        config
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

    /// The ceilings of the reconnect delays: the first, and the largest it doubles up to.
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

    #[test]
    fn redaction_hides_tokens_and_the_collectors_password() {
        let config = AgentConfig {
            registration_token: Some("reg".into()),
            telemetry: rivet_telemetry::TelemetryConfig {
                otlp_endpoint: Some("https://runner:s3cret@collector:4317".into()),
                ..Default::default()
            },
            ..AgentConfig::default()
        };
        let redacted = config.redacted();
        assert_eq!(redacted.registration_token.as_deref(), Some("REDACTED"));
        assert_eq!(redacted.telemetry.otlp_endpoint.as_deref(), Some("https://runner:REDACTED@collector:4317/"));
    }

    /// The documented example configuration must load, hold the defaults, and mention
    /// every setting: it is the configuration reference.
    #[test]
    fn the_example_configuration_is_complete_and_current() {
        let config = AgentConfig::load(Some(Path::new(EXAMPLE))).expect("the example loads");
        assert_eq!(config, AgentConfig::default());
        let text = std::fs::read_to_string(EXAMPLE).expect("the example exists");
        let keys = KeyPaths::from_defaults(&serde_json::to_value(AgentConfig::default()).expect("serializable"));
        for path in keys.all() {
            let key = path.rsplit('.').next().unwrap_or(path);
            let documented = text.contains(&format!("{key} =")) || text.contains(&format!("[{key}]"));
            assert!(documented, "deploy/config/runner.toml does not document `{path}`");
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
    fn settings_that_must_fit_a_message_are_checked() {
        let check = |change: fn(&mut AgentConfig)| {
            let mut config = AgentConfig::default();
            change(&mut config);
            config.check()
        };
        assert_eq!(check(|_| {}), Ok(()));
        assert_eq!(
            check(|c| c.max_log_batch_bytes = 8 * 1024 * 1024),
            Err("max_log_batch_bytes must be between 66624 (one line) and max_message_bytes - 65536 (8323072), not 8388608".to_owned())
        );
        assert_eq!(
            check(|c| c.executor.max_log_line_bytes = 1 << 20),
            Err("executor.max_log_line_bytes must be between 256 and 65536, not 1048576".to_owned())
        );
        assert_eq!(
            check(|c| c.max_message_bytes = 1024),
            Err("max_message_bytes must be at least 4341760 (a job's outputs and messages travel in one), not 1024"
                .to_owned())
        );
    }

    #[test]
    fn labels_always_name_the_platform() {
        let labels = AgentConfig::default().announced_labels();
        assert_eq!(labels["os"], std::env::consts::OS);
        assert_eq!(labels["arch"], std::env::consts::ARCH);
    }
}
