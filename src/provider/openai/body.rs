use super::translate::{StreamError, StreamTranslator};
use super::UpstreamBody;
use crate::error::{Error, ErrorKind};
use crate::sse::SseDecoder;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

pin_project! {
    /// An OpenAI chunk stream re-encoded, as it passes, as Anthropic SSE.
    ///
    /// Holds only the partial SSE line of the upstream and the frames one upstream chunk
    /// turned into; an in-band upstream error becomes an Anthropic `event: error` frame
    /// (so a fallback above can see it before the commit point). Garbage — a chunk that
    /// is not JSON, bytes that are not SSE, an end with neither `finish_reason` nor
    /// `[DONE]` — ends the body with an [`ErrorKind::UpstreamProtocol`] error after the
    /// frames translated before it, as an Anthropic upstream's garbage does.
    pub struct TranslatedBody {
        #[pin]
        inner: UpstreamBody,
        decoder: SseDecoder,
        translator: StreamTranslator,
        out: BytesMut,
        ended: bool,
        provider: Arc<str>,
        broken: Option<&'static str>,
    }
}

impl TranslatedBody {
    pub(crate) fn new(
        inner: UpstreamBody,
        translator: StreamTranslator,
        provider: Arc<str>,
    ) -> Self {
        Self {
            inner,
            decoder: SseDecoder::new(),
            translator,
            out: BytesMut::new(),
            ended: false,
            provider,
            broken: None,
        }
    }
}

impl Body for TranslatedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let mut this = self.project();
        loop {
            if !this.out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(this.out.split().freeze()))));
            }
            if let Some(why) = this.broken.take() {
                *this.ended = true;
                return Poll::Ready(Some(Err(Error::new(
                    ErrorKind::UpstreamProtocol,
                    format!("provider `{}` sent {why}", this.provider),
                ))));
            }
            if *this.ended || this.translator.is_finished() {
                return Poll::Ready(None);
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Some(data) = frame.data_ref() else {
                        continue;
                    };
                    let translator = &mut *this.translator;
                    let out = &mut *this.out;
                    let broken = &mut *this.broken;
                    let foreign_before = this.decoder.foreign_lines();
                    this.decoder.feed(
                        data,
                        |_| true,
                        |event| {
                            if broken.is_some() || translator.is_finished() {
                                return;
                            }
                            let Ok(text) = std::str::from_utf8(event.data) else {
                                *broken = Some("an event whose data is not UTF-8");
                                return;
                            };
                            match translator.push_data(text, out) {
                                Ok(()) => {}
                                Err(StreamError::Malformed(_)) => {
                                    *broken = Some("a chunk that is not a JSON object");
                                }
                                Err(StreamError::Upstream { error_json }) => {
                                    translator.write_error(&error_json, out);
                                }
                            }
                        },
                    );
                    if broken.is_none() && !translator.is_finished() {
                        if this.decoder.overflowed() {
                            *broken = Some("an SSE line longer than the gateway reads");
                        } else if this.decoder.foreign_lines() != foreign_before {
                            *broken = Some("bytes that are not Server-Sent Events");
                        }
                    }
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                None => {
                    *this.ended = true;
                    if this.translator.finish_reason().is_some() {
                        this.translator.finish(this.out);
                    } else {
                        *this.broken = Some("a stream that ended before its finish_reason");
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.out.is_empty()
            && self.broken.is_none()
            && (self.ended || self.translator.is_finished())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
