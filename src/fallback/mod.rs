//! Fallback: try the routed providers in order until one answers.
//!
//! The response future is the retry zone and the body is the committed zone. An attempt
//! fails — and the next provider is tried — on a connection error, a timeout, a retryable
//! status (408, 409, 429, 5xx, 529), or, for a stream, on anything that goes wrong
//! *before the first content event*: until then the stream's frames (`message_start`,
//! `ping`) are held, and an in-band `error` event, a cut connection or the first-byte
//! timeout fail the attempt. At the first `content_block_delta` (or `message_stop` for an
//! empty answer) the attempt commits: the held frames are replayed ([`PeekBody`]) and
//! nothing is retried after that. 400/401/403/404/413/422 are never retried.
//!
//! The hold never starves a client: when a stream has no content
//! [`max_hold`](FallbackLayer::max_hold) after the request went upstream (default 10 s),
//! the response future resolves anyway, with the `200` head (the answering attempt's, or
//! a plain SSE head while none has answered) and a body that owns the rest of the
//! fallback loop. That body sends an SSE comment (`: keepalive`) at once and then every
//! few seconds (as often as the hold, at most every 5 s), still holding the events: a
//! failure before content still moves to the next provider unseen, and when every
//! attempt fails the stream ends with one `event: error` carrying the last upstream
//! error (and the request's [`RequestLedger`](crate::ledger::RequestLedger) says so, for the audit). Only
//! streams are held this way; a non-streaming request waits for its answer as before.
//! Whichever owns the loop logs the running attempt if it is dropped (the client left).
//!
//! Providers that fail [`FallbackPolicy::failure_threshold`] times in a row are skipped
//! for a cool-down, as is a provider whose `retry-after` (capped) has not passed; when
//! every provider is unavailable, all are tried anyway. Later attempts skip a provider
//! whose service is not ready instead of queueing on it. A request carrying an
//! [`AttemptGate`] asks it before each attempt after the first, and ends with its error
//! when it refuses (a budget that cannot cover another attempt).
//!
//! ```
//! use llm_gateway::fallback::{DefaultFallbackPolicy, FallbackLayer};
//! let layer = FallbackLayer::new(DefaultFallbackPolicy::default());
//! # let _ = layer;
//! ```

mod gate;
mod health;
mod hold;
mod peek;
mod run;
mod service;
mod shared;

pub use gate::{AttemptGate, GateAttempts};
pub use health::ProviderHealth;
pub use peek::PeekBody;
pub use service::FallbackService;
pub use shared::{share_cool_downs, POLL as COOL_DOWN_POLL};

use crate::error::{Error, ErrorKind};
use std::sync::Arc;
use std::time::Duration;
use tower::Layer;

/// Decides what a failure means.
pub trait FallbackPolicy: Send + Sync + 'static {
    /// Whether `error` from one provider should move the request to the next.
    fn should_fall_back(&self, error: &Error) -> bool {
        error.is_retryable()
    }

    /// Consecutive failures after which a provider is skipped for [`cool_down`](Self::cool_down).
    fn failure_threshold(&self) -> u32 {
        3
    }

    /// How long an unhealthy provider is skipped.
    fn cool_down(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// The longest `retry-after` honoured (a provider is skipped until it passes).
    fn max_retry_after(&self) -> Duration {
        Duration::from_secs(60)
    }
}

/// The gateway's fallback rules: the defaults of [`FallbackPolicy`], with settable numbers.
#[derive(Clone, Debug)]
pub struct DefaultFallbackPolicy {
    /// See [`FallbackPolicy::failure_threshold`].
    pub failure_threshold: u32,
    /// See [`FallbackPolicy::cool_down`].
    pub cool_down: Duration,
    /// See [`FallbackPolicy::max_retry_after`].
    pub max_retry_after: Duration,
}

impl Default for DefaultFallbackPolicy {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            cool_down: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl FallbackPolicy for DefaultFallbackPolicy {
    fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }

