//! The fallback loop as a state machine, so the response future can hand it, mid-attempt,
//! to the body once the hold sends the head.

use super::peek::{ended_before_content, Peek, PeekBody, Seen};
use super::{failure_reason, FallbackPolicy, GateAttempts, OnFallback, ProviderHealth};
use crate::body::Body;
use crate::edge::SpanField;
use crate::error::{Error, ErrorKind};
use crate::ledger::{AttemptRecord, AttemptsEnd, RequestLedger};
use crate::meta::{AttemptTarget, CrossProvider, TargetModel};
use crate::route::{Attempt, RouteDecision};
use crate::telemetry::AttemptSpan;
use bytes::Bytes;
use futures_util::FutureExt;
use http::{header, Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tower::{Service, ServiceExt};

/// What every request's fallback shares: the policy, the health registry, the hook.
pub(super) struct Shared<P> {
    pub(super) policy: Arc<P>,
    pub(super) health: Arc<ProviderHealth>,
    pub(super) events: Arc<dyn OnFallback>,
    /// How long a stream is held with nothing sent before the head goes out.
    pub(super) max_hold: Duration,
    /// Messages go into the attempt spans, cut at this many bytes.
    pub(super) capture_content: Option<usize>,
}

impl<P: FallbackPolicy> Shared<P> {
    /// The routed attempts, skipping unavailable providers unless every one is.
    fn attempts(&self, decision: Option<&RouteDecision>) -> Vec<Option<Attempt>> {
        let Some(decision) = decision.filter(|d| !d.attempts.is_empty()) else {
            return vec![None];
        };
        let available: Vec<Option<Attempt>> = decision
            .attempts
            .iter()
            .filter(|a| self.health.is_available(&a.provider))
            .cloned()
            .map(Some)
            .collect();
        if available.is_empty() {
            decision.attempts.iter().cloned().map(Some).collect()
        } else {
            available
        }
    }
}

/// How a run ended.
pub(super) enum Ended {
    /// An attempt answered: a committed stream (held frames first) or a whole answer.
    Answered(Response<PeekBody>),
    /// No attempt answered; this is the error to report.
    Failed(Error),
}

/// Where the current attempt stands.
// The run lives in the boxed response future (or the boxed hold body): boxing the
// large variant too would cost one more allocation per attempt for nothing.
#[allow(clippy::large_enum_variant)]
enum Stage<F> {
    /// Pick and call the attempt at `index`.
    Next,
    /// Waiting for the attempt's response head.
    Calling {
        future: Pin<Box<F>>,
        started: Instant,
    },
    /// A stream is answering; its frames are held until its first content event.
    Peeking {
        head: http::response::Parts,
        body: Body,
        peek: Peek,
        started: Instant,
    },
    /// The run has ended.
    Finished,
}

/// The attempts of one request, tried in order until one answers (see the module docs).
///
/// Dropped while an attempt runs — the client went away — it logs that attempt, so the
/// audit record lists every attempt.
pub(super) struct Run<S: Service<Request<Bytes>>, P> {
    shared: Arc<Shared<P>>,
    /// Clones of it serve the attempts after the first.
    template: S,
    /// The service made ready for the first attempt.
    ready: Option<S>,
    parts: http::request::Parts,
    body: Bytes,
    attempts: Vec<Option<Attempt>>,
    index: usize,
    /// Attempts called so far (the gate is asked before every one after the first).
    called: usize,
    ledger: Option<RequestLedger>,
    last_error: Option<Error>,
    stage: Stage<S::Future>,
    /// The client already has a `200` SSE head: an answer that is not a stream fails.
    head_sent: bool,
    /// The running attempt's trace span, until it commits or fails.
    span: Option<AttemptSpan>,
}

// The service is only ever used through `&mut` (never pinned) and its futures are
// boxed, so moving a run is fine whatever `S` is.
impl<S: Service<Request<Bytes>>, P> Unpin for Run<S, P> {}

impl<S, P, ResB> Run<S, P>
where
    S: Service<Request<Bytes>, Response = Response<ResB>, Error = Error> + Clone,
    ResB: http_body::Body<Data = Bytes, Error = Error> + Send + 'static,
    P: FallbackPolicy,
{
    /// A run of `request`'s routed attempts; `ready` is the service made ready for the first.
    pub(super) fn new(shared: Arc<Shared<P>>, ready: S, request: Request<Bytes>) -> Self {
        let (parts, body) = request.into_parts();
        let attempts = shared.attempts(parts.extensions.get::<RouteDecision>());
        let ledger = RequestLedger::of(&parts.extensions).cloned();
        Self {
            shared,
            template: ready.clone(),
            ready: Some(ready),
            parts,
            body,
            attempts,
            index: 0,
            called: 0,
            ledger,
            last_error: None,
            stage: Stage::Next,
            head_sent: false,
            span: None,
        }
    }

    /// Whether the client asked for a stream (so a hold may answer with an SSE head).
    pub(super) fn wants_stream(&self) -> bool {
        self.parts
            .extensions
            .get::<crate::meta::RequestMeta>()
            .is_some_and(|meta| meta.stream)
    }

    /// Whether the current attempt may be held behind a `200` SSE head: a stream is
    /// answering, or a streaming request waits for its answer's head.
    pub(super) fn can_hold(&self) -> bool {
        match self.stage {
            Stage::Peeking { .. } => true,
            Stage::Calling { .. } => self.wants_stream(),
            Stage::Next | Stage::Finished => false,
        }
    }

    /// The head a held stream goes out with: the answering attempt's, or a plain SSE head
    /// while none has answered yet. From now on only a stream may answer.
    pub(super) fn send_head(&mut self) -> Response<()> {
        self.head_sent = true;
        let mut response = Response::new(());
        match &self.stage {
            Stage::Peeking { head, .. } => {
                *response.status_mut() = head.status;
                *response.headers_mut() = head.headers.clone();
            }
            _ => {
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/event-stream; charset=utf-8"),
                );
            }
        }
        response
    }

    /// Drive the attempts until one answers or none is left.
    pub(super) fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<Ended> {
        loop {
            let ended = match self.stage {
                Stage::Next => self.start_next(),
                Stage::Calling { .. } => ready!(self.poll_calling(cx)),
                Stage::Peeking { .. } => ready!(self.poll_peeking(cx)),
                Stage::Finished => Some(Ended::Failed(Error::new(
                    ErrorKind::Internal,
                    "fallback polled after it ended",
                ))),
            };
            if let Some(ended) = ended {
                self.stage = Stage::Finished;
                return Poll::Ready(ended);
            }
        }
    }

    fn provider(&self) -> &str {
        provider_name(&self.attempts, self.index)
    }

    /// Call the attempt at `index`, or end when none is left.
    fn start_next(&mut self) -> Option<Ended> {
        let Some(attempt) = self.attempts.get(self.index) else {
            return Some(Ended::Failed(self.last_error.take().unwrap_or_else(|| {
                Error::new(
                    ErrorKind::NoRoute,
                    "no provider was available for this request",
                )
            })));
        };
        // The first attempt uses the service that was made ready; later ones use clones
        // and skip what is not ready at once instead of queueing on it.
        let mut service = match self.ready.take() {
            Some(ready) => ready,
            None => {
                let mut service = self.template.clone();
                if !matches!(service.ready().now_or_never(), Some(Ok(_))) {
                    tracing::debug!(provider = self.provider(), "not ready; skipped");
                    self.index += 1;
                    return None;
                }
                service
            }
        };
        if let (true, Some(attempt), Some(gate)) = (
            self.called > 0,
            attempt.as_ref(),
            self.parts.extensions.get::<GateAttempts>(),
        ) {
            if let Err(error) = gate.0.before_attempt(attempt) {
                return Some(Ended::Failed(error));
            }
        }
        self.called += 1;
        let mut request = attempt_request(&self.parts, &self.body, attempt.as_ref());
        let span = self.attempt_span(attempt.as_ref());
        request.extensions_mut().insert(span.clone());
        self.span = Some(span);
        self.stage = Stage::Calling {
            future: Box::pin(service.call(request)),
            started: Instant::now(),
        };
        None
    }

    fn poll_calling(&mut self, cx: &mut Context<'_>) -> Poll<Option<Ended>> {
        let Stage::Calling { future, started } = &mut self.stage else {
            return Poll::Ready(None);
        };
        let started = *started;
        let result = ready!(future.as_mut().poll(cx));
        let ended = match result {
            Ok(response) => {
                let response = response.map(Body::new);
                if is_event_stream(&response) {
                    let (head, body) = response.into_parts();
                    self.stage = Stage::Peeking {
                        head,
                        body,
                        peek: Peek::default(),
                        started,
                    };
                    None
                } else if self.head_sent {
                    let error = Error::new(
                        ErrorKind::UpstreamProtocol,
                        format!(
                            "provider `{}` answered a stream with a body that is not one",
                            self.provider()
                        ),
                    );
                    self.stage = Stage::Next;
                    self.fail(error, started)
                } else {
                    self.stage = Stage::Finished;
                    Some(self.succeed(response.map(PeekBody::passthrough), started))
                }
            }
            Err(error) => {
                self.stage = Stage::Next;
                self.fail(error, started)
            }
        };
        Poll::Ready(ended)
    }

    fn poll_peeking(&mut self, cx: &mut Context<'_>) -> Poll<Option<Ended>> {
        loop {
            let name = provider_name(&self.attempts, self.index);
            let Stage::Peeking {
                body,
                peek,
                started,
                ..
            } = &mut self.stage
            else {
                return Poll::Ready(None);
            };
            let started = *started;
            let failure = match ready!(http_body::Body::poll_frame(Pin::new(&mut *body), cx)) {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    match peek.feed(data, name) {
                        Seen::Nothing => continue,
                        Seen::Error(error) => error,
                        Seen::Content => {
                            let Stage::Peeking {
                                head, body, peek, ..
                            } = std::mem::replace(&mut self.stage, Stage::Finished)
                            else {
                                return Poll::Ready(None);
                            };
                            let response = Response::from_parts(head, peek.commit(body));
                            return Poll::Ready(Some(self.succeed(response, started)));
                        }
                    }
                }
                Some(Err(error)) => error,
                None => ended_before_content(name),
            };
            // The failed attempt's body is dropped (its usage tap reports) before the
            // attempt is logged.
            self.stage = Stage::Next;
            return Poll::Ready(self.fail(failure, started));
        }
    }

    /// The span of the attempt about to be called, a child of the request's.
    fn attempt_span(&self, attempt: Option<&Attempt>) -> AttemptSpan {
        let meta = self.parts.extensions.get::<crate::meta::RequestMeta>();
        let model = attempt.and_then(|a| a.model.as_deref());
        // The request span names who asked (once: a field recorded twice is sent twice).
        if let (Some(meta), 1) = (meta, self.called) {
            for (field, value) in [
                (SpanField::Client, &meta.client),
                (SpanField::Model, &meta.model),
            ] {
                if let Some(value) = value {
                    crate::edge::record(field, value);
                }
            }
        }
        let span = AttemptSpan::start(meta, self.provider(), model);
        if let Some(max) = self.shared.capture_content {
            span.capture_messages(&self.body, max);
        }
        span
    }

    fn succeed(&mut self, response: Response<PeekBody>, started: Instant) -> Ended {
        if let Some(span) = self.span.take() {
            span.committed();
        }
        let name = self.provider().to_owned();
        crate::edge::record(SpanField::Provider, &name);
        self.shared.health.record_success(&name);
        if let Some(ledger) = &self.ledger {
            ledger.attempt(AttemptRecord {
                provider: name,
                status: Some(response.status().as_u16()),
                error: None,
                latency_ms: millis_since(started),
            });
        }
        Ended::Answered(response)
    }

    /// Log the failed attempt and move to the next one (`None`), or end with the error.
    fn fail(&mut self, error: Error, started: Instant) -> Option<Ended> {
        if let Some(span) = self.span.take() {
            span.failed(failure_reason(&error));
        }
        let name = self.provider().to_owned();
        if let Some(ledger) = &self.ledger {
            ledger.attempt(AttemptRecord {
                provider: name.clone(),
                status: error.upstream().map(|u| u.status.as_u16()),
                error: Some(error.message().to_owned()),
                latency_ms: millis_since(started),
            });
        }
        let policy = &self.shared.policy;
        let retry = policy.should_fall_back(&error);
        if retry {
            self.shared.health.record_failure(
                &name,
                policy.failure_threshold(),
                policy.cool_down(),
                retry_after(&error).map(|d| d.min(policy.max_retry_after())),
            );
        }
        match self.attempts.get(self.index + 1).and_then(Option::as_ref) {
            Some(next) if retry => {
                let reason = failure_reason(&error);
                tracing::info!(from = %name, to = %next.provider, reason, "falling back");
                self.shared
                    .events
                    .on_fallback(&name, &next.provider, reason);
                self.last_error = Some(error);
                self.index += 1;
                None
            }
            _ => Some(Ended::Failed(error)),
        }
    }
}

