//! The Prometheus series of SPEC §8, in this gateway's own registry.

use super::summary::Summary;
use super::FinishedRequest;
use crate::pricing::BillableTokens;
use crate::usage::Outcome;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::{Arc, Mutex};

/// Whole requests: from tens of milliseconds to ten minutes.
const DURATION_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Time to first token: from tens of milliseconds to a minute.
const TTFT_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0,
];
/// What the gateway adds: from ten microseconds to a tenth of a second.
const OVERHEAD_BUCKETS: [f64; 13] = [
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    provider: String,
    model: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: String,
    model: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    from: String,
    to: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    provider: String,
    outcome: &'static str,
}

pub(crate) struct Series {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    unpriced: Family<ProviderLabels, Counter>,
    parse_failures: Family<ProviderLabels, Counter>,
    outcomes: Family<OutcomeLabels, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    duration: Histogram,
    ttft: Histogram,
    overhead: Histogram,
    pub(crate) active_streams: Gauge,
    pub(crate) open_connections: Gauge,
    pub(crate) connections_limited: Counter,
    pub(crate) accept_failures: Counter,
}

impl Series {
    pub(crate) fn new(
        summary: Arc<Mutex<Summary>>,
        health: Arc<HealthSource>,
        audit: Arc<AuditSource>,
    ) -> Self {
        let mut registry = Registry::with_prefix("llm_gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Requests to /v1/messages", requests.clone());
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register("tokens", "Tokens used, by kind", tokens.clone());
        let unpriced = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "unpriced_requests",
            "Answers not priced, cost recorded as null: the model has no price, or the usage could not be read",
            unpriced.clone(),
        );
        let parse_failures = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "usage_parse_failures",
            "Usage-bearing events, bodies or token counts (negative, fractional, huge, not a number) that could not be read",
            parse_failures.clone(),
        );
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "answer_outcomes",
            "How answers ended: complete, error, client_disconnected, incomplete",
            outcomes.clone(),
        );
        let fallbacks = Family::<FallbackLabels, Counter>::default();
        registry.register(
            "fallbacks",
            "Requests moved from one provider to the next",
            fallbacks.clone(),
        );
        registry.register_collector(Box::new(ProviderHealthy(health)));
        registry.register_collector(Box::new(AuditQueue(audit)));
        let duration = Histogram::new(DURATION_BUCKETS);
        registry.register_with_unit(
            "request_duration",
            "Time from request arrival to the end of the answer",
            Unit::Seconds,
            duration.clone(),
        );
        let ttft = Histogram::new(TTFT_BUCKETS);
        registry.register_with_unit(
            "time_to_first_token",
            "Time from request arrival to the first content event",
            Unit::Seconds,
            ttft.clone(),
        );
        let overhead = Histogram::new(OVERHEAD_BUCKETS);
        registry.register_with_unit(
            "overhead",
            "Time the gateway itself adds: request read to upstream send, plus each chunk's hand-off",
            Unit::Seconds,
            overhead.clone(),
        );
        let active_streams = Gauge::default();
        registry.register("active_streams", "Streams open now", active_streams.clone());
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open now",
            open_connections.clone(),
        );
        let connections_limited = Counter::default();
        registry.register(
            "connections_limited",
            "Connections that waited in the listen backlog because max_connections were open",
            connections_limited.clone(),
        );
        let accept_failures = Counter::default();
        registry.register(
            "accept_failures",
            "Failed accepts of client connections (out of file descriptors and the like)",
            accept_failures.clone(),
        );
        registry.register_collector(Box::new(ExactCost(summary)));
        Self {
            registry,
            requests,
            tokens,
            unpriced,
            parse_failures,
            outcomes,
            fallbacks,
            duration,
            ttft,
            overhead,
            active_streams,
            open_connections,
            connections_limited,
            accept_failures,
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    pub(crate) fn fallback(&self, from: &str, to: &str, reason: &'static str) {
        self.fallbacks
            .get_or_create(&FallbackLabels {
                from: from.to_owned(),
                to: to.to_owned(),
                reason,
            })
            .inc();
    }

    pub(crate) fn record(&self, request: &FinishedRequest) {
        let status = request.status.to_string();
        let last = request.costs.last();
        let provider = last
            .map(|r| r.usage.provider.to_string())
            .or_else(|| request.provider.clone())
            .unwrap_or_else(|| "none".into());
        let model = last
            .and_then(|r| r.priced_as.clone())
            .unwrap_or_else(|| "other".into());
        self.requests
            .get_or_create(&RequestLabels {
                provider: provider.clone(),
                model,
                status,
            })
            .inc();
        self.duration.observe(request.latency.as_secs_f64());
        if let Some(overhead) = request.overhead {
            self.overhead.observe(overhead.as_secs_f64());
        }
        for report in &request.costs {
            let provider = report.usage.provider.to_string();
            let model = report.priced_as.clone().unwrap_or_else(|| "other".into());
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
                if count > 0 {
                    let counter = self.tokens.get_or_create(&TokenLabels {
                        provider: provider.clone(),
                        model: model.clone(),
                        kind,
                    });
                    // Held at u64::MAX rather than wrapped to a small number.
                    counter.inc_by(count.min(u64::MAX - counter.get()));
                }
            }
            let labels = ProviderLabels {
                provider: provider.clone(),
            };
            if report.cost.is_none() {
                self.unpriced.get_or_create(&labels).inc();
            }
            if report.usage.parse_failures > 0 {
                self.parse_failures
                    .get_or_create(&labels)
                    .inc_by(u64::from(report.usage.parse_failures));
            }
            let outcome = match report.usage.outcome {
                Outcome::Complete => "complete",
                Outcome::Error => "error",
                Outcome::ClientDisconnected => "client_disconnected",
                Outcome::Incomplete => "incomplete",
            };
            self.outcomes
                .get_or_create(&OutcomeLabels { provider, outcome })
                .inc();
            if let Some(ttft) = report.usage.ttft {
                self.ttft.observe(ttft.as_secs_f64());
            }
        }
    }
}

