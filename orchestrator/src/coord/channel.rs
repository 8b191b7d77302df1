//! A topic's fan-out inside one process: every subscriber has its own queue, bounded in
//! messages and in bytes.
//!
//! A subscriber that does not keep up must not make the replica hold an unbounded backlog
//! for it, nor slow the others down. When a message would take a queue past either bound,
//! the queue is emptied (its subscriber *lags*) and then takes the new message if that one
//! fits alone. Delivery is therefore at most once, as the coordination contract says:
//! a lagging log follower sees a gap in sequence numbers, reads the missing lines from the
//! store, and carries on with the live messages. What every queue of a coordinator holds
//! is counted in its [`Gauge`], so that the bound can be observed.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use futures_util::task::AtomicWaker;

use crate::domain::coord::{FanoutUsage, Topic};

/// How much one subscriber's queue may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Messages.
    pub(crate) messages: usize,
    /// Bytes of payload.
    pub(crate) bytes: usize,
}

impl Limits {
    /// The limits of `topic`'s subscribers.
    pub(crate) fn of(topic: &Topic) -> Limits {
        Limits { messages: topic.capacity(), bytes: topic.buffer_bytes() }
    }
}

/// What the queues of one coordinator hold, and how often one was dropped.
#[derive(Debug, Default)]
pub(crate) struct Gauge {
    buffered: AtomicUsize,
    lags: AtomicU64,
}

impl Gauge {
    /// A snapshot.
    pub(crate) fn usage(&self) -> FanoutUsage {
        FanoutUsage { buffered_bytes: self.buffered.load(Ordering::Relaxed), lags: self.lags.load(Ordering::Relaxed) }
    }
}

/// One subscriber's queue.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    waker: AtomicWaker,
}

#[derive(Default)]
struct QueueState {
    messages: VecDeque<Bytes>,
    bytes: usize,
    /// The sender is gone: no message will come after the queued ones.
    closed: bool,
}

type Queues = Mutex<Vec<Arc<Queue>>>;

/// The sending side of a topic. Dropping it ends every subscriber's stream once its queue
/// is drained.
pub(crate) struct Sender {
    queues: Arc<Queues>,
    limits: Limits,
    gauge: Arc<Gauge>,
}

impl Sender {
    /// A topic with no subscriber yet, counting into `gauge`.
    pub(crate) fn new(limits: Limits, gauge: Arc<Gauge>) -> Sender {
        Sender { queues: Arc::default(), limits, gauge }
    }

    /// Queues `message` for every subscriber, dropping the queue of each that would go
    /// past its limits.
    pub(crate) fn send(&self, message: &Bytes) {
        for queue in lock(&self.queues).iter() {
            {
                let mut state = lock(&queue.state);
                let full = state.messages.len() >= self.limits.messages
                    || state.bytes.saturating_add(message.len()) > self.limits.bytes;
                if full {
                    self.gauge.buffered.fetch_sub(state.bytes, Ordering::Relaxed);
                    self.gauge.lags.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(dropped = state.messages.len(), "a slow subscriber lags; its queue is dropped");
                    state.messages.clear();
                    state.bytes = 0;
                }
                if message.len() <= self.limits.bytes {
                    state.messages.push_back(message.clone());
                    state.bytes += message.len();
                    self.gauge.buffered.fetch_add(message.len(), Ordering::Relaxed);
                }
            }
            queue.waker.wake();
        }
    }

    /// A new subscriber, receiving what is sent from now on.
    pub(crate) fn subscribe(&self) -> Receiver {
        let queue = Arc::new(Queue::default());
        lock(&self.queues).push(queue.clone());
        Receiver { queue, queues: Arc::downgrade(&self.queues), gauge: self.gauge.clone() }
    }

    /// How many subscribers there are.
    pub(crate) fn receiver_count(&self) -> usize {
        lock(&self.queues).len()
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        for queue in lock(&self.queues).iter() {
            lock(&queue.state).closed = true;
            queue.waker.wake();
        }
    }
}

/// The receiving side of one subscriber: a stream of the messages sent since it
/// subscribed, minus the ones dropped while it lagged.
pub(crate) struct Receiver {
    queue: Arc<Queue>,
    queues: Weak<Queues>,
    gauge: Arc<Gauge>,
}

impl Stream for Receiver {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        // Registered before the queue is looked at, so a message queued in between wakes us.
        self.queue.waker.register(cx.waker());
        let mut state = lock(&self.queue.state);
        match state.messages.pop_front() {
            Some(message) => {
                state.bytes -= message.len();
                self.gauge.buffered.fetch_sub(message.len(), Ordering::Relaxed);
                Poll::Ready(Some(message))
            }
            None if state.closed => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(queues) = self.queues.upgrade() {
            lock(&queues).retain(|queue| !Arc::ptr_eq(queue, &self.queue));
        }
        let state = lock(&self.queue.state);
        self.gauge.buffered.fetch_sub(state.bytes, Ordering::Relaxed);
    }
}

/// Locks `mutex`, ignoring poisoning: every critical section leaves the state consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use futures_util::{FutureExt, StreamExt};

    use super::*;

    fn message(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_without_holding_more_than_its_limits() {
        let gauge = Arc::new(Gauge::default());
        let sender = Sender::new(Limits { messages: 4, bytes: 100 }, gauge.clone());
        let mut slow = sender.subscribe();
        let mut fast = sender.subscribe();
        for index in 0..50u8 {
            sender.send(&message(index, 30));
            assert_eq!(fast.next().await, Some(message(index, 30)), "the fast one misses nothing");
            assert!(gauge.usage().buffered_bytes <= 100, "{:?}", gauge.usage());
        }
        // The slow one was dropped each time its queue filled and kept only the newest.
        assert!(gauge.usage().lags >= 10, "{:?}", gauge.usage());
        let mut held = Vec::new();
        while let Some(Some(message)) = slow.next().now_or_never() {
            held.push(message[0]);
        }
        assert_eq!(held.last(), Some(&49));
        assert!(held.len() <= 3, "{held:?}");
        assert_eq!(gauge.usage().buffered_bytes, 0);

        // A message larger than the whole queue is never buffered.
        sender.send(&message(0, 101));
        assert_eq!(gauge.usage().buffered_bytes, 0);
        sender.send(&message(7, 10));
        assert_eq!(gauge.usage().buffered_bytes, 20);
        drop(fast);
        assert_eq!(gauge.usage().buffered_bytes, 10, "a dropped subscriber releases its queue");
        assert_eq!(sender.receiver_count(), 1);
        drop(sender);
        assert_eq!(slow.next().await, Some(message(7, 10)), "queued messages outlive the sender");
        assert_eq!(slow.next().await, None);
    }
}
