use super::hold::{keepalive_gap, HoldBody};
use super::peek::PeekBody;
use super::run::{Ended, Run, Shared};
use super::{FallbackPolicy, OnFallback, ProviderHealth};
use crate::body::Body;
use crate::error::Error;
use crate::ledger::RequestLedger;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower::Service;

/// The service made by [`FallbackLayer`](super::FallbackLayer).
pub struct FallbackService<S, P> {
    inner: S,
    shared: Arc<Shared<P>>,
}

impl<S, P> FallbackService<S, P> {
    pub(crate) fn new(
        inner: S,
        policy: Arc<P>,
        health: Arc<ProviderHealth>,
        events: Arc<dyn OnFallback>,
        max_hold: Duration,
        capture_content: Option<usize>,
    ) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                policy,
                health,
                events,
                max_hold,
                capture_content,
            }),
        }
    }
}

impl<S: Clone, P> Clone for FallbackService<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S, P, ResB> Service<Request<Bytes>> for FallbackService<S, P>
where
    S: Service<Request<Bytes>, Response = Response<ResB>, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ResB: http_body::Body<Data = Bytes, Error = Error> + Send + 'static,
    P: FallbackPolicy,
{
    type Response = Response<PeekBody>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Response<PeekBody>, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        // The first attempt uses the service that was made ready; the run clones it for
        // the later ones.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let ledger = RequestLedger::of(request.extensions()).cloned();
        Box::pin(FallbackFuture {
            hold_until: std::time::Instant::now() + self.shared.max_hold,
            gap: keepalive_gap(self.shared.max_hold),
            run: Some(Run::new(self.shared.clone(), ready, request)),
            hold: None,
            ledger,
        })
    }
}

/// The retry zone: resolves with the first attempt that answers, with the last error,
/// or — when a stream has been held `max_hold` with no content — with its `200` head
/// and a [`HoldBody`] that carries the run on.
struct FallbackFuture<S: Service<Request<Bytes>>, P> {
    run: Option<Run<S, P>>,
    /// When the hold ends (set at the call, i.e. when the first attempt goes upstream).
    hold_until: std::time::Instant,
    /// Made at the first poll, inside the runtime.
    hold: Option<Pin<Box<Sleep>>>,
    gap: Duration,
    ledger: Option<RequestLedger>,
}

impl<S, P, ResB> Future for FallbackFuture<S, P>
where
    S: Service<Request<Bytes>, Response = Response<ResB>, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ResB: http_body::Body<Data = Bytes, Error = Error> + Send + 'static,
    P: FallbackPolicy,
{
    type Output = Result<Response<PeekBody>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(run) = this.run.as_mut() else {
            return Poll::Ready(Err(Error::new(
                crate::error::ErrorKind::Internal,
                "fallback polled after it ended",
            )));
        };
        if let Poll::Ready(ended) = run.poll_run(cx) {
            this.run = None;
            return Poll::Ready(match ended {
                Ended::Answered(response) => Ok(response),
                Ended::Failed(error) => Err(error),
            });
        }
        let hold_until = Instant::from_std(this.hold_until);
        let hold = this
            .hold
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(hold_until)));
        if hold.as_mut().poll(cx).is_pending() || !run.can_hold() {
            // A request that is not a stream waits for its answer as it always did.
            return Poll::Pending;
        }
        let mut run = this.run.take().expect("the run is here");
        let head = run.send_head();
        tracing::debug!(
            "no content yet: sending the head and keepalives, still holding the events"
        );
        let body = HoldBody::new(run, this.gap, this.ledger.take());
        Poll::Ready(Ok(head.map(|()| PeekBody::passthrough(Body::new(body)))))
    }
}
