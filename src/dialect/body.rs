use crate::error::Error;
use crate::provider::openai::translate::ChunkWriter;
use crate::sse::SseDecoder;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pin_project! {
    /// An Anthropic event stream re-encoded, as it passes, as chat-completion chunks.
    ///
    /// Holds the partial SSE line of the stream below and the chunks one of its frames
    /// turned into, nothing more: each upstream event is written out before the next
    /// frame is polled, and the stream below is read to its end (so the layers below see
    /// it end, not dropped) even after `[DONE]`. An error of the stream below passes up as it came (after the
    /// chunks written before it), for the error layer to end the stream in OpenAI's way.
    pub struct ChunkBody<B> {
        #[pin]
        inner: B,
        decoder: SseDecoder,
        writer: ChunkWriter,
        out: BytesMut,
        ended: bool,
    }
}

impl<B> ChunkBody<B> {
    /// Re-encode `inner` with `writer`.
    pub fn new(inner: B, writer: ChunkWriter) -> Self {
        Self {
            inner,
            decoder: SseDecoder::new(),
            writer,
            out: BytesMut::new(),
            ended: false,
        }
    }
}

impl<B> Body for ChunkBody<B>
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
        loop {
            if !this.out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(this.out.split().freeze()))));
            }
            if *this.ended {
                return Poll::Ready(None);
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Some(data) = frame.data_ref() else {
                        continue;
                    };
                    let writer = &mut *this.writer;
                    let out = &mut *this.out;
                    this.decoder.feed(
                        data,
                        |_| true,
                        |event| writer.push_event(event.event, event.data, out),
                    );
                }
                Some(Err(error)) => {
                    *this.ended = true;
                    return Poll::Ready(Some(Err(error)));
                }
                None => *this.ended = true,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.out.is_empty() && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
