//! Every [`Error`] becomes an Anthropic-shaped answer (an OpenAI-shaped one on
//! `/v1/chat/completions`).
//!
//! axum needs an infallible service (an error that reaches hyper drops the connection
//! with no answer), so this layer sits above every layer that can fail, just inside the
//! recorder (the tower-http edge is outside both).
//! It stamps the request's [`RequestId`] on every answer as `x-gateway-request-id`, adds
//! the streaming headers to SSE answers, and — once headers are out — rescues a failing
//! stream with a well-formed `event: error` frame ([`RescueBody`]). An inner service
//! whose `poll_ready` fails is not called again: this service stays ready and answers
//! every request with that error.
//!
//! ```
//! use llm_gateway::error_response::ErrorResponseLayer;
//! let layer = ErrorResponseLayer::new();
//! # let _ = layer;
//! ```

mod body;
mod render;

pub use crate::request_id::{RequestId, REQUEST_ID_HEADER};
pub use body::RescueBody;
pub use render::{error_body, error_response, error_response_in, SDK_REQUEST_ID_HEADER};

use crate::error::{Error, ErrorKind};
use crate::meta::Ingress;
use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tower::{Layer, Service};

/// The client-safe message of an error answer, in its response's extensions (for audit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorInfo(pub String);

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
        ErrorResponseService {
            inner,
            failed: None,
        }
    }
}

/// The service made by [`ErrorResponseLayer`].
#[derive(Clone, Debug)]
pub struct ErrorResponseService<S> {
    inner: S,
    /// Why the inner service failed to become ready, once it has: it is then never
    /// polled or called again, and every request is answered with this error.
    failed: Option<(ErrorKind, String)>,
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
        if self.failed.is_some() {
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(error)) => {
                // tower: a service whose poll_ready failed is discarded, never called.
                // This one stays ready to answer each request with the failure instead.
                tracing::error!(%error, "inner service failed to become ready");
                self.failed = Some((error.kind(), error.message().to_owned()));
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        let id = RequestId::of(request.extensions_mut());
        let ingress = Ingress::of_path(request.uri().path());
        let inner = match &self.failed {
            Some((kind, message)) => Inner::Failed {
                error: Some(Error::new(*kind, message.clone())),
            },
            None => Inner::Call {
                future: self.inner.call(request),
            },
        };
        ErrorResponseFuture {
            inner,
            request_id: Some(id),
            ingress,
        }
    }
}

pin_project! {
    /// The response future of [`ErrorResponseService`].
    pub struct ErrorResponseFuture<F> {
        #[pin]
        inner: Inner<F>,
        request_id: Option<RequestId>,
        ingress: Ingress,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<F> {
        // The inner service's answer, on its way.
        Call { #[pin] future: F },
        // The inner service failed to become ready: the answer is this error.
        Failed { error: Option<Error> },
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
        let result = match this.inner.project() {
            InnerProj::Call { future } => ready!(future.poll(cx)),
            InnerProj::Failed { error } => Err(error.take().unwrap_or_else(|| {
                Error::new(ErrorKind::Internal, "the answer was already taken")
            })),
        };
        let id = this.request_id.take().unwrap_or_else(RequestId::generate);
        let mut response = match result {
            Ok(response) => {
                let is_sse = render::is_event_stream(response.headers());
                let mut response =
                    response.map(|body| RescueBody::stream(body, is_sse, *this.ingress));
                if is_sse {
                    render::add_stream_headers(response.headers_mut());
                }
                response
            }
            Err(error) => {
                log_error(&error, &id);
                let mut response =
                    error_response_in(&error, &id.0, *this.ingress).map(RescueBody::full);
                response
                    .extensions_mut()
                    .insert(ErrorInfo(error.message().to_owned()));
                response
            }
        };
        if let Some(value) = id.header_value() {
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

#[cfg(test)]
mod tests;
