use super::{FinishedRequest, GatewayMetrics};
use crate::cost::{CostCollector, CostObservers};
use crate::error_response::RequestId;
use crate::meta::{AnswerHead, RequestClock};
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tower::{Layer, Service};

/// Records every `/v1/messages` request into [`GatewayMetrics`]; outermost in the stack.
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    metrics: GatewayMetrics,
}

impl MetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: GatewayMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service made by [`MetricsLayer`].
#[derive(Clone, Debug)]
pub struct MetricsService<S> {
    inner: S,
    metrics: GatewayMetrics,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for MetricsService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<MetricsBody<ResB>>;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        let pending = (request.uri().path() == "/v1/messages").then(|| {
            let costs = Arc::new(CostCollector::default());
            let clock = Arc::new(RequestClock::start());
            let extensions = request.extensions_mut();
            CostObservers::push(extensions, costs.clone());
            extensions.insert(clock.clone());
            let request_id = RequestId::of(extensions);
            Tracker {
                metrics: self.metrics.clone(),
                request_id: request_id.0,
                started: Instant::now(),
                timestamp: SystemTime::now(),
                costs,
                clock,
                status: 0,
                provider: None,
                stream: false,
                chunk_overhead: Duration::ZERO,
                done: false,
            }
        });
        MetricsFuture {
            inner: self.inner.call(request),
            tracker: pending,
        }
    }
}

pin_project! {
    /// The response future of [`MetricsService`].
    pub struct MetricsFuture<F> {
        #[pin]
        inner: F,
        tracker: Option<Tracker>,
    }
}

impl<F, ResB, E> Future for MetricsFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<MetricsBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let tracker = this.tracker.take().map(|mut tracker| {
            let head = AnswerHead::of(&response);
            tracker.status = head.status;
            tracker.provider = head.provider;
            tracker.stream = head.stream;
            if tracker.stream {
                tracker.metrics.stream_opened();
            }
            tracker
        });
        Poll::Ready(Ok(response.map(|inner| MetricsBody { inner, tracker })))
    }
}

pin_project! {
    /// A body that measures each chunk's hand-off and records the request at its end.
    ///
    /// The tracker is declared after the inner body, so on drop the inner body (and the
    /// usage tap inside it) reports first and the tracker records what it reported.
    pub struct MetricsBody<B> {
        #[pin]
        inner: B,
        tracker: Option<Tracker>,
    }
}

/// What the metrics layer learns about one request; records it once, at end or drop.
pub(crate) struct Tracker {
    metrics: GatewayMetrics,
    request_id: String,
    started: Instant,
    timestamp: SystemTime,
    costs: Arc<CostCollector>,
    clock: Arc<RequestClock>,
    status: u16,
    provider: Option<String>,
    stream: bool,
    chunk_overhead: Duration,
    done: bool,
}

impl Tracker {
    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if self.stream {
            self.metrics.stream_closed();
        }
        let costs = self.costs.take();
        let overhead = self
            .clock
            .time_to_send()
            .map(|to_send| to_send + self.chunk_overhead);
        self.metrics.record(FinishedRequest {
            request_id: std::mem::take(&mut self.request_id),
            timestamp: self.timestamp,
            status: answered_status(self.status),
            provider: self.provider.take(),
            costs,
            latency: self.started.elapsed(),
            overhead,
            stream: self.stream,
        });
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<B> Body for MetricsBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        if let Some(tracker) = this.tracker.as_mut() {
            match &frame {
                Some(Ok(_)) => {
                    if let Some(handoff) = tracker.clock.since_last_chunk() {
                        tracker.chunk_overhead += handoff;
                    }
                    if this.inner.is_end_stream() {
                        tracker.finish();
                    }
                }
                Some(Err(_)) | None => tracker.finish(),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The status to record: `499` (nginx's "client closed request") when the client left
/// before there was any answer.
pub(crate) fn answered_status(status: u16) -> u16 {
    if status == 0 {
        499
    } else {
        status
    }
}
