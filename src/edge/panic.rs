//! A panic while making an answer becomes a 500 `api_error` with the request id.
//!
//! tower-http's `CatchPanic` does the catching; this wrapper exists only because its
//! panic handler does not see the request, and the answer must carry the request's id.

use crate::error::{Error, ErrorKind};
use crate::error_response::{error_response, REQUEST_ID_HEADER};
use crate::request_id::RequestId;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use std::any::Any;
use std::task::{Context, Poll};
use tower::{Layer, Service};
use tower_http::catch_panic::{CatchPanic, ResponseForPanic};
use tower_http::BoxError;

/// Catches panics of the service inside it; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PanicAnswerLayer;

impl<S> Layer<S> for PanicAnswerLayer {
    type Service = PanicAnswer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PanicAnswer { inner }
    }
}

/// The service made by [`PanicAnswerLayer`].
#[derive(Clone, Debug)]
pub(crate) struct PanicAnswer<S> {
    inner: S,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for PanicAnswer<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<tower_http::body::UnsyncBoxBody<Bytes, BoxError>>;
    type Error = S::Error;
    type Future = tower_http::catch_panic::ResponseFuture<S::Future, AnswerPanic>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let answer = AnswerPanic {
            request_id: RequestId::get(request.extensions()).unwrap_or_else(RequestId::generate),
        };
        // `&mut S` is a service too: the ready inner service is the one called.
        CatchPanic::custom(&mut self.inner, answer).call(request)
    }
}

/// The panic handler for one request.
#[derive(Clone, Debug)]
pub(crate) struct AnswerPanic {
    request_id: RequestId,
}

impl ResponseForPanic for AnswerPanic {
    type ResponseBody = Full<Bytes>;

    fn response_for_panic(
        &mut self,
        panic: Box<dyn Any + Send + 'static>,
    ) -> Response<Full<Bytes>> {
        let message = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(not a string)");
        tracing::error!(request_id = %self.request_id.0, panic = message, "a request panicked; answered 500");
        // The panic's text is for the log only: it may name internals.
        let error = Error::new(
            ErrorKind::Internal,
            "the gateway failed to answer this request",
        );
        let mut response = error_response(&error, &self.request_id.0).map(Full::new);
        if let Some(value) = self.request_id.header_value() {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        response
    }
}
