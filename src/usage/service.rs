use super::body::UsageTap;
use super::price::Pricing;
use super::{OnUsage, UsageBody, UsageTracker, WatchUsage};
use crate::ledger::RequestLedger;
use crate::meta::{Endpoint, EstimatedStartUsage, RequestMeta, ServedBy};
use crate::observe::ObservedBody;
use crate::request_id::RequestId;
use crate::telemetry::AttemptSpan;
use http::{header, Request, Response};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tower::Service;

/// The service made by [`UsageLayer`](super::UsageLayer).
pub struct UsageService<S, H> {
    inner: S,
    hook: Arc<H>,
    pricing: Option<Arc<Pricing>>,
}

impl<S, H> UsageService<S, H> {
    pub(crate) fn new(inner: S, hook: Arc<H>, pricing: Option<Arc<Pricing>>) -> Self {
        Self {
            inner,
            hook,
            pricing,
        }
    }
}

impl<S: Clone, H> Clone for UsageService<S, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            hook: self.hook.clone(),
            pricing: self.pricing.clone(),
        }
    }
}

impl<S: std::fmt::Debug, H> std::fmt::Debug for UsageService<S, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// What the future knows before the response arrives.
struct Pending<H> {
    hook: Arc<H>,
    pricing: Option<Arc<Pricing>>,
    ledger: Option<RequestLedger>,
    watch: Option<WatchUsage>,
    request_id: String,
    agent_type: Option<String>,
    client: Option<String>,
    /// Whether the client asked for a stream (`None`: no `RequestMeta`, so the answer's
    /// content type says).
    stream: Option<bool>,
    received_at: Instant,
    span: Option<AttemptSpan>,
}

impl<S, H, ReqB, ResB> Service<Request<ReqB>> for UsageService<S, H>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    H: OnUsage,
{
    type Response = Response<UsageBody<ResB, H>>;
    type Error = S::Error;
    type Future = UsageFuture<S::Future, H>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // Only Messages answers carry usage; count_tokens and models pass untouched. A
        // request without a `RequestMeta` (the layer used alone) is read all the same.
        let extensions = request.extensions();
        let meta = extensions.get::<RequestMeta>();
        let pending = (meta.is_none_or(|meta| meta.endpoint == Endpoint::Messages)).then(|| {
            let request_id = match meta {
                Some(meta) => meta.request_id.clone(),
                None => RequestId::get(extensions)
                    .map(|id| id.0)
                    .unwrap_or_default(),
            };
            Pending {
                hook: self.hook.clone(),
                pricing: self.pricing.clone(),
                ledger: RequestLedger::of(extensions).cloned(),
                watch: extensions.get::<WatchUsage>().cloned(),
                request_id,
                agent_type: meta.and_then(|m| m.agent_type.clone()),
                client: meta.and_then(|m| m.client.clone()),
                stream: meta.map(|m| m.stream),
                received_at: meta.map_or_else(Instant::now, |m| m.received_at),
                span: extensions.get::<AttemptSpan>().cloned(),
            }
        });
        UsageFuture {
            inner: self.inner.call(request),
            pending,
        }
    }
}

pin_project! {
    /// The response future of [`UsageService`].
    pub struct UsageFuture<F, H> {
        #[pin]
        inner: F,
        pending: Option<Pending<H>>,
    }
}

impl<F, H, ResB, E> Future for UsageFuture<F, H>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    H: OnUsage,
{
    type Output = Result<Response<UsageBody<ResB, H>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let tap = this.pending.take().and_then(|pending| {
            let mut tracker = tracker_for(&response)?;
            if response.extensions().get::<EstimatedStartUsage>().is_some() {
                tracker = tracker.estimated_start();
            }
            let stream = pending.stream.unwrap_or_else(|| tracker.is_sse());
            let served = response.extensions().get::<ServedBy>();
            Some(UsageTap {
                tracker,
                hook: pending.hook,
                pricing: pending.pricing,
                ledger: pending.ledger,
                watch: pending.watch,
                input_told: false,
                request_id: pending.request_id,
                provider: served.map_or_else(|| Arc::from("unknown"), |s| s.provider.clone()),
                model: served.and_then(|s| s.model.clone()),
                agent_type: pending.agent_type,
                client: pending.client,
                stream,
                received_at: pending.received_at,
                span: pending.span,
            })
        });
        Poll::Ready(Ok(response.map(|body| ObservedBody::new(body, tap))))
    }
}

/// The tracker for a response's content type, or none when it carries no usage.
fn tracker_for<B>(response: &Response<B>) -> Option<UsageTracker> {
    let content_type = response.headers().get(header::CONTENT_TYPE)?.as_bytes();
    if content_type.starts_with(b"text/event-stream") {
        Some(UsageTracker::sse())
    } else if content_type.starts_with(b"application/json") {
        Some(UsageTracker::json())
    } else {
        None
    }
}
