//! Holding a stream's first frames until its first content event.

use crate::body::Body;
use crate::error::{Error, ErrorKind, UpstreamResponse};
use crate::sse::SseDecoder;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
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

enum Seen {
    Nothing,
    Content,
    Error(Bytes),
}

/// Read `response`'s stream until its first content event. `Ok` is the committed
/// answer; `Err` is the attempt's failure (an in-band error, a cut, a timeout, or an
/// end with no content), with nothing sent to the client.
pub(crate) async fn peek(
    response: Response<Body>,
    provider: &str,
) -> Result<Response<PeekBody>, Error> {
    let (parts, mut body) = response.into_parts();
    let mut held = VecDeque::new();
    let mut decoder = SseDecoder::new();
    loop {
        let frame = match body.frame().await {
            Some(Ok(frame)) => frame,
            Some(Err(error)) => return Err(error),
            None => {
                return Err(Error::new(
                    ErrorKind::UpstreamProtocol,
                    format!("provider `{provider}` ended its stream before any content"),
                ))
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let mut seen = Seen::Nothing;
        decoder.feed(
            &data,
            |name| name == b"error",
            |event| match event.event {
                b"content_block_delta" | b"message_stop" => {
                    if matches!(seen, Seen::Nothing) {
                        seen = Seen::Content;
                    }
                }
                b"error" => seen = Seen::Error(Bytes::copy_from_slice(event.data)),
                _ => {}
            },
        );
        match seen {
            Seen::Error(json) => return Err(in_band_error(json, provider)),
            Seen::Content => {
                held.push_back(data);
                return Ok(Response::from_parts(parts, PeekBody { held, inner: body }));
            }
            Seen::Nothing => held.push_back(data),
        }
    }
}

/// An in-band `event: error` before the commit point, as the error answer the client
/// gets if no other provider serves: status from the error's type, body as sent.
fn in_band_error(json: Bytes, provider: &str) -> Error {
    let kind = serde_json::from_slice::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| v["error"]["type"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let status = match kind.as_str() {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(provider) {
        headers.insert(crate::provider::PROVIDER_HEADER, value);
    }
    let response = UpstreamResponse {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        headers,
        body: json,
    };
    let mut error = Error::upstream_status(response);
    error.set_kind(ErrorKind::UpstreamEvent);
    error
}
