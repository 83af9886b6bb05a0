use super::{ClosedRequest, RecordSink};
use crate::ledger::{BoundedCopy, RequestLedger};
use crate::meta::{AnswerHead, Endpoint};
use crate::observe::{BodyEnd, BodyObserver, ObservedBody};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// The answer's body under [`RecordLayer`](super::RecordLayer): closes the ledger at its
/// end, on an error, or — after everything inside has reported — when it is dropped.
pub type RecordBody<B> = ObservedBody<B, Closing>;

/// One open request: its ledger, what the edge saw of the answer, and the sinks to tell.
/// Closes once, at the body's end or when dropped.
pub struct Closing {
    pub(super) ledger: RequestLedger,
    pub(super) sinks: Arc<Vec<Arc<dyn RecordSink>>>,
    pub(super) path: Option<Endpoint>,
    pub(super) head: Option<AnswerHead>,
    pub(super) error: Option<String>,
    pub(super) response_copy: Option<BoundedCopy>,
    /// Each chunk's time from its arrival upstream to its hand-off here, summed.
    pub(super) chunk_overhead: Duration,
    pub(super) done: bool,
}

impl Closing {
    fn close(&mut self, end: BodyEnd) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let entries = self.ledger.take();
        let overhead = entries
            .time_to_send
            .map(|to_send| to_send + self.chunk_overhead);
        let closed = ClosedRequest {
            request_id: self.ledger.request_id().to_owned(),
            path: self.path,
            timestamp: self.ledger.timestamp(),
            latency: self.ledger.started().elapsed(),
            head: self.head.take(),
            error: self.error.take(),
            end,
            entries,
            response_body: self.response_copy.take().map(BoundedCopy::into_bytes),
            overhead,
        };
        for sink in self.sinks.iter() {
            sink.on_close(&closed);
        }
    }
}

impl BodyObserver for Closing {
    fn on_data(&mut self, data: &Bytes) {
        if let Some(copy) = self.response_copy.as_mut() {
            copy.push(data);
        }
        if let Some(handoff) = self.ledger.since_last_chunk() {
            self.chunk_overhead += handoff;
        }
    }

    fn on_end(&mut self, end: BodyEnd) {
        self.close(end);
    }
}

impl Drop for Closing {
    fn drop(&mut self) {
        self.close(BodyEnd::Dropped);
    }
}

impl std::fmt::Debug for Closing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Closing")
            .field("ledger", &self.ledger)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
