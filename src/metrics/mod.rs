//! Metrics: exact totals for `/gateway/metrics`, and Prometheus series through the
//! [`metrics`](https://docs.rs/metrics) facade.
//!
//! [`GatewayMetrics`] belongs to one gateway instance. Its series go to the recorder it
//! was given ([`GatewayMetrics::with_recorder`], or
//! [`GatewayBuilder::metrics_recorder`](crate::GatewayBuilder::metrics_recorder)), else
//! to the process's global recorder, the host's: the library installs none. Whatever
//! the recorder exports (Prometheus, StatsD, OpenTelemetry) receives the series below.
//! The JSON summary of `/gateway/metrics` is not read back from a recorder: it is this
//! type's own state, with money summed exactly.
//! The `MetricsRecordSink` of the end-of-request `RecordLayer` records each request
//! exactly once, with the priced usage of each of its attempts, when its body ends or
//! is dropped.
//!
//! Series (prefix `llm_gateway_`): `requests_total{provider,model,status}`,
//! `tokens_total{provider,model,kind}`, `cost_usd_total{provider,model}`,
//! `unpriced_requests_total{provider}`, `usage_parse_failures_total{provider}`,
//! `answer_outcomes_total{provider,outcome}`, `fallbacks_total{from,to,reason}`, the
//! histograms of [`HISTOGRAM_BUCKETS`] (`request_duration_seconds`,
//! `time_to_first_token_seconds`, `overhead_seconds`), `active_streams`,
//! `open_connections`, `connections_limited_total`, `accept_failures_total`,
//! `provider_healthy{provider}`, `audit_queue_depth` and the audit store's
//! `audit_records_{written,dropped}_total`, `audit_bodies_shed_total`, `audit_write_errors_total`,
//! `audit_file_reopened_total`; and, from the budget code, `budget_spent_usd{scope,name}`,
//! `budget_limit_usd{scope,name}` and `rate_limited_total{scope,name,limit}` (`scope` is
//! `key` or `team`, `name` the key's or team's name, `limit` one of `rpm`, `tpm`,
//! `max_concurrent`, `budget`).
//!
//! - **Money** is summed as integer pico-dollars. `cost_usd_total` is a gauge set, under
//!   the summary's lock, to the exact total turned into the nearest `f64` of USD: the
//!   facade's counters are integers, and a float counter would sum float increments.
//!   The value only grows, so `rate()` and `increase()` work on it as on a counter.
//! - **Histograms** are raw samples to the facade; configure the exporter with
//!   [`HISTOGRAM_BUCKETS`] so they stay histograms with these buckets.
//! - **Pulled series** (provider health, the audit store's queue and counts) change
//!   outside any request: [`GatewayMetrics::refresh`] copies them into the recorder. The
//!   gateway's `/metrics` calls it before each render; a host exporting by other means
//!   calls it before each scrape or push.
//! - **Labels** come from bounded sets: providers are the configured names, models the
//!   price-table keys that priced them (an unknown model is `other`), statuses HTTP codes,
//!   key and team names those configured or created through the admin API.
//!
//! A host serving Prometheus text itself, with the bucket table:
//!
//! ```
//! use llm_gateway::metrics::{GatewayMetrics, HISTOGRAM_BUCKETS};
//! use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
//!
//! let mut builder = PrometheusBuilder::new();
//! for h in HISTOGRAM_BUCKETS {
//!     builder = builder
//!         .set_buckets_for_metric(Matcher::Full(h.metric.into()), h.bounds)
//!         .unwrap();
//! }
//! let recorder = builder.build_recorder();
//! let handle = recorder.handle();
//! let metrics = GatewayMetrics::with_recorder(recorder);
//! metrics.refresh();
//! let text = handle.render();
//! assert!(text.contains("llm_gateway_active_streams 0"));
//! assert!(text.contains(r#"llm_gateway_overhead_seconds_bucket{le="0.00001"} 0"#));
//! ```

