//! Fan-out over Redis pub/sub.
//!
//! Each coordinator keeps ONE dedicated pub/sub connection (pooled connections are
//! multiplexed and can't subscribe) and subscribes it to exactly the channels that local
//! subscribers follow, so a replica receives only the traffic it needs. A router task reads
//! the connection and forwards each message to the channel's in-process sender, which
//! queues it for each local subscriber within that subscriber's bounds (`coord::channel`):
//! the router never waits for a slow subscriber.
//!
//! Invariant: a channel has an entry in `routes` if and only if the live connection is
//! subscribed to it (or will be, on reconnect). Entries are added and removed only while
//! `control` is locked, around the SUBSCRIBE or UNSUBSCRIBE that matches.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use deadpool_redis::redis::aio::{PubSubSink, PubSubStream};
use deadpool_redis::redis::{self, Client, Msg};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use rivet_core::backoff::Backoff;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

use crate::coord::channel::{Gauge, Limits, Sender};
use crate::coord::subscription::Subscription;
use crate::domain::coord::{CoordError, CoordResult, FanoutUsage};

/// How long opening the pub/sub connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long Redis may take to confirm a SUBSCRIBE, UNSUBSCRIBE or PING before the
/// connection is deemed dead and replaced.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle connection is checked, so that a silently dead one (a half-open TCP
/// connection) is replaced within seconds rather than when the kernel gives up.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// The ceiling of the first reconnection delay; it doubles on every failure (full jitter:
/// replicas that lost Redis together don't all come back in the same millisecond).
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The ceiling of the reconnection delays.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A coordinator's pub/sub connection and its router. Dropping it stops the router, closes
/// the connection and ends every subscriber's stream.
pub(super) struct Fanout {
    shared: Arc<Shared>,
    _stop: DropGuard,
}

/// What subscribers and the router share.
struct Shared {
    /// The sender of every subscribed channel, by channel name.
    routes: Mutex<HashMap<String, Sender>>,
    /// What the subscribers' queues hold.
    gauge: Arc<Gauge>,
    /// Serialises subscription changes and reconnection.
    control: tokio::sync::Mutex<Control>,
    /// Where dropped subscriptions send their channel, so that the router can unsubscribe
    /// when it was the channel's last subscriber.
    released: mpsc::UnboundedSender<String>,
}

/// The live connection's command side.
struct Control {
    /// Sends SUBSCRIBE and UNSUBSCRIBE; `None` while the connection is down.
    sink: Option<PubSubSink>,
    /// Cancelled by whoever sees the connection stop answering, to make the router replace it.
    broken: CancellationToken,
}

impl Fanout {
    /// Opens the pub/sub connection and starts the router.
    pub(super) async fn start(client: Client) -> CoordResult<Self> {
        let (sink, messages) = open(&client).await?;
        let broken = CancellationToken::new();
        let (released, releases) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            routes: Mutex::default(),
            gauge: Arc::default(),
            control: tokio::sync::Mutex::new(Control { sink: Some(sink.clone()), broken: broken.clone() }),
            released,
        });
        let stop = CancellationToken::new();
        let router = Router { shared: Arc::clone(&shared), client, releases, stop: stop.clone() };
        let live = Live { sink, messages, broken };
        tokio::spawn(router.run(live).instrument(tracing::info_span!("redis_pubsub")));
        Ok(Self { shared, _stop: stop.drop_guard() })
    }

    /// Subscribes to `channel`. Returns once Redis has confirmed the subscription, so a
    /// message published after this returns is delivered.
    pub(super) async fn subscribe(&self, channel: String, limits: Limits) -> CoordResult<BoxStream<'static, Bytes>> {
        let mut control = self.shared.control.lock().await;
        let Control { sink, broken } = &mut *control;
        let Some(sink) = sink.as_mut() else {
            return Err(CoordError::Unavailable("redis pub/sub connection is down, reconnecting".to_owned()));
        };
        let (receiver, fresh) = match lock(&self.shared.routes).entry(channel.clone()) {
            Entry::Occupied(entry) => (entry.get().subscribe(), false),
            Entry::Vacant(entry) => {
                let sender = Sender::new(limits, self.shared.gauge.clone());
                let receiver = sender.subscribe();
                entry.insert(sender);
                (receiver, true)
            }
        };
        // The route exists before SUBSCRIBE is sent, so the first message Redis delivers
        // after its confirmation already finds the receiver.
        if fresh {
            let error = match timeout(COMMAND_TIMEOUT, sink.subscribe(&channel)).await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error.to_string()),
                Err(_) => {
                    broken.cancel();
                    Some("redis did not confirm in time".to_owned())
                }
            };
            if let Some(error) = error {
                lock(&self.shared.routes).remove(&channel);
                return Err(CoordError::Unavailable(format!("failed to subscribe to {channel}: {error}")));
            }
        }
        let released = self.shared.released.clone();
        let release = move || {
            // Fails only once the router has stopped, and then there is nothing to undo.
            let _ = released.send(channel);
        };
        Ok(Subscription::new(receiver, release).boxed())
    }

    /// What the local subscribers' queues hold.
    pub(super) fn usage(&self) -> FanoutUsage {
        self.shared.gauge.usage()
    }
}

impl Shared {
    /// Forwards a message to the subscribers of its channel.
    fn route(&self, message: &Msg) {
        if let Some(sender) = lock(&self.routes).get(message.get_channel_name()) {
            sender.send(&Bytes::copy_from_slice(message.get_payload_bytes()));
        }
    }

