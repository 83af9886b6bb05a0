use super::body::{Closing, RecordBody};
use super::{path_endpoint, RecordLayer};
use crate::error_response::ErrorInfo;
use crate::ledger::{request_id_of, BoundedCopy, RequestLedger};
use crate::meta::AnswerHead;
use crate::observe::ObservedBody;
use http::{Request, Response};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tower::Service;

/// The service made by [`RecordLayer`].
#[derive(Clone, Debug)]
pub struct RecordService<S> {
    inner: S,
    layer: RecordLayer,
}

impl<S> RecordService<S> {
    pub(super) fn new(inner: S, layer: RecordLayer) -> Self {
        Self { inner, layer }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for RecordService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<RecordBody<ResB>>;
    type Error = S::Error;
    type Future = RecordFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        let closing = request.uri().path().starts_with("/v1/").then(|| {
            let path = path_endpoint(request.uri().path());
            let extensions = request.extensions_mut();
            let ledger = RequestLedger::new(request_id_of(extensions), self.layer.keeps.request);
            extensions.insert(ledger.clone());
            Closing {
                ledger,
                sinks: self.layer.sinks.clone(),
                path,
                head: None,
                error: None,
                response_copy: None,
                chunk_overhead: Duration::ZERO,
                done: false,
            }
        });
        RecordFuture {
            inner: self.inner.call(request),
            closing,
            keep_response: self.layer.keeps.response,
        }
    }
}

pin_project! {
    /// The response future of [`RecordService`]. Dropped before the answer (the client
    /// left), it closes the ledger — after the future inside has dropped and reported.
    pub struct RecordFuture<F> {
        #[pin]
        inner: F,
        closing: Option<Closing>,
        keep_response: Option<usize>,
    }
}

impl<F, ResB, E> Future for RecordFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<RecordBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let closing = this.closing.take().map(|mut closing| {
            let head = AnswerHead::of(&response);
            for sink in closing.sinks.iter() {
                sink.on_answer(closing.path, &head);
            }
            closing.head = Some(head);
            closing.error = response
                .extensions()
                .get::<ErrorInfo>()
                .map(|e| e.0.clone());
            closing.response_copy = this.keep_response.map(BoundedCopy::new);
            closing
        });
        Poll::Ready(Ok(response.map(|inner| ObservedBody::new(inner, closing))))
    }
}
