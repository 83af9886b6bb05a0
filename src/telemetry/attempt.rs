//! The span of one attempt, with the GenAI semantic-convention attributes.

use crate::ledger::cut_body;
use crate::meta::RequestMeta;
use crate::pricing::Money;
use bytes::Bytes;
use opentelemetry::{Array, StringValue, Value};
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span of one attempt (`chat {model}`), a child of the request span.
///
/// Fallback opens it and puts it in the attempt's request extensions; the provider
/// sends its trace context upstream ([`trace_headers`](super::trace_headers)) and the
/// usage tap records the answer on it and holds it until the attempt's body ends or is
/// dropped. It never holds a credential or a header.
#[derive(Clone, Debug)]
pub struct AttemptSpan(Span);

/// An answer's token counts as the provider reported them (`None`: not reported).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tokens {
    /// Uncached input tokens.
    pub(crate) input: Option<u64>,
    /// Output tokens.
    pub(crate) output: Option<u64>,
    /// Cache-read input tokens.
    pub(crate) cache_read: Option<u64>,
    /// Cache-write input tokens.
    pub(crate) cache_creation: Option<u64>,
}

/// What the usage tap read from an attempt's answer, for its span.
#[derive(Debug)]
pub(crate) struct Answered<'a> {
    /// The model the upstream said it served.
    pub(crate) model: Option<&'a str>,
    /// The answer's message id.
    pub(crate) id: Option<&'a str>,
    /// The answer's `stop_reason`.
    pub(crate) stop_reason: Option<&'a str>,
    /// The token counts seen.
    pub(crate) tokens: Tokens,
    /// Its exact cost, when priced.
    pub(crate) cost: Option<Money>,
    /// How the answer's body ended (`complete`, `error`, `incomplete`,
    /// `client_disconnected`), and whether that is a failure.
    pub(crate) outcome: &'static str,
    /// The body ended in an error or broke off.
    pub(crate) broken: bool,
    /// Whether the attempt had passed its commit point (first content, or a whole answer).
    pub(crate) committed: bool,
}

impl AttemptSpan {
    /// Open the span of an attempt at `provider` for `model` (the requested model when
    /// `None`), as a child of the current span.
    pub fn start(meta: Option<&RequestMeta>, provider: &str, model: Option<&str>) -> Self {
        let model = model
            .or_else(|| meta.and_then(|m| m.model.as_deref()))
            .unwrap_or("");
        let span = tracing::info_span!(
            "attempt",
            otel.name = %format_args!("chat {model}"),
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = provider,
            gen_ai.request.model = model,
            gen_ai.response.model = Empty,
            gen_ai.response.id = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.usage.cache_read.input_tokens = Empty,
            gen_ai.usage.cache_creation.input_tokens = Empty,
            gen_ai.conversation.id = Empty,
            gen_ai.input.messages = Empty,
            gen_ai.system_instructions = Empty,
            llm_gateway.cost_usd = Empty,
            llm_gateway.agent_type = Empty,
            llm_gateway.client = Empty,
            llm_gateway.attempt.committed = Empty,
            llm_gateway.fallback.reason = Empty,
            llm_gateway.outcome = Empty,
            error.type = Empty,
        );
        if let Some(meta) = meta {
            let optional = [
                ("gen_ai.conversation.id", &meta.session),
                ("llm_gateway.agent_type", &meta.agent_type),
                ("llm_gateway.client", &meta.client),
            ];
            for (field, value) in optional {
                if let Some(value) = value {
                    span.record(field, value.as_str());
                }
            }
        }
        Self(span)
    }

    /// The `tracing` span.
    pub fn span(&self) -> &Span {
        &self.0
    }

    /// The request body's `system` and `messages` as `gen_ai.system_instructions` and
    /// `gen_ai.input.messages` (the Anthropic JSON as sent), each cut at `max` bytes
    /// with the audit's marker. Only `capture_content = true` calls this.
    pub(crate) fn capture_messages(&self, body: &[u8], max: usize) {
        let Ok(serde_json::Value::Object(request)) = serde_json::from_slice(body) else {
            return;
        };
        for (key, field) in [
            ("system", "gen_ai.system_instructions"),
            ("messages", "gen_ai.input.messages"),
        ] {
            if let Some(value) = request.get(key) {
                let cut = cut_body(Bytes::from(value.to_string()), max);
                self.0.record(field, String::from_utf8_lossy(&cut).as_ref());
            }
        }
    }

    /// The attempt answered and fallback committed to it.
    pub(crate) fn committed(&self) {
        self.0.record("llm_gateway.attempt.committed", true);
    }

    /// The attempt failed before its commit point, for `reason` (a bounded label).
    pub(crate) fn failed(&self, reason: &str) {
        let span = &self.0;
        span.record("llm_gateway.attempt.committed", false);
        span.record("llm_gateway.fallback.reason", reason);
        span.record("error.type", reason);
        span.record("otel.status_code", "ERROR");
    }

    /// The client went away while the attempt was still before its commit point.
    pub(crate) fn abandoned(&self) {
        self.0.record("llm_gateway.attempt.committed", false);
        self.0.record("llm_gateway.outcome", "client_disconnected");
    }

    /// What the answer said, when the attempt's body ended (the usage tap).
    pub(crate) fn answered(&self, answer: Answered<'_>) {
        let span = &self.0;
        if let Some(model) = answer.model {
            span.record("gen_ai.response.model", model);
        }
        if let Some(id) = answer.id {
            span.record("gen_ai.response.id", id);
        }
        if let Some(reason) = answer.stop_reason {
            let reasons = Array::String(vec![StringValue::from(reason.to_owned())]);
            span.set_attribute("gen_ai.response.finish_reasons", Value::Array(reasons));
        }
        record_tokens(span, answer.tokens);
        if let Some(cost) = answer.cost {
            span.record("llm_gateway.cost_usd", cost.to_string().as_str());
        }
        if !answer.committed {
            // Fallback records why an attempt failed before its commit point.
            return;
        }
        span.record("llm_gateway.outcome", answer.outcome);
        if answer.broken {
            span.record("error.type", answer.outcome);
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// The token counts; input is the whole prompt (uncached + cache reads + cache writes),
/// as the GenAI conventions define it, with the cache split in its own attributes.
fn record_tokens(span: &Span, tokens: Tokens) {
    let parts = [tokens.input, tokens.cache_read, tokens.cache_creation];
    if parts.iter().any(Option::is_some) {
        let input = parts
            .iter()
            .flatten()
            .fold(0u64, |sum, n| sum.saturating_add(*n));
        span.record("gen_ai.usage.input_tokens", input);
    }
    let counts = [
        ("gen_ai.usage.output_tokens", tokens.output),
        ("gen_ai.usage.cache_read.input_tokens", tokens.cache_read),
        (
            "gen_ai.usage.cache_creation.input_tokens",
            tokens.cache_creation,
        ),
    ];
    for (field, count) in counts {
        if let Some(count) = count {
            span.record(field, count);
        }
    }
}