    fn cool_down(&self) -> Duration {
        self.cool_down
    }

    fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }
}

/// Told when a request moves from one provider to the next.
pub trait OnFallback: Send + Sync + 'static {
    /// The request left `from` for `to` because of `reason` (a short, bounded label).
    fn on_fallback(&self, from: &str, to: &str, reason: &'static str);
}

impl OnFallback for () {
    fn on_fallback(&self, _: &str, _: &str, _: &'static str) {}
}

impl<F: Fn(&str, &str, &'static str) + Send + Sync + 'static> OnFallback for F {
    fn on_fallback(&self, from: &str, to: &str, reason: &'static str) {
        self(from, to, reason)
    }
}

/// A bounded label for why an attempt failed.
pub fn failure_reason(error: &Error) -> &'static str {
    match error.kind() {
        ErrorKind::Connect => "connect",
        ErrorKind::Timeout => "timeout",
        ErrorKind::UpstreamEvent => "stream_error",
        ErrorKind::UpstreamProtocol => "protocol",
        ErrorKind::UpstreamStatus => match error.status().as_u16() {
            408 => "status_408",
            409 => "status_409",
            429 => "status_429",
            500 => "status_500",
            502 => "status_502",
            503 => "status_503",
            504 => "status_504",
            529 => "status_529",
            _ => "status_other",
        },
        _ => "other",
    }
}

/// Calls the routed attempts in order; see the [module docs](self).
pub struct FallbackLayer<P> {
    policy: Arc<P>,
    health: Arc<ProviderHealth>,
    events: Arc<dyn OnFallback>,
    max_hold: Duration,
    capture_content: Option<usize>,
}

/// How long a stream is held with nothing sent, by default.
pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(10);

impl<P> Clone for FallbackLayer<P> {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
            health: self.health.clone(),
            events: self.events.clone(),
            max_hold: self.max_hold,
            capture_content: self.capture_content,
        }
    }
}

impl<P: FallbackPolicy> FallbackLayer<P> {
    /// A layer with `policy` and its own health registry.
    pub fn new(policy: P) -> Self {
        Self {
            policy: Arc::new(policy),
            health: Arc::new(ProviderHealth::default()),
            events: Arc::new(()),
            max_hold: DEFAULT_MAX_HOLD,
            capture_content: None,
        }
    }

    /// Hold a stream with nothing sent for at most `max_hold` after the request went
    /// upstream ([`DEFAULT_MAX_HOLD`] unless set); after it the client gets the head and
    /// keepalive comments while fallback goes on (see the [module docs](self)).
    pub fn max_hold(mut self, max_hold: Duration) -> Self {
        self.max_hold = max_hold;
        self
    }

    /// Put the request's messages, cut at `max_bytes` as the audit cuts bodies, into each
    /// attempt's trace span (`gen_ai.input.messages`); `None` (the default) keeps
    /// content out of the spans.
    pub fn capture_content(mut self, max_bytes: Option<usize>) -> Self {
        self.capture_content = max_bytes;
        self
    }

    /// Share `health` (to show it in `/gateway/health` and metrics).
    pub fn with_health(mut self, health: Arc<ProviderHealth>) -> Self {
        self.health = health;
        self
    }

    /// Report each fallback to `events`.
    pub fn on_fallback(mut self, events: impl OnFallback) -> Self {
        self.events = Arc::new(events);
        self
    }

    /// The health registry this layer updates.
    pub fn health(&self) -> &Arc<ProviderHealth> {
        &self.health
    }
}

impl<S, P> Layer<S> for FallbackLayer<P> {
    type Service = FallbackService<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        FallbackService::new(
            inner,
            self.policy.clone(),
            self.health.clone(),
            self.events.clone(),
            self.max_hold,
            self.capture_content,
        )
    }
}

#[cfg(test)]
mod tests;
