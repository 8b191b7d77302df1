//! A TCP proxy in front of an orchestrator whose connections can be cut and counted: the
//! test cluster puts one in front of every replica, so that killing a replica closes every
//! connection to it as a crash of its process would, and tests put one in front of a
//! runner to break its stream on purpose and see it come back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::PATIENCE;

/// A proxy listening on loopback, forwarding to an upstream address that can change.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

struct Shared {
    /// Where new connections go; `None` refuses them (the upstream is down).
    upstream: Mutex<Option<SocketAddr>>,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
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
    /// A proxy forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream: Mutex::new(Some(upstream)),
            cut: watch::channel(0).0,
            accepted: watch::channel(0).0,
            open: AtomicUsize::new(0),
        });
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                // Subscribed and counted before the connection can be cut, so a cut
                // after `accepted` changed always reaches it.
                let cut = accepting.cut.subscribe();
                accepting.open.fetch_add(1, Ordering::SeqCst);
                let open = Open(accepting.clone());
                accepting.accepted.send_modify(|count| *count += 1);
                let upstream = *accepting.upstream.lock().expect("lock");
                tokio::spawn(forward(inbound, upstream, cut, open));
            }
        });
        Proxy { addr, shared, accept }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends new connections to `upstream`, or refuses them with `None`. Open ones stay.
    pub fn retarget(&self, upstream: Option<SocketAddr>) {
        *self.shared.upstream.lock().expect("lock") = upstream;
    }

    /// Cuts every open connection (new ones still go through); returns how many were
    /// open.
    pub fn sever(&self) -> usize {
        let open = self.shared.open.load(Ordering::SeqCst);
        self.shared.cut.send_modify(|generation| *generation += 1);
        open
    }

    /// How many connections were accepted so far.
    pub fn accepted(&self) -> usize {
        *self.shared.accepted.borrow()
    }

    /// Waits until more than `count` connections were accepted; panics after
    /// [`PATIENCE`].
    pub async fn accepted_more_than(&self, count: usize) -> usize {
        let mut accepted = self.shared.accepted.subscribe();
        let waited = tokio::time::timeout(PATIENCE, accepted.wait_for(|now| *now > count)).await;
        *waited.unwrap_or_else(|_| panic!("no connection came after the {count} the proxy had")).expect("proxy")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.sever();
    }
}

async fn forward(mut inbound: TcpStream, upstream: Option<SocketAddr>, mut cut: watch::Receiver<u64>, _open: Open) {
    let Some(upstream) = upstream else { return };
    let Ok(mut outbound) = TcpStream::connect(upstream).await else { return };
    // Like the server, no Nagle: the proxy must not hold back the small pushed messages.
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = cut.changed() => {}
    }
}
