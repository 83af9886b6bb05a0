//! The one per-request ledger: inserted once by `Record` (the end-of-request layer),
//! written by the layers through a narrow API as the request goes down and the answer
//! comes back, read once at the end.
//!
//! Who writes what (outermost first):
//!
//! | entry | written by | method |
//! |---|---|---|
//! | request id, arrival time | `Record`, when it opens the ledger | [`RequestLedger::new`] |
//! | request body (for the audit, cut at the sink's bound) | ingress | [`set_request_body`](RequestLedger::set_request_body) |
//! | [`RequestMeta`] (client, endpoint, model, stream, agent type) | ingress | [`set_meta`](RequestLedger::set_meta) |
//! | clock: body read, upstream sent, upstream chunk, local frame | ingress, the providers, fallback's hold | `mark_*` |
//! | every attempt (provider, status, error, latency), one the client left too | fallback | [`attempt`](RequestLedger::attempt) |
//! | how the attempts ended, when the head cannot say ([`AttemptsEnd`]) | fallback | [`attempts_ended`](RequestLedger::attempts_ended) |
//! | each attempt's usage with its priced cost | the usage tap | [`usage`](RequestLedger::usage) |
//! | the request's [`Reservation`] on its budgets | `Govern` | [`set_reservation`](RequestLedger::set_reservation) |
//!
//! `Record` adds what only the edge of the stack sees (the answer's head, the error
//! message, a bounded copy of the answer, how its body ended) and hands the closed
//! request to its sinks. Nothing else carries per-request state outward: the request's
//! extensions carry facts inward ([`RequestMeta`], the route, the attempt's target) and
//! the ledger carries what happened back out.
//!
//! The ledger is shared (`Clone` is an `Arc` clone) because the layers hold it from
//! different futures and bodies; every write is one short lock (the clock marks, which
//! the providers make per chunk, are atomics).

mod body;
mod clock;

pub(crate) use body::cut_body;
pub(crate) use body::BoundedCopy;

use crate::budget::Reservation;
use crate::meta::RequestMeta;
use crate::usage::CostReport;
use bytes::Bytes;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// One request's ledger; see the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct RequestLedger(Arc<Shared>);

struct Shared {
    request_id: String,
    timestamp: SystemTime,
    clock: clock::Clock,
    /// Keep the request body for the audit, cut at this many bytes.
    keep_request_body: Option<usize>,
    state: Mutex<Entries>,
}

/// What the layers write.
#[derive(Default)]
struct Entries {
    meta: Option<RequestMeta>,
    request_body: Option<Bytes>,
    attempts: Vec<AttemptRecord>,
    attempts_end: Option<AttemptsEnd>,
    usage: Vec<CostReport>,
    reservation: Option<Arc<Reservation>>,
}

/// One attempt as fallback saw it.
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

/// What the layers wrote, taken out of the ledger once, when the request is over.
#[derive(Debug, Default)]
pub struct LedgerEntries {
    /// What ingress learned, if the request got that far.
    pub meta: Option<RequestMeta>,
    /// The request body as the client sent it, cut at the bound (when kept).
    pub request_body: Option<Bytes>,
    /// Every attempt, in order.
    pub attempts: Vec<AttemptRecord>,
    /// How the attempts ended, when fallback said.
    pub attempts_end: Option<AttemptsEnd>,
    /// Each attempt's usage and cost, in the order the taps reported.
    pub usage: Vec<CostReport>,
    /// The request's hold on its budgets, when `Govern` admitted it against any.
    pub reservation: Option<Arc<Reservation>>,
    /// From the request being read to the upstream request being sent, if it was.
    pub time_to_send: Option<Duration>,
}

impl std::fmt::Debug for RequestLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLedger")
            .field("request_id", &self.0.request_id)
            .finish_non_exhaustive()
    }
}

impl RequestLedger {
    /// A ledger for the request `request_id`, received now. With `keep_request_body`,
    /// ingress's body is kept (cut at that many bytes) for whoever reads the ledger.
    pub fn new(request_id: impl Into<String>, keep_request_body: Option<usize>) -> Self {
        Self(Arc::new(Shared {
            request_id: request_id.into(),
            timestamp: SystemTime::now(),
            clock: clock::Clock::start(),
            keep_request_body,
            state: Mutex::new(Entries::default()),
        }))
    }