    /// Unsubscribes from `channel` if nobody follows it any more.
    async fn release(&self, channel: String) {
        let mut control = self.control.lock().await;
        {
            let mut routes = lock(&self.routes);
            // Someone may have subscribed again since the subscription was dropped.
            if routes.get(&channel).is_none_or(|sender| sender.receiver_count() > 0) {
                return;
            }
            routes.remove(&channel);
        }
        let Control { sink, broken } = &mut *control;
        // Without a connection there is nothing to undo: reconnecting subscribes only to
        // the channels left in `routes`.
        let Some(sink) = sink.as_mut() else {
            return;
        };
        match timeout(COMMAND_TIMEOUT, sink.unsubscribe(&channel)).await {
            Ok(Ok(())) => {}
            // A stray message for the channel is harmless: nothing routes it.
            Ok(Err(error)) => tracing::debug!(channel, %error, "failed to unsubscribe"),
            Err(_) => broken.cancel(),
        }
    }
}

/// A working pub/sub connection, as the router holds it.
struct Live {
    /// A handle for the router's own pings.
    sink: PubSubSink,
    messages: PubSubStream,
    broken: CancellationToken,
}

/// The task that reads the connection, routes messages, unsubscribes unused channels and
/// reconnects.
struct Router {
    shared: Arc<Shared>,
    client: Client,
    releases: mpsc::UnboundedReceiver<String>,
    stop: CancellationToken,
}

impl Router {
    async fn run(mut self, first: Live) {
        let mut live = Some(first);
        let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        loop {
            let connection = match live.take() {
                Some(connection) => connection,
                None => {
                    let reconnected = tokio::select! {
                        () = self.stop.cancelled() => break,
                        reconnected = self.reconnect() => reconnected,
                    };
                    match reconnected {
                        Ok(connection) => {
                            tracing::info!("redis pub/sub connection restored");
                            backoff.reset();
                            connection
                        }
                        Err(error) => {
                            let delay = backoff.next_delay();
                            tracing::warn!(%error, ?delay, "failed to reconnect to redis pub/sub");
                            if self.idle(delay).await.is_break() {
                                break;
                            }
                            continue;
                        }
                    }
                }
            };
            match self.pump(connection).await {
                ControlFlow::Break(()) => break,
                ControlFlow::Continue(reason) => {
                    tracing::warn!(reason, "lost the redis pub/sub connection, reconnecting");
                    self.shared.control.lock().await.sink = None;
                }
            }
        }
        // The coordinator is gone: dropping the senders ends every subscriber's stream.
        lock(&self.shared.routes).clear();
    }

    /// Opens a new connection and subscribes it to every channel that still has a route.
    async fn reconnect(&self) -> CoordResult<Live> {
        let (mut sink, messages) = open(&self.client).await?;
        let mut control = self.shared.control.lock().await;
        let channels: Vec<String> = lock(&self.shared.routes).keys().cloned().collect();
        if !channels.is_empty() {
            match timeout(COMMAND_TIMEOUT, sink.subscribe(&channels)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(unavailable("resubscribe", error)),
                Err(_) => return Err(unavailable("resubscribe", "timed out")),
            }
        }
        let broken = CancellationToken::new();
        control.sink = Some(sink.clone());
        control.broken = broken.clone();
        tracing::debug!(channels = channels.len(), "resubscribed");
        Ok(Live { sink, messages, broken })
    }

    /// Serves a connection until it fails (`Continue` with the reason) or the coordinator
    /// is dropped (`Break`).
    async fn pump(&mut self, live: Live) -> ControlFlow<(), String> {
        let Live { mut sink, mut messages, broken } = live;
        let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return ControlFlow::Break(()),
                () = broken.cancelled() => {
                    return ControlFlow::Continue("a command timed out".to_owned());
                }
                message = messages.next() => match message {
                    Some(message) => self.shared.route(&message),
                    None => return ControlFlow::Continue("the connection closed".to_owned()),
                },
                Some(channel) = self.releases.recv() => self.shared.release(channel).await,
                _ = ping.tick() => {
                    match timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => return ControlFlow::Continue(format!("ping failed: {error}")),
                        Err(_) => return ControlFlow::Continue("ping timed out".to_owned()),
                    }
                }
            }
        }
    }

    /// Waits `delay` before the next reconnection attempt, still unsubscribing released
    /// channels; `Break` when the coordinator is dropped meanwhile.
    async fn idle(&mut self, delay: Duration) -> ControlFlow<()> {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return ControlFlow::Break(()),
                () = &mut sleep => return ControlFlow::Continue(()),
                Some(channel) = self.releases.recv() => self.shared.release(channel).await,
            }
        }
    }
}

/// Opens a dedicated pub/sub connection.
async fn open(client: &Client) -> CoordResult<(PubSubSink, PubSubStream)> {
    match timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
        Ok(Ok(pubsub)) => Ok(pubsub.split()),
        Ok(Err(error)) => Err(unavailable("open the pub/sub connection", error)),
        Err(_) => Err(unavailable("open the pub/sub connection", "timed out")),
    }
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> CoordError {
    CoordError::Unavailable(format!("failed to {what}: {error}"))
}

/// Locks `mutex`, ignoring poisoning: every critical section leaves the map consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
