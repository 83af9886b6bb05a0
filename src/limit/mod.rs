//! Load shedding: at most N requests in flight; the next one gets `529` at once.
//!
//! A permit is taken when a request reaches this layer — in the gateway, once its body
//! has been read, so a slow upload never holds one — and released when its answer's
//! body ends or is dropped, so a stream holds its permit for as long as it runs. Over the limit the
//! request is refused immediately with an Anthropic-shaped `overloaded_error` (which
//! clients retry), never queued: a queue would only turn overload into timeouts.
//!
//! Hand-written because tower's `ConcurrencyLimit` queues instead of refusing, and
//! releases its permit when the response head is ready, not when the stream ends.
//!
//! ```
//! use llm_gateway::limit::ConcurrencyShedLayer;
//! let layer = ConcurrencyShedLayer::new(1024);
//! # let _ = layer;
//! ```

use crate::error::{Error, ErrorKind};
use crate::observe::{BodyEnd, BodyObserver, ObservedBody};
use http::{Request, Response};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

/// Sheds requests over a concurrency limit; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct ConcurrencyShedLayer {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl ConcurrencyShedLayer {
    /// At most `limit` requests (and their streams) at once.
    pub fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

impl<S> Layer<S> for ConcurrencyShedLayer {
    type Service = ConcurrencyShed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyShed {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`ConcurrencyShedLayer`].
#[derive(Clone, Debug)]
pub struct ConcurrencyShed<S> {
    inner: S,
    layer: ConcurrencyShedLayer,
}

impl<S, B, ResB> Service<Request<B>> for ConcurrencyShed<S>
where
    S: Service<Request<B>, Response = Response<ResB>, Error = Error>,
{
    type Response = Response<ShedBody<ResB>>;
    type Error = Error;
    type Future = ShedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self.layer.permits.clone().try_acquire_owned() {
            Ok(permit) => ShedFuture {
                inner: Some(self.inner.call(request)),
                permit: Some(permit),
                limit: self.layer.limit,
            },
            Err(_) => ShedFuture {
                inner: None,
                permit: None,
                limit: self.layer.limit,
            },
        }
    }
}

pin_project! {
    /// The response future of [`ConcurrencyShed`].
    pub struct ShedFuture<F> {
        #[pin]
        inner: Option<F>,
        permit: Option<OwnedSemaphorePermit>,
        limit: usize,
    }
}

impl<F, ResB> Future for ShedFuture<F>
where
    F: Future<Output = Result<Response<ResB>, Error>>,
{
    type Output = Result<Response<ShedBody<ResB>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            tracing::warn!(
                limit = *this.limit,
                "shedding a request: at the concurrency limit"
            );
            return Poll::Ready(Err(Error::new(
                ErrorKind::Overloaded,
                format!(
                    "the gateway is at its limit of {} concurrent requests; retry shortly",
                    this.limit
                ),
            )));
        };
        let response = ready!(inner.poll(cx))?;
        let permit = this.permit.take().map(|held| Permit { _held: held });
        Poll::Ready(Ok(response.map(|inner| ObservedBody::new(inner, permit))))
    }
}

/// A body that holds its request's permit until it ends or is dropped.
pub type ShedBody<B> = ObservedBody<B, Permit>;

/// A request's concurrency permit, released when its answer's body ends.
#[derive(Debug)]
pub struct Permit {
    _held: OwnedSemaphorePermit,
}

impl BodyObserver for Permit {
    fn on_end(&mut self, _: BodyEnd) {}
}
