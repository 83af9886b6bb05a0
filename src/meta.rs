//! What the gateway knows about a request, set once by ingress.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Which API a request is for (in JSON: `messages`, `count_tokens`, `models`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `GET /v1/models` (and `/v1/models/{id}`).
    Models,
}

impl Endpoint {
    /// Whether the body is a Messages-shaped request that must carry `model` and `messages`.
    pub fn has_messages_body(self) -> bool {
        matches!(self, Endpoint::Messages | Endpoint::CountTokens)
    }
}

/// The facts about one request that every layer reads.
///
/// Inserted into the request's extensions by [`Ingress`](crate::ingress::IngressLayer);
/// the forwarded body is the request's `Bytes` (with `agent_type` already removed).
#[derive(Clone, Debug)]
pub struct RequestMeta {
    /// The gateway's id for this request (`x-gateway-request-id`).
    pub request_id: String,
    /// Which API the request is for.
    pub endpoint: Endpoint,
    /// The `model` the client asked for (absent for `GET /v1/models`).
    pub model: Option<String>,
    /// Byte range of the `model` value (a JSON string, quotes included) in the forwarded
    /// body, so a provider can rewrite it without re-serializing the body.
    pub model_span: Option<Range<usize>>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The gateway's own `agent_type` field, removed from the forwarded body.
    pub agent_type: Option<String>,
    /// The name of the client key that authenticated the request, when auth is on.
    pub client: Option<String>,
    /// When the gateway received the request (monotonic).
    pub received_at: Instant,
    /// When the gateway received the request (wall clock).
    pub received_at_wall: SystemTime,
}

impl RequestMeta {
    /// A request received now, with nothing peeked yet (no model, not a stream).
    pub fn new(request_id: impl Into<String>, endpoint: Endpoint) -> Self {
        Self {
            request_id: request_id.into(),
            endpoint,
            model: None,
            model_span: None,
            stream: false,
            agent_type: None,
            client: None,
            received_at: Instant::now(),
            received_at_wall: SystemTime::now(),
        }
    }
}

/// The provider (and model) that answered, set by the provider service on its response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedBy {
    /// The provider's configured name.
    pub provider: Arc<str>,
    /// The model the upstream was asked for.
    pub model: Option<String>,
}

/// The model to ask the upstream for, when routing chose another than the client's.
///
/// Inserted by routing; read by the provider, which rewrites the body's `model` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetModel(pub String);

/// Timestamps that measure what the gateway itself adds to a request.
///
/// Inserted (as `Arc<RequestClock>`) by the metrics layer; the provider marks when the
/// upstream request is sent and when each upstream chunk arrives; the metrics body
/// measures how long each chunk took to reach the client.
#[derive(Debug)]
pub struct RequestClock {
    start: Instant,
    read_ns: std::sync::atomic::AtomicU64,
    sent_ns: std::sync::atomic::AtomicU64,
    chunk_ns: std::sync::atomic::AtomicU64,
}

