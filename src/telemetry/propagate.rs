//! The W3C trace context: read from the client, carried upstream.

use super::AttemptSpan;
use http::{Extensions, HeaderMap};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";

/// Make the trace in `headers`' `traceparent` (and `tracestate`) the parent of `span`.
///
/// Does nothing when the headers carry no valid trace context, or when the subscriber
/// has no OpenTelemetry layer.
pub fn set_parent_from(span: &Span, headers: &HeaderMap) {
    if !headers.contains_key(TRACEPARENT) {
        return;
    }
    let parent =
        TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        // Fails only when the span is already started or has no OpenTelemetry data.
        let _ = span.set_parent(parent);
    }
}

/// The trace headers (`traceparent`, `tracestate`) for the request an attempt sends
/// upstream: the attempt span's context, so the provider's spans join the trace.
///
/// Empty when the request carries no [`AttemptSpan`] or the span has no trace context
/// (no OpenTelemetry layer): the request then goes as it would without telemetry.
/// Merge it over the upstream headers (`HeaderMap::extend` replaces what it names).
pub fn trace_headers(extensions: &Extensions) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let Some(attempt) = extensions.get::<AttemptSpan>() else {
        return headers;
    };
    let context = attempt.span().context();
    if !context.span().span_context().is_valid() {
        return headers;
    }
    TraceContextPropagator::new().inject_context(
        &context,
        &mut opentelemetry_http::HeaderInjector(&mut headers),
    );
    headers
}
