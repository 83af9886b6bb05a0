//! The marks that measure what the gateway itself adds to a request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Nanoseconds since the ledger opened, per mark; `UNSET` until marked.
#[derive(Debug)]
pub(super) struct Clock {
    start: Instant,
    read_ns: AtomicU64,
    sent_ns: AtomicU64,
    chunk_ns: AtomicU64,
}

const UNSET: u64 = u64::MAX;

impl Clock {
    pub(super) fn start() -> Self {
        Self {
            start: Instant::now(),
            read_ns: AtomicU64::new(0),
            sent_ns: AtomicU64::new(UNSET),
            chunk_ns: AtomicU64::new(UNSET),
        }
    }

    pub(super) fn started(&self) -> Instant {
        self.start
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(UNSET - 1)
    }

    pub(super) fn mark_read(&self) {
        self.read_ns.store(self.now_ns(), Ordering::Relaxed);
    }

    pub(super) fn mark_sent(&self) {
        self.sent_ns.store(self.now_ns(), Ordering::Relaxed);
    }

    pub(super) fn mark_chunk(&self) {
        self.chunk_ns.store(self.now_ns(), Ordering::Relaxed);
    }

    /// From the request being read to the (last) upstream request being sent.
    pub(super) fn time_to_send(&self) -> Option<Duration> {
        let read = self.read_ns.load(Ordering::Relaxed);
        match self.sent_ns.load(Ordering::Relaxed) {
            UNSET => None,
            ns => Some(Duration::from_nanos(ns.saturating_sub(read))),
        }
    }

    pub(super) fn since_last_chunk(&self) -> Option<Duration> {
        match self.chunk_ns.load(Ordering::Relaxed) {
            UNSET => None,
            ns => Some(Duration::from_nanos(self.now_ns().saturating_sub(ns))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_counts_from_the_read_not_the_arrival() {
        let clock = Clock::start();
        assert_eq!(clock.time_to_send(), None, "nothing sent yet");
        // The client took 5 µs to upload its body; the gateway sent upstream at 12 µs.
        clock.read_ns.store(5_000, Ordering::Relaxed);
        clock.sent_ns.store(12_000, Ordering::Relaxed);
        assert_eq!(clock.time_to_send(), Some(Duration::from_nanos(7_000)));
    }
}