/// `llm_gateway_cost_usd_total{provider,model}`, rendered from the exact integer totals
/// at scrape time, so the series is never a sum of floats.
struct ExactCost(Arc<Mutex<Summary>>);

impl std::fmt::Debug for ExactCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExactCost")
    }
}

impl Collector for ExactCost {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let totals: Vec<((String, String), f64)> = {
            let summary = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            summary
                .cost_by_series
                .iter()
                .map(|(key, money)| (key.clone(), money.to_usd_f64()))
                .collect()
        };
        let probe = ConstCounter::new(0.0f64);
        let mut family = encoder.encode_descriptor(
            "cost_usd",
            "Spend in USD, summed exactly in integer pico-dollars",
            None,
            probe.metric_type(),
        )?;
        for ((provider, model), usd) in totals {
            let labels = [("provider", provider), ("model", model)];
            let metric = family.encode_family(&labels)?;
            ConstCounter::new(usd).encode(metric)?;
        }
        Ok(())
    }
}

/// Where `provider_healthy` reads from, once the gateway has a health registry.
pub(crate) type HealthSource =
    std::sync::OnceLock<(Arc<crate::fallback::ProviderHealth>, Vec<String>)>;

/// `llm_gateway_provider_healthy{provider}`: 1 when the provider is not being skipped,
/// read at scrape time so a cool-down that has run out shows at once.
struct ProviderHealthy(Arc<HealthSource>);

impl std::fmt::Debug for ProviderHealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderHealthy")
    }
}

impl Collector for ProviderHealthy {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some((health, names)) = self.0.get() else {
            return Ok(());
        };
        let probe = prometheus_client::metrics::gauge::ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "provider_healthy",
            "1 when the provider is being tried, 0 while it is skipped",
            None,
            probe.metric_type(),
        )?;
        for (name, available) in health.snapshot(names.iter().map(String::as_str)) {
            let labels = [("provider", name)];
            let metric = family.encode_family(&labels)?;
            prometheus_client::metrics::gauge::ConstGauge::new(i64::from(available))
                .encode(metric)?;
        }
        Ok(())
    }
}

/// Where the audit series read from, once the gateway has an audit store.
pub(crate) type AuditSource = std::sync::OnceLock<Arc<crate::audit::AuditStore>>;

/// `llm_gateway_audit_queue_depth` and the records the audit store shed bodies of or dropped.
struct AuditQueue(Arc<AuditSource>);

impl std::fmt::Debug for AuditQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditQueue")
    }
}

impl Collector for AuditQueue {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(store) = self.0.get() else {
            return Ok(());
        };
        let stats = store.stats();
        let depth = prometheus_client::metrics::gauge::ConstGauge::new(
            i64::try_from(stats.queue_depth).unwrap_or(i64::MAX),
        );
        let metric = encoder.encode_descriptor(
            "audit_queue_depth",
            "Audit records waiting for the writer",
            None,
            depth.metric_type(),
        )?;
        depth.encode(metric)?;
        for (name, help, value) in [
            (
                "audit_records_written",
                "Audit records committed to the store",
                stats.written,
            ),
            (
                "audit_bodies_shed",
                "Audit records kept without bodies because the queue's byte budget was exhausted",
                stats.bodies_shed,
            ),
            (
                "audit_records_dropped",
                "Audit records lost (the byte budget exhausted even without bodies, or the writer gone)",
                stats.dropped,
            ),
            (
                "audit_write_errors",
                "Audit commits and prunes that failed (the records are kept and retried)",
                stats.write_errors,
            ),
            (
                "audit_file_reopened",
                "Times the audit database file was found deleted or replaced and reopened",
                stats.reopened,
            ),
        ] {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}
