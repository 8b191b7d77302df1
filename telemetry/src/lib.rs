//! Rivet's telemetry, shared by the orchestrator, the runner and the CLI's embedded mode:
//!
//! - [`trace`]: the process's log lines and, when an OTLP endpoint is configured, its spans
//!   exported over OTLP/gRPC; W3C trace context across processes;
//! - [`rpc`]: a server span and a latency observation for every gRPC call;
//! - [`metrics`]: the Prometheus `/metrics` endpoint and an exposition parser for tests;
//! - [`http`]: the bounded HTTP/1 server under it (and under the orchestrator's webhooks).

pub mod http;
pub mod metrics;
pub mod rpc;
pub mod trace;

pub use opentelemetry::KeyValue;
pub use trace::{LogOutput, Telemetry, TelemetryConfig, TelemetryError};
