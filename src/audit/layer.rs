//! [`AuditLayer`]: one record per request, closed exactly once, handed to a sink.

use super::{AuditAttempt, AuditRecord, AuditSink, AuditUsage};
use crate::cost::{CostCollector, CostObservers};
use crate::error_response::{ErrorInfo, RequestId};
use crate::meta::{AnswerHead, AttemptLog, Endpoint, RequestMeta};
use crate::usage::Outcome;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Instant, SystemTime};
use tower::{Layer, Service};

/// What the audit trail keeps of bodies.
#[derive(Clone, Copy, Debug)]
pub struct AuditOptions {
    /// Keep request bodies.
    pub log_request_bodies: bool,
    /// Keep response bodies (for streams, the SSE text as sent).
    pub log_response_bodies: bool,
    /// Longest body kept; longer ones are cut with a marker.
    pub max_body_bytes: usize,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            log_request_bodies: true,
            log_response_bodies: true,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// What ingress learns about a request, for the audit record (an outer layer inserts
/// it; ingress fills it, even for a request it refuses).
#[derive(Clone, Debug, Default)]
pub struct AuditDraft(Arc<Mutex<DraftState>>);

#[derive(Debug, Default)]
struct DraftState {
    /// Whether the request body is kept (it is held until the record closes).
    keep_body: bool,
    body: Option<Bytes>,
    meta: Option<RequestMeta>,
}

impl AuditDraft {
    fn lock(&self) -> std::sync::MutexGuard<'_, DraftState> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A draft that keeps the request body (for the record) or not.
    pub fn new(keep_body: bool) -> Self {
        Self(Arc::new(Mutex::new(DraftState {
            keep_body,
            ..DraftState::default()
        })))
    }

    /// The request body as the client sent it; held only when request bodies are audited.
    pub fn set_request_body(&self, body: Bytes) {
        let mut state = self.lock();
        if state.keep_body {
            state.body = Some(body);
        }
    }

    /// The request's metadata, once ingress has checked it.
    pub fn set_meta(&self, meta: RequestMeta) {
        self.lock().meta = Some(meta);
    }
}

/// Writes an [`AuditRecord`] for every request to an [`AuditSink`]; outermost.
pub struct AuditLayer {
    sink: Option<Arc<dyn AuditSink>>,
    options: AuditOptions,
}

impl Clone for AuditLayer {
    fn clone(&self) -> Self {
        Self {
            sink: self.sink.clone(),
            options: self.options,
        }
    }
}

impl AuditLayer {
    /// A layer handing records to `sink`.
    pub fn new(sink: Arc<dyn AuditSink>, options: AuditOptions) -> Self {
        Self {
            sink: Some(sink),
            options,
        }
    }

    /// A layer that records nothing (audit turned off): no draft, no body copies.
    pub fn disabled() -> Self {
        Self {
            sink: None,
            options: AuditOptions::default(),
        }
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = AuditService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuditService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`AuditLayer`].
#[derive(Clone)]
pub struct AuditService<S> {
    inner: S,
    layer: AuditLayer,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for AuditService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<AuditBody<ResB>>;
    type Error = S::Error;
    type Future = AuditFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        let path = request.uri().path();
        // Only the proxied API is audited; health, metrics and the audit itself are not.
        let sink = self.layer.sink.clone().filter(|_| path.starts_with("/v1/"));
        let recorder = sink.map(|sink| {
            let extensions = request.extensions_mut();
            let request_id = extensions.get::<RequestId>().cloned().unwrap_or_else(|| {
                let id = RequestId::generate();
                extensions.insert(id.clone());
                id
            });
            let draft = AuditDraft::new(self.layer.options.log_request_bodies);
            let attempts = AttemptLog::default();
            let costs = Arc::new(CostCollector::default());
            extensions.insert(draft.clone());
            extensions.insert(attempts.clone());
            CostObservers::push(extensions, costs.clone());
            Recorder {
                sink,
                options: self.layer.options,
                request_id: request_id.0,
                path_endpoint: endpoint_name_for_path(request.uri().path()),
                started: Instant::now(),
                timestamp: SystemTime::now(),
                draft,
                attempts,
                costs,
                status: 0,
                stream: false,
                provider: None,
                error: None,
                response_body: None,
                ended: None,
                done: false,
            }
        });
        AuditFuture {
            inner: self.inner.call(request),
            recorder,
        }
    }
}

fn endpoint_name_for_path(path: &str) -> &'static str {
    match path {
        "/v1/messages" => "messages",
        "/v1/messages/count_tokens" => "count_tokens",
        p if p.starts_with("/v1/models") => "models",
        _ => "other",
    }
}

pin_project! {
    /// The response future of [`AuditService`].
    pub struct AuditFuture<F> {
        #[pin]
        inner: F,
        recorder: Option<Recorder>,
    }
}

impl<F, ResB, E> Future for AuditFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<AuditBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let recorder = this.recorder.take().map(|mut recorder| {
            let head = AnswerHead::of(&response);
            recorder.status = head.status;
            recorder.stream = head.stream;
            recorder.provider = head.provider;
            recorder.error = response
                .extensions()
                .get::<ErrorInfo>()
                .map(|e| e.0.clone());
            if recorder.options.log_response_bodies {
                recorder.response_body = Some(BoundedCopy::new(recorder.options.max_body_bytes));
            }
            recorder
        });
        Poll::Ready(Ok(response.map(|inner| AuditBody { inner, recorder })))
    }
}

pin_project! {
    /// A body that keeps a bounded copy of what it forwards and closes the audit record
    /// exactly once: at the end, on an error, or — declared after the inner body, so the
    /// usage tap inside reports first — when it is dropped.
    pub struct AuditBody<B> {
        #[pin]
        inner: B,
        recorder: Option<Recorder>,
    }
}

