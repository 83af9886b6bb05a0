//! The daemon's Prometheus exporter: the process's global `metrics` recorder, with the
//! gateway's histogram buckets, rendered by the gateway's `/metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::time::Duration;

/// How often the exporter folds recorded histogram samples into its buckets (what its
/// own `install` does), so memory stays flat between scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// Install the exporter as the global recorder; its handle renders the text.
pub fn install() -> Result<PrometheusHandle, String> {
    let mut builder = PrometheusBuilder::new();
    for h in llm_gateway::metrics::HISTOGRAM_BUCKETS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(h.metric.into()), h.bounds)
            .map_err(|e| format!("{}: {e}", h.metric))?;
    }
    builder
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))
}

/// Run the exporter's upkeep forever (spawn it on the runtime).
pub async fn upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(UPKEEP);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}
