//! What every provider does with its upstream: send, map failures, read error bodies,
//! and mark chunk arrivals in the request's ledger.

use crate::error::{Error, ErrorKind};
use crate::ledger::RequestLedger;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use std::task::{Context, Poll};

/// Largest upstream error body kept (they are small JSON objects).
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;

/// A failure to send the upstream request, named by provider, never by URL or key.
pub(crate) fn send_error(provider: &str, error: reqwest::Error) -> Error {
    let (kind, what) = if error.is_timeout() {
        (ErrorKind::Timeout, "timed out connecting to")
    } else if error.is_connect() {
        (ErrorKind::Connect, "could not connect to")
    } else {
        (ErrorKind::Connect, "request failed at")
    };
    Error::new(kind, format!("{what} provider `{provider}`")).with_source(error.without_url())
}

/// Read at most `cap` bytes of a body; a failure or the cap ends the read.
pub(crate) async fn read_capped(mut body: reqwest::Body, cap: usize) -> Bytes {
    let mut out = BytesMut::new();
    while out.len() < cap {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = cap - out.len();
                    out.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            _ => break,
        }
    }
    out.freeze()
}

impl From<reqwest::Error> for Error {
    fn from(error: reqwest::Error) -> Self {
        let kind = if error.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::UpstreamProtocol
        };
        Error::new(kind, "the upstream connection broke during the answer")
            .with_source(error.without_url())
    }
}

pin_project_lite::pin_project! {
    /// Marks the arrival of each upstream chunk in the request's ledger.
    pub(crate) struct ClockedBody {
        #[pin]
        pub(crate) inner: reqwest::Body,
        pub(crate) clock: RequestLedger,
    }
}

impl http_body::Body for ClockedBody {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, reqwest::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(Ok(_)) = &frame {
            this.clock.mark_chunk();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
