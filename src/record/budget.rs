//! [`BudgetRecordSink`]: settles each request's budget reservation when it closes.

use super::{ClosedRequest, RecordSink};

/// Settles the [`Reservation`](crate::budget::Reservation) `Govern` left in a request's
/// ledger, once, when the request is over: its answer's body ended, failed or was
/// dropped, or there was no answer. What every attempt cost is charged; the rest of the
/// reservation is released, and so is the request's concurrency slot.
#[derive(Clone, Debug, Default)]
pub struct BudgetRecordSink;

impl BudgetRecordSink {
    /// The sink.
    pub fn new() -> Self {
        Self
    }
}

impl RecordSink for BudgetRecordSink {
    fn on_close(&self, request: &ClosedRequest) {
        if let Some(reservation) = &request.entries.reservation {
            reservation.settle();
        }
    }
}