impl RequestClock {
    /// A clock started now.
    pub fn start() -> Self {
        Self {
            start: Instant::now(),
            read_ns: std::sync::atomic::AtomicU64::new(0),
            sent_ns: std::sync::atomic::AtomicU64::new(u64::MAX),
            chunk_ns: std::sync::atomic::AtomicU64::new(u64::MAX),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// The client's request body has been read (its upload time is the client's, not
    /// the gateway's).
    pub fn mark_read(&self) {
        self.read_ns
            .store(self.now_ns(), std::sync::atomic::Ordering::Relaxed);
    }

    /// The upstream request is about to be sent.
    pub fn mark_sent(&self) {
        self.sent_ns
            .store(self.now_ns(), std::sync::atomic::Ordering::Relaxed);
    }

    /// An upstream chunk has just arrived.
    pub fn mark_chunk(&self) {
        self.chunk_ns
            .store(self.now_ns(), std::sync::atomic::Ordering::Relaxed);
    }

    /// A frame the gateway made itself (a keepalive comment, an error event) is about to
    /// go out: its hand-off counts from now, not from the last upstream chunk.
    pub fn mark_local_frame(&self) {
        self.mark_chunk();
    }

    /// Time from the request being read to the upstream request being sent, if it was.
    pub fn time_to_send(&self) -> Option<std::time::Duration> {
        let read = self.read_ns.load(std::sync::atomic::Ordering::Relaxed);
        match self.sent_ns.load(std::sync::atomic::Ordering::Relaxed) {
            u64::MAX => None,
            ns => Some(std::time::Duration::from_nanos(ns.saturating_sub(read))),
        }
    }

    /// Time since the last upstream chunk arrived, if one did.
    pub fn since_last_chunk(&self) -> Option<std::time::Duration> {
        match self.chunk_ns.load(std::sync::atomic::Ordering::Relaxed) {
            u64::MAX => None,
            ns => Some(std::time::Duration::from_nanos(
                self.now_ns().saturating_sub(ns),
            )),
        }
    }
}

/// Which provider an attempt goes to; set by fallback on each attempt's request, read by
/// the [`ProviderSet`](crate::provider::ProviderSet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptTarget(pub Arc<str>);

/// Marks an attempt whose conversation may come from another provider: thinking blocks
/// (their signatures are provider-bound) and `cache_control` are removed for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossProvider;

/// One attempt as fallback saw it, for the audit record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AttemptRecord {
    /// The provider tried.
    pub provider: String,
    /// The HTTP status it answered, if it answered.
    pub status: Option<u16>,
    /// Why the attempt failed, if it did (client-safe text).
    pub error: Option<String>,
    /// Time from the attempt's start to its answer (or failure).
    pub latency_ms: u64,
}

/// Request-scoped log of attempts; an outer layer (audit) inserts it, fallback fills it.
///
/// Besides the attempts, it carries how they ended when the answer's head cannot say
/// it ([`AttemptsEnd`]): a stream whose `200` went out while fallback was still holding
/// it may end with every attempt failed, or the client may leave mid-attempt.
#[derive(Clone, Debug, Default)]
pub struct AttemptLog(Arc<std::sync::Mutex<AttemptLogState>>);

#[derive(Debug, Default)]
struct AttemptLogState {
    attempts: Vec<AttemptRecord>,
    end: Option<AttemptsEnd>,
}

/// How fallback's attempts ended, when the answer's status does not say it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptsEnd {
    /// Every attempt failed after the stream's `200` head went out (the hold sent it to
    /// keep the client alive); the stream ended with an `event: error` carrying this
    /// message.
    Failed {
        /// The last attempt's error (client-safe text).
        message: String,
    },
    /// The client went away while an attempt was running.
    Abandoned,
}

impl AttemptLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, AttemptLogState> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Append one attempt.
    pub fn push(&self, attempt: AttemptRecord) {
        self.lock().attempts.push(attempt);
    }

    /// The attempts so far.
    pub fn attempts(&self) -> Vec<AttemptRecord> {
        self.lock().attempts.clone()
    }

    /// Say how the attempts ended (the first word stands).
    pub fn set_end(&self, end: AttemptsEnd) {
        self.lock().end.get_or_insert(end);
    }

    /// How the attempts ended, if fallback said.
    pub fn end(&self) -> Option<AttemptsEnd> {
        self.lock().end.clone()
    }
}

/// What an answer's head says, as the outer layers (audit, metrics) record it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnswerHead {
    /// The HTTP status the client got.
    pub status: u16,
    /// The provider that answered (`x-gateway-provider`), if one did.
    pub provider: Option<String>,
    /// Whether the answer is an SSE stream.
    pub stream: bool,
}

impl AnswerHead {
    /// Read from a response's status and headers.
    pub fn of<B>(response: &http::Response<B>) -> Self {
        let headers = response.headers();
        Self {
            status: response.status().as_u16(),
            provider: headers
                .get(crate::provider::PROVIDER_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            stream: headers
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_counts_from_the_read_not_the_arrival() {
        use std::sync::atomic::Ordering;
        let clock = RequestClock::start();
        assert_eq!(clock.time_to_send(), None, "nothing sent yet");
        // The client took 5 µs to upload its body; the gateway sent upstream at 12 µs.
        clock.read_ns.store(5_000, Ordering::Relaxed);
        clock.sent_ns.store(12_000, Ordering::Relaxed);
        assert_eq!(
            clock.time_to_send(),
            Some(std::time::Duration::from_nanos(7_000))
        );
    }
}
