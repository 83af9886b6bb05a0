//! [`AuditStore`]: open the database, accept records without blocking,
//! flush, prune, query, shut down.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{mpsc::channel, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::error::AuditError;
pub use super::priority::WriterPriority;
use super::query::{AuditQuery, AuditReader};
use super::recent::RecentBodies;
use super::record::AuditRecord;
use super::schema;
use super::writer::{Msg, Shared, Writer, WriterSettings, MAX_BATCH_BODY_BYTES};
use super::{AuditSink, BodyTicket, StagedBody};

/// What replaces a body the store could not keep because it was overloaded
/// (queue full, or queued bodies over [`AuditStoreConfig::queue_max_bytes`]).
/// The rest of the record is kept.
pub const BODY_SHED_MARKER: &str = "[body not stored: audit queue overloaded]";

/// What replaces a staged request body (see
/// [`AuditSink::stage_request_body`]) that the store no longer held when
/// its record came: evicted past [`AuditStoreConfig::max_staged_bodies`], or
/// staged with another store. Counted in [`AuditStats::staged_lost`].
pub const BODY_LOST_MARKER: &str = "[body not stored: staged body expired before its record]";

/// How often [`AuditStore::flush`] checks, while it waits, whether the store
/// is failing (then it returns the failure instead of waiting for the disk).
pub(crate) const FLUSH_POLL: Duration = Duration::from_millis(100);

/// Tells stores apart, so a ticket is only redeemed by the store that issued it.
static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// Configuration of an [`AuditStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditStoreConfig {
    /// The SQLite file; created (with its directory) if missing.
    pub path: PathBuf,
    /// Messages (records and staged request bodies) the queue between the
    /// request path and the writer holds (default 32,768; 0 is treated as 1).
    /// The writer runs only when the proxy leaves a core idle, so under a
    /// burst that saturates the CPU this is the backlog it catches up on
    /// afterwards: ~16,000 requests. Memory is bounded by `queue_max_bytes`,
    /// not by this count (a slot is ~50 bytes, allocated up front).
    pub queue_capacity: usize,
    /// Records per transaction at most (default 256; 0 is treated as 1). A
    /// batch is also committed once its bodies reach 16 MiB.
    pub batch_max: usize,
    /// How long a record may wait for its batch to fill before the batch is
    /// committed anyway (default 200 ms). Keep it well under one second: the
    /// store promises durability within one second of `submit`.
    pub flush_interval: Duration,
    /// Delete records whose `timestamp_ms` is older than this many days.
    pub retention_days: Option<u32>,
    /// Delete the oldest records while the database's used pages exceed this
    /// many bytes (down to 90 % of it). Counts the main file only; the WAL is
    /// separately capped at 64 MiB after checkpoints.
    pub max_bytes: Option<u64>,
    /// Records that found the queue full and were kept, bodies shed, in the
    /// overflow spill (default 8192; 0 disables the spill).
    pub spill_capacity: usize,
    /// Bodies held in the queue at most, in bytes (default 256 MiB). A record
    /// that would go over is queued with its bodies shed.
    pub queue_max_bytes: usize,
    /// How often retention runs after the one at start-up (default 5 min).
    pub prune_interval: Duration,
    /// Staged request bodies the writer holds awaiting their records, at
    /// most (default 65,536; 0 is treated as 1). Each is a few dozen bytes
    /// (a chunk list) or, for a small body, the body itself. Every request
    /// closes its record, so the cap is only reached with that many streams
    /// open at once; past it the oldest is evicted and its record says
    /// [`BODY_LOST_MARKER`].
    pub max_staged_bodies: usize,
    /// How the writer thread yields the CPU to the proxy (default
    /// [`WriterPriority::Low`]).
    pub writer_priority: WriterPriority,
}

impl AuditStoreConfig {
    /// Defaults with the given path.
    pub fn new(path: impl Into<PathBuf>) -> AuditStoreConfig {
        AuditStoreConfig {
            path: path.into(),
            ..AuditStoreConfig::default()
        }
    }
}

