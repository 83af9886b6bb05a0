//! The edge of the stack: every [`Error`] becomes an Anthropic-shaped answer.
//!
//! axum needs an infallible service (an error that reaches hyper drops the connection
//! with no answer), so this layer sits outermost. It also gives every request its
//! [`RequestId`], stamps `x-gateway-request-id` on every answer, adds the streaming
//! headers to SSE answers, and — once headers are out — rescues a failing stream with a
//! well-formed `event: error` frame ([`RescueBody`]).
//!
//! ```
//! use llm_gateway::error_response::ErrorResponseLayer;
//! let layer = ErrorResponseLayer::new();
//! # let _ = layer;
//! ```

mod body;
mod render;

pub use body::RescueBody;
pub use render::{error_body, error_response, SDK_REQUEST_ID_HEADER};

use crate::error::Error;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tower::{Layer, Service};

/// The gateway's id for one request, inserted by [`ErrorResponseLayer`] (or by ingress
/// when that layer is not used).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A fresh, time-ordered id (`gw_` + UUIDv7).
    pub fn generate() -> Self {
        Self(format!("gw_{}", uuid::Uuid::now_v7().simple()))
    }
}

/// The client-safe message of an error answer, in its response's extensions (for audit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorInfo(pub String);

/// The response header that carries the [`RequestId`].
pub const REQUEST_ID_HEADER: &str = "x-gateway-request-id";

/// Turns errors into Anthropic-shaped responses; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorResponseLayer;

impl ErrorResponseLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for ErrorResponseLayer {
    type Service = ErrorResponseService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorResponseService { inner }
    }
}

/// The service made by [`ErrorResponseLayer`].
#[derive(Clone, Debug)]
pub struct ErrorResponseService<S> {
    inner: S,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ErrorResponseService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>, Error = Error>,
    ResB: http_body::Body<Data = Bytes, Error = Error>,
{
    type Response = Response<RescueBody<ResB>>;
    type Error = Infallible;
    type Future = ErrorResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // An inner service that cannot become ready still gets an answer: its error is
        // rendered in `call`, so readiness errors are swallowed here and replayed there.
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(error)) => {
                tracing::error!(%error, "inner service failed to become ready");
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        let id = request
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate);
        request.extensions_mut().insert(id.clone());
        ErrorResponseFuture {
            inner: self.inner.call(request),
            request_id: Some(id),
        }
    }
}

pin_project! {
    /// The response future of [`ErrorResponseService`].
    pub struct ErrorResponseFuture<F> {
        #[pin]
        inner: F,
        request_id: Option<RequestId>,
    }
}

impl<F, ResB> Future for ErrorResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, Error>>,
    ResB: http_body::Body<Data = Bytes, Error = Error>,
{
    type Output = Result<Response<RescueBody<ResB>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let id = this.request_id.take().unwrap_or_else(RequestId::generate);
        let mut response = match result {
            Ok(response) => {
                let is_sse = render::is_event_stream(response.headers());
                let mut response = response.map(|body| RescueBody::stream(body, is_sse));
                if is_sse {
                    render::add_stream_headers(response.headers_mut());
                }
                response
            }
            Err(error) => {
                log_error(&error, &id);
                let mut response = error_response(&error, &id.0).map(RescueBody::full);
                response
                    .extensions_mut()
                    .insert(ErrorInfo(error.message().to_owned()));
                response
            }
        };
        if let Ok(value) = HeaderValue::from_str(&id.0) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        Poll::Ready(Ok(response))
    }
}

fn log_error(error: &Error, id: &RequestId) {
    let status = error.status().as_u16();
    if status >= 500 {
        tracing::warn!(request_id = %id.0, kind = ?error.kind(), status, error = %error, "request failed");
    } else {
        tracing::debug!(request_id = %id.0, kind = ?error.kind(), status, error = %error, "request refused");
    }
}
