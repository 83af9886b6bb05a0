use super::translate::{StreamError, StreamTranslator};
use super::UpstreamBody;
use crate::error::Error;
use crate::sse::SseDecoder;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pin_project! {
    /// An OpenAI chunk stream re-encoded, as it passes, as Anthropic SSE.
    ///
    /// Holds only the partial SSE line of the upstream and the frames one upstream chunk
    /// turned into; an in-band upstream error becomes an Anthropic `event: error` frame
    /// (so a fallback above can see it before the commit point), garbage is skipped.
    pub struct TranslatedBody {
        #[pin]
        inner: UpstreamBody,
        decoder: SseDecoder,
        translator: StreamTranslator,
        out: BytesMut,
        ended: bool,
    }
}

impl TranslatedBody {
    pub(crate) fn new(inner: UpstreamBody, translator: StreamTranslator) -> Self {
        Self {
            inner,
            decoder: SseDecoder::new(),
            translator,
            out: BytesMut::new(),
            ended: false,
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
                    this.decoder.feed(
                        data,
                        |_| true,
                        |event| {
                            let Ok(text) = std::str::from_utf8(event.data) else {
                                return;
                            };
                            match translator.push_data(text, out) {
                                Ok(()) | Err(StreamError::Malformed(_)) => {}
                                Err(StreamError::Upstream { error_json }) => {
                                    translator.write_error(&error_json, out);
                                }
                            }
                        },
                    );
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                None => {
                    *this.ended = true;
                    this.translator.finish(this.out);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.out.is_empty() && (self.ended || self.translator.is_finished())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
