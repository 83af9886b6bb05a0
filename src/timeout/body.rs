use super::{first_byte_timeout, idle_timeout};
use crate::error::Error;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

pin_project! {
    /// A body that fails when the upstream is silent for too long.
    ///
    /// The timer is not reset on every frame (that would touch the timer wheel per
    /// frame): frames only note the time, and when the timer fires early it re-arms
    /// itself for the real deadline.
    pub struct TimeoutBody<B> {
        #[pin]
        inner: B,
        #[pin]
        sleep: Sleep,
        last_frame: Option<Instant>,
        first_byte: Duration,
        idle: Duration,
        timed_out: bool,
    }
}

impl<B> TimeoutBody<B> {
    pub(crate) fn new(
        inner: B,
        first_byte_deadline: Instant,
        first_byte: Duration,
        idle: Duration,
    ) -> Self {
        Self {
            inner,
            sleep: tokio::time::sleep_until(first_byte_deadline),
            last_frame: None,
            first_byte,
            idle,
            timed_out: false,
        }
    }
}

impl<B> Body for TimeoutBody<B>
where
    B: Body<Data = Bytes, Error = Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let mut this = self.project();
        if *this.timed_out {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            if frame.is_some() {
                let now = Instant::now();
                if this.last_frame.is_none() {
                    // From here on the idle limit rules, once: arm it for the first frame.
                    this.sleep.as_mut().reset(now + *this.idle);
                }
                *this.last_frame = Some(now);
            }
            return Poll::Ready(frame);
        }
        loop {
            if this.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            match *this.last_frame {
                // Frames came since the timer was armed: re-arm it for the real deadline.
                Some(last) if last + *this.idle > this.sleep.deadline() => {
                    this.sleep.as_mut().reset(last + *this.idle);
                }
                last => {
                    *this.timed_out = true;
                    let error = if last.is_none() {
                        first_byte_timeout(*this.first_byte)
                    } else {
                        idle_timeout(*this.idle)
                    };
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.timed_out || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