impl<S: Service<Request<Bytes>>, P> Drop for Run<S, P> {
    fn drop(&mut self) {
        let (status, started) = match &self.stage {
            Stage::Calling { started, .. } => (None, *started),
            Stage::Peeking { head, started, .. } => (Some(head.status.as_u16()), *started),
            Stage::Next | Stage::Finished => return,
        };
        // The client went away mid-attempt: the attempt still belongs in the record.
        if let Some(span) = self.span.take() {
            span.abandoned();
        }
        if let Some(ledger) = &self.ledger {
            ledger.attempt(AttemptRecord {
                provider: provider_name(&self.attempts, self.index).to_owned(),
                status,
                error: Some("client disconnected".to_owned()),
                latency_ms: millis_since(started),
            });
            ledger.attempts_ended(AttemptsEnd::Abandoned);
        }
    }
}

fn provider_name(attempts: &[Option<Attempt>], index: usize) -> &str {
    attempts
        .get(index)
        .and_then(Option::as_ref)
        .map_or("default", |a| &*a.provider)
}

fn millis_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn attempt_request(
    parts: &http::request::Parts,
    body: &Bytes,
    attempt: Option<&Attempt>,
) -> Request<Bytes> {
    let mut request = Request::new(body.clone());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    *request.extensions_mut() = parts.extensions.clone();
    if let Some(attempt) = attempt {
        let extensions = request.extensions_mut();
        extensions.insert(AttemptTarget(attempt.provider.clone()));
        if let Some(model) = &attempt.model {
            extensions.insert(TargetModel(model.clone()));
        }
        if attempt.cross_provider {
            extensions.insert(CrossProvider);
        }
    }
    request
}

fn is_event_stream<B>(response: &Response<B>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// `retry-after-ms` or `retry-after` (seconds) from an upstream's error answer.
fn retry_after(error: &Error) -> Option<Duration> {
    let headers = &error.upstream()?.headers;
    let read = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    if let Some(ms) = read("retry-after-ms") {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    read("retry-after").map(|s| Duration::from_secs_f64(s.clamp(0.0, 86_400.0)))
}