impl Default for AuditStoreConfig {
    /// `llm-gateway-audit.db` in the working directory, no retention, and
    /// the defaults documented on each field.
    fn default() -> Self {
        AuditStoreConfig {
            path: PathBuf::from("llm-gateway-audit.db"),
            queue_capacity: 32_768,
            batch_max: 256,
            flush_interval: Duration::from_millis(200),
            retention_days: None,
            max_bytes: None,
            spill_capacity: 8192,
            queue_max_bytes: 256 * 1024 * 1024,
            prune_interval: Duration::from_secs(300),
            max_staged_bodies: 65_536,
            writer_priority: WriterPriority::Low,
        }
    }
}

/// A snapshot of the store's counters (for metrics and health).
///
/// Every accepted record ends up `written` or `dropped`; `queue_depth` is the
/// number in between. `submitted = written + dropped + queue_depth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AuditStats {
    /// Records submitted and not yet committed (queue + spill + the batch
    /// being written). This is `audit_queue_depth`.
    pub queue_depth: usize,
    /// Body bytes currently held by the queue and the batch.
    pub queued_body_bytes: usize,
    /// Records committed to the database since open.
    pub written: u64,
    /// Records that found the queue full and went to the spill (bodies shed).
    pub spilled: u64,
    /// Records stored with their bodies replaced by [`BODY_SHED_MARKER`]
    /// (spilled ones included).
    pub bodies_shed: u64,
    /// Records lost: queue and spill both full, writer gone, or still failing
    /// to commit at shutdown. Never silent: every one is counted here.
    pub dropped: u64,
    /// Failed commits and prunes (each retried or re-run later).
    pub write_errors: u64,
    /// Records deleted by retention.
    pub pruned: u64,
    /// Request bodies handed to the writer ahead of their records
    /// ([`AuditSink::stage_request_body`]). A body that found the queue full
    /// is not staged: it is shed like a spilled one (counted in
    /// `bodies_shed`) and its record carries [`BODY_SHED_MARKER`].
    pub bodies_staged: u64,
    /// Records whose staged body the store no longer held (evicted past
    /// `max_staged_bodies`) or that named another store's ticket: stored
    /// with [`BODY_LOST_MARKER`].
    pub staged_lost: u64,
    /// Staged bodies evicted, oldest first, while more than
    /// `max_staged_bodies` awaited their records (or forgotten when the file
    /// was reopened: their chunks were in the old file).
    pub staged_evicted: u64,
    /// Whether the store is in a failure episode: the last commit failed and
    /// none has succeeded since. Its records are kept (bounded by the queue
    /// and spill) and retried; [`AuditStore::last_error`] says why.
    pub failing: bool,
    /// Times the writer found the database file deleted or replaced (by
    /// device and inode, checked before each commit) and reopened the path,
    /// recreating the schema.
    pub reopened: u64,
}

/// The durable audit store: a bounded queue in front of one writer thread
/// that commits batches to SQLite. See the [module docs](super) for the
/// design and the overload policy.
///
/// `submit` never blocks and never touches the disk. Queries open their own
/// read-only connection and are blocking calls. Dropping the store (or
/// [`shutdown`](Self::shutdown)) flushes everything queued and joins the
/// writer.
pub struct AuditStore {
    tx: Option<SyncSender<Msg>>,
    handle: Option<JoinHandle<()>>,
    /// The writer thread, to unpark (see [`AuditStore::nudge`]).
    writer: Option<std::thread::Thread>,
    /// Queued records that make a batch's worth: the writer is woken for them.
    wake_records: usize,
    /// Recent staged bodies, so a new one is queued as a shared prefix and its
    /// own tail (see `recent.rs`).
    recent: std::sync::Mutex<RecentBodies>,
    shared: Arc<Shared>,
    reader: AuditReader,
    spill_capacity: usize,
    queue_max_bytes: usize,
    /// This store's id in the tickets it issues.
    id: u64,
    next_ticket: AtomicU64,
}

