//! First-byte and idle time limits on an upstream's answer.
//!
//! The first-byte limit runs from the call until the response *and* its first body frame
//! have arrived (an upstream that sends headers and then nothing is as dead as one that
//! sends nothing). After that, each silence between frames may last at most the idle
//! limit. A limit that passes fails the body with [`ErrorKind::Timeout`].
//!
//! Hand-written because tower-http's timeouts bound the whole response or the whole
//! body, which would cut a long healthy stream; this one bounds each silence.
//!
//! ```
//! use llm_gateway::timeout::TimeoutLayer;
//! use std::time::Duration;
//! let layer = TimeoutLayer::new(Duration::from_secs(120), Duration::from_secs(300));
//! # let _ = layer;
//! ```

mod body;

pub use body::TimeoutBody;

use crate::error::{Error, ErrorKind};
use http::Response;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// Applies the first-byte and idle limits; see the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer {
    first_byte: Duration,
    idle: Duration,
}

impl TimeoutLayer {
    /// Limits: until the first body frame, and between frames.
    pub fn new(first_byte: Duration, idle: Duration) -> Self {
        Self { first_byte, idle }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            limits: *self,
        }
    }
}

/// The service made by [`TimeoutLayer`].
#[derive(Clone, Debug)]
pub struct TimeoutService<S> {
    inner: S,
    limits: TimeoutLayer,
}

impl<S, Req, ResB> Service<Req> for TimeoutService<S>
where
    S: Service<Req, Response = Response<ResB>, Error = Error>,
{
    type Response = Response<TimeoutBody<ResB>>;
    type Error = Error;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let deadline = Instant::now() + self.limits.first_byte;
        TimeoutFuture {
            inner: self.inner.call(request),
            sleep: tokio::time::sleep_until(deadline),
            limits: self.limits,
        }
    }
}

pin_project! {
    /// The response future of [`TimeoutService`].
    pub struct TimeoutFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        limits: TimeoutLayer,
    }
}

impl<F, ResB> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<Response<ResB>, Error>>,
{
    type Output = Result<Response<TimeoutBody<ResB>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            let response = result?;
            let deadline = this.sleep.deadline();
            let limits = *this.limits;
            return Poll::Ready(Ok(response.map(|body| {
                TimeoutBody::new(body, deadline, limits.first_byte, limits.idle)
            })));
        }
        ready!(this.sleep.poll(cx));
        Poll::Ready(Err(first_byte_timeout(this.limits.first_byte)))
    }
}

pub(crate) fn first_byte_timeout(limit: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("upstream sent nothing within {} ms", limit.as_millis()),
    )
}

pub(crate) fn idle_timeout(limit: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("upstream stream was silent for {} ms", limit.as_millis()),
    )
}