    /// The request's ledger, if `Record` opened one.
    pub fn of(extensions: &http::Extensions) -> Option<&Self> {
        extensions.get::<Self>()
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic elsewhere cannot leave an entry half-written; keep what is there.
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The gateway's id for the request.
    pub fn request_id(&self) -> &str {
        &self.0.request_id
    }

    /// When the ledger was opened (wall clock).
    pub fn timestamp(&self) -> SystemTime {
        self.0.timestamp
    }

    /// When the ledger was opened (monotonic).
    pub fn started(&self) -> Instant {
        self.0.clock.started()
    }

    /// Ingress: what the request asks for.
    pub fn set_meta(&self, meta: RequestMeta) {
        self.lock().meta = Some(meta);
    }

    /// Ingress: the request body as the client sent it. Kept only when the ledger was
    /// opened to keep it; a body over the bound is cut (a copy of the bound), one under
    /// it shares the buffer the request is forwarded from.
    pub fn set_request_body(&self, body: &Bytes) {
        if let Some(max) = self.0.keep_request_body {
            let body = cut_body(body.clone(), max);
            self.lock().request_body = Some(body);
        }
    }

    /// Fallback: one attempt ended (answered, failed, or left by the client).
    pub fn attempt(&self, attempt: AttemptRecord) {
        self.lock().attempts.push(attempt);
    }

    /// Fallback: how the attempts ended, when the answer's head cannot say it (the first
    /// word stands).
    pub fn attempts_ended(&self, end: AttemptsEnd) {
        self.lock().attempts_end.get_or_insert(end);
    }

    /// The usage tap: one attempt's usage, priced.
    pub fn usage(&self, report: CostReport) {
        self.lock().usage.push(report);
    }

    /// Govern: the request's hold on its budgets, settled when the request closes.
    pub fn set_reservation(&self, reservation: Arc<Reservation>) {
        self.lock().reservation = Some(reservation);
    }

    /// Ingress: the client's body has been read (its upload time is the client's).
    pub fn mark_read(&self) {
        self.0.clock.mark_read();
    }

    /// A provider: the upstream request is about to be sent.
    pub fn mark_sent(&self) {
        self.0.clock.mark_sent();
    }

    /// A provider: an upstream chunk has just arrived.
    pub fn mark_chunk(&self) {
        self.0.clock.mark_chunk();
    }

    /// A frame the gateway made itself (a keepalive, an error event) is about to go out:
    /// its hand-off counts from now, not from the last upstream chunk.
    pub fn mark_local_frame(&self) {
        self.0.clock.mark_chunk();
    }

    /// Time since the last upstream chunk (or local frame), if there was one.
    pub fn since_last_chunk(&self) -> Option<Duration> {
        self.0.clock.since_last_chunk()
    }

    /// Take everything the layers wrote (once; later calls find it empty).
    pub fn take(&self) -> LedgerEntries {
        let entries = std::mem::take(&mut *self.lock());
        LedgerEntries {
            meta: entries.meta,
            request_body: entries.request_body,
            attempts: entries.attempts,
            attempts_end: entries.attempts_end,
            usage: entries.usage,
            reservation: entries.reservation,
            time_to_send: self.0.clock.time_to_send(),
        }
    }
}

/// The request's id: the one the edge (or an outer layer) put in its extensions, else a
/// fresh one (`gw_` + UUIDv7), inserted so every layer inside sees the same id.
pub(crate) fn request_id_of(extensions: &mut http::Extensions) -> String {
    crate::request_id::RequestId::of(extensions).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_kept_only_when_asked_and_entries_are_taken_once() {
        let body = Bytes::from_static(b"{\"model\":\"m\"}");
        let ledger = RequestLedger::new("gw_1", None);
        ledger.set_request_body(&body);
        assert_eq!(ledger.take().request_body, None);

        let ledger = RequestLedger::new("gw_2", Some(1024));
        ledger.set_request_body(&body);
        ledger.attempts_ended(AttemptsEnd::Abandoned);
        ledger.attempts_ended(AttemptsEnd::Failed {
            message: "later".into(),
        });
        let entries = ledger.take();
        assert_eq!(entries.request_body.as_deref(), Some(&body[..]));
        assert_eq!(entries.attempts_end, Some(AttemptsEnd::Abandoned));
        assert!(ledger.take().request_body.is_none());
    }
}
