//! Durable audit store.
//!
//! Every request leaves one [`AuditRecord`], handed to an [`AuditSink`]
//! ([`submit`](AuditSink::submit) must not block). The built-in sink,
//! [`AuditStore`], writes records to SQLite from one writer thread.
//!
//! # How the store works
//!
//! - **One bounded channel with a byte budget.** [`AuditStore::submit`]
//!   counts the record (bodies plus 1 KiB) against `queue_max_bytes`
//!   (256 MiB) until it is committed, and never blocks: blocking an async
//!   worker on the disk would stall every request on that thread. A record
//!   that does not fit is kept with its bodies replaced by
//!   [`BODY_SHED_MARKER`]; one that does not fit even so is dropped. Both are
//!   counted ([`AuditStats`]): nothing is lost silently.
//! - **One writer thread batching commits.** It commits when `batch_max`
//!   (256) records are pending, or `flush_interval` (200 ms) after the first
//!   of them arrived. WAL with `synchronous=FULL`: a committed batch survives
//!   `kill -9` and power loss, so a record is durable within one second.
//! - **Chunked, compressed bodies.** FastCDC content-defined chunks, each
//!   stored once under its blake3 hash, zstd-compressed: a coding agent
//!   resends its whole conversation every turn, so a record adds only its
//!   new chunks. Reads reassemble the bodies byte-exact.
//! - **Failures are kept, counted and said.** A failed commit keeps its
//!   records and is retried with back-off; it is counted, the first of an
//!   episode and the recovery are logged once each, and meanwhile
//!   [`AuditStats::failing`] and [`AuditStore::last_error`] say so. At
//!   shutdown what still cannot be written is counted as dropped and
//!   [`AuditStore::shutdown`] returns an error naming it.
//! - **The file is checked.** Before each commit the writer compares the
//!   device and inode at the path with its open file, and opens a deleted or
//!   replaced one again. The files are owner-only (0600): they hold every
//!   prompt. One schema, no migrations: a file of another version is refused
//!   ([`AuditError::WrongSchema`] names it) and left as it is. (The client, team
//!   and session filters read the record's JSON through indexes the writer adds
//!   when a file lacks them.)
//! - **Retention** (`retention_days`, `max_bytes`) runs at start-up, every
//!   `prune_interval` and after a commit that leaves the file over its cap.
//!
//! A record is stored once per `request_id` and names nothing outside
//! itself, so records can be shipped on to another sink from this file.
//!
//! # Queries
//!
//! [`AuditReader`] opens a read-only connection per call (blocking: use
//! `spawn_blocking`), with or without a running store. [`AuditReader::page`]
//! is the bounded form behind `GET /gateway/audit`: metadata only unless one
//! record or bodies are asked for, at most [`MAX_PAGE_BYTES`] a page, and a
//! `next_cursor` to continue.

mod chunks;
mod error;
mod prune;
mod query;
mod record;
mod schema;
mod store;
mod time;
mod writer;

#[cfg(test)]
mod attribution_tests;
#[cfg(test)]
mod tests;

pub use error::AuditError;
pub use query::{
    parse_since, AuditDbStats, AuditPage, AuditQuery, AuditReader, DEFAULT_LIMIT, MAX_LIMIT,
    MAX_PAGE_BYTES,
};
pub use record::{AuditAttempt, AuditRecord, AuditUsage, Endpoint, Outcome};
pub use store::{AuditStats, AuditStore, AuditStoreConfig, BODY_SHED_MARKER};

/// Where audit records go: the request path calls [`submit`](Self::submit)
/// once per request with the whole record. Implemented by [`AuditStore`],
/// any `Fn(AuditRecord)` closure, `()` (discards), and `Arc` of a sink.
///
/// ```
/// use llm_gateway::audit::{AuditRecord, AuditSink};
///
/// let sink = |record: AuditRecord| assert_eq!(record.request_id, "req_1");
/// sink.submit(AuditRecord::new("req_1", 0));
/// ```
pub trait AuditSink: Send + Sync + 'static {
    /// Accept one record. Must return promptly without waiting on I/O; a
    /// sink that falls behind sheds or drops records, and counts them.
    fn submit(&self, record: AuditRecord);
}

impl<F> AuditSink for F
where
    F: Fn(AuditRecord) + Send + Sync + 'static,
{
    fn submit(&self, record: AuditRecord) {
        self(record)
    }
}

impl AuditSink for () {
    fn submit(&self, _record: AuditRecord) {}
}

impl<S: AuditSink + ?Sized> AuditSink for std::sync::Arc<S> {
    fn submit(&self, record: AuditRecord) {
        (**self).submit(record)
    }
}
