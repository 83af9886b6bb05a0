//! [`RecordLayer`]: the end of every request, in one place.
//!
//! Outermost in the stack, `Record` opens the request's [`RequestLedger`](crate::ledger::RequestLedger) (with the
//! request id the edge gave the request, or a fresh one), lets the layers inside fill
//! it, and closes it exactly once — when the answer's body ends, fails, or is dropped
//! (the client left) — into a [`ClosedRequest`] that it hands to each of its
//! [`RecordSink`]s. Two sinks come with the crate: [`AuditRecordSink`] (one
//! [`AuditRecord`](crate::audit::AuditRecord) per request, to an
//! [`AuditSink`](crate::audit::AuditSink)) and [`MetricsRecordSink`] (into
//! [`GatewayMetrics`](crate::metrics::GatewayMetrics)). Adding one is implementing
//! [`RecordSink::on_close`]:
//!
//! ```
//! use llm_gateway::record::{ClosedRequest, RecordLayer, RecordSink};
//!
//! struct AccessLog;
//! impl RecordSink for AccessLog {
//!     fn on_close(&self, request: &ClosedRequest) {
//!         println!("{} {} in {:?}", request.request_id, request.status(), request.latency);
//!     }
//! }
//! let layer = RecordLayer::new().sink(AccessLog);
//! # let _ = layer;
//! ```
//!
//! Only the proxied API (`/v1/…`) is recorded; health, metrics and the audit itself are
//! not.

mod audit;
mod body;
mod budget;
mod metrics;
mod service;
mod stream;

pub use audit::{AuditOptions, AuditRecordSink};
pub use body::{Closing, RecordBody};
pub use budget::BudgetRecordSink;
pub use metrics::MetricsRecordSink;
pub use service::{RecordFuture, RecordService};
pub use stream::{AuditStream, STREAM_CAPACITY};

use crate::ledger::LedgerEntries;
use crate::meta::{AnswerHead, Endpoint};
use crate::observe::BodyEnd;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Receives every request [`RecordLayer`] closes.
pub trait RecordSink: Send + Sync + 'static {
    /// Which bodies this sink needs kept, and up to how many bytes of each (with several
    /// sinks, each body is kept up to the largest bound any of them asks for).
    fn keeps(&self) -> KeepBodies {
        KeepBodies::default()
    }

    /// The answer's head is going out (`path` is the endpoint the path names, if any).
    fn on_answer(&self, _path: Option<Endpoint>, _head: &AnswerHead) {}

    /// The request is over: called exactly once per recorded request. Must not block.
    fn on_close(&self, request: &ClosedRequest);
}

impl<T: RecordSink + ?Sized> RecordSink for Arc<T> {
    fn keeps(&self) -> KeepBodies {
        (**self).keeps()
    }

    fn on_answer(&self, path: Option<Endpoint>, head: &AnswerHead) {
        (**self).on_answer(path, head)
    }

    fn on_close(&self, request: &ClosedRequest) {
        (**self).on_close(request)
    }
}

/// Bodies a sink needs: `None` keeps none, `Some(max)` keeps the first `max` bytes (a
/// longer body is cut with a visible marker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeepBodies {
    /// The request body as the client sent it.
    pub request: Option<usize>,
    /// The answer's body as the client got it (for streams, the SSE text).
    pub response: Option<usize>,
}

impl KeepBodies {
    fn or(self, other: Self) -> Self {
        Self {
            request: self.request.max(other.request),
            response: self.response.max(other.response),
        }
    }
}

/// One request as the ledger closed it: what the layers wrote and what the edge saw.
#[derive(Debug)]
#[non_exhaustive]
pub struct ClosedRequest {
    /// The gateway's id for the request (`x-gateway-request-id`).
    pub request_id: String,
    /// The endpoint the request's path names (`None` for another `/v1/` path).
    pub path: Option<Endpoint>,
    /// When the request arrived (wall clock).
    pub timestamp: SystemTime,
    /// From the request's arrival to its end.
    pub latency: Duration,
    /// The answer's head, if an answer began.
    pub head: Option<AnswerHead>,
    /// The client-safe message of an error answer.
    pub error: Option<String>,
    /// How the answer's body ended (`Dropped` also when no answer began).
    pub end: BodyEnd,
    /// What the layers wrote into the ledger.
    pub entries: LedgerEntries,
    /// The answer's body, as kept for the sinks that asked.
    pub response_body: Option<Bytes>,
    /// What the gateway itself added: from the body read to the upstream send, plus each
    /// chunk's hand-off to the client; `None` when nothing went upstream.
    pub overhead: Option<Duration>,
}

impl ClosedRequest {
    /// The HTTP status the client got: `499` (nginx's "client closed request") when the
    /// client left before there was any answer.
    pub fn status(&self) -> u16 {
        match &self.head {
            Some(head) if head.status != 0 => head.status,
            _ => 499,
        }
    }
}

/// Opens and closes each request's ledger and hands it to sinks; see the
/// [module docs](self).
#[derive(Clone, Default)]
pub struct RecordLayer {
    sinks: Arc<Vec<Arc<dyn RecordSink>>>,
    keeps: KeepBodies,
}

impl std::fmt::Debug for RecordLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordLayer")
            .field("sinks", &self.sinks.len())
            .field("keeps", &self.keeps)
            .finish()
    }
}

impl RecordLayer {
    /// A layer with no sinks yet (it still opens a ledger for the layers inside).
    pub fn new() -> Self {
        Self::default()
    }

    /// Also hand every closed request to `sink`.
    pub fn sink(mut self, sink: impl RecordSink) -> Self {
        self.keeps = self.keeps.or(sink.keeps());
        let mut sinks = Vec::clone(&self.sinks);
        sinks.push(Arc::new(sink));
        self.sinks = Arc::new(sinks);
        self
    }
}

impl<S> tower::Layer<S> for RecordLayer {
    type Service = RecordService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordService::new(inner, self.clone())
    }
}

/// The endpoint a `/v1/` path names.
fn path_endpoint(path: &str) -> Option<Endpoint> {
    match path {
        "/v1/messages" | crate::meta::CHAT_COMPLETIONS_PATH => Some(Endpoint::Messages),
        "/v1/messages/count_tokens" => Some(Endpoint::CountTokens),
        p if p.starts_with("/v1/models") => Some(Endpoint::Models),
        _ => Some(Endpoint::Passthrough),
    }
}

#[cfg(test)]
mod tests;
