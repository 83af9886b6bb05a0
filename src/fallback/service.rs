use super::peek::{peek, PeekBody};
use super::{failure_reason, FallbackPolicy, OnFallback, ProviderHealth};
use crate::body::Body;
use crate::error::{Error, ErrorKind};
use crate::meta::{AttemptLog, AttemptRecord, AttemptTarget, CrossProvider, TargetModel};
use crate::route::{Attempt, RouteDecision};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use http::{header, Request, Response};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Service, ServiceExt};

/// The service made by [`FallbackLayer`](super::FallbackLayer).
pub struct FallbackService<S, P> {
    inner: S,
    shared: Arc<Shared<P>>,
}

struct Shared<P> {
    policy: Arc<P>,
    health: Arc<ProviderHealth>,
    events: Arc<dyn OnFallback>,
}

impl<S, P> FallbackService<S, P> {
    pub(crate) fn new(
        inner: S,
        policy: Arc<P>,
        health: Arc<ProviderHealth>,
        events: Arc<dyn OnFallback>,
    ) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                policy,
                health,
                events,
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
        // The first attempt uses the service that was made ready; later ones use clones
        // and skip what is not ready at once instead of queueing on it.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move { shared.run(ready, request).await })
    }
}

impl<P: FallbackPolicy> Shared<P> {
    async fn run<S, ResB>(
        &self,
        ready: S,
        request: Request<Bytes>,
    ) -> Result<Response<PeekBody>, Error>
    where
        S: Service<Request<Bytes>, Response = Response<ResB>, Error = Error> + Clone,
        ResB: http_body::Body<Data = Bytes, Error = Error> + Send + 'static,
    {
        let (parts, body) = request.into_parts();
        let attempts = self.attempts(parts.extensions.get::<RouteDecision>());
        let log = parts.extensions.get::<AttemptLog>().cloned();
        let mut last_error: Option<Error> = None;
        let template = ready.clone();
        let mut ready = Some(ready);
        for (index, attempt) in attempts.iter().enumerate() {
            let name = attempt.as_ref().map_or("default", |a| &*a.provider);
            let mut service = if let Some(ready) = ready.take() {
                ready
            } else {
                let mut service = template.clone();
                match service.ready().now_or_never() {
                    Some(Ok(_)) => service,
                    _ => {
                        tracing::debug!(provider = name, "not ready; skipped");
                        continue;
                    }
                }
            };
            let request = attempt_request(&parts, &body, attempt.as_ref());
            let started = Instant::now();
            let result = match service.call(request).await {
                Ok(response) => {
                    let response = response.map(Body::new);
                    if is_event_stream(&response) {
                        peek(response, name).await
                    } else {
                        Ok(response.map(PeekBody::passthrough))
                    }
                }
                Err(error) => Err(error),
            };
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            match result {
                Ok(response) => {
                    self.health.record_success(name);
                    if let Some(log) = &log {
                        log.push(AttemptRecord {
                            provider: name.to_owned(),
                            status: Some(response.status().as_u16()),
                            error: None,
                            latency_ms,
                        });
                    }
                    return Ok(response);
                }
                Err(error) => {
                    if let Some(log) = &log {
                        log.push(AttemptRecord {
                            provider: name.to_owned(),
                            status: error.upstream().map(|u| u.status.as_u16()),
                            error: Some(error.message().to_owned()),
                            latency_ms,
                        });
                    }
                    let retry = self.policy.should_fall_back(&error);
                    if retry {
                        self.health.record_failure(
                            name,
                            self.policy.failure_threshold(),
                            self.policy.cool_down(),
                            retry_after(&error).map(|d| d.min(self.policy.max_retry_after())),
                        );
                    }
                    let next = attempts.get(index + 1).and_then(Option::as_ref);
                    match next {
                        Some(next) if retry => {
                            let reason = failure_reason(&error);
                            tracing::info!(from = name, to = %next.provider, reason, "falling back");
                            self.events.on_fallback(name, &next.provider, reason);
                            last_error = Some(error);
                        }
                        _ => return Err(error),
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| {
            Error::new(
                ErrorKind::NoRoute,
                "no provider was available for this request",
            )
        }))
    }

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
