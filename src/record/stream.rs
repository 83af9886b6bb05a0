//! [`AuditStream`]: every closed request's audit record (metadata, usage and cost; no
//! bodies) on a bounded broadcast channel, for `GET /gateway/audit/stream`.

use super::audit::audit_record;
use super::{AuditOptions, ClosedRequest, RecordSink};
use crate::audit::AuditRecord;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Records a subscriber may fall behind by before it misses some (it is then told how
/// many it missed; a request never waits for a subscriber).
pub const STREAM_CAPACITY: usize = 1024;

/// A [`RecordSink`] that broadcasts each closed request's [`AuditRecord`] without its
/// bodies. With no subscriber it builds nothing. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditStream {
    sender: broadcast::Sender<Arc<AuditRecord>>,
}

impl Default for AuditStream {
    fn default() -> Self {
        Self::new()
    }
}

impl AuditStream {
    /// A stream holding [`STREAM_CAPACITY`] records for slow subscribers.
    pub fn new() -> Self {
        Self::with_capacity(STREAM_CAPACITY)
    }

    /// A stream holding `capacity` records (at least 1) for slow subscribers.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// Send `record` to every subscriber (none: dropped); never waits.
    pub fn publish(&self, record: AuditRecord) {
        // An error only means no subscriber is listening.
        let _ = self.sender.send(Arc::new(record));
    }

    /// Receive every record closed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AuditRecord>> {
        self.sender.subscribe()
    }
}

impl RecordSink for AuditStream {
    fn on_close(&self, request: &ClosedRequest) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        let no_bodies = AuditOptions {
            log_request_bodies: false,
            log_response_bodies: false,
            max_body_bytes: 0,
        };
        self.publish(audit_record(request, &no_bodies));
    }
}
