//! One body wrapper that watches the frames going by and notices the end exactly once.
//!
//! The usage tap, the concurrency permit and the end-of-request `Record` all need the
//! same three facts about an answer's body: each data frame, and how it ended — whole,
//! broken by an error frame, or dropped before the end (the client went away). End of
//! stream is noticed in two places: `Ready(None)`, and after a frame when the inner body
//! says `is_end_stream()` (the consumer may never poll again). A drop is noticed by a
//! guard field declared after the inner body, so everything inside (a usage tap, a
//! fallback run) has reported by the time the observer hears of it.
//!
//! ```
//! use llm_gateway::observe::{BodyEnd, BodyObserver, ObservedBody};
//! use http_body_util::{BodyExt, Full};
//!
//! struct Count(usize);
//! impl BodyObserver for Count {
//!     fn on_data(&mut self, data: &bytes::Bytes) { self.0 += data.len(); }
//!     fn on_end(&mut self, end: BodyEnd) { assert_eq!((end, self.0), (BodyEnd::Whole, 2)); }
//! }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let body = ObservedBody::new(Full::new(bytes::Bytes::from_static(b"hi")), Some(Count(0)));
//! let _ = body.collect().await;
//! # });
//! ```

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// How an observed body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyEnd {
    /// Its last frame went out.
    Whole,
    /// It yielded an error frame.
    Broken,
    /// It was dropped before the end (the client left, or the server is shutting down).
    Dropped,
}

/// What watches an [`ObservedBody`].
pub trait BodyObserver {
    /// A data frame is passing (unchanged).
    fn on_data(&mut self, _data: &Bytes) {}

    /// The body ended; called exactly once, and nothing is called after it.
    fn on_end(&mut self, end: BodyEnd);
}

pin_project! {
    /// A body that forwards every frame unchanged and tells its observer what passed and
    /// how the body ended (see the [module docs](self)).
    pub struct ObservedBody<B, O: BodyObserver> {
        #[pin]
        inner: B,
        // After `inner`: on a drop the inner body's own guards run first.
        guard: Guard<O>,
    }
}

/// Holds the observer until the end; tells it [`BodyEnd::Dropped`] if dropped first.
struct Guard<O: BodyObserver>(Option<O>);

impl<O: BodyObserver> Guard<O> {
    fn end(&mut self, end: BodyEnd) {
        if let Some(mut observer) = self.0.take() {
            observer.on_end(end);
        }
    }
}

impl<O: BodyObserver> Drop for Guard<O> {
    fn drop(&mut self) {
        self.end(BodyEnd::Dropped);
    }
}

// === impl ObservedBody ===

impl<B, O: BodyObserver> ObservedBody<B, O> {
    /// Watch `inner` with `observer` (`None`: forward only).
    pub fn new(inner: B, observer: Option<O>) -> Self {
        Self {
            inner,
            guard: Guard(observer),
        }
    }

    /// The observer, while the body has not ended.
    pub fn observer(&self) -> Option<&O> {
        self.guard.0.as_ref()
    }
}

impl<B, O> Body for ObservedBody<B, O>
where
    B: Body<Data = Bytes>,
    O: BodyObserver,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        if let Some(observer) = this.guard.0.as_mut() {
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        observer.on_data(data);
                    }
                    if this.inner.is_end_stream() {
                        this.guard.end(BodyEnd::Whole);
                    }
                }
                Some(Err(_)) => this.guard.end(BodyEnd::Broken),
                None => this.guard.end(BodyEnd::Whole),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::{Arc, Mutex};

    struct Ends(Arc<Mutex<Vec<BodyEnd>>>);

    impl BodyObserver for Ends {
        fn on_end(&mut self, end: BodyEnd) {
            self.0.lock().unwrap().push(end);
        }
    }

    fn observed(
        chunks: Vec<Result<&'static [u8], &'static str>>,
    ) -> (impl Body<Data = Bytes>, Arc<Mutex<Vec<BodyEnd>>>) {
        let ends = Arc::new(Mutex::new(Vec::new()));
        let stream = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| c.map(|d| Frame::data(Bytes::from_static(d)))),
        );
        let body = http_body_util::StreamBody::new(stream);
        (ObservedBody::new(body, Some(Ends(ends.clone()))), ends)
    }

    #[tokio::test]
    async fn each_ending_is_told_once() {
        let (body, ends) = observed(vec![Ok(b"a"), Ok(b"b")]);
        let _ = body.collect().await;
        assert_eq!(*ends.lock().unwrap(), [BodyEnd::Whole]);

        let (body, ends) = observed(vec![Ok(b"a"), Err("cut"), Ok(b"b")]);
        let mut body = Box::pin(body);
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
        drop(body);
        assert_eq!(*ends.lock().unwrap(), [BodyEnd::Broken]);

        let (body, ends) = observed(vec![Ok(b"a"), Ok(b"b")]);
        let mut body = Box::pin(body);
        let _ = body.frame().await;
        drop(body);
        assert_eq!(*ends.lock().unwrap(), [BodyEnd::Dropped]);
    }
}
