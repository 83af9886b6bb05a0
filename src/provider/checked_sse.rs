//! [`CheckedSse`]: an Anthropic event stream checked as it passes.

use crate::error::{Error, ErrorKind};
use crate::sse::SseDecoder;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

pin_project! {
    /// An upstream's Anthropic SSE answer, passed frame by frame, unchanged, as long as it
    /// is the protocol: every event's data is JSON, no line is foreign to SSE, and the
    /// stream ends with `message_stop` (or an in-band `error`, which is the upstream's own
    /// ending). Anything else ends the body with an [`ErrorKind::UpstreamProtocol`] error
    /// instead of the offending frame: before the commit point that is a failed attempt,
    /// after it the edge writes one `event: error`. Bytes after `message_stop` are read
    /// (so the connection can be reused) and dropped.
    ///
    /// Frames are never copied into new buffers; the decoder holds only the partial line
    /// and the event being checked.
    pub(crate) struct CheckedSse<B> {
        #[pin]
        inner: B,
        decoder: SseDecoder,
        provider: Arc<str>,
        ended_in_band: bool,
        done: bool,
    }
}

impl<B> CheckedSse<B> {
    pub(crate) fn new(inner: B, provider: Arc<str>) -> Self {
        Self {
            inner,
            decoder: SseDecoder::new(),
            provider,
            ended_in_band: false,
            done: false,
        }
    }
}

/// What one frame held, as far as the protocol goes.
enum Verdict {
    Fine,
    Broken(&'static str),
}

impl<B> CheckedSse<B> {
    fn check(decoder: &mut SseDecoder, ended: &mut bool, data: &[u8]) -> Verdict {
        let foreign_before = decoder.foreign_lines();
        let mut broken = None;
        decoder.feed(
            data,
            |_| true,
            |event| {
                if broken.is_some() || *ended {
                    return;
                }
                let json = std::str::from_utf8(event.data)
                    .ok()
                    .and_then(|text| serde_json::from_str::<serde::de::IgnoredAny>(text).ok());
                if json.is_none() {
                    broken = Some("an event whose data is not JSON");
                } else if matches!(event.event, b"message_stop" | b"error") {
                    *ended = true;
                }
            },
        );
        if let Some(why) = broken {
            Verdict::Broken(why)
        } else if decoder.overflowed() {
            Verdict::Broken("an SSE line longer than the gateway reads")
        } else if decoder.foreign_lines() != foreign_before && !*ended {
            Verdict::Broken("bytes that are not Server-Sent Events")
        } else {
            Verdict::Fine
        }
    }

    fn broken(provider: &str, why: &str) -> Error {
        Error::new(
            ErrorKind::UpstreamProtocol,
            format!("provider `{provider}` sent {why}"),
        )
    }
}

impl<B> Body for CheckedSse<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let mut this = self.project();
        // Bounded: each turn either returns or consumes one upstream frame after the end.
        loop {
            if *this.done {
                return Poll::Ready(None);
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Some(data) = frame.data_ref() else {
                        return Poll::Ready(Some(Ok(frame)));
                    };
                    if *this.ended_in_band {
                        continue;
                    }
                    match Self::check(this.decoder, this.ended_in_band, data) {
                        Verdict::Fine => return Poll::Ready(Some(Ok(frame))),
                        Verdict::Broken(why) => {
                            *this.done = true;
                            return Poll::Ready(Some(Err(Self::broken(this.provider, why))));
                        }
                    }
                }
                Some(Err(error)) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(error.into())));
                }
                None => {
                    *this.done = true;
                    if *this.ended_in_band {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(Self::broken(
                        this.provider,
                        "a stream that ended before message_stop",
                    ))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.ended_in_band && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    type Chunks =
        StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Error>>>>;

    fn body(chunks: &[&'static [u8]]) -> CheckedSse<Chunks> {
        let frames: Vec<Result<Frame<Bytes>, Error>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        CheckedSse::new(
            StreamBody::new(futures_util::stream::iter(frames)),
            Arc::from("up"),
        )
    }

    /// The frames passed, then the error that ended the body, if one did.
    async fn run(chunks: &[&'static [u8]]) -> (Vec<Bytes>, Option<String>) {
        let mut body = body(chunks);
        let mut passed = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => passed.push(frame.into_data().unwrap()),
                Err(error) => return (passed, Some(error.message().to_owned())),
            }
        }
        (passed, None)
    }

    const START: &[u8] = b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n";
    const DELTA: &[u8] =
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n";
    const STOP: &[u8] = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    #[tokio::test]
    async fn a_whole_stream_passes_unchanged() {
        let (passed, error) = run(&[
            START,
            b"event: content_block_delta\ndata: {\"ty",
            b"pe\":1}\n\n",
            STOP,
        ])
        .await;
        assert_eq!(error, None);
        assert_eq!(passed.len(), 4);
        assert_eq!(passed[3], STOP);
    }

    #[tokio::test]
    async fn data_that_is_not_json_ends_the_body_with_an_error() {
        let (passed, error) =
            run(&[START, b"event: content_block_delta\ndata: {oops\n\n", STOP]).await;
        assert_eq!(passed, vec![Bytes::from_static(START)]);
        assert_eq!(
            error.as_deref(),
            Some("provider `up` sent an event whose data is not JSON")
        );
    }

    #[tokio::test]
    async fn bytes_that_are_not_sse_end_the_body_with_an_error() {
        let (passed, error) = run(&[START, DELTA, b"\xff\xfe garbage \x00\n\n"]).await;
        assert_eq!(passed.len(), 2);
        assert_eq!(
            error.as_deref(),
            Some("provider `up` sent bytes that are not Server-Sent Events")
        );
    }

    #[tokio::test]
    async fn an_end_without_message_stop_is_an_error() {
        let (passed, error) = run(&[START, DELTA]).await;
        assert_eq!(passed.len(), 2);
        assert_eq!(
            error.as_deref(),
            Some("provider `up` sent a stream that ended before message_stop")
        );
    }

    #[tokio::test]
    async fn an_in_band_error_is_the_upstreams_own_end() {
        let error_event: &[u8] =
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n";
        let (passed, error) = run(&[START, DELTA, error_event]).await;
        assert_eq!(error, None, "one error event, the upstream's");
        assert_eq!(passed.len(), 3);
    }

    #[tokio::test]
    async fn bytes_after_message_stop_are_dropped() {
        let (passed, error) = run(&[START, DELTA, STOP, b"junk after the end"]).await;
        assert_eq!(error, None);
        assert_eq!(passed.len(), 3);
    }
}
