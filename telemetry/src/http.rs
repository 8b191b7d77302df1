//! The one small HTTP/1 server Rivet runs beside gRPC (the `/metrics` endpoint, the webhook
//! listener): hyper 1 with every resource a client controls bounded: connections at once
//! (more wait in the listen backlog), the life of one connection, and the request head.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What one server allows its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long one connection may last, requests and all.
    pub connection_timeout: Duration,
    /// The most bytes of a request head hyper buffers.
    pub max_head_bytes: usize,
}

/// A running server.
#[derive(Debug)]
pub struct HttpServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Serves `handle` on `listener` within `limits` until stopped; `name` names the
    /// server in log lines.
    pub fn serve<H, F>(listener: TcpListener, limits: Limits, name: &'static str, handle: H) -> HttpServer
    where
        H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let addr = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, limits, name, Arc::new(handle), stop.clone()));
        HttpServer { addr, stop, task }
    }

    /// Stops accepting, and waits for the connections under way (each within its timeout).
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Stops accepting at once, like a crash (connections under way are left to their
    /// timeout).
    pub fn abort(&self) {
        self.stop.cancel();
        self.task.abort();
    }
}

async fn accept_loop<H, F>(
    listener: TcpListener,
    limits: Limits,
    name: &'static str,
    handle: Arc<H>,
    stop: CancellationToken,
) where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::debug!(server = name, %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let handle = handle.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let answer = handle(request);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .max_buf_size(limits.max_head_bytes)
                .serve_connection(TokioIo::new(stream), service);
            if tokio::time::timeout(limits.connection_timeout, connection).await.is_err() {
                tracing::debug!(server = name, %peer, "a connection outlived its timeout; closed");
            }
            drop(permit);
        });
    }
    connections.close();
    connections.wait().await;
}
