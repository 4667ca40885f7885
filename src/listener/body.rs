//! A request body with a deadline: a client that announces more than it sends (or
//! sends it one byte a minute) gets an error instead of holding the request forever.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

use crate::selfmetrics as m;

/// The error a [`TimedBody`] returns when its deadline passes.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within {0:?} (limits.body_read_timeout)")]
pub struct BodyTimeout(pub Duration);

/// A request body that fails with [`BodyTimeout`] once `timeout` has passed since the
/// request head was read.
pub struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
    listener: &'static str,
    expired: bool,
}

impl TimedBody {
    pub(super) fn new(inner: Incoming, timeout: Duration, listener: &'static str) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            listener,
            expired: false,
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.expired = true;
            metrics::counter!(m::LISTENER_BODY_TIMEOUTS, "listener" => this.listener).increment(1);
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
