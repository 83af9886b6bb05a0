//! Durable audit store.
//!
//! Every request leaves exactly one [`AuditRecord`]. The request path hands
//! it to an [`AuditSink`]; the built-in sink, [`AuditStore`], writes it to an
//! embedded SQLite database (WAL mode) from a writer thread, in batches, off
//! the request path.
//!
//! # Durability
//!
//! The writer commits a batch when it reaches `batch_max` records (or 16 MiB
//! of bodies), and at the latest `flush_interval` (200 ms) after the batch's
//! first record arrived. The database runs in WAL mode with
//! `synchronous=FULL`, so a committed batch survives `kill -9` and power loss;
//! with a few commits per second the fsync cost is small. A record is
//! therefore durable well within one second of [`AuditStore::submit`].
//! [`AuditStore::shutdown`] (or dropping the store) commits everything queued
//! and joins the writer; [`AuditStore::flush`] waits for a commit without
//! stopping.
//!
//! # Overload policy
//!
//! Between the request path and the writer sits a bounded
//! `std::sync::mpsc::sync_channel` (`queue_capacity`, default 32,768
//! messages: records and staged request bodies). The writer thread runs at
//! nice +10 and yields the CPU after every record ([`WriterPriority`]), so
//! under a saturated CPU it keeps a fair share and this queue is only the
//! backlog of a burst.
//! [`AuditStore::submit`] uses `try_send` and **never blocks**: the request
//! path runs on async worker threads, and blocking one of them on the disk,
//! even "briefly", stalls every other request on that thread — the overload
//! would spread from the audit log to the traffic it is auditing. What
//! happens instead, in order:
//!
//! 1. The queue holds at most `queue_max_bytes` (256 MiB) of bodies. A record
//!    that would go over is queued with its bodies replaced by
//!    [`BODY_SHED_MARKER`] (counted in `bodies_shed`). Bodies (up to 1 MiB
//!    each) are what can exhaust memory, and what costs the writer time.
//! 2. If the queue is full, the record goes to an in-memory **spill**
//!    (`spill_capacity`, default 8192 records) with its bodies shed, and is
//!    counted in `spilled`. A shed record is a few hundred bytes, so the spill
//!    costs little memory, and it still carries what the audit log exists
//!    for: who, which model and provider, status, usage and cost. The writer
//!    takes the whole spill with its next commit.
//! 3. If the spill is full too, the record is dropped and counted in
//!    `dropped` (and [`AuditStore::last_error`] says why). That takes
//!    ~24,000 requests backed up behind a writer that cannot keep up.
//!
//! Why not spill to a file: that is the request path waiting on the disk,
//! and the disk is usually why the writer is behind. Why not an unbounded
//! spill: a writer that is stuck (disk full, file locked) would turn into an
//! out-of-memory kill, which loses everything queued. Nothing is lost
//! silently: `submitted = written + dropped + queue_depth` at every moment,
//! and [`AuditStats`] exposes each term as an atomic the main crate turns
//! into metrics (`audit_queue_depth` is [`AuditStore::queue_depth`]).
//!
//! A failed commit (disk full, a lock held too long) keeps its batch and is
//! retried with back-off; meanwhile the queue and spill absorb new records
//! as above. Failures are never silent: each is counted
//! ([`AuditStats::write_errors`]); the first of an episode and the recovery
//! are logged once each (not per retry); while it lasts
//! [`AuditStats::failing`] is set, [`AuditStore::last_error`] says why, and
//! [`AuditStore::flush`] returns the error instead of waiting. At shutdown
//! the writer tries the commit a few more times, then counts what it still
//! cannot write as dropped, logs it, and [`AuditStore::shutdown`] returns an
//! error.
//!
//! Before each commit the writer compares the device and inode of the file
//! at the path with the file it has open; if the file was deleted or
//! replaced, it closes the old one and opens the path again (recreating the
//! schema), logs it, and counts it in [`AuditStats::reopened`], so records do
//! not go to an unlinked inode. The database and its `-wal`/`-shm` files are
//! created owner-only (0600): they hold every prompt.
//!
//! # Storage
//!
//! One table, `audit_records`, described in the `schema` module (version 2):
//! `seq` (`INTEGER PRIMARY KEY AUTOINCREMENT`, the order for
//! `logs --follow`), scalar columns for the filters (`request_id` and
//! `timestamp_ms` indexed; `provider`, `requested_model`, `served_model`),
//! the record as JSON with its bodies nulled, and the two bodies in their
//! own columns so they are not JSON-escaped twice.
//!
//! Bodies are bytes. One of up to 16 KiB stays inline in its row; a longer
//! one is cut by FastCDC (2 / 8 / 64 KiB min / average / max) on the writer
//! thread, each chunk is stored once in `audit_chunks` under its blake3
//! hash, and the row lists its chunk ids. A coding agent resends its whole
//! conversation every turn, so consecutive requests share nearly all their
//! chunks and each record adds only what is new. Reads reassemble the bodies
//! byte-exact; text (lossy UTF-8) is made only when a record is serialized
//! or printed. A version-1 file is upgraded in place when the writer opens
//! it; its rows keep their inline bodies.
//!
//! When request bodies are logged, `RecordLayer` hands the body to the sink
//! as soon as ingress has read it ([`AuditSink::stage_request_body`]); the
//! store queues it to the writer, which stores it at once and keeps a
//! ticket until the record naming it comes, so the proxy does not hold a
//! 100 KB body for the life of a stream.
//!
//! `request_id` is indexed but not `UNIQUE`: a unique
//! constraint would make a duplicate fail its whole batch or be ignored
//! silently; one record per request is the caller's contract. The store
//! never adds to a record: what is stored is what was submitted (except the
//! overload marker above).
//!
//! # Retention
//!
//! With `retention_days` and/or `max_bytes`, the writer prunes at start-up
//! and every `prune_interval` (5 min) — and, with `max_bytes`, whenever a
//! commit leaves the used pages over it — in small steps between batches: rows
//! older than the cut-off, then the oldest rows until the used pages are at
//! 90 % of `max_bytes` — each deletion releases its rows' chunk references
//! and deletes the chunks no remaining row refers to — then unreferenced
//! chunks left by a crash or an evicted staged body, then
//! `PRAGMA incremental_vacuum` (the file is created
//! with `auto_vacuum=INCREMENTAL`; an older file is converted once with
//! `VACUUM` at open), then a truncating WAL checkpoint, so the file shrinks
//! rather than keeping its high-water mark.
//!
//! # Queries
//!
//! [`AuditReader`] (also reachable as [`AuditStore::query`] and
//! [`AuditStore::query_after`]) opens a read-only connection per call; WAL
//! lets it read while the writer writes, and it never blocks the writer. It
//! works without a running store (the `logs` CLI command). Calls block: from
//! async code use `spawn_blocking`. `since` accepts unix milliseconds or
//! RFC 3339 ([`parse_since`]). [`AuditReader::page`] is the bounded form
//! behind `GET /gateway/audit`: metadata only unless one record or bodies are
//! asked for, at most [`MAX_PAGE_BYTES`] of records per page, and a
//! `next_cursor` to continue.

