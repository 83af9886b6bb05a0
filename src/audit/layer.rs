//! [`AuditLayer`]: one record per request, closed exactly once, handed to a sink.

use super::{AuditAttempt, AuditRecord, AuditSink, AuditUsage};
use crate::cost::{CostCollector, CostObservers};
use crate::error_response::{ErrorInfo, RequestId};
use crate::meta::{AnswerHead, AttemptLog, AttemptsEnd, Endpoint, RequestMeta};
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
#[derive(Clone, Default)]
pub struct AuditDraft(Arc<Mutex<DraftState>>);

impl std::fmt::Debug for AuditDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("AuditDraft")
            .field("keep_body", &state.keep_body)
            .field("body", &state.body)
            .field("meta", &state.meta)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct DraftState {
    /// Whether the request body is kept.
    keep_body: bool,
    /// Where the body is cut as soon as it is read; without it the body is
    /// held here, uncut, until the record closes.
    cut_at: Option<usize>,
    body: Option<DraftBody>,
    meta: Option<RequestMeta>,
}

#[derive(Debug)]
enum DraftBody {
    /// Held here, not cut yet (a draft made with [`AuditDraft::new`]).
    Raw(Bytes),
    /// Cut at `max_body_bytes` when it was set.
    Cut(Bytes),
}

impl AuditDraft {
    fn lock(&self) -> std::sync::MutexGuard<'_, DraftState> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A draft that keeps the request body (for the record) or not. The body
    /// is held in the draft until the record closes.
    pub fn new(keep_body: bool) -> Self {
        Self(Arc::new(Mutex::new(DraftState {
            keep_body,
            ..DraftState::default()
        })))
    }

    /// A draft that cuts the request body at `max_body_bytes` as soon as
    /// ingress has it, so only the cut body is held while the answer streams.
    fn cutting(max_body_bytes: usize) -> Self {
        Self(Arc::new(Mutex::new(DraftState {
            keep_body: true,
            cut_at: Some(max_body_bytes),
            ..DraftState::default()
        })))
    }

