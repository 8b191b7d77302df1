//! Logs and traces of a Rivet process: one `tracing` subscriber with two layers, each with
//! its own filter (a single global filter would silently stop every span from being
//! exported, see DEPENDENCIES.md):
//!
//! - the log lines (`RUST_LOG`, else the binary's default) on stdout or stderr; they carry
//!   events only, so spans cost nothing while nothing exports them;
//! - when an OTLP endpoint is configured, every span at or above `[telemetry] filter`, sent
//!   over OTLP/gRPC by the SDK's batch processor.
//!
//! Trace context crosses process boundaries as a W3C [`TraceParent`]: in the `traceparent`
//! header of a gRPC call, in a job's row and in the assignment a runner receives.

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    SpanBuilder, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use rivet_core::trace::TraceParent;
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// The instrumentation scope of every Rivet span.
const SCOPE: &str = "rivet";

/// The `[telemetry]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Where spans go over OTLP/gRPC (e.g. `http://127.0.0.1:4317`). Unset, the standard
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` decides; with
    /// neither, nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of the spans. `OTEL_SERVICE_NAME` wins over it; with neither, the
    /// binary's name.
    pub service_name: Option<String>,
    /// Which spans are exported, as `RUST_LOG`-style directives.
    pub filter: String,
    /// How long one export may take before it is abandoned.
    pub export_timeout_secs: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig { otlp_endpoint: None, service_name: None, filter: "info".to_owned(), export_timeout_secs: 10 }
    }
}

impl TelemetryConfig {
    /// The endpoint spans are exported to: the configured one, else the standard
    /// environment variables'; `None` when tracing is off (`OTEL_SDK_DISABLED=true` too).
    pub fn endpoint(&self) -> Option<String> {
        self.endpoint_in(env_set)
    }

    /// [`Self::endpoint`], with the environment's set, non-empty variables read by `env`.
    fn endpoint_in(&self, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        if env("OTEL_SDK_DISABLED").is_some_and(|value| value.eq_ignore_ascii_case("true")) {
            return None;
        }
        self.otlp_endpoint
            .clone()
            .filter(|endpoint| !endpoint.trim().is_empty())
            .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
    }

    /// Checks the settings without starting anything: the message names the bad value.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(endpoint) = self.endpoint() {
            let url = url::Url::parse(&endpoint)
                .map_err(|err| format!("telemetry.otlp_endpoint `{endpoint}` is not a URL: {err}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("telemetry.otlp_endpoint `{endpoint}` must be an http:// or https:// URL"));
            }
        }
        EnvFilter::builder()
            .parse(&self.filter)
            .map_err(|err| format!("telemetry.filter `{}` is not a valid filter: {err}", self.filter))?;
        if self.export_timeout_secs == 0 {
            return Err("telemetry.export_timeout_secs must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// A set, non-empty environment variable.
fn env_set(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

/// Where the log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    /// Standard output, without colours (the services).
    Stdout,
    /// Standard error, coloured on a terminal unless `NO_COLOR` is set (the CLI).
    Stderr,
}

/// Errors of [`init`].
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid telemetry settings: {0}")]
    Invalid(String),
    #[error("cannot build the OTLP exporter for {endpoint}: {message}")]
    Exporter { endpoint: String, message: String },
    #[error("a tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// The installed telemetry; [`Telemetry::shutdown`] flushes the spans not yet exported.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the process's subscriber: log lines filtered by `RUST_LOG` (else
/// `default_log_filter`), and spans exported over OTLP when an endpoint is configured. Must
/// run inside a tokio runtime (the exporter's channel lives on it), which must outlive the
/// returned [`Telemetry`].
pub fn init(
    config: &TelemetryConfig,
    default_service: &str,
    default_log_filter: &str,
    output: LogOutput,
) -> Result<Telemetry, TelemetryError> {
    config.validate().map_err(TelemetryError::Invalid)?;
    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_log_filter));
    // Events only: a span the exporter does not want is then disabled at its call site.
    let log_filter = log_filter.and(filter_fn(|metadata| !metadata.is_span()));
    let logs = match output {
        LogOutput::Stdout => tracing_subscriber::fmt::layer().with_ansi(false).boxed(),
        LogOutput::Stderr => {
            use std::io::IsTerminal;
            let ansi =
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
            tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).boxed()
        }
    }
    .with_filter(log_filter);

    let Some(endpoint) = config.endpoint() else {
        Registry::default().with(logs).try_init().map_err(|_| TelemetryError::AlreadyInstalled)?;
        return Ok(Telemetry { provider: None });
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .with_timeout(Duration::from_secs(config.export_timeout_secs))
        .build()
        .map_err(|err| TelemetryError::Exporter { endpoint: endpoint.clone(), message: err.to_string() })?;
    let mut resource = Resource::builder();
    if env_set("OTEL_SERVICE_NAME").is_none() {
        resource =
            resource.with_service_name(config.service_name.clone().unwrap_or_else(|| default_service.to_owned()));
    }
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(SCOPE))
        .with_filter(EnvFilter::builder().parse_lossy(&config.filter));
    Registry::default().with(logs).with(spans).try_init().map_err(|_| TelemetryError::AlreadyInstalled)?;
    tracing::info!(%endpoint, "exporting traces over OTLP");
    Ok(Telemetry { provider: Some(provider) })
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is still buffered (within the export timeout) and stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else { return };
        // The SDK blocks while it flushes; the export itself runs on the runtime.
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(Duration::from_secs(5))).await;
        if let Ok(Err(err)) = flushed {
            eprintln!("telemetry: cannot flush the last spans: {err}");
        }
    }
}

/// The OpenTelemetry context of a span that lives in another process.
pub fn remote_context(parent: &TraceParent) -> Context {
    let span = SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.span_id),
        TraceFlags::new(parent.flags),
        true,
        TraceState::default(),
    );
    Context::new().with_remote_span_context(span)
}

/// Makes `span` a child of `parent` (a span of another process). Call it before the span is
/// first entered; without an exporter it does nothing.
pub fn set_parent(span: &tracing::Span, parent: Option<&TraceParent>) {
    if let Some(parent) = parent {
        // Refused only when nothing exports spans or the span has started: either way
        // there is nothing to join.
        let _ = span.set_parent(remote_context(parent));
    }
}

/// The trace context of `span`, to hand to another process; `None` when it is not
/// exported (tracing off, or filtered out).
pub fn traceparent(span: &tracing::Span) -> Option<TraceParent> {
    let context = span.context();
    let span = context.span();
    let span = span.span_context();
    span.is_valid().then(|| TraceParent {
        trace_id: span.trace_id().to_bytes(),
        span_id: span.span_id().to_bytes(),
        flags: span.trace_flags().to_u8(),
    })
}

/// Records a span that already ended: from `start` until now, child of `parent`. For what
/// no process watched from start to end (the time a job waited in the queue, which may
/// span replicas and restarts). Without an exporter it does nothing.
pub fn record_interval(name: &'static str, parent: &TraceParent, start: SystemTime, attributes: Vec<KeyValue>) {
    let tracer = opentelemetry::global::tracer(SCOPE);
    let builder = SpanBuilder::from_name(name)
        .with_kind(SpanKind::Internal)
        .with_start_time(start.min(SystemTime::now()))
        .with_attributes(attributes);
    let mut span = tracer.build_with_context(builder, &remote_context(parent));
    opentelemetry::trace::Span::end(&mut span);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_named() {
        let config = TelemetryConfig { otlp_endpoint: Some("ftp://collector".into()), ..TelemetryConfig::default() };
        assert!(config.validate().expect_err("refused").contains("ftp://collector"));
        let config = TelemetryConfig {
            otlp_endpoint: Some("http://127.0.0.1:4317".into()),
            filter: "info,[".into(),
            ..TelemetryConfig::default()
        };
        assert!(config.validate().expect_err("refused").contains("telemetry.filter"));
    }

    #[test]
    fn the_endpoint_is_the_setting_then_the_standard_variables() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned())
        };
        let configured =
            TelemetryConfig { otlp_endpoint: Some("http://set:4317".into()), ..TelemetryConfig::default() };
        let unset = TelemetryConfig::default();
        let both = &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://all:4317"),
        ];
        assert_eq!(configured.endpoint_in(env(both)).as_deref(), Some("http://set:4317"));
        assert_eq!(unset.endpoint_in(env(both)).as_deref(), Some("http://traces:4317"));
        assert_eq!(
            unset.endpoint_in(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://all:4317")])).as_deref(),
            Some("http://all:4317")
        );
        assert_eq!(unset.endpoint_in(env(&[])), None, "off by default");
        assert_eq!(configured.endpoint_in(env(&[("OTEL_SDK_DISABLED", "TRUE")])), None);
        assert_eq!(configured.endpoint_in(env(&[("OTEL_SDK_DISABLED", "false")])).as_deref(), Some("http://set:4317"));
    }

    #[test]
    fn a_remote_parent_round_trips() {
        let parent: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().expect("parses");
        let context = remote_context(&parent);
        let span = context.span();
        let span = span.span_context();
        assert!(span.is_remote() && span.is_sampled());
        assert_eq!(span.trace_id().to_bytes(), parent.trace_id);
        assert_eq!(span.span_id().to_bytes(), parent.span_id);
    }
}
