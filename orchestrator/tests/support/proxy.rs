//! A TCP proxy the tests control, to break, partition or fail over a connection on
//! purpose: in front of an orchestrator (`tests/api/resilience.rs`) or of several replicas,
//! as a load balancer (`runner-agent/tests/faults`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    upstreams: Vec<SocketAddr>,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
    /// While set, new connections are closed at once, as if no replica could be reached.
    partitioned: AtomicBool,
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
        let (cut, _) = watch::channel(0u64);
        let shared = Arc::new(Shared { upstreams, cut, partitioned: AtomicBool::new(false) });
        let accept = tokio::spawn(accept(listener, Arc::clone(&shared)));
        Proxy { addr, shared, accept }
    }

    /// Drops every open connection; new ones still go through.
    pub fn sever(&self) {
        self.shared.cut.send_modify(|generation| *generation += 1);
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
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.sever();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        if shared.partitioned.load(Ordering::SeqCst) {
            continue;
        }
        let mut cut = shared.cut.subscribe();
        let upstreams = shared.upstreams.clone();
        tokio::spawn(async move {
            for upstream in upstreams {
                let Ok(mut outbound) = TcpStream::connect(upstream).await else { continue };
                tokio::select! {
                    _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cut.changed() => {}
                }
                return;
            }
        });
    }
}