mod chunks;
mod error;
mod prefix;
mod priority;
mod prune;
mod query;
mod recent;
mod record;
mod schema;
mod store;
mod writer;

#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use error::AuditError;
pub use query::{
    parse_since, AuditDbStats, AuditPage, AuditQuery, AuditReader, DEFAULT_LIMIT, MAX_LIMIT,
    MAX_PAGE_BYTES,
};
pub use record::{AuditAttempt, AuditRecord, AuditUsage};
pub use store::{
    AuditStats, AuditStore, AuditStoreConfig, WriterPriority, BODY_LOST_MARKER, BODY_SHED_MARKER,
};

/// Where audit records go. The request path calls [`submit`](Self::submit)
/// once per request; it must not block.
///
/// Implemented by [`AuditStore`], by any `Fn(AuditRecord)` closure (for
/// library users who ship records elsewhere, and for tests), and by `()`,
/// which discards records (auditing disabled).
///
/// When request bodies are logged, `RecordLayer` hands the body to
/// [`stage_request_body`](Self::stage_request_body) as soon as ingress has
/// read it, so the proxy need not hold it while the answer streams. The
/// provided method keeps it in memory and the record arrives with an inline
/// `request_body`, so a custom sink sees whole records and needs nothing
/// more; [`AuditStore`] overrides it to send the body to its writer at once.
///
/// ```
/// use llm_gateway::audit::{AuditRecord, AuditSink, StagedBody};
///
/// let sink = |record: AuditRecord| assert!(record.request_body.is_some());
/// match sink.stage_request_body(bytes::Bytes::from_static(b"{}")) {
///     StagedBody::Inline(body) => assert_eq!(&body[..], b"{}"),
///     StagedBody::Ticket(_) => unreachable!("the provided method keeps the body"),
/// }
/// ```
pub trait AuditSink: Send + Sync + 'static {
    /// Accept one record. Must return promptly without waiting on I/O.
    ///
    /// A record whose `request_body_ticket` is set names a body this sink
    /// took earlier through [`stage_request_body`](Self::stage_request_body).
    fn submit(&self, record: AuditRecord);

    /// Take a request body ahead of its record (already cut at
    /// `max_body_bytes`). Must not block.
    ///
    /// Returns [`StagedBody::Inline`] with the body when the caller should
    /// keep it and put it in the record (the default), or
    /// [`StagedBody::Ticket`] when the sink took it; the caller then sets the
    /// record's `request_body_ticket` instead, and the sink joins the two.
    fn stage_request_body(&self, body: Bytes) -> StagedBody {
        StagedBody::Inline(body)
    }
}

/// What became of a request body handed to [`AuditSink::stage_request_body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StagedBody {
    /// The caller keeps the body and puts it in the record's `request_body`.
    Inline(Bytes),
    /// The sink took the body; the record names it in `request_body_ticket`.
    Ticket(BodyTicket),
}

/// Names a request body a sink took ahead of its record (see
/// [`AuditSink::stage_request_body`]). Only the sink that issued it can
/// redeem it; elsewhere it means "body not kept".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyTicket {
    /// Which store issued it (process-unique).
    pub(crate) store: u64,
    /// The store's sequence number of the body.
    pub(crate) number: u64,
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

    fn stage_request_body(&self, body: Bytes) -> StagedBody {
        (**self).stage_request_body(body)
    }
}
