//! Rivet's Prometheus metrics, shared by the orchestrator and the runner: the `[metrics]`
//! settings, the bounded `/metrics` endpoint that serves a `prometheus-client` registry, and a
//! small parser of the exposition text (for tests and the dashboard check).
//!
//! The endpoint answers only `GET /metrics` (404 otherwise, 405 for another method on
//! `/metrics`), holds at most [`MAX_CONNECTIONS`] connections at once and gives each one
//! [`CONNECTION_TIMEOUT`] in all.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::http::{HttpServer, Limits};
use tokio::net::TcpListener;

pub use prometheus_client;

/// How many scrapes may be connected at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 16;
/// How long one connection may last, requests and all.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The content type of the OpenMetrics text `prometheus-client` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `[metrics]` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `/metrics` is served (e.g. `127.0.0.1:9464`); unset, there is no endpoint.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

/// Errors of the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen for /metrics on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Renders a registry as exposition text.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        text.clear();
    }
    text
}

/// A running `/metrics` endpoint.
#[derive(Debug)]
pub struct MetricsServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    server: HttpServer,
}

/// What a scrape may take.
const LIMITS: Limits =
    Limits { max_connections: MAX_CONNECTIONS, connection_timeout: CONNECTION_TIMEOUT, max_head_bytes: 16 * 1024 };

impl MetricsServer {
    /// Binds `addr` and serves what `render` writes (exposition text, see [`render`])
    /// there until stopped.
    pub async fn bind(
        addr: SocketAddr,
        render: impl Fn() -> String + Send + Sync + 'static,
    ) -> Result<Self, MetricsError> {
        let listener = TcpListener::bind(addr).await.map_err(|source| MetricsError::Bind { addr, source })?;
        Ok(Self::serve(listener, render))
    }

    /// Serves what `render` writes on `listener` until stopped.
    pub fn serve(listener: TcpListener, render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        let render: Render = Arc::new(render);
        let server = HttpServer::serve(listener, LIMITS, "metrics", move |request| {
            let answer = respond(&request, &render);
            async move { answer }
        });
        tracing::info!(addr = %server.addr, "serving Prometheus metrics at /metrics");
        Self { addr: server.addr, server }
    }

    /// Stops accepting and waits for the scrapes under way.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Renders the exposition text of a scrape.
type Render = Arc<dyn Fn() -> String + Send + Sync>;

fn respond(req: &Request<Incoming>, render: &Render) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, body: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if req.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found; try /metrics\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    let mut response = Response::new(Full::new(Bytes::from(render())));
    if let Ok(value) = CONTENT_TYPE.parse() {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// One parsed scrape: each sample by name and label set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// Samples: (name, sorted labels) → value.
    pub samples: BTreeMap<(String, Vec<(String, String)>), f64>,
    /// Metric family names with their `# TYPE`.
    pub types: BTreeMap<String, String>,
}

/// A malformed exposition line.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl Scrape {
    /// Parses Prometheus / OpenMetrics exposition text.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut scrape = Scrape::default();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let fail = |message: &str| ParseError { line: index + 1, message: format!("{message}: {raw}") };
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('#') {
                let mut parts = rest.split_whitespace();
                if parts.next() == Some("TYPE") {
                    let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                        return Err(fail("bad TYPE line"));
                    };
                    scrape.types.insert(name.to_owned(), kind.to_owned());
                }
                continue;
            }
            let (name, labels, rest) = match line.find('{') {
                Some(open) => {
                    let close = line.rfind('}').ok_or_else(|| fail("unclosed labels"))?;
                    (
                        &line[..open],
                        parse_labels(&line[open + 1..close]).ok_or_else(|| fail("bad labels"))?,
                        &line[close + 1..],
                    )
                }
                None => {
                    let split = line.find(' ').ok_or_else(|| fail("no value"))?;
                    (&line[..split], Vec::new(), &line[split..])
                }
            };
            let value = rest.split_whitespace().next().ok_or_else(|| fail("no value"))?;
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().map_err(|_| fail("bad value"))?,
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                return Err(fail("bad metric name"));
            }
            scrape.samples.insert((name.to_owned(), labels), value);
        }
        Ok(scrape)
    }

    /// The sum of every sample called `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|((n, ls), _)| {
                n == name && labels.iter().all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, v)| *v)
            .sum()
    }

    /// Whether any sample is called `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.keys().any(|(n, _)| n == name)
    }

    /// Every sample name.
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.samples.keys().map(|(n, _)| n.clone()).collect()
    }
}

fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((key.trim().to_owned(), value));
    }
    labels.sort();
    Some(labels)
}

/// Fetches `http://addr/metrics` with a plain HTTP/1.0 request (for tests and probes).
pub async fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: metrics\r\n\r\n").await?;
    let mut bytes = Vec::new();
    tokio::time::timeout(CONNECTION_TIMEOUT, stream.take(64 << 20).read_to_end(&mut bytes))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "scrape timed out"))??;
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(std::io::Error::other(format!("scrape answered {}", head.lines().next().unwrap_or(""))));
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn parses_labels_and_values() {
        let scrape =
            Scrape::parse("# TYPE a counter\na_total{x=\"1\",y=\"q\\\"z\"} 3\nb 2.5\nc_bucket{le=\"+Inf\"} 4\n# EOF\n")
                .expect("parses");
        assert_eq!(scrape.sum("a_total", &[("x", "1")]), 3.0);
        assert_eq!(scrape.sum("a_total", &[("y", "q\"z")]), 3.0);
        assert_eq!(scrape.sum("b", &[]), 2.5);
        assert_eq!(scrape.sum("c_bucket", &[("le", "+Inf")]), 4.0);
        assert!(Scrape::parse("bad{x=1} 2").is_err());
    }

    #[tokio::test]
    async fn endpoint_serves_metrics_only() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("rivet_test_things", "Things.", counter.clone());
        counter.inc_by(7);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let server = MetricsServer::serve(listener, move || render(&registry));
        let text = scrape(server.addr).await.expect("scrape");
        let parsed = Scrape::parse(&text).expect("parses");
        assert_eq!(parsed.sum("rivet_test_things_total", &[]), 7.0);

        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
        stream.write_all(b"GET /other HTTP/1.0\r\n\r\n").await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.0 404") || answer.starts_with("HTTP/1.1 404"), "{answer}");
        server.shutdown().await;
    }
}
