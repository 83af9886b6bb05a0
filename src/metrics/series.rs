//! The Prometheus series, emitted through the `metrics` facade.
//!
//! Every function here emits to whatever recorder is current on the calling thread:
//! [`GatewayMetrics`](super::GatewayMetrics) wraps each call in its own recorder, or
//! leaves the host's global one in place.

use super::buckets::{OVERHEAD, REQUEST_DURATION, TIME_TO_FIRST_TOKEN};
use super::FinishedRequest;
use crate::budget::Scope;
use crate::pricing::BillableTokens;
use crate::usage::Outcome;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{SharedString, Unit};

pub(crate) const REQUESTS: &str = "llm_gateway_requests_total";
pub(crate) const TOKENS: &str = "llm_gateway_tokens_total";
pub(crate) const COST: &str = "llm_gateway_cost_usd_total";
pub(crate) const UNPRICED: &str = "llm_gateway_unpriced_requests_total";
pub(crate) const PARSE_FAILURES: &str = "llm_gateway_usage_parse_failures_total";
pub(crate) const OUTCOMES: &str = "llm_gateway_answer_outcomes_total";
pub(crate) const FALLBACKS: &str = "llm_gateway_fallbacks_total";
pub(crate) const ACTIVE_STREAMS: &str = "llm_gateway_active_streams";
pub(crate) const OPEN_CONNECTIONS: &str = "llm_gateway_open_connections";
pub(crate) const CONNECTIONS_LIMITED: &str = "llm_gateway_connections_limited_total";
pub(crate) const ACCEPT_FAILURES: &str = "llm_gateway_accept_failures_total";
pub(crate) const PROVIDER_HEALTHY: &str = "llm_gateway_provider_healthy";
pub(crate) const AUDIT_QUEUE_DEPTH: &str = "llm_gateway_audit_queue_depth";
pub(crate) const AUDIT_WRITTEN: &str = "llm_gateway_audit_records_written_total";
pub(crate) const AUDIT_BODIES_SHED: &str = "llm_gateway_audit_bodies_shed_total";
pub(crate) const AUDIT_DROPPED: &str = "llm_gateway_audit_records_dropped_total";
pub(crate) const AUDIT_WRITE_ERRORS: &str = "llm_gateway_audit_write_errors_total";
pub(crate) const AUDIT_REOPENED: &str = "llm_gateway_audit_file_reopened_total";
pub(crate) const BUDGET_SPENT: &str = "llm_gateway_budget_spent_usd";
pub(crate) const BUDGET_LIMIT: &str = "llm_gateway_budget_limit_usd";
pub(crate) const RATE_LIMITED: &str = "llm_gateway_rate_limited_total";

/// The `limit` label values of [`RATE_LIMITED`].
pub(crate) const RATE_LIMIT_KINDS: [&str; 4] = ["rpm", "tpm", "max_concurrent", "budget"];

/// Give every series its help text and make the unlabelled ones exist (at zero), so a
/// scrape shows them before anything happened. Safe to repeat: it adds nothing.
pub(crate) fn announce() {
    describe_counter!(REQUESTS, "Requests to /v1/messages");
    describe_counter!(TOKENS, Unit::Count, "Tokens used, by kind");
    describe_gauge!(
        COST,
        "Spend in USD, set from the exact sum in integer pico-dollars (never a sum of floats)"
    );
    describe_counter!(
        UNPRICED,
        "Answers not priced, cost recorded as null: the model has no price, or the usage could not be read"
    );
    describe_counter!(
        PARSE_FAILURES,
        "Usage-bearing events, bodies or token counts (negative, fractional, huge, not a number) that could not be read"
    );
    describe_counter!(
        OUTCOMES,
        "How answers ended: complete, error, client_disconnected, incomplete"
    );
    describe_counter!(FALLBACKS, "Requests moved from one provider to the next");
    describe_histogram!(
        REQUEST_DURATION.metric,
        Unit::Seconds,
        "Time from request arrival to the end of the answer"
    );
    describe_histogram!(
        TIME_TO_FIRST_TOKEN.metric,
        Unit::Seconds,
        "Time from request arrival to the first content event"
    );
    describe_histogram!(
        OVERHEAD.metric,
        Unit::Seconds,
        "Time the gateway itself adds: request read to upstream send, plus each chunk's hand-off"
    );
    describe_gauge!(ACTIVE_STREAMS, "Streams open now");
    describe_gauge!(OPEN_CONNECTIONS, "Client connections open now");
    describe_counter!(
        CONNECTIONS_LIMITED,
        "Connections that waited in the listen backlog because max_connections were open"
    );
    describe_counter!(
        ACCEPT_FAILURES,
        "Failed accepts of client connections (out of file descriptors and the like)"
    );
    describe_gauge!(
        PROVIDER_HEALTHY,
        "1 when the provider is being tried, 0 while it is skipped"
    );
    describe_gauge!(AUDIT_QUEUE_DEPTH, "Audit records waiting for the writer");
    describe_counter!(AUDIT_WRITTEN, "Audit records committed to the store");
    describe_counter!(
        AUDIT_BODIES_SHED,
        "Audit records kept without bodies because the queue's byte budget was exhausted"
    );
    describe_counter!(
        AUDIT_DROPPED,
        "Audit records lost (the byte budget exhausted even without bodies, or the writer gone)"
    );
    describe_counter!(
        AUDIT_WRITE_ERRORS,
        "Audit commits and prunes that failed (the records are kept and retried)"
    );
    describe_counter!(
        AUDIT_REOPENED,
        "Times the audit database file was found deleted or replaced and reopened"
    );
    describe_gauge!(
        BUDGET_SPENT,
        "Spend in USD settled in the current budget window of a key or team (the exact total)"
    );
    describe_gauge!(
        BUDGET_LIMIT,
        "Budget in USD per window of a key or team; 0 when it has none"
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused because a key or team was over a limit: rpm, tpm, max_concurrent or budget"
    );
    // Registering is enough for a series to be exported; adding zero changes no value.
    gauge!(ACTIVE_STREAMS).increment(0.0);
    gauge!(OPEN_CONNECTIONS).increment(0.0);
    counter!(CONNECTIONS_LIMITED).increment(0);
    counter!(ACCEPT_FAILURES).increment(0);
    for h in [REQUEST_DURATION, TIME_TO_FIRST_TOKEN, OVERHEAD] {
        let _ = histogram!(h.metric);
    }
}

