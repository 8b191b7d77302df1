//! The stream a subscriber gets: one topic's broadcast receiver, which tells its
//! coordinator when it is dropped so that unused topics don't pile up.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// Receives one topic's messages, skipping over the ones it was too slow to receive
/// (delivery is at most once; subscribers catch up from the database).
pub(crate) struct Subscription {
    // Declared before `_release` so that the receiver is gone when the release hook runs
    // and the hook sees the topic's true receiver count.
    messages: BroadcastStream<Bytes>,
    _release: Release,
}

impl Subscription {
    /// Wraps `receiver`; `release` runs once the subscription has been dropped.
    pub(crate) fn new(receiver: broadcast::Receiver<Bytes>, release: impl FnOnce() + Send + 'static) -> Self {
        Self { messages: BroadcastStream::new(receiver), _release: Release(Some(Box::new(release))) }
    }
}

impl Stream for Subscription {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        loop {
            match ready!(self.messages.poll_next_unpin(cx)) {
                Some(Ok(message)) => return Poll::Ready(Some(message)),
                Some(Err(BroadcastStreamRecvError::Lagged(missed))) => {
                    tracing::debug!(missed, "slow subscriber missed messages");
                }
                None => return Poll::Ready(None),
            }
        }
    }
}

/// Runs a hook when dropped.
struct Release(Option<Box<dyn FnOnce() + Send>>);

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(release) = self.0.take() {
            release();
        }
    }
}