mod buckets;
mod exposition;
mod pulled;
mod series;
mod summary;

pub use buckets::{
    HistogramBuckets, HISTOGRAM_BUCKETS, OVERHEAD, REQUEST_DURATION, TIME_TO_FIRST_TOKEN,
};
pub use exposition::PROMETHEUS_TEXT;
pub(crate) use exposition::{Exposition, Render};

use crate::pricing::Money;
use crate::usage::CostReport;
use metrics::Recorder;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The metrics of one gateway; cheap to clone.
#[derive(Clone)]
pub struct GatewayMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None`: the global recorder, looked up at each emission.
    recorder: Option<Arc<dyn Recorder + Send + Sync>>,
    summary: Mutex<summary::Summary>,
    sources: pulled::Sources,
}

/// One finished request, as the metrics layer saw it.
#[derive(Debug)]
pub(crate) struct FinishedRequest {
    pub request_id: String,
    pub timestamp: SystemTime,
    pub status: u16,
    pub provider: Option<String>,
    /// The client key's name, when auth is on.
    pub client: Option<String>,
    /// That key's team, when it has one.
    pub team: Option<String>,
    pub costs: Vec<CostReport>,
    pub latency: Duration,
    pub overhead: Option<Duration>,
    pub stream: bool,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for GatewayMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayMetrics")
            .field("own_recorder", &self.inner.recorder.is_some())
            .finish_non_exhaustive()
    }
}

impl GatewayMetrics {
    /// Empty metrics whose series go to the global recorder (`metrics::set_global_recorder`).
    ///
    /// Install the global recorder before building the gateway, so it gets the help
    /// texts; series emitted before it is installed are lost, as with any `metrics` user.
    pub fn new() -> Self {
        Self::from_parts(None)
    }

    /// Empty metrics whose series go to `recorder` only, whatever the global recorder
    /// is: two gateways in one process, each with its own, never mix their numbers.
    pub fn with_recorder(recorder: impl Recorder + Send + Sync + 'static) -> Self {
        Self::from_parts(Some(Arc::new(recorder)))
    }

    fn from_parts(recorder: Option<Arc<dyn Recorder + Send + Sync>>) -> Self {
        let metrics = Self {
            inner: Arc::new(Inner {
                recorder,
                summary: Mutex::default(),
                sources: pulled::Sources::default(),
            }),
        };
        metrics.emit(series::announce);
        metrics
    }

    /// Run `emit` with this gateway's recorder current (the global one if it has none).
    fn emit<T>(&self, emit: impl FnOnce() -> T) -> T {
        match &self.inner.recorder {
            Some(recorder) => metrics::with_local_recorder(recorder.as_ref(), emit),
            None => emit(),
        }
    }

    /// Show `store`'s queue depth and written/shed/dropped counts (the first call wins).
    pub fn watch_audit(&self, store: Arc<crate::audit::AuditStore>) {
        let _ = self.inner.sources.audit.set(store);
    }

    /// Show every key's and team's spend and budget from `ledger` as
    /// `llm_gateway_budget_spent_usd` / `llm_gateway_budget_limit_usd` at each
    /// [`refresh`](Self::refresh) (the first call wins).
    pub fn watch_budgets(
        &self,
        keys: Arc<crate::keys::KeyRegistry>,
        ledger: Arc<dyn crate::budget::Ledger>,
    ) {
        let _ = self.inner.sources.budgets.set((keys, ledger));
    }

    /// Show `providers`' availability from `health` as `llm_gateway_provider_healthy`
    /// (the first call wins).
    pub fn watch_health(
        &self,
        health: Arc<crate::fallback::ProviderHealth>,
        providers: Vec<String>,
    ) {
        let _ = self.inner.sources.health.set((health, providers));
    }

    /// Copy the series whose truth lives elsewhere (provider health, the audit store)
    /// into the recorder; call right before rendering or pushing. Also repeats the help
    /// texts, for a global recorder installed after the gateway was built.
    pub fn refresh(&self) {
        self.emit(|| {
            series::announce();
            self.inner.sources.refresh_health();
            self.inner.sources.refresh_audit();
            self.inner.sources.refresh_budgets();
        });
    }

    /// The `/gateway/metrics` document: exact totals and the last 100 requests.
    pub fn summary_json(&self) -> serde_json::Value {
        self.lock_summary().to_json()
    }

    /// A stream's head went out.
    pub(crate) fn stream_opened(&self) {
        self.emit(|| metrics::gauge!(series::ACTIVE_STREAMS).increment(1.0));
    }

    /// A stream ended or was dropped.
    pub(crate) fn stream_closed(&self) {
        self.emit(|| metrics::gauge!(series::ACTIVE_STREAMS).decrement(1.0));
    }

    /// A client connection was accepted.
    pub(crate) fn connection_opened(&self) {
        self.emit(|| metrics::gauge!(series::OPEN_CONNECTIONS).increment(1.0));
    }

    /// A client connection closed.
    pub(crate) fn connection_closed(&self) {
        self.emit(|| metrics::gauge!(series::OPEN_CONNECTIONS).decrement(1.0));
    }

    /// A connection had to wait because `limits.max_connections` were open.
    pub(crate) fn connection_limited(&self) {
        self.emit(|| metrics::counter!(series::CONNECTIONS_LIMITED).increment(1));
    }

    /// Accepting a client connection failed.
    pub(crate) fn accept_failed(&self) {
        self.emit(|| metrics::counter!(series::ACCEPT_FAILURES).increment(1));
    }

    /// Count one finished request: into the series, and into the exact summary.
    pub(crate) fn record(&self, request: FinishedRequest) {
        self.emit(|| series::record(&request));
        let mut summary = self.lock_summary();
        let touched = summary.record(request);
        // Set under the lock, so a slower request cannot put back an older total.
        self.emit(|| {
            for (provider, model, total) in touched {
                series::set_cost(&provider, &model, total.to_usd_f64());
            }
        });
    }

    /// Show what `scope` has settled in its current budget window, as
    /// `llm_gateway_budget_spent_usd{scope,name}` (set, not added: `spent` is the exact
    /// total, so the gauge never drifts from it).
    pub fn budget_spent(&self, scope: &crate::budget::Scope, spent: Money) {
        self.emit(|| series::budget_spent(scope, spent.to_usd_f64()));
    }

    /// Show `scope`'s budget as `llm_gateway_budget_limit_usd{scope,name}`; `None` (no
    /// budget, or it was removed) sets it to zero, since a series cannot be withdrawn
    /// through the facade.
    pub fn budget_limit(&self, scope: &crate::budget::Scope, limit: Option<Money>) {
        let usd = limit.map_or(0.0, Money::to_usd_f64);
        self.emit(|| series::budget_limit(scope, usd));
    }

    /// Count one request refused because `scope` is over `limit` — `rpm`, `tpm`,
    /// `max_concurrent` or `budget` — as `llm_gateway_rate_limited_total{scope,name,limit}`.
    pub fn rate_limited(&self, scope: &crate::budget::Scope, limit: &'static str) {
        debug_assert!(
            series::RATE_LIMIT_KINDS.contains(&limit),
            "unknown limit {limit:?}"
        );
        self.emit(|| series::rate_limited(scope, limit));
    }

    fn lock_summary(&self) -> std::sync::MutexGuard<'_, summary::Summary> {
        // A panic while holding the lock cannot leave the totals half-updated in a way
        // worth refusing to serve; keep going with what is there.
        self.inner
            .summary
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl crate::fallback::OnFallback for GatewayMetrics {
    fn on_fallback(&self, from: &str, to: &str, reason: &'static str) {
        self.emit(|| {
            series::fallback(from, to, reason);
            // A move usually follows a provider going unhealthy: show it without a scrape.
            self.inner.sources.refresh_health();
        });
    }
}
