//! `GET /metrics`: the host's exporter text, in the classic Prometheus format.

use super::GatewayMetrics;
use std::sync::Arc;

/// The media type of the classic Prometheus text format (0.0.4), which every scraper
/// parses; `/metrics` sends it whatever the request's `Accept` says.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What renders the exposition text (e.g. `PrometheusHandle::render`).
pub(crate) type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `/metrics`: refreshes the pulled series, then asks the exporter for its text.
#[derive(Clone)]
pub(crate) struct Exposition {
    metrics: GatewayMetrics,
    render: Render,
}

impl Exposition {
    /// An endpoint showing `metrics` through `render`.
    pub(crate) fn new(metrics: GatewayMetrics, render: Render) -> Self {
        Self { metrics, render }
    }

    /// The answer to one scrape.
    pub(crate) fn respond(&self) -> http::Response<String> {
        self.metrics.refresh();
        let mut response = http::Response::new((self.render)());
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(PROMETHEUS_TEXT),
        );
        response
    }
}