    /// The request body as the client sent it; kept only when request bodies
    /// are audited. The layer's own drafts cut it right here.
    pub fn set_request_body(&self, body: Bytes) {
        let cut_at = {
            let state = self.lock();
            if !state.keep_body {
                return;
            }
            state.cut_at
        };
        // Cut without the lock held: copying a cut body may take a while.
        let body = match cut_at {
            Some(max) => DraftBody::Cut(cut_body(body, max)),
            None => DraftBody::Raw(body),
        };
        self.lock().body = Some(body);
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
            let request_id = RequestId::of(extensions);
            let draft = if self.layer.options.log_request_bodies {
                AuditDraft::cutting(self.layer.options.max_body_bytes)
            } else {
                AuditDraft::new(false)
            };
            let attempts = AttemptLog::default();
            let costs = Arc::new(CostCollector::default());
            extensions.insert(draft.clone());
            extensions.insert(attempts.clone());
            CostObservers::push(extensions, costs.clone());
            Recorder {
                sink,
                options: self.layer.options,
                request_id: request_id.0,
                path_endpoint: endpoint_for_path(request.uri().path()),
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

fn endpoint_for_path(path: &str) -> Option<Endpoint> {
    match path {
        "/v1/messages" => Some(Endpoint::Messages),
        "/v1/messages/count_tokens" => Some(Endpoint::CountTokens),
        p if p.starts_with("/v1/models") => Some(Endpoint::Models),
        _ => None,
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

    fn into_bytes(self) -> Bytes {
        let mut kept = self.kept;
        if self.total > kept.len() {
            push_cut_marker(&mut kept, self.total);
        }
        Bytes::from(kept)
    }
}

/// `body` cut to its first `max` bytes with a visible marker appended; the
/// same `Bytes` (no copy) when it fits.
fn cut_body(body: Bytes, max: usize) -> Bytes {
    if body.len() <= max {
        return body;
    }
    let mut kept = Vec::with_capacity(max + 64);
    kept.extend_from_slice(&body[..max]);
    push_cut_marker(&mut kept, body.len());
    Bytes::from(kept)
}

/// The marker that says a body was cut: bytes kept, of how many.
fn push_cut_marker(kept: &mut Vec<u8>, total: usize) {
    let marker = format!(
        "\n[llm-gateway: body cut at {} of {total} bytes]",
        kept.len()
    );
    kept.extend_from_slice(marker.as_bytes());
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
    path_endpoint: Option<Endpoint>,
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
        // A held stream's head says 200 whatever came after; fallback says how it ended.
        let end = self.attempts.end();
        let outcome = if self.status >= 400 {
            Outcome::Error
        } else if let Some(AttemptsEnd::Failed { message }) = end {
            self.error.get_or_insert(message);
            Outcome::Error
        } else if end == Some(AttemptsEnd::Abandoned) {
            Outcome::ClientDisconnected
        } else {
            match served.map(|c| c.usage.outcome) {
                Some(outcome) => outcome,
                None => match ending {
                    Ending::Whole => Outcome::Complete,
                    Ending::Broken => Outcome::Incomplete,
                    Ending::Dropped => Outcome::ClientDisconnected,
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
        let request_body = match body {
            _ if !self.options.log_request_bodies => None,
            None => None,
            Some(DraftBody::Raw(b)) => Some(cut_body(b, self.options.max_body_bytes)),
            Some(DraftBody::Cut(b)) => Some(b),
        };
        let endpoint = meta.as_ref().map(|m| m.endpoint).or(self.path_endpoint);
        AuditRecord {
            request_id: std::mem::take(&mut self.request_id),
            timestamp: AuditRecord::format_timestamp(self.timestamp),
            client: meta.as_ref().and_then(|m| m.client.clone()),
            agent_type: meta.as_ref().and_then(|m| m.agent_type.clone()),
            requested_model: meta.as_ref().and_then(|m| m.model.clone()),
            served_model: served.and_then(|c| c.usage.model.clone()),
            provider,
            endpoint,
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
            outcome,
            error: self.error.take(),
            request_body,
            response_body: self.response_body.take().map(BoundedCopy::into_bytes),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish(Ending::Dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use std::convert::Infallible;

    /// Run one request through the layer around a service that does what
    /// ingress does with the draft; returns the body the draft then held
    /// while the answer went out.
    async fn one_request(sink: Arc<dyn AuditSink>, max: usize, body: &'static [u8]) -> Bytes {
        let seen = Arc::new(Mutex::new(None));
        let inner = {
            let seen = seen.clone();
            tower::service_fn(move |request: Request<Bytes>| {
                let seen = seen.clone();
                async move {
                    let draft = request.extensions().get::<AuditDraft>().unwrap().clone();
                    draft.set_request_body(request.body().clone());
                    let held = match &draft.lock().body {
                        Some(DraftBody::Cut(b) | DraftBody::Raw(b)) => b.clone(),
                        None => Bytes::new(),
                    };
                    *seen.lock().unwrap() = Some(held);
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                }
            })
        };
        let options = AuditOptions {
            max_body_bytes: max,
            ..AuditOptions::default()
        };
        let mut service = AuditLayer::new(sink, options).layer(inner);
        let request = Request::post("/v1/messages")
            .body(Bytes::from_static(body))
            .unwrap();
        let response = service.call(request).await.unwrap();
        let _ = response.into_body().collect().await.unwrap();
        let held = seen.lock().unwrap().take().unwrap();
        held
    }

    #[tokio::test]
    async fn the_request_body_is_cut_when_read_and_goes_in_the_record() {
        let records = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let records = records.clone();
            move |r: AuditRecord| records.lock().unwrap().push(r)
        };
        let cut = Bytes::from_static(b"01234567\n[llm-gateway: body cut at 8 of 16 bytes]");
        let held = one_request(Arc::new(sink), 8, b"0123456789abcdef").await;
        assert_eq!(held, cut, "the draft holds only the cut body");
        let records = records.lock().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].request_body, Some(cut));
        assert_eq!(records[0].response_body.as_deref(), Some(&b"ok"[..]));
        assert_eq!(records[0].endpoint, Some(Endpoint::Messages));
        assert!(
            records[0].timestamp_ms().is_some(),
            "{}",
            records[0].timestamp
        );
    }
}
