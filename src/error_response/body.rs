use super::render::error_frame;
use crate::error::Error;
use crate::meta::Ingress;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pin_project! {
    /// The body of every answer: a stream rescued with `event: error` if it fails after
    /// its headers went out, or a rendered error.
    pub struct RescueBody<B> {
        #[pin]
        state: State<B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<B> {
        // A proxied body; `is_sse` says an error can be written as an event.
        Stream { #[pin] inner: B, is_sse: bool, ingress: Ingress, done: bool },
        // A body made here.
        Full { bytes: Option<Bytes> },
    }
}

impl<B> RescueBody<B> {
    pub(crate) fn stream(inner: B, is_sse: bool, ingress: Ingress) -> Self {
        Self {
            state: State::Stream {
                inner,
                is_sse,
                ingress,
                done: false,
            },
        }
    }

    pub(crate) fn full(bytes: Bytes) -> Self {
        Self {
            state: State::Full { bytes: Some(bytes) },
        }
    }
}

impl<B> Body for RescueBody<B>
where
    B: Body<Data = Bytes, Error = Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match self.project().state.project() {
            StateProj::Full { bytes } => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            StateProj::Stream {
                inner,
                is_sse,
                ingress,
                done,
            } => {
                if *done {
                    return Poll::Ready(None);
                }
                match ready!(inner.poll_frame(cx)) {
                    Some(Err(error)) if *is_sse => {
                        tracing::warn!(kind = ?error.kind(), %error, "stream failed after its headers; ending it with an error event");
                        *done = true;
                        Poll::Ready(Some(Ok(Frame::data(error_frame(&error, None, *ingress)))))
                    }
                    other => Poll::Ready(other),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Full { bytes } => bytes.is_none(),
            State::Stream { inner, done, .. } => *done || inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Full { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            State::Stream { inner, .. } => inner.size_hint(),
        }
    }
}
