//! The bucket bounds of the gateway's histograms, for the host's exporter.

/// One histogram series and the upper bounds (in seconds) of its buckets.
///
/// The `metrics` facade records raw samples; the exporter decides how to aggregate them.
/// Configure it with these bounds so the series stay histograms with the same buckets
/// wherever they are exported (the Prometheus exporter renders a summary otherwise).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HistogramBuckets {
    /// The full series name, e.g. `llm_gateway_request_duration_seconds`.
    pub metric: &'static str,
    /// Bucket upper bounds in seconds, ascending (`+Inf` is implied).
    pub bounds: &'static [f64],
}

/// Time from request arrival to the end of the answer: tens of milliseconds to ten minutes.
pub const REQUEST_DURATION: HistogramBuckets = HistogramBuckets {
    metric: "llm_gateway_request_duration_seconds",
    bounds: &[
        0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ],
};

/// Time to the first content event: tens of milliseconds to a minute.
pub const TIME_TO_FIRST_TOKEN: HistogramBuckets = HistogramBuckets {
    metric: "llm_gateway_time_to_first_token_seconds",
    bounds: &[
        0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0,
    ],
};

/// What the gateway itself adds: ten microseconds to a tenth of a second.
pub const OVERHEAD: HistogramBuckets = HistogramBuckets {
    metric: "llm_gateway_overhead_seconds",
    bounds: &[
        1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1,
    ],
};

/// Every histogram the gateway records, with its buckets.
///
/// ```
/// // With metrics-exporter-prometheus:
/// // let mut builder = PrometheusBuilder::new();
/// // for h in llm_gateway::metrics::HISTOGRAM_BUCKETS {
/// //     builder = builder.set_buckets_for_metric(Matcher::Full(h.metric.into()), h.bounds)?;
/// // }
/// for h in llm_gateway::metrics::HISTOGRAM_BUCKETS {
///     assert!(h.bounds.windows(2).all(|w| w[0] < w[1]), "{} ascends", h.metric);
/// }
/// ```
pub const HISTOGRAM_BUCKETS: [HistogramBuckets; 3] =
    [REQUEST_DURATION, TIME_TO_FIRST_TOKEN, OVERHEAD];
