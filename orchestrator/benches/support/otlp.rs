//! `RIVET_BENCH_TELEMETRY`: the bench's orchestrator with telemetry as a deployment has it.
//! `off` (the default) installs what a server without an OTLP endpoint runs: the log layer
//! alone, which takes events only. `otlp` exports every span to a collector in this process
//! that counts and discards them, so the figures include building, batching and sending
//! spans over gRPC.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use rivet_telemetry::{LogOutput, Telemetry, TelemetryConfig};

/// Counts the spans it is sent.
#[derive(Clone, Default)]
struct Sink {
    spans: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len())
            .sum();
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// The bench's telemetry, and the spans exported so far when it exports.
pub struct BenchTelemetry {
    pub telemetry: Telemetry,
    exported: Option<Arc<AtomicU64>>,
}

impl BenchTelemetry {
    /// What `RIVET_BENCH_TELEMETRY` asks for; prints which.
    pub async fn install() -> BenchTelemetry {
        let mode = std::env::var("RIVET_BENCH_TELEMETRY").unwrap_or_else(|_| "off".to_owned());
        let mut config = TelemetryConfig::default();
        let exported = match mode.as_str() {
            "off" => None,
            "otlp" => {
                let sink = Sink::default();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the OTLP sink");
                config.otlp_endpoint = Some(format!("http://{}", listener.local_addr().expect("its address")));
                tokio::spawn(
                    tonic::transport::Server::builder()
                        .add_service(TraceServiceServer::new(sink.clone()))
                        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
                );
                Some(sink.spans)
            }
            other => panic!("RIVET_BENCH_TELEMETRY: `{other}` is neither off nor otlp"),
        };
        // Logs as quiet as the bench's output needs; spans as a deployment exports them.
        let telemetry = rivet_telemetry::trace::init(&config, "rivet-bench", "warn", LogOutput::Stderr)
            .expect("install the bench's telemetry");
        println!("telemetry: {mode}");
        BenchTelemetry { telemetry, exported }
    }

    /// How many spans the sink received, when exporting.
    pub fn exported(&self) -> Option<u64> {
        self.exported.as_ref().map(|spans| spans.load(Ordering::Relaxed))
    }
}
