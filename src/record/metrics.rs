//! The metrics sink: every `/v1/messages` request into [`GatewayMetrics`].

use super::{ClosedRequest, RecordSink};
use crate::meta::{AnswerHead, Endpoint};
use crate::metrics::{FinishedRequest, GatewayMetrics};

/// Records every closed `/v1/messages` request (and the streams open) into
/// [`GatewayMetrics`].
#[derive(Clone, Debug)]
pub struct MetricsRecordSink {
    metrics: GatewayMetrics,
}

impl MetricsRecordSink {
    /// A sink recording into `metrics`.
    pub fn new(metrics: GatewayMetrics) -> Self {
        Self { metrics }
    }
}

impl RecordSink for MetricsRecordSink {
    fn on_answer(&self, path: Option<Endpoint>, head: &AnswerHead) {
        if path == Some(Endpoint::Messages) && head.stream {
            self.metrics.stream_opened();
        }
    }

    fn on_close(&self, request: &ClosedRequest) {
        if request.path != Some(Endpoint::Messages) {
            return;
        }
        let head = request.head.as_ref();
        let meta = request.entries.meta.as_ref();
        let stream = head.is_some_and(|h| h.stream);
        if stream {
            self.metrics.stream_closed();
        }
        self.metrics.record(FinishedRequest {
            request_id: request.request_id.clone(),
            timestamp: request.timestamp,
            status: request.status(),
            provider: head.and_then(|h| h.provider.clone()),
            client: meta.and_then(|m| m.client.clone()),
            team: meta.and_then(|m| m.team.clone()),
            costs: request.entries.usage.clone(),
            latency: request.latency,
            overhead: request.overhead,
            stream,
        });
    }
}
