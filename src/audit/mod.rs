//! Durable audit store.
//!
//! Every request leaves exactly one [`AuditRecord`]. The request path hands
//! it to an [`AuditSink`], whose one method, [`submit`](AuditSink::submit),
//! must not block. The built-in sink, [`AuditStore`], writes records to an
//! embedded SQLite database from one writer thread, in batches.
//!
//! # How the store works
//!
//! - **One bounded channel with a byte budget.** [`AuditStore::submit`]
//!   counts the record (its bodies plus 1 KiB for the rest) against
//!   `queue_max_bytes` (256 MiB) and `try_send`s it to the writer; it never
//!   blocks: blocking an async worker on the disk would stall every request
//!   on that thread. A record that does not fit the budget is kept with its
//!   bodies replaced by [`BODY_SHED_MARKER`] (counted in
//!   [`AuditStats::bodies_shed`]); one that does not fit even so is dropped
//!   (counted in [`AuditStats::dropped`]). Nothing is lost silently:
//!   `submitted = written + dropped + queue_depth` at every moment.
//! - **One writer thread batching commits.** It commits when `batch_max`
//!   (256) records are pending, or `flush_interval` (200 ms) after the first
//!   of them arrived. WAL mode with `synchronous=FULL`: a committed batch
//!   survives `kill -9` and power loss, so a record is durable well within
//!   one second of `submit`. [`AuditStore::flush`] waits for a commit;
//!   [`AuditStore::shutdown`] (or dropping the store) commits everything and
//!   joins the writer.
//! - **Chunked, compressed bodies.** Each body is cut by FastCDC into
//!   content-defined chunks, each stored once under its blake3 hash,
//!   zstd-compressed. A coding agent resends its whole conversation every
//!   turn, so each record adds only its new chunks. Reads reassemble the
//!   bodies byte-exact. Retention deletes rows, then every chunk no row
//!   lists.
//! - **Failures are kept, counted and said.** A failed commit keeps its
//!   records (still within the budget) and is retried with back-off; each
//!   failure is counted ([`AuditStats::write_errors`]); the first of an
//!   episode and the recovery are logged once each; while it lasts
//!   [`AuditStats::failing`] is set, [`AuditStore::last_error`] says why and
//!   [`AuditStore::flush`] returns the error instead of waiting. At shutdown
//!   what still cannot be written is counted as dropped, logged, and
//!   [`AuditStore::shutdown`] returns an error naming it.
//! - **The file is checked.** Before each commit the writer compares the
//!   device and inode at the path with the file it has open; a deleted or
//!   replaced file is opened again (counted in [`AuditStats::reopened`]).
//!   The database and its `-wal`/`-shm` files are owner-only (0600): they
//!   hold every prompt. One schema, no migrations: a file of another version
//!   is refused with [`AuditError::WrongSchema`] naming it, and left as it
//!   is.
//! - **Retention.** With `retention_days` and/or `max_bytes`, the writer
//!   prunes at start-up, every `prune_interval` (5 min), and after a commit
//!   that leaves the file over `max_bytes`; then it gives the freed pages
//!   back to the filesystem.
//!
//! A record is stored once per `request_id` (a resubmitted record is
//! ignored), and names nothing outside itself, so the same records can be
//! shipped on to another sink (the SQLite file as its local spool).
//!
//! # Queries
//!
//! [`AuditReader`] (also reachable as [`AuditStore::query`] and
//! [`AuditStore::query_after`]) opens a read-only connection per call; WAL
//! lets it read while the writer writes. It works without a running store
//! (the `logs` CLI command). Calls block: from async code use
//! `spawn_blocking`. `since` accepts unix milliseconds or RFC 3339
//! ([`parse_since`]). [`AuditReader::page`] is the bounded form behind
//! `GET /gateway/audit`: metadata only unless one record or bodies are asked
//! for, at most [`MAX_PAGE_BYTES`] of records per page, and a `next_cursor`
//! to continue.

mod chunks;
mod error;
mod layer;
mod prune;
mod query;
mod record;
mod schema;
mod store;
mod time;
mod writer;

#[cfg(test)]
mod tests;

pub use error::AuditError;
pub use layer::{AuditBody, AuditDraft, AuditFuture, AuditLayer, AuditOptions, AuditService};
pub use query::{
    parse_since, AuditDbStats, AuditPage, AuditQuery, AuditReader, DEFAULT_LIMIT, MAX_LIMIT,
    MAX_PAGE_BYTES,
};
pub use record::{AuditAttempt, AuditRecord, AuditUsage, Endpoint, Outcome};
pub use store::{AuditStats, AuditStore, AuditStoreConfig, BODY_SHED_MARKER};

/// Where audit records go. The request path calls [`submit`](Self::submit)
/// once per request, with the whole record (bodies included, already cut at
/// `max_body_bytes`).
///
/// Implemented by [`AuditStore`], by any `Fn(AuditRecord)` closure (for
/// library users who ship records elsewhere, and for tests), by `()`, which
/// discards records (auditing disabled), and by `Arc` of any sink.
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
