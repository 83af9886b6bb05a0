//! One `tracing` span per request, named `request`.
//!
//! The edge opens it with the request id, method and path, and records the answer's
//! status; the layers inside fill in who asked and who served with [`record`]. The
//! span never holds a credential or a body.

use crate::request_id::RequestId;
use http::{Request, Response};
use std::time::Duration;
use tracing::field::Empty;
use tracing::Span;

/// A field of the request span that the layers inside the edge fill in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanField {
    /// The client key's name (`[auth]`), once it is known.
    Client,
    /// The model the client asked for.
    Model,
    /// The provider of the attempt being made (the last one, after fallback).
    Provider,
}

impl SpanField {
    /// The field's name in the span.
    pub fn name(self) -> &'static str {
        match self {
            SpanField::Client => "client",
            SpanField::Model => "model",
            SpanField::Provider => "provider",
        }
    }
}

/// Record `value` as `field` of the current request's span.
///
/// Call it from a layer's `call`, its response future or its body: the edge enters the
/// request span around all three, so the current span is the request's. Outside the
/// edge (a layer used alone, or inside a span of the caller's own) the current span
/// has no such field and this does nothing.
///
/// ```
/// use llm_gateway::edge::{record, SpanField};
/// record(SpanField::Model, "claude-sonnet-4-5");
/// ```
pub fn record(field: SpanField, value: &str) {
    Span::current().record(field.name(), value);
}

/// tower-http's `MakeSpan`: the `request` span, its later fields declared empty, a
/// child of the client's trace when it sent a `traceparent`.
pub(crate) fn request_span<B>(request: &Request<B>) -> Span {
    let id = RequestId::get(request.extensions()).map(|id| id.0);
    let span = tracing::info_span!(
        "request",
        otel.kind = "server",
        request_id = id.as_deref().unwrap_or(""),
        method = %request.method(),
        path = request.uri().path(),
        client = Empty,
        model = Empty,
        provider = Empty,
        status = Empty,
    );
    crate::telemetry::set_parent_from(&span, request.headers());
    span
}

/// tower-http's `OnResponse`: record the status, log the answer at debug level.
pub(crate) fn record_status<B>(response: &Response<B>, latency: Duration, span: &Span) {
    let status = response.status().as_u16();
    span.record("status", status);
    tracing::debug!(status, latency_us = latency.as_micros() as u64, "answered");
}
