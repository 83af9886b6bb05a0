//! The response body type every layer hands up the stack.

use crate::error::Error;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A streaming response body of [`Bytes`] frames that fails with [`Error`].
///
/// It boxes the concrete body once, at the provider, so the layers above can be written
/// against one type; each layer wraps it in its own body type (`UsageBody`, `TimeoutBody`,
/// …) without another allocation per frame.
pub struct Body(UnsyncBoxBody<Bytes, Error>);

// === impl Body ===

impl Body {
    /// Wrap any body whose data is `Bytes` and whose error converts into [`Error`].
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Error>,
    {
        Self(body.map_err(Into::into).boxed_unsync())
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::new(
            Empty::<Bytes>::new()
                .map_err(|never: std::convert::Infallible| -> Error { match never {} }),
        )
    }

    /// A body of one buffer.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::new(
            Full::new(bytes.into())
                .map_err(|never: std::convert::Infallible| -> Error { match never {} }),
        )
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::empty()
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Body")
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}
