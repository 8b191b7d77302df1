//! gRPC calls as spans and metrics.
//!
//! [`RpcLayer`] wraps a tonic server: every call gets a server span (a child of the
//! caller's `traceparent` header when it sends one) and, when it ends, its gRPC status on
//! the span and one observation in `rivet_rpc_duration_seconds{method,code}`. A call ends
//! when its response body does: the trailers carry the status of a streaming call.
//! [`client_span`] and [`inject`] do the client's half.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rivet_core::trace::TraceParent;
use tower::Service;
use tower_layer::Layer;
use tracing::Instrument;

use crate::trace;

/// The labels of an RPC observation. `method` is one of the paths the server serves
/// (anything else a caller sends is counted as `unknown`), `code` a gRPC status name: both
/// are bounded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RpcLabels {
    pub method: &'static str,
    pub code: &'static str,
}

/// `rivet_rpc_duration_seconds`.
#[derive(Debug, Clone)]
pub struct RpcMetrics {
    duration: Family<RpcLabels, Histogram>,
    methods: Arc<HashSet<&'static str>>,
}

impl RpcMetrics {
    /// Registers the RPC metrics in `registry`; `methods` are the paths the server serves.
    pub fn register(registry: &mut Registry, methods: impl IntoIterator<Item = &'static str>) -> RpcMetrics {
        let duration = Family::<RpcLabels, Histogram>::new_with_constructor(rpc_histogram as fn() -> Histogram);
        registry.register(
            "rivet_rpc_duration_seconds",
            "How long gRPC calls took, from request to the end of the response (a stream's whole life)",
            duration.clone(),
        );
        RpcMetrics { duration, methods: Arc::new(methods.into_iter().collect()) }
    }
}

/// 1 ms to about 10 minutes.
fn rpc_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 11))
}

/// The gRPC status names, by code.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];
const UNKNOWN: i32 = 2;
const CANCELLED: i32 = 1;

/// The longest span name taken from a request path.
const MAX_PATH: usize = 128;

/// Traces and meters every call of the service it wraps.
#[derive(Debug, Clone, Default)]
pub struct RpcLayer {
    metrics: Option<RpcMetrics>,
}

impl RpcLayer {
    /// Spans always; observations into `metrics` when given.
    pub fn new(metrics: Option<RpcMetrics>) -> RpcLayer {
        RpcLayer { metrics }
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = Rpc<S>;

    fn layer(&self, inner: S) -> Rpc<S> {
        Rpc { inner, metrics: self.metrics.clone() }
    }
}

/// See [`RpcLayer`].
#[derive(Debug, Clone)]
pub struct Rpc<S> {
    inner: S,
    metrics: Option<RpcMetrics>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Rpc<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        let path: String = path.chars().take(MAX_PATH).collect();
        let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path.as_str(), ""));
        let span = tracing::info_span!(
            "rpc",
            otel.name = %path,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        trace::set_parent(&span, incoming_parent(request.headers()).as_ref());
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let future = self.inner.call(request).instrument(span.clone());
        Box::pin(async move {
            let response = future.await?;
            let (parts, body) = response.into_parts();
            // An error before any message is sent comes in the headers (trailers-only).
            let code = grpc_status(&parts.headers);
            let done = Done { span, started, path, metrics };
            let body = match code {
                Some(code) => {
                    done.finish(code);
                    TracedBody { inner: body, done: None }
                }
                None => TracedBody { inner: body, done: Some(done) },
            };
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// The caller's trace context, when it sent a valid one.
fn incoming_parent(headers: &HeaderMap) -> Option<TraceParent> {
    headers.get("traceparent")?.to_str().ok()?.parse().ok()
}

/// The `grpc-status` in `headers`, when there is one.
fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    let value = headers.get("grpc-status")?;
    Some(value.to_str().ok().and_then(|text| text.parse().ok()).unwrap_or(UNKNOWN))
}

/// What is recorded when a call ends.
struct Done {
    span: tracing::Span,
    started: Instant,
    path: String,
    metrics: Option<RpcMetrics>,
}

impl Done {
    fn finish(self, code: i32) {
        let name = usize::try_from(code).ok().and_then(|index| CODES.get(index)).copied().unwrap_or("UNKNOWN");
        self.span.record("rpc.grpc.status_code", code);
        if code != 0 {
            self.span.record("otel.status_code", "ERROR");
        }
        if let Some(metrics) = &self.metrics {
            // A path is the caller's to choose: only the served ones become label values.
            let method = metrics.methods.get(self.path.as_str()).copied().unwrap_or("unknown");
            metrics
                .duration
                .get_or_create(&RpcLabels { method, code: name })
                .observe(self.started.elapsed().as_secs_f64());
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its call's outcome when it ends (or is dropped: the
    /// caller went away, `CANCELLED`).
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        done: Option<Done>,
    }

    impl<B> PinnedDrop for TracedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(done) = this.project().done.take() {
                done.finish(CANCELLED);
            }
        }
    }
}

impl<B: Body<Data = Bytes>> Body for TracedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        let code = match &frame {
            Some(Ok(frame)) => frame.trailers_ref().map(|trailers| grpc_status(trailers).unwrap_or(0)),
            Some(Err(_)) => Some(UNKNOWN),
            None => Some(0),
        };
        if let Some(code) = code
            && let Some(done) = this.done.take()
        {
            done.finish(code);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client span for a call of `path` (e.g. `/rivet.v1.RunnerService/Connect`).
pub fn client_span(path: &'static str) -> tracing::Span {
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    tracing::info_span!(
        "rpc",
        otel.name = path,
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
    )
}

/// The `traceparent` header value that makes the server's span a child of `span`; `None`
/// when `span` is not exported.
pub fn inject(span: &tracing::Span) -> Option<HeaderValue> {
    trace::traceparent(span).and_then(|parent| HeaderValue::from_str(&parent.to_string()).ok())
}
