//! Metrics: exact totals for `/gateway/metrics` and Prometheus series for `/metrics`.
//!
//! [`GatewayMetrics`] belongs to one gateway instance: its Prometheus registry is its own
//! (`prometheus-client`), so nothing global is installed and two gateways in one process
//! never mix their numbers. The `MetricsRecordSink` of the end-of-request
//! `RecordLayer` records each request exactly once, with the priced usage of each of
//! its attempts, when its body ends or is dropped.
//!
//! Money is summed as integer pico-dollars and only turned into a float when rendered.
//! Label values come from bounded sets: providers are the configured names, models are
//! the price-table keys that priced them (an unknown model is `other`), statuses are HTTP
//! codes — an unknown model name cannot multiply the series.
//!
//! ```
//! use llm_gateway::metrics::GatewayMetrics;
//! use llm_gateway::record::{MetricsRecordSink, RecordLayer};
//! let metrics = GatewayMetrics::new();
//! let layer = RecordLayer::new().sink(MetricsRecordSink::new(metrics.clone()));
//! assert!(metrics.render_prometheus().contains("llm_gateway_active_streams 0"));
//! # let _ = layer;
//! ```

mod prometheus;
mod summary;

use crate::usage::CostReport;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The metrics of one gateway; cheap to clone.
#[derive(Clone)]
pub struct GatewayMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    prometheus: prometheus::Series,
    summary: Arc<Mutex<summary::Summary>>,
    health: Arc<prometheus::HealthSource>,
    audit: Arc<prometheus::AuditSource>,
}

/// One finished request, as the metrics layer saw it.
#[derive(Debug)]
pub(crate) struct FinishedRequest {
    pub request_id: String,
    pub timestamp: SystemTime,
    pub status: u16,
    pub provider: Option<String>,
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
        f.write_str("GatewayMetrics")
    }
}

impl GatewayMetrics {
    /// Empty metrics with their own registry.
    pub fn new() -> Self {
        let summary = Arc::new(Mutex::new(summary::Summary::default()));
        let health = Arc::new(prometheus::HealthSource::new());
        let audit = Arc::new(prometheus::AuditSource::new());
        Self {
            inner: Arc::new(Inner {
                prometheus: prometheus::Series::new(summary.clone(), health.clone(), audit.clone()),
                summary,
                health,
                audit,
            }),
        }
    }

    /// Show `store`'s queue depth and spill/drop counts (the first call wins).
    pub fn watch_audit(&self, store: Arc<crate::audit::AuditStore>) {
        let _ = self.inner.audit.set(store);
    }

    /// Show `providers`' availability from `health` as `llm_gateway_provider_healthy`
    /// (the first call wins).
    pub fn watch_health(
        &self,
        health: Arc<crate::fallback::ProviderHealth>,
        providers: Vec<String>,
    ) {
        let _ = self.inner.health.set((health, providers));
    }

    /// The Prometheus text exposition (OpenMetrics format).
    pub fn render_prometheus(&self) -> String {
        self.inner.prometheus.render()
    }

    /// The `/gateway/metrics` document (SPEC §3).
    pub fn summary_json(&self) -> serde_json::Value {
        self.lock_summary().to_json()
    }

    /// Streams open right now.
    pub(crate) fn stream_opened(&self) {
        self.inner.prometheus.active_streams.inc();
    }

    pub(crate) fn stream_closed(&self) {
        self.inner.prometheus.active_streams.dec();
    }

    /// A client connection was accepted.
    pub(crate) fn connection_opened(&self) {
        self.inner.prometheus.open_connections.inc();
    }

    /// A client connection closed.
    pub(crate) fn connection_closed(&self) {
        self.inner.prometheus.open_connections.dec();
    }

    /// A connection had to wait because `limits.max_connections` were open.
    pub(crate) fn connection_limited(&self) {
        self.inner.prometheus.connections_limited.inc();
    }

    /// Accepting a client connection failed.
    pub(crate) fn accept_failed(&self) {
        self.inner.prometheus.accept_failures.inc();
    }

    pub(crate) fn record(&self, request: FinishedRequest) {
        self.inner.prometheus.record(&request);
        self.lock_summary().record(request);
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
        self.inner.prometheus.fallback(from, to, reason);
    }
}
