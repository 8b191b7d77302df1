//! The stream a subscriber gets: its queue of one topic, which tells its coordinator when
//! it is dropped so that unused topics don't pile up.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::channel::Receiver;

/// Receives one topic's messages, except the ones dropped while it lagged (delivery is at
/// most once; subscribers catch up from the database).
pub(crate) struct Subscription {
    // Declared before `_release` so that the receiver is gone when the release hook runs
    // and the hook sees the topic's true receiver count.
    messages: Receiver,
    _release: Release,
}

impl Subscription {
    /// Wraps `receiver`; `release` runs once the subscription has been dropped.
    pub(crate) fn new(receiver: Receiver, release: impl FnOnce() + Send + 'static) -> Self {
        Self { messages: receiver, _release: Release(Some(Box::new(release))) }
    }
}

impl Stream for Subscription {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.messages.poll_next_unpin(cx)
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
