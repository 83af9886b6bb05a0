//! Holding a stream's first frames until its first content event.

use crate::body::Body;
use crate::error::{Error, ErrorKind, UpstreamResponse};
use crate::sse::SseDecoder;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Frame, SizeHint};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A committed stream: the frames held while peeking, then the rest as it comes.
pub struct PeekBody {
    held: VecDeque<Bytes>,
    inner: Body,
}

impl PeekBody {
    pub(crate) fn passthrough(inner: Body) -> Self {
        Self {
            held: VecDeque::new(),
            inner,
        }
    }
}

impl std::fmt::Debug for PeekBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeekBody({} held)", self.held.len())
    }
}

impl http_body::Body for PeekBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if let Some(bytes) = self.held.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// What one chunk of a held stream showed.
pub(crate) enum Seen {
    /// Nothing decisive yet; the chunk is held.
    Nothing,
    /// The first content event: the attempt commits (the chunk is held, to be replayed).
    Content,
    /// An in-band `error` event: the attempt failed.
    Error(Error),
}

/// The frames of a stream held until its first content event, and the decoder that
/// looks for it.
#[derive(Default)]
pub(crate) struct Peek {
    held: VecDeque<Bytes>,
    decoder: SseDecoder,
}

impl Peek {
    /// Hold `data` (unless it carries an error) and say what it showed.
    pub(crate) fn feed(&mut self, data: Bytes, provider: &str) -> Seen {
        let mut content = false;
        let mut error = None;
        self.decoder.feed(
            &data,
            |name| name == b"error",
            |event| match event.event {
                b"content_block_delta" | b"message_stop" if error.is_none() => content = true,
                b"error" => error = Some(Bytes::copy_from_slice(event.data)),
                _ => {}
            },
        );
        if let Some(json) = error {
            return Seen::Error(in_band_error(json, provider));
        }
        self.held.push_back(data);
        if content {
            Seen::Content
        } else {
            Seen::Nothing
        }
    }

    /// The committed answer: the held frames, then the rest of `inner`.
    pub(crate) fn commit(self, inner: Body) -> PeekBody {
        PeekBody {
            held: self.held,
            inner,
        }
    }
}

/// The failure of a stream that ended before any content.
pub(crate) fn ended_before_content(provider: &str) -> Error {
    Error::new(
        ErrorKind::UpstreamProtocol,
        format!("provider `{provider}` ended its stream before any content"),
    )
}

/// An in-band `event: error` before the commit point, as the error answer the client
/// gets if no other provider serves: status from the error's type, body as sent.
fn in_band_error(json: Bytes, provider: &str) -> Error {
    let kind = serde_json::from_slice::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| v["error"]["type"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let status = crate::error::status_for_anthropic_type(&kind);
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(provider) {
        headers.insert(crate::provider::PROVIDER_HEADER, value);
    }
    let response = UpstreamResponse {
        status,
        headers,
        body: json,
    };
    let mut error = Error::upstream_status(response);
    error.set_kind(ErrorKind::UpstreamEvent);
    error
}
