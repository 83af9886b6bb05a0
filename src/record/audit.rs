//! The audit sink: one [`AuditRecord`] per request, built in [`audit_record`].

use super::{ClosedRequest, KeepBodies, RecordSink};
use crate::audit::{AuditAttempt, AuditRecord, AuditSink};
use crate::ledger::AttemptsEnd;
use crate::observe::BodyEnd;
use crate::usage::Outcome;
use std::sync::Arc;

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

/// Hands one [`AuditRecord`] per closed request to an [`AuditSink`].
#[derive(Clone)]
pub struct AuditRecordSink {
    sink: Arc<dyn AuditSink>,
    options: AuditOptions,
}

impl AuditRecordSink {
    /// Records to `sink`, keeping bodies as `options` say.
    pub fn new(sink: Arc<dyn AuditSink>, options: AuditOptions) -> Self {
        Self { sink, options }
    }
}

impl std::fmt::Debug for AuditRecordSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditRecordSink")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RecordSink for AuditRecordSink {
    fn keeps(&self) -> KeepBodies {
        let max = self.options.max_body_bytes;
        KeepBodies {
            request: self.options.log_request_bodies.then_some(max),
            response: self.options.log_response_bodies.then_some(max),
        }
    }

    fn on_close(&self, request: &ClosedRequest) {
        self.sink.submit(audit_record(request, &self.options));
    }
}

/// What every attempt of a request cost together (a fallback's failed attempt that used
/// tokens too), so a key's settled spend is the sum of its records; `None` when some
/// attempt's cost is unknown, or none reported usage.
fn request_cost(usage: &[crate::usage::CostReport]) -> Option<crate::pricing::Money> {
    if usage.is_empty() {
        return None;
    }
    usage
        .iter()
        .try_fold(crate::pricing::Money::ZERO, |sum, attempt| {
            Some(sum + attempt.cost?)
        })
}

/// The audit record of one closed request.
pub(super) fn audit_record(request: &ClosedRequest, options: &AuditOptions) -> AuditRecord {
    let entries = &request.entries;
    let meta = entries.meta.as_ref();
    let head = request.head.as_ref();
    // The attempt that served is the last one that produced an answer.
    let served = entries.usage.last();
    let mut error = request.error.clone();
    // A held stream's head says 200 whatever came after; fallback says how it ended.
    let outcome = if head.is_some_and(|h| h.status >= 400) {
        Outcome::Error
    } else if let Some(AttemptsEnd::Failed { message }) = &entries.attempts_end {
        error.get_or_insert_with(|| message.clone());
        Outcome::Error
    } else if entries.attempts_end == Some(AttemptsEnd::Abandoned) {
        Outcome::ClientDisconnected
    } else {
        match served.map(|c| c.usage.outcome) {
            Some(outcome) => outcome,
            None => match request.end {
                BodyEnd::Whole => Outcome::Complete,
                BodyEnd::Broken => Outcome::Incomplete,
                BodyEnd::Dropped => Outcome::ClientDisconnected,
            },
        }
    };
    let usage = served.map(|c| c.usage.usage).unwrap_or_default();
    let attempts: Vec<AuditAttempt> = entries
        .attempts
        .iter()
        .map(|a| AuditAttempt {
            provider: a.provider.clone(),
            status: a.status,
            error: a.error.clone(),
            latency_ms: a.latency_ms,
        })
        .collect();
    let provider = served
        .map(|c| c.usage.provider.to_string())
        .or_else(|| head.and_then(|h| h.provider.clone()))
        .or_else(|| attempts.last().map(|a| a.provider.clone()));
    // `None` for a `/v1` path the gateway does not model.
    let endpoint = meta.map(|m| m.endpoint).or(request.path);
    // Already cut at the bound this sink asked for (`keeps`): cutting again would cut
    // the marker.
    let kept = |on: bool, body: &Option<bytes::Bytes>| body.clone().filter(|_| on);
    AuditRecord {
        request_id: request.request_id.clone(),
        timestamp: AuditRecord::format_timestamp(request.timestamp),
        client: meta.and_then(|m| m.client.clone()),
        team: meta.and_then(|m| m.team.clone()),
        session: meta.and_then(|m| m.session.clone()),
        agent_type: meta.and_then(|m| m.agent_type.clone()),
        requested_model: meta.and_then(|m| m.model.clone()),
        served_model: served.and_then(|c| c.usage.model.clone()),
        provider,
        endpoint,
        ingress: meta.map(|m| m.ingress),
        attempts,
        status: request.status(),
        stream: meta.map_or(head.is_some_and(|h| h.stream), |m| m.stream),
        ttft_ms: served
            .and_then(|c| c.usage.ttft)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        latency_ms: u64::try_from(request.latency.as_millis()).unwrap_or(u64::MAX),
        usage,
        cost_usd: request_cost(&entries.usage).map(|m| m.to_string()),
        price_table_version: served.map(|c| c.price_table_version.to_string()),
        outcome,
        error,
        request_body: kept(options.log_request_bodies, &entries.request_body),
        response_body: kept(options.log_response_bodies, &request.response_body),
    }
}