impl fmt::Debug for AuditStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditStore")
            .field("path", &self.reader.path())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl AuditStore {
    /// Open (or create) the database at `config.path`, bring it to the
    /// current schema, and start the writer thread. Retention, if
    /// configured, starts at once in the background.
    pub fn open(config: AuditStoreConfig) -> Result<AuditStore, AuditError> {
        let conn = schema::open_writer(&config.path)?;
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity.max(1));
        let shared = Arc::new(Shared::default());
        let settings_batch_max = config.batch_max.max(1);
        let settings = WriterSettings {
            batch_max: settings_batch_max,
            flush_interval: config.flush_interval,
            retention_days: config.retention_days,
            max_bytes: config.max_bytes,
            prune_interval: config.prune_interval.max(Duration::from_secs(1)),
            queue_capacity: config.queue_capacity.max(1),
            max_staged: config.max_staged_bodies.max(1),
            chunk_threshold: super::chunks::CHUNK_THRESHOLD,
            priority: config.writer_priority,
            path: config.path.clone(),
        };
        let writer = Writer::new(conn, rx, Arc::clone(&shared), settings);
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run())?;
        Ok(AuditStore {
            tx: Some(tx),
            writer: Some(handle.thread().clone()),
            wake_records: settings_batch_max,
            recent: std::sync::Mutex::default(),
            handle: Some(handle),
            shared,
            reader: AuditReader::new(config.path),
            spill_capacity: config.spill_capacity,
            queue_max_bytes: config.queue_max_bytes,
            id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            next_ticket: AtomicU64::new(1),
        })
    }

    /// Hand a request body to the writer ahead of its record; never blocks.
    ///
    /// The body goes through the same queue as records, so it reaches the
    /// writer before the record that names the returned ticket; the writer
    /// stores it at once (chunked if large) and keeps only the ticket's
    /// chunk list until the record comes. If the queue is full (or queued
    /// bodies are over `queue_max_bytes`), the body is shed instead: the
    /// answer is [`StagedBody::Inline`] with [`BODY_SHED_MARKER`], counted in
    /// [`AuditStats::bodies_shed`], and the record still comes whole.
    pub fn stage_request_body(&self, body: Bytes) -> StagedBody {
        let shared = &*self.shared;
        let shed = || {
            shared.bodies_shed.fetch_add(1, Ordering::Relaxed);
            StagedBody::Inline(Bytes::from_static(BODY_SHED_MARKER.as_bytes()))
        };
        let Some(tx) = &self.tx else {
            return shed();
        };
        let bytes = body.len();
        let before = shared.queued_body_bytes.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) > self.queue_max_bytes {
            shared.queued_body_bytes.fetch_sub(bytes, Ordering::Relaxed);
            return shed();
        }
        let number = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        // Counted whole (conservatively: the shared prefix is not this body's own
        // memory), so `queue_max_bytes` bounds what the writer has to join.
        let body = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .split(body);
        let msg = Msg::Body {
            ticket: number,
            body,
            counted_bytes: bytes,
        };
        match tx.try_send(msg) {
            Ok(()) => {
                self.nudge(false);
                shared.bodies_staged.fetch_add(1, Ordering::Relaxed);
                StagedBody::Ticket(BodyTicket {
                    store: self.id,
                    number,
                })
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                shared.queued_body_bytes.fetch_sub(bytes, Ordering::Relaxed);
                shed()
            }
        }
    }

    /// Hand a record to the writer. Never blocks, never waits on disk.
    ///
    /// Normally the record is queued whole. Under overload, in order: if the
    /// queued bodies would exceed `queue_max_bytes`, the bodies are shed; if
    /// the queue is full, the record goes to the spill with its bodies shed;
    /// if the spill is full too, the record is dropped and counted in
    /// [`AuditStats::dropped`].
    pub fn submit(&self, mut record: AuditRecord) {
        let shared = &*self.shared;
        if record
            .request_body_ticket
            .is_some_and(|ticket| ticket.store != self.id)
        {
            record.request_body_ticket = None;
            record.request_body = Some(Bytes::from_static(BODY_LOST_MARKER.as_bytes()));
            shared.staged_lost.fetch_add(1, Ordering::Relaxed);
        }
        shared.queue_depth.fetch_add(1, Ordering::Relaxed);
        let Some(tx) = &self.tx else {
            shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let bytes = record.body_bytes();
        let before = shared.queued_body_bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut counted = bytes;
        let mut shed = false;
        if bytes > 0 && before.saturating_add(bytes) > self.queue_max_bytes {
            shared.queued_body_bytes.fetch_sub(bytes, Ordering::Relaxed);
            counted = 0;
            shed = shed_bodies(&mut record);
            shared.bodies_shed.fetch_add(1, Ordering::Relaxed);
        }
        let msg = Msg::Record {
            record: Box::new(record),
            counted_bytes: counted,
        };
        let (msg, writer_gone) = match tx.try_send(msg) {
            Ok(()) => {
                self.nudge(false);
                return;
            }
            Err(TrySendError::Full(msg)) => (msg, false),
            Err(TrySendError::Disconnected(msg)) => (msg, true),
        };
        shared
            .queued_body_bytes
            .fetch_sub(counted, Ordering::Relaxed);
        let Msg::Record { mut record, .. } = msg else {
            return;
        };
        if !writer_gone && self.spill_capacity > 0 {
            let mut spill = shared.lock_spill();
            if spill.len() < self.spill_capacity {
                if !shed && shed_bodies(&mut record) {
                    shared.bodies_shed.fetch_add(1, Ordering::Relaxed);
                }
                spill.push_back(*record);
                shared.spilled.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
        shared.dropped.fetch_add(1, Ordering::Relaxed);
        shared.set_error(if writer_gone {
            "audit record dropped: writer thread is not running".to_owned()
        } else {
            "audit record dropped: queue and spill are full".to_owned()
        });
    }

    /// Block until every record submitted before this call is committed.
    /// Not for the request path (it waits for the disk); meant for SIGTERM
    /// handling and tests. Errors if the commit failed (the records stay
    /// queued and are retried). While the writer is stuck on a failing disk
    /// with a full batch it does not read the queue, so this can wait as long
    /// as the disk does; [`shutdown`](Self::shutdown) is the bounded way out.
    ///
    /// While the store is in a failure episode ([`AuditStats::failing`]) this
    /// does not wait for the disk: it returns the failure at once (within
    /// 100 ms), since the records it would wait for are not written.
    pub fn flush(&self) -> Result<(), AuditError> {
        let (ack, done) = channel();
        self.send_control(Msg::Flush(ack))?;
        loop {
            match done.recv_timeout(FLUSH_POLL) {
                Ok(result) => return result.map_err(AuditError::Writer),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(AuditError::WriterGone),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.shared.failing.load(Ordering::Relaxed) {
                        return Err(AuditError::Writer(format!(
                            "{} audit records are not written: {}",
                            self.queue_depth(),
                            self.last_error().unwrap_or_default()
                        )));
                    }
                }
            }
        }
    }

    /// Run retention now and wait for it; returns the number of records
    /// deleted. With no `retention_days`/`max_bytes` it only reclaims free
    /// pages. Blocking, like [`flush`](Self::flush).
    pub fn prune(&self) -> Result<u64, AuditError> {
        let (ack, done) = channel();
        self.send_control(Msg::Prune(ack))?;
        done.recv()
            .map_err(|_| AuditError::WriterGone)?
            .map_err(AuditError::Writer)
    }

    fn send_control(&self, msg: Msg) -> Result<(), AuditError> {
        let tx = self.tx.as_ref().ok_or(AuditError::WriterGone)?;
        tx.send(msg).map_err(|_| AuditError::WriterGone)?;
        self.nudge(true);
        Ok(())
    }

    /// Wake the writer if it is parked and this message needs it now: the first of a
    /// batch (to arm its deadline), a batch's worth queued (records or body bytes),
    /// or a control message (`urgent`). Otherwise it collects the message when its
    /// batch deadline wakes it: no system call per request.
    fn nudge(&self, urgent: bool) {
        let shared = &*self.shared;
        std::sync::atomic::fence(Ordering::SeqCst);
        if !shared.parked.load(Ordering::Relaxed) {
            return;
        }
        let wanted = urgent
            || !shared.batch_open.load(Ordering::Relaxed)
            || shared.queue_depth.load(Ordering::Relaxed) >= self.wake_records
            || shared.queued_body_bytes.load(Ordering::Relaxed) >= MAX_BATCH_BODY_BYTES;
        if wanted && shared.parked.swap(false, Ordering::AcqRel) {
            if let Some(writer) = &self.writer {
                writer.unpark();
            }
        }
    }

    /// Stop accepting, commit everything queued and spilled, join the writer,
    /// and return the final counters. Records that still could not be
    /// committed (after a few tries) are counted in `dropped`, logged, and make
    /// this an [`AuditError::Writer`] naming how many were lost and why.
    pub fn shutdown(mut self) -> Result<AuditStats, AuditError> {
        self.close()?;
        let lost = self.shared.lost_at_shutdown.load(Ordering::Relaxed);
        if lost > 0 {
            return Err(AuditError::Writer(self.last_error().unwrap_or_else(|| {
                format!("{lost} audit records were not written")
            })));
        }
        Ok(self.stats())
    }

    fn close(&mut self) -> Result<(), AuditError> {
        self.shared.closing.store(true, Ordering::Release);
        drop(self.tx.take());
        if let Some(writer) = &self.writer {
            writer.unpark();
        }
        match self.handle.take() {
            Some(handle) => handle.join().map_err(|_| AuditError::WriterGone),
            None => Ok(()),
        }
    }

    #[cfg(test)]
    pub(crate) fn shared_for_tests(&self) -> &Shared {
        &self.shared
    }

    #[cfg(test)]
    pub(crate) fn shared_arc_for_tests(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Current counters.
    pub fn stats(&self) -> AuditStats {
        let s = &*self.shared;
        AuditStats {
            queue_depth: s.queue_depth.load(Ordering::Relaxed),
            queued_body_bytes: s.queued_body_bytes.load(Ordering::Relaxed),
            written: s.written.load(Ordering::Relaxed),
            spilled: s.spilled.load(Ordering::Relaxed),
            bodies_shed: s.bodies_shed.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
            pruned: s.pruned.load(Ordering::Relaxed),
            bodies_staged: s.bodies_staged.load(Ordering::Relaxed),
            staged_lost: s.staged_lost.load(Ordering::Relaxed),
            staged_evicted: s.staged_evicted.load(Ordering::Relaxed),
            failing: s.failing.load(Ordering::Relaxed),
            reopened: s.reopened.load(Ordering::Relaxed),
        }
    }

    /// Records submitted and not yet committed (`audit_queue_depth`).
    pub fn queue_depth(&self) -> usize {
        self.shared.queue_depth.load(Ordering::Relaxed)
    }

    /// Records lost so far (see [`AuditStats::dropped`]).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Records that went to the spill so far (see [`AuditStats::spilled`]).
    pub fn spilled(&self) -> u64 {
        self.shared.spilled.load(Ordering::Relaxed)
    }

    /// The most recent writer or overload error, for health output.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error()
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        self.reader.path()
    }

    /// A reader for the same file (cheap; clone it into `spawn_blocking`).
    pub fn reader(&self) -> &AuditReader {
        &self.reader
    }

    /// See [`AuditReader::query`]: newest first, filtered, limited.
    pub fn query(&self, filter: &AuditQuery) -> Result<Vec<AuditRecord>, AuditError> {
        self.reader.query(filter)
    }

    /// See [`AuditReader::query_after`]: records with `seq > after_seq`,
    /// oldest first.
    pub fn query_after(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<(i64, AuditRecord)>, AuditError> {
        self.reader.query_after(after_seq, limit)
    }
}

impl Drop for AuditStore {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl AuditSink for AuditStore {
    fn submit(&self, record: AuditRecord) {
        AuditStore::submit(self, record);
    }

    fn stage_request_body(&self, body: Bytes) -> StagedBody {
        AuditStore::stage_request_body(self, body)
    }
}

/// Replace present bodies with the marker; true if there was one. A staged
/// request body is already with the writer (it costs the queue nothing) and
/// stays.
fn shed_bodies(record: &mut AuditRecord) -> bool {
    let mut any = false;
    for body in [&mut record.request_body, &mut record.response_body] {
        if body.is_some() {
            *body = Some(Bytes::from_static(BODY_SHED_MARKER.as_bytes()));
            any = true;
        }
    }
    any
}