impl<B> Body for AuditBody<B>
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
        if let Some(recorder) = this.recorder.as_mut() {
            match &frame {
                Some(Ok(frame)) => {
                    if let (Some(copy), Some(data)) =
                        (recorder.response_body.as_mut(), frame.data_ref())
                    {
                        copy.push(data);
                    }
                    if this.inner.is_end_stream() {
                        recorder.finish(Ending::Whole);
                    }
                }
                Some(Err(_)) => recorder.finish(Ending::Broken),
                None => recorder.finish(Ending::Whole),
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

/// A copy of a body up to a bound; what is past the bound is counted, not kept.
struct BoundedCopy {
    kept: Vec<u8>,
    max: usize,
    total: usize,
}

impl BoundedCopy {
    fn new(max: usize) -> Self {
        Self {
            kept: Vec::new(),
            max,
            total: 0,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.total += data.len();
        let room = self.max.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&data[..data.len().min(room)]);
    }

    fn into_text(self) -> String {
        cut_text(&self.kept, self.total, self.max)
    }
}

/// `bytes` (the first `max` of `total`) as text, with a visible marker when cut.
fn cut_text(bytes: &[u8], total: usize, max: usize) -> String {
    let kept = &bytes[..bytes.len().min(max)];
    let mut text = String::from_utf8_lossy(kept).into_owned();
    if total > kept.len() {
        text.push_str(&format!(
            "\n[llm-gateway: body cut at {} of {total} bytes]",
            kept.len()
        ));
    }
    text
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    Whole,
    Broken,
    Dropped,
}

/// Everything the record needs, gathered as the request goes; records once.
struct Recorder {
    sink: Arc<dyn AuditSink>,
    options: AuditOptions,
    request_id: String,
    path_endpoint: &'static str,
    started: Instant,
    timestamp: SystemTime,
    draft: AuditDraft,
    attempts: AttemptLog,
    costs: Arc<CostCollector>,
    status: u16,
    stream: bool,
    provider: Option<String>,
    error: Option<String>,
    response_body: Option<BoundedCopy>,
    ended: Option<Ending>,
    done: bool,
}

impl Recorder {
    fn finish(&mut self, ending: Ending) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        self.ended = Some(ending);
        let record = self.build();
        self.sink.submit(record);
    }

    fn build(&mut self) -> AuditRecord {
        let (body, meta) = {
            let mut draft = self.draft.lock();
            (draft.body.take(), draft.meta.take())
        };
        let costs = self.costs.take();
        // The attempt that served is the last one that produced an answer.
        let served = costs.last();
        let ending = self.ended.unwrap_or(Ending::Dropped);
        let outcome = if self.status >= 400 {
            "error"
        } else {
            match served.map(|c| c.usage.outcome) {
                Some(Outcome::Complete) => "complete",
                Some(Outcome::Error) => "error",
                Some(Outcome::ClientDisconnected) => "client_disconnected",
                Some(Outcome::Incomplete) => "incomplete",
                None => match ending {
                    Ending::Whole => "complete",
                    Ending::Broken => "incomplete",
                    Ending::Dropped => "client_disconnected",
                },
            }
        };
        let usage = served.map(|c| c.usage.usage).unwrap_or_default();
        let attempts = self
            .attempts
            .attempts()
            .into_iter()
            .map(|a| AuditAttempt {
                provider: a.provider,
                status: a.status,
                error: a.error,
                latency_ms: a.latency_ms,
            })
            .collect::<Vec<_>>();
        let provider = served
            .map(|c| c.usage.provider.to_string())
            .or_else(|| self.provider.take())
            .or_else(|| attempts.last().map(|a| a.provider.clone()));
        let request_body = if self.options.log_request_bodies {
            body.map(|b| cut_text(&b, b.len(), self.options.max_body_bytes))
        } else {
            None
        };
        let endpoint = match meta.as_ref().map(|m| m.endpoint) {
            Some(Endpoint::Messages) => "messages",
            Some(Endpoint::CountTokens) => "count_tokens",
            Some(Endpoint::Models) => "models",
            _ => self.path_endpoint,
        };
        AuditRecord {
            request_id: std::mem::take(&mut self.request_id),
            timestamp_ms: self
                .timestamp
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            client: meta.as_ref().and_then(|m| m.client.clone()),
            agent_type: meta.as_ref().and_then(|m| m.agent_type.clone()),
            requested_model: meta.as_ref().and_then(|m| m.model.clone()),
            served_model: served.and_then(|c| c.usage.model.clone()),
            provider,
            endpoint: endpoint.to_owned(),
            attempts,
            status: crate::metrics::answered_status(self.status),
            stream: meta.as_ref().map_or(self.stream, |m| m.stream),
            ttft_ms: served
                .and_then(|c| c.usage.ttft)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            latency_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            usage: AuditUsage {
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
                cache_creation_input_tokens: usage.cache_creation_input_tokens,
                cache_write_5m_tokens: usage.cache_write_5m_tokens,
                cache_write_1h_tokens: usage.cache_write_1h_tokens,
                cache_read_input_tokens: usage.cache_read_input_tokens,
            },
            cost_usd: served.and_then(|c| c.cost).map(|m| m.to_string()),
            price_table_version: served.map(|c| c.price_table_version.to_string()),
            outcome: outcome.to_owned(),
            error: self.error.take(),
            request_body,
            response_body: self.response_body.take().map(BoundedCopy::into_text),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish(Ending::Dropped);
    }
}
