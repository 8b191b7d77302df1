//! Helpers: connecting to the test Redis, and a TCP proxy that can cut connections.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use rivet_orchestrator::coord::RedisCoordinator;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("RIVET_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A namespace no other test uses.
pub fn namespace() -> String {
    format!("rivet-test-{}", Uuid::new_v4().simple())
}

/// Connects to `url` in `namespace`, failing the test loudly if Redis is not there.
pub async fn connect_to(url: &str, namespace: &str) -> RedisCoordinator {
    match RedisCoordinator::connect(url, namespace).await {
        Ok(coordinator) => coordinator,
        Err(error) => panic!(
            "cannot reach the test Redis at {url}: {error}\n\
             start one (redis-server) or point RIVET_TEST_REDIS_URL at one"
        ),
    }
}

/// Connects to the test Redis in `namespace`.
pub async fn connect(namespace: &str) -> RedisCoordinator {
    connect_to(&redis_url(), namespace).await
}

/// Waits for `future`, failing the test if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future).await.unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}

/// The next message of a subscription, failing the test if none comes within 5 s or the
/// stream ends.
pub async fn next_message(stream: &mut BoxStream<'static, Bytes>) -> Bytes {
    within(Duration::from_secs(5), "a message", stream.next()).await.expect("the subscription ended")
}

/// A TCP proxy in front of Redis whose connections can be cut, as a Redis restart would.
pub struct Proxy {
    /// The Redis URL that goes through the proxy.
    pub url: String,
    current: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Proxy {
    /// Starts a proxy to the Redis of `url` (`redis://[auth@]host:port[/db]`).
    pub async fn start(url: &str) -> Self {
        let rest = url.strip_prefix("redis://").expect("RIVET_TEST_REDIS_URL should start with redis://");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (auth, upstream) = match authority.rsplit_once('@') {
            Some((auth, upstream)) => (format!("{auth}@"), upstream.to_owned()),
            None => (String::new(), authority.to_owned()),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address: SocketAddr = listener.local_addr().expect("proxy address");
        let current = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        tokio::spawn(accept(listener, upstream, Arc::clone(&current), stop.clone()));
        Self { url: format!("redis://{auth}{address}/{path}"), current, stop }
    }

    /// Closes every connection open now; new ones are accepted as before.
    pub fn sever(&self) {
        let mut current = self.current.lock().expect("proxy lock");
        current.cancel();
        *current = CancellationToken::new();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.sever();
    }
}

async fn accept(
    listener: TcpListener,
    upstream: String,
    current: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
) {
    loop {
        let (mut client, _) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted.expect("proxy accept"),
        };
        let cut = current.lock().expect("proxy lock").clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                return;
            };
            tokio::select! {
                () = cut.cancelled() => {}
                _ = copy_bidirectional(&mut client, &mut server) => {}
            }
        });
    }
}