/// The label of a price-table model key; `other` when nothing priced the answer.
fn model_label(priced_as: Option<&str>) -> SharedString {
    priced_as.map_or(SharedString::const_str("other"), |m| m.to_owned().into())
}

/// Count one finished request: its status, timings, and each attempt's tokens and outcome.
pub(crate) fn record(request: &FinishedRequest) {
    let last = request.costs.last();
    let provider = last
        .map(|r| r.usage.provider.to_string())
        .or_else(|| request.provider.clone())
        .unwrap_or_else(|| "none".into());
    counter!(
        REQUESTS,
        "provider" => provider,
        "model" => model_label(last.and_then(|r| r.priced_as.as_deref())),
        "status" => request.status.to_string(),
    )
    .increment(1);
    histogram!(REQUEST_DURATION.metric).record(request.latency.as_secs_f64());
    if let Some(overhead) = request.overhead {
        histogram!(OVERHEAD.metric).record(overhead.as_secs_f64());
    }
    for report in &request.costs {
        let provider = SharedString::from(report.usage.provider.to_string());
        let model = model_label(report.priced_as.as_deref());
        let tokens = BillableTokens::from_usage(&report.usage.usage);
        for (kind, count) in [
            ("input", tokens.input),
            ("output", tokens.output),
            (
                "cache_write_5m",
                tokens.cache_write_5m + tokens.cache_write_unattributed,
            ),
            ("cache_write_1h", tokens.cache_write_1h),
            ("cache_read", tokens.cache_read),
        ] {
            // Counts are capped per answer when read (`MAX_TOKENS_PER_ANSWER`), so the
            // u64 counter cannot wrap in any real lifetime.
            if count > 0 {
                counter!(
                    TOKENS,
                    "provider" => provider.clone(),
                    "model" => model.clone(),
                    "kind" => kind,
                )
                .increment(count);
            }
        }
        if report.cost.is_none() {
            counter!(UNPRICED, "provider" => provider.clone()).increment(1);
        }
        if report.usage.parse_failures > 0 {
            counter!(PARSE_FAILURES, "provider" => provider.clone())
                .increment(u64::from(report.usage.parse_failures));
        }
        let outcome = match report.usage.outcome {
            Outcome::Complete => "complete",
            Outcome::Error => "error",
            Outcome::ClientDisconnected => "client_disconnected",
            Outcome::Incomplete => "incomplete",
        };
        counter!(OUTCOMES, "provider" => provider, "outcome" => outcome).increment(1);
        if let Some(ttft) = report.usage.ttft {
            histogram!(TIME_TO_FIRST_TOKEN.metric).record(ttft.as_secs_f64());
        }
    }
}

/// Show the exact spend of one (provider, model) series.
pub(crate) fn set_cost(provider: &str, model: &str, usd: f64) {
    gauge!(COST, "provider" => provider.to_owned(), "model" => model.to_owned()).set(usd);
}

/// Show the spend of `scope`'s current window.
pub(crate) fn budget_spent(scope: &Scope, usd: f64) {
    gauge!(BUDGET_SPENT, "scope" => scope.kind_str(), "name" => scope.name.to_string()).set(usd);
}

/// Show `scope`'s budget (0 for none).
pub(crate) fn budget_limit(scope: &Scope, usd: f64) {
    gauge!(BUDGET_LIMIT, "scope" => scope.kind_str(), "name" => scope.name.to_string()).set(usd);
}

/// Count one refusal of `scope` over `limit`.
pub(crate) fn rate_limited(scope: &Scope, limit: &'static str) {
    counter!(
        RATE_LIMITED,
        "scope" => scope.kind_str(),
        "name" => scope.name.to_string(),
        "limit" => limit,
    )
    .increment(1);
}

/// Count one move from provider `from` to `to`.
pub(crate) fn fallback(from: &str, to: &str, reason: &'static str) {
    counter!(
        FALLBACKS,
        "from" => from.to_owned(),
        "to" => to.to_owned(),
        "reason" => reason,
    )
    .increment(1);
}
