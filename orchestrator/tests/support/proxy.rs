//! A TCP proxy the tests control, to break, partition or fail over a connection on
//! purpose, and to count the connections it got: in front of every replica of the API
//! tests' cluster (so a test's kill closes every connection to a replica, as a crash
//! would), in front of a runner (`tests/api/resilience.rs`), or of several replicas, as a
//! load balancer (`runner-agent/tests/faults`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A proxy listening on `addr`. Each connection goes to the first upstream that accepts it.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

struct Shared {
    /// Where new connections go, tried in order; none refuses them.
    upstreams: Mutex<Vec<SocketAddr>>,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
    /// While set, new connections are closed at once, as if no replica could be reached.
    partitioned: AtomicBool,
    /// How many connections were accepted so far.
    accepted: watch::Sender<usize>,
    /// How many are open now.
    open: AtomicUsize,
}

/// Counts a connection as open while it lives.
struct Open(Arc<Shared>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Proxy {
    /// A proxy to one upstream.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        Proxy::balance(vec![upstream]).await
    }

    /// A proxy to several upstreams, tried in order for each new connection: a load
    /// balancer that skips a replica that is down.
    pub async fn balance(upstreams: Vec<SocketAddr>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            upstreams: Mutex::new(upstreams),
            cut: watch::channel(0).0,
            partitioned: AtomicBool::new(false),
            accepted: watch::channel(0).0,
            open: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(accept(listener, Arc::clone(&shared)));
        Proxy { addr, shared, accept }
    }

    /// Sends new connections to `upstreams` (none refuses them, as a replica that is down
    /// does). Open connections stay where they are.
    pub fn retarget(&self, upstreams: Vec<SocketAddr>) {
        *self.shared.upstreams.lock().expect("lock") = upstreams;
    }

    /// Drops every open connection (new ones still go through); returns how many were
    /// open.
    pub fn sever(&self) -> usize {
        let open = self.shared.open.load(Ordering::SeqCst);
        self.shared.cut.send_modify(|generation| *generation += 1);
        open
    }

    /// Cuts every open connection and refuses new ones until [`Proxy::heal`].
    pub fn partition(&self) {
        self.shared.partitioned.store(true, Ordering::SeqCst);
        self.sever();
    }

    /// Ends a partition: new connections go through again.
    pub fn heal(&self) {
        self.shared.partitioned.store(false, Ordering::SeqCst);
    }

    /// How many connections were accepted so far (refused ones included).
    pub fn accepted(&self) -> usize {
        *self.shared.accepted.borrow()
    }

    /// Waits until more than `count` connections were accepted and returns how many;
    /// panics when none more comes `within`.
    pub async fn accepted_more_than(&self, count: usize, within: Duration) -> usize {
        let mut accepted = self.shared.accepted.subscribe();
        let waited = tokio::time::timeout(within, accepted.wait_for(|now| *now > count)).await;
        *waited.unwrap_or_else(|_| panic!("no connection came after the {count} the proxy had")).expect("proxy")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.sever();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((inbound, _)) = listener.accept().await {
        shared.accepted.send_modify(|count| *count += 1);
        if shared.partitioned.load(Ordering::SeqCst) {
            continue;
        }
        // Subscribed and counted before the connection can be cut, so a cut after
        // `accepted` changed always reaches it.
        let cut = shared.cut.subscribe();
        shared.open.fetch_add(1, Ordering::SeqCst);
        let open = Open(Arc::clone(&shared));
        let upstreams = shared.upstreams.lock().expect("lock").clone();
        tokio::spawn(forward(inbound, upstreams, cut, open));
    }
}

async fn forward(mut inbound: TcpStream, upstreams: Vec<SocketAddr>, mut cut: watch::Receiver<u64>, _open: Open) {
    for upstream in upstreams {
        let Ok(mut outbound) = TcpStream::connect(upstream).await else { continue };
        // Like the server, no Nagle: the proxy must not hold back small pushed messages.
        let _ = inbound.set_nodelay(true);
        let _ = outbound.set_nodelay(true);
        tokio::select! {
            _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
            _ = cut.changed() => {}
        }
        return;
    }
}
