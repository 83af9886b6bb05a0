//! The writer thread: receives records from the bounded queue (and the
//! overflow spill), commits them in batches, and prunes in the background.
//!
//! Loop, in short:
//! - wait for a message, at most until the current batch's deadline
//!   (`flush_interval` after its first record), the next prune, or
//!   `flush_interval`, whichever is first;
//! - commit when the batch is full (`batch_max` records or
//!   [`MAX_BATCH_BODY_BYTES`] of bodies) or its deadline passed; a commit
//!   first takes everything in the spill;
//! - a failed commit keeps the batch and is retried with back-off (100 ms
//!   doubling to 2 s); while the batch is full the writer stops receiving, so
//!   the queue and then the spill fill up and the submit side counts what it
//!   cannot hold;
//! - pruning runs in small steps (at most [`PRUNE_CHUNK`](super::prune::PRUNE_CHUNK) rows deleted or
//!   [`VACUUM_CHUNK`](super::prune::VACUUM_CHUNK) pages vacuumed per step, see `prune.rs`) when idle or after a commit, so
//!   a large prune never holds records back for long;
//! - when every sender is gone (shutdown), it drains the queue, takes the
//!   spill, commits (up to [`FINAL_ATTEMPTS`] tries) and exits.
//!
//! Staged request bodies ([`Msg::Body`]) travel the same queue ahead of
//! their records. The writer stores one with the batch it arrived in
//! (chunked when over the threshold) and keeps only a ticket → chunk-list
//! entry until the record naming the ticket comes; FIFO order in the one
//! queue means the body is always there first, except for a record that
//! went to the spill, which waits (bounded) for the body still queued. The
//! entries are bounded ([`WriterSettings::max_staged`], oldest evicted and
//! counted); the record of an evicted one says its body was not kept.
//!
//! The thread runs at nice +10 by default ([`WriterPriority`](super::WriterPriority)):
//! a fair share of a saturated CPU, so the one-second durability bound holds
//! under load. Linux's EEVDF scheduler lets a running task finish its slice
//! before a waking one preempts it, so a writer that ran for milliseconds on
//! a pinned proxy's core delayed that proxy's events by as much; the writer
//! therefore yields the CPU after every record it stores and after every
//! prune step. `SCHED_IDLE` (opt-in) never takes a core from a worker, but on
//! a CPU that other work saturates it gets almost nothing, and an
//! unprivileged thread cannot leave that class again. Whatever the class,
//! when the writer falls behind the queue and then the spill absorb it
//! (bodies shed, counted), never the requests.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{params, Connection, TransactionBehavior};

use super::chunks::{self, StoredBody};
use super::prefix::PrefixCache;
use super::prune::{prune_step, PruneRun};
use super::recent::SplitBody;
use super::record::AuditRecord;
use super::schema::{self, Pages};
use super::store::BODY_LOST_MARKER;

/// A batch is committed early once its bodies reach this many bytes, which
/// keeps one transaction (and so the WAL) from growing to hundreds of MiB
/// when bodies are large.
pub(crate) const MAX_BATCH_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Commit tries at shutdown before the remaining records are counted as
/// dropped.
pub(crate) const FINAL_ATTEMPTS: u32 = 3;
/// Pause between the final tries.
const FINAL_PAUSE: Duration = Duration::from_millis(200);
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const MIN_WAIT: Duration = Duration::from_millis(10);
/// Bytes of small staged bodies the writer holds inline (in memory) while
/// their records are awaited; past this, small ones are chunked too.
const STAGED_INLINE_MAX: usize = 32 * 1024 * 1024;

/// What the submit side sends to the writer.
pub(crate) enum Msg {
    /// One record; `counted_bytes` is what the submit side added to
    /// [`Shared::queued_body_bytes`] for it.
    Record {
        record: Box<AuditRecord>,
        counted_bytes: usize,
    },
    /// A request body staged ahead of its record, which will name `ticket`:
    /// a recent body's prefix and its own tail, joined when the writer takes it.
    Body {
        ticket: u64,
        body: SplitBody,
        counted_bytes: usize,
    },
    /// Commit everything received so far (and the spill), then answer.
    Flush(Sender<Result<(), String>>),
    /// Run a full prune, then answer with the number of rows deleted.
    Prune(Sender<Result<u64, String>>),
}

/// What [`Writer::next_msg`] found.
enum Next {
    Msg(Msg),
    /// Nothing arrived before the wait ended (or an unpark came).
    Idle,
    /// Every sender is gone.
    Closed,
}

/// State shared by the submit side and the writer: the overflow spill and
/// the counters.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The writer is parked, or about to park, on an empty queue: a submitter that
    /// wants it awake swaps this to false and unparks it.
    pub(crate) parked: AtomicBool,
    /// The writer holds messages not yet committed (its batch deadline is armed):
    /// a further message needs no wake-up until a batch's worth is queued.
    pub(crate) batch_open: AtomicBool,
    /// Times the writer came back from parking (for tests of the wake-up policy).
    pub(crate) wakeups: AtomicU64,
    /// Set by the store before it drops the sender: the writer stops
    /// waiting (even while retrying a failed commit) and finishes.
    pub(crate) closing: AtomicBool,
    /// Records accepted (queued or spilled) and not yet committed or dropped.
    pub(crate) queue_depth: AtomicUsize,
    /// Body bytes of records in the queue and the batch.
    pub(crate) queued_body_bytes: AtomicUsize,
    /// Records that found the queue full; their bodies were shed.
    pub(crate) spill: Mutex<VecDeque<AuditRecord>>,
    pub(crate) written: AtomicU64,
    pub(crate) spilled: AtomicU64,
    pub(crate) bodies_shed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) pruned: AtomicU64,
    pub(crate) bodies_staged: AtomicU64,
    pub(crate) staged_lost: AtomicU64,
    pub(crate) staged_evicted: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
    /// The last commit failed and none has succeeded since: the store is in a
    /// failure episode (logged once when it starts and once when it ends).
    pub(crate) failing: AtomicBool,
    /// Times the writer found its file deleted or replaced and reopened the path.
    pub(crate) reopened: AtomicU64,
    /// Records that could not be written at shutdown (counted in `dropped` too);
    /// non-zero makes the store's shutdown an error.
    pub(crate) lost_at_shutdown: AtomicU64,
    /// The writer thread's kernel id, once it runs (0 before; tests read its
    /// scheduling from `/proc`).
    pub(crate) writer_tid: std::sync::atomic::AtomicI32,
}

impl Shared {
    pub(crate) fn lock_spill(&self) -> MutexGuard<'_, VecDeque<AuditRecord>> {
        self.spill.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_error(&self, message: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(message);
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `n` accepted records are gone for good (counted, never silent).
    fn lose(&self, n: usize, bytes: usize) {
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        self.queue_depth.fetch_sub(n, Ordering::Relaxed);
        self.queued_body_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The writer's knobs, taken from the store's config.
#[derive(Debug, Clone)]
pub(crate) struct WriterSettings {
    pub(crate) batch_max: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) retention_days: Option<u32>,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) prune_interval: Duration,
    /// The queue's capacity: bounds how long a spilled record waits for a
    /// staged body still in the queue.
    pub(crate) queue_capacity: usize,
    /// How the thread yields the CPU (set once, when it starts).
    pub(crate) priority: super::store::WriterPriority,
    /// Staged bodies held awaiting their records at most.
    pub(crate) max_staged: usize,
    /// Bodies longer than this are chunked.
    pub(crate) chunk_threshold: usize,
    /// The database file, checked before each commit: if it was deleted or
    /// replaced, the writer reopens (recreates) it.
    pub(crate) path: std::path::PathBuf,
}

impl WriterSettings {
    fn retention_enabled(&self) -> bool {
        self.retention_days.is_some() || self.max_bytes.is_some()
    }
}

/// A record ready for the INSERT: scalar columns, the JSON of the record
/// without its bodies, and the bodies on their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) request_id: String,
    pub(crate) timestamp_ms: i64,
    pub(crate) provider: Option<String>,
    pub(crate) requested_model: Option<String>,
    pub(crate) served_model: Option<String>,
    pub(crate) record_json: String,
    pub(crate) request_body: Option<Bytes>,
    pub(crate) response_body: Option<Bytes>,
    /// The staged request body this record names, if any.
    pub(crate) request_ticket: Option<u64>,
    counted_bytes: usize,
}

impl Row {
    pub(crate) fn new(mut record: AuditRecord, counted_bytes: usize) -> Row {
        let request_body = record.request_body.take();
        let response_body = record.response_body.take();
        let request_ticket = record.request_body_ticket.take().map(|t| t.number);
        let record_json = serde_json::to_string(&record).unwrap_or_else(|e| {
            // Cannot happen for these types; keep the row rather than lose it.
            serde_json::json!({
                "request_id": record.request_id,
                "timestamp_ms": record.timestamp_ms,
                "endpoint": record.endpoint,
                "status": record.status,
                "stream": record.stream,
                "latency_ms": record.latency_ms,
                "outcome": record.outcome,
                "error": format!("audit record could not be encoded: {e}"),
            })
            .to_string()
        });
        Row {
            request_id: record.request_id,
            timestamp_ms: record.timestamp_ms,
            provider: record.provider,
            requested_model: record.requested_model,
            served_model: record.served_model,
            record_json,
            request_body,
            response_body,
            request_ticket,
            counted_bytes,
        }
    }

    fn body_bytes(&self) -> usize {
        self.request_body.as_ref().map_or(0, Bytes::len)
            + self.response_body.as_ref().map_or(0, Bytes::len)
    }
}

/// One item of a batch, in arrival order.
#[derive(Debug)]
pub(crate) enum Pending {
    Row(Row),
    Body {
        ticket: u64,
        body: Bytes,
        counted_bytes: usize,
    },
}

impl Pending {
    fn counted_bytes(&self) -> usize {
        match self {
            Pending::Row(r) => r.counted_bytes,
            Pending::Body { counted_bytes, .. } => *counted_bytes,
        }
    }
}

/// What a committed batch changed in the writer's staged-body map.
#[derive(Debug, Default)]
pub(crate) struct BatchOutcome {
    /// Bodies staged by this batch whose records have not come yet.
    pub(crate) staged: Vec<(u64, StoredBody)>,
    /// Earlier staged bodies whose records this batch wrote.
    pub(crate) redeemed: Vec<u64>,
    /// Records whose staged body was not there (evicted).
    pub(crate) lost: u64,
}

/// Write `batch` in one IMMEDIATE transaction: all or none. Bodies over
/// `threshold` are chunked; staged bodies are stored when they come and
/// joined to their records through `tickets` (earlier batches) or this
/// batch. `inline_room` is how many bytes of small staged bodies may still
/// be held inline. Chunked request bodies go through `cache`, whose entries
/// from this batch are committed with the transaction or dropped with it.
pub(crate) fn write_batch(
    conn: &mut Connection,
    batch: &[Pending],
    tickets: &BTreeMap<u64, StoredBody>,
    threshold: usize,
    inline_room: usize,
    cache: &mut PrefixCache,
) -> rusqlite::Result<BatchOutcome> {
    let result = write_batch_tx(conn, batch, tickets, threshold, inline_room, cache);
    match result {
        Ok(_) => cache.commit(),
        Err(_) => cache.rollback(),
    }
    result
}

/// [`write_batch`] up to and including the commit.
fn write_batch_tx(
    conn: &mut Connection,
    batch: &[Pending],
    tickets: &BTreeMap<u64, StoredBody>,
    threshold: usize,
    mut inline_room: usize,
    cache: &mut PrefixCache,
) -> rusqlite::Result<BatchOutcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcome = BatchOutcome::default();
    let mut staged_here: HashMap<u64, StoredBody> = HashMap::new();
    let mut refs: HashMap<i64, i64> = HashMap::new();
    {
        let mut insert = tx.prepare_cached(schema::INSERT)?;
        // Request bodies go through the prefix cache; responses do not: they
        // are generated text, unique per record, so a lookup would find
        // nothing and keeping them would only push request bodies out.
        let store =
            |body: &Bytes, cache: Option<&mut PrefixCache>| -> rusqlite::Result<StoredBody> {
                Ok(if body.len() <= threshold {
                    StoredBody::Inline(body.clone())
                } else if let Some(cache) = cache {
                    StoredBody::Chunks(chunks::store_chunks_cached(&tx, body, cache)?)
                } else {
                    StoredBody::Chunks(chunks::store_chunks(&tx, body)?)
                })
            };
        for item in batch {
            // Give a worker that woke meanwhile its core back now, rather than
            // when this thread's scheduler slice ends (see the module docs).
            thread::yield_now();
            let r = match item {
                Pending::Body { ticket, body, .. } => {
                    let stored = if body.len() <= threshold && body.len() <= inline_room {
                        inline_room -= body.len();
                        StoredBody::Inline(body.clone())
                    } else {
                        StoredBody::Chunks(chunks::store_chunks_cached(&tx, body, cache)?)
                    };
                    staged_here.insert(*ticket, stored);
                    continue;
                }
                Pending::Row(r) => r,
            };
            let request = match r.request_ticket {
                Some(t) => Some(match staged_here.remove(&t) {
                    Some(stored) => stored,
                    None => match tickets.get(&t) {
                        Some(stored) => {
                            outcome.redeemed.push(t);
                            stored.clone()
                        }
                        None => {
                            outcome.lost += 1;
                            StoredBody::Inline(Bytes::from_static(BODY_LOST_MARKER.as_bytes()))
                        }
                    },
                }),
                None => match &r.request_body {
                    Some(body) => Some(store(body, Some(&mut *cache))?),
                    None => None,
                },
            };
            let response = match &r.response_body {
                Some(body) => Some(store(body, None)?),
                None => None,
            };
            for body in [&request, &response].into_iter().flatten() {
                if let StoredBody::Chunks(ids) = body {
                    chunks::count_refs(ids, 1, &mut refs);
                }
            }
            insert.execute(params![
                r.request_id,
                r.timestamp_ms,
                r.provider,
                r.requested_model,
                r.served_model,
                r.record_json,
                request.as_ref().and_then(StoredBody::inline_param),
                response.as_ref().and_then(StoredBody::inline_param),
                request.as_ref().and_then(StoredBody::chunks_param),
                response.as_ref().and_then(StoredBody::chunks_param),
            ])?;
        }
    }
    chunks::apply_refs(&tx, &refs)?;
    tx.commit()?;
    outcome.staged = staged_here.into_iter().collect();
    Ok(outcome)
}

pub(crate) fn pages(conn: &Connection) -> rusqlite::Result<Pages> {
    Pages::read(conn)
}

/// `now + d`, saturating instead of panicking on an absurd duration.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A spilled record whose staged body was still in the queue when the
/// spill was taken; it waits until the body comes or `give_up_at`
/// messages have been received (by then the body, queued before the record
/// was spilled, must have come).
#[derive(Debug)]
struct Waiting {
    row: Row,
    give_up_at: u64,
}

/// The writer thread's state.
pub(crate) struct Writer {
    conn: Connection,
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    settings: WriterSettings,
    batch: Vec<Pending>,
    batch_rows: usize,
    batch_bytes: usize,
    deadline: Option<Instant>,
    retry_at: Option<Instant>,
    backoff: Duration,
    open: bool,
    prune: Option<PruneRun>,
    prune_waiters: Vec<Sender<Result<u64, String>>>,
    next_prune: Instant,
    /// Staged bodies stored, awaiting their records (oldest ticket first).
    tickets: BTreeMap<u64, StoredBody>,
    /// Bytes of the `Inline` entries in `tickets`.
    tickets_inline_bytes: usize,
    /// Spilled records waiting for their staged body.
    waiting: Vec<Waiting>,
    /// Messages received so far (the clock for `waiting`).
    received: u64,
    /// Recently chunked request bodies, so the next turn of a conversation
    /// chunks only what it adds (see [`super::prefix`]). Holds up to
    /// [`super::prefix::MAX_BYTES`] of bodies alive.
    prefix_cache: PrefixCache,
    /// Device and inode of the file `conn` has open; `None` after a reopen
    /// failed (then `conn` is a placeholder and nothing is committed to it).
    file: Option<FileId>,
}

/// A file's identity: device and inode.
type FileId = (u64, u64);

/// The identity of the file at `path` now.
#[cfg(unix)]
fn file_id(path: &std::path::Path) -> std::io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// Without inodes, the file always counts as the one opened.
#[cfg(not(unix))]
fn file_id(_path: &std::path::Path) -> std::io::Result<FileId> {
    Ok((0, 0))
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        rx: Receiver<Msg>,
        shared: Arc<Shared>,
        settings: WriterSettings,
    ) -> Writer {
        let next_prune = later(Instant::now(), settings.prune_interval);
        let file = file_id(&settings.path).ok();
        Writer {
            conn,
            rx,
            shared,
            batch: Vec::with_capacity(settings.batch_max.min(4096)),
            settings,
            batch_rows: 0,
            batch_bytes: 0,
            deadline: None,
            retry_at: None,
            backoff: INITIAL_BACKOFF,
            open: true,
            prune: None,
            prune_waiters: Vec::new(),
            next_prune,
            tickets: BTreeMap::new(),
            tickets_inline_bytes: 0,
            waiting: Vec::new(),
            received: 0,
            prefix_cache: PrefixCache::new(),
            file,
        }
    }

    /// Make sure `conn` writes to the file at the configured path: if that
    /// file was deleted or replaced since it was opened (its device/inode
    /// differ, one `stat` per commit), close the old connection and open the
    /// path again, recreating the schema. Errors when the path cannot be
    /// (re)opened; the batch is then kept and retried like any failed commit.
    fn ensure_file(&mut self) -> Result<(), String> {
        let now = file_id(&self.settings.path);
        if let (Some(open), Ok(now)) = (self.file, &now) {
            if open == *now {
                return Ok(());
            }
        }
        if let (Some(_), Err(e)) = (self.file, &now) {
            if e.kind() != std::io::ErrorKind::NotFound {
                // Cannot tell (e.g. a permission change on the directory): keep writing.
                return Ok(());
            }
        }
        if self.file.is_some() {
            tracing::warn!(
                path = %self.settings.path.display(),
                "audit store: the database file was deleted or replaced; reopening it"
            );
        }
        // Close the old connection before opening the path again: closing
        // it removes its WAL by name, which must not be the new file's.
        self.file = None;
        match Connection::open_in_memory() {
            Ok(placeholder) => drop(std::mem::replace(&mut self.conn, placeholder)),
            Err(e) => return Err(format!("cannot close the replaced audit file: {e}")),
        }
        // Chunk ids and cached prefixes name rows of the old file.
        self.prefix_cache.clear();
        let before = self.tickets.len();
        self.tickets
            .retain(|_, stored| matches!(stored, StoredBody::Inline(_)));
        self.tickets_inline_bytes = self
            .tickets
            .values()
            .map(|s| match s {
                StoredBody::Inline(b) => b.len(),
                StoredBody::Chunks(_) => 0,
            })
            .sum();
        let forgotten = (before - self.tickets.len()) as u64;
        self.shared
            .staged_evicted
            .fetch_add(forgotten, Ordering::Relaxed);
        match schema::open_writer(&self.settings.path) {
            Ok(conn) => {
                self.conn = conn;
                self.file = file_id(&self.settings.path).ok();
                self.shared.reopened.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    path = %self.settings.path.display(),
                    "audit store: reopened the database file; records from now on go to it"
                );
                Ok(())
            }
            Err(e) => Err(format!(
                "cannot reopen {}: {e}",
                self.settings.path.display()
            )),
        }
    }

    /// A commit failed: count it, keep the reason, and log the start of a
    /// failure episode (once, not per retry).
    fn commit_failed(&mut self, message: &str) {
        self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
        self.shared.set_error(message.to_owned());
        if !self.shared.failing.swap(true, Ordering::Relaxed) {
            tracing::error!(
                path = %self.settings.path.display(),
                error = %message,
                "audit store: writes are failing; records are kept in memory (bounded) and retried"
            );
        }
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// The thread body. Returns when every sender is gone and everything
    /// was committed (or counted as dropped).
    pub(crate) fn run(mut self) {
        #[cfg(target_os = "linux")]
        self.shared.writer_tid.store(
            rustix::thread::gettid().as_raw_nonzero().get(),
            Ordering::Relaxed,
        );
        super::priority::apply(self.settings.priority);
        if self.settings.retention_enabled() {
            self.prune = Some(PruneRun::default());
        }
        while self.open {
            if self.shared.closing.load(Ordering::Acquire) {
                break;
            }
            let now = Instant::now();
            let mut idle = false;
            if self.batch_full() {
                // Only here when a commit failed: wait for the retry.
                thread::sleep(self.wait_time(now));
            } else {
                match self.next_msg(now) {
                    Next::Msg(msg) => self.handle(msg),
                    Next::Idle => idle = true,
                    Next::Closed => self.open = false,
                }
            }
            if !self.open {
                break;
            }
            let now = Instant::now();
            self.arm_deadline(now);
            let mut committed = false;
            if self.commit_due(now) {
                committed = self.commit().is_ok();
            }
            if committed && self.prune.is_none() && self.over_size_cap() {
                // The size cap holds between the periodic runs too: without this
                // check a busy gateway overshoots it by what it writes in one
                // `prune_interval`.
                self.prune = Some(PruneRun::default());
            }
            // Prune steps go between batches: when idle, or right after a
            // commit, so a long prune slows intake only a little.
            if (idle || committed) && self.retry_at.is_none() {
                self.prune_once();
            }
            if now >= self.next_prune {
                self.next_prune = later(now, self.settings.prune_interval);
                if self.settings.retention_enabled() && self.prune.is_none() {
                    self.prune = Some(PruneRun::default());
                }
            }
            self.shared
                .batch_open
                .store(self.deadline.is_some(), Ordering::Relaxed);
        }
        self.finish();
    }

    /// The next message, without a wake-up per message: drain what is queued; when the
    /// queue is empty, park until the deadline (or the idle wait). Submitters unpark
    /// the writer only for the first message of a batch, a full batch's worth, or a
    /// control message (see `Shared::parked`), so a busy gateway wakes it a few times
    /// a batch, not twice a request — each wake-up was a context switch on the
    /// request path's core. A lost unpark costs at most the park's timeout.
    fn next_msg(&mut self, now: Instant) -> Next {
        match self.rx.try_recv() {
            Ok(msg) => return Next::Msg(msg),
            Err(TryRecvError::Disconnected) => return Next::Closed,
            Err(TryRecvError::Empty) => {}
        }
        self.shared.parked.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        // Re-check after announcing the park: a message sent before the announcement
        // is seen here; one sent after it finds `parked` set and unparks.
        let next = match self.rx.try_recv() {
            Ok(msg) => Next::Msg(msg),
            Err(TryRecvError::Disconnected) => Next::Closed,
            Err(TryRecvError::Empty) => {
                if !self.shared.closing.load(Ordering::Acquire) {
                    thread::park_timeout(self.wait_time(now));
                    self.shared.wakeups.fetch_add(1, Ordering::Relaxed);
                }
                Next::Idle
            }
        };
        self.shared.parked.store(false, Ordering::Relaxed);
        next
    }

    fn handle(&mut self, msg: Msg) {
        self.received += 1;
        match msg {
            Msg::Record {
                record,
                counted_bytes,
            } => self.push_row(Row::new(*record, counted_bytes)),
            Msg::Body {
                ticket,
                body,
                counted_bytes,
            } => {
                let body = body.join();
                self.batch_bytes += body.len();
                self.batch.push(Pending::Body {
                    ticket,
                    body,
                    counted_bytes,
                });
            }
            Msg::Flush(ack) => {
                let result = self.commit();
                let _ = ack.send(result);
            }
            Msg::Prune(ack) => {
                self.prune_waiters.push(ack);
                self.prune.get_or_insert_with(PruneRun::default);
            }
        }
    }

    fn push_row(&mut self, row: Row) {
        self.batch_bytes += row.body_bytes();
        self.batch_rows += 1;
        self.batch.push(Pending::Row(row));
    }

    fn batch_full(&self) -> bool {
        self.batch_rows >= self.settings.batch_max || self.batch_bytes >= MAX_BATCH_BODY_BYTES
    }

    /// Start the flush clock when something is pending and it is not running.
    fn arm_deadline(&mut self, now: Instant) {
        if self.deadline.is_none()
            && (!self.batch.is_empty()
                || !self.waiting.is_empty()
                || !self.shared.lock_spill().is_empty())
        {
            self.deadline = Some(later(now, self.settings.flush_interval));
        }
    }

    fn commit_due(&self, now: Instant) -> bool {
        let Some(deadline) = self.deadline else {
            return false;
        };
        let retry_ok = self.retry_at.is_none_or(|t| t <= now);
        retry_ok && (deadline <= now || self.batch_full())
    }

    fn wait_time(&self, now: Instant) -> Duration {
        let cap = self.settings.flush_interval.max(MIN_WAIT);
        if self.prune.is_some() && self.retry_at.is_none() {
            return Duration::ZERO;
        }
        let mut until = self.next_prune;
        if let Some(deadline) = self.deadline {
            let due = if self.batch_full() { now } else { deadline };
            until = until.min(self.retry_at.map_or(due, |r| r.max(due)));
        }
        until.saturating_duration_since(now).min(cap)
    }

    /// Whether the staged body `ticket` is stored or in the batch.
    fn has_ticket(&self, ticket: u64) -> bool {
        self.tickets.contains_key(&ticket)
            || self
                .batch
                .iter()
                .any(|p| matches!(p, Pending::Body { ticket: t, .. } if *t == ticket))
    }

    /// Move the spill into the batch, except records whose staged body has
    /// not come yet; and move waiting records whose body came (or whose wait
    /// is over: they are written with the lost-body marker) into the batch.
    /// `all` ends every wait (shutdown, with the queue drained).
    fn gather(&mut self, all: bool) {
        let spilled = std::mem::take(&mut *self.shared.lock_spill());
        let give_up_at = self.received + self.settings.queue_capacity as u64;
        for record in spilled {
            let row = Row::new(record, 0);
            match row.request_ticket {
                Some(t) if !self.has_ticket(t) => self.waiting.push(Waiting { row, give_up_at }),
                _ => self.push_row(row),
            }
        }
        let waiting = std::mem::take(&mut self.waiting);
        for w in waiting {
            let ready = w.row.request_ticket.is_none_or(|t| self.has_ticket(t));
            if ready || all || self.received >= w.give_up_at {
                self.push_row(w.row);
            } else {
                self.waiting.push(w);
            }
        }
    }

    /// Take the spill and commit everything pending in one transaction.
    fn commit(&mut self) -> Result<(), String> {
        self.commit_gathering(false)
    }

    fn commit_gathering(&mut self, all: bool) -> Result<(), String> {
        self.gather(all);
        if self.batch.is_empty() {
            self.deadline = None;
            return Ok(());
        }
        if let Err(e) = self.ensure_file() {
            let message = format!("commit of {} records failed: {e}", self.batch_rows);
            self.commit_failed(&message);
            return Err(message);
        }
        let inline_room = STAGED_INLINE_MAX.saturating_sub(self.tickets_inline_bytes);
        match write_batch(
            &mut self.conn,
            &self.batch,
            &self.tickets,
            self.settings.chunk_threshold,
            inline_room,
            &mut self.prefix_cache,
        ) {
            Ok(outcome) => {
                let n = self.batch_rows;
                let counted: usize = self.batch.iter().map(Pending::counted_bytes).sum();
                self.shared.written.fetch_add(n as u64, Ordering::Relaxed);
                self.shared.queue_depth.fetch_sub(n, Ordering::Relaxed);
                self.shared
                    .queued_body_bytes
                    .fetch_sub(counted, Ordering::Relaxed);
                self.apply(outcome);
                self.batch.clear();
                self.batch_rows = 0;
                self.batch_bytes = 0;
                self.deadline = None;
                self.retry_at = None;
                self.backoff = INITIAL_BACKOFF;
                if self.shared.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        path = %self.settings.path.display(),
                        records = n,
                        "audit store: writes recovered; the kept records are committed"
                    );
                }
                Ok(())
            }
            Err(e) => {
                let message = format!("commit of {} records failed: {e}", self.batch_rows);
                self.commit_failed(&message);
                Err(message)
            }
        }
    }

    /// Update the staged-body map after a commit, evicting the oldest
    /// entries past the cap.
    fn apply(&mut self, outcome: BatchOutcome) {
        for ticket in outcome.redeemed {
            self.forget(ticket);
        }
        for (ticket, stored) in outcome.staged {
            if let StoredBody::Inline(b) = &stored {
                self.tickets_inline_bytes += b.len();
            }
            self.tickets.insert(ticket, stored);
        }
        self.shared
            .staged_lost
            .fetch_add(outcome.lost, Ordering::Relaxed);
        let mut evicted = 0;
        while self.tickets.len() > self.settings.max_staged {
            if let Some((&ticket, _)) = self.tickets.first_key_value() {
                self.forget(ticket);
                evicted += 1;
            }
        }
        if evicted > 0 {
            self.shared
                .staged_evicted
                .fetch_add(evicted, Ordering::Relaxed);
            self.shared.set_error(format!(
                "{evicted} staged request bodies were evicted before their records came"
            ));
        }
    }

    fn forget(&mut self, ticket: u64) {
        if let Some(StoredBody::Inline(b)) = self.tickets.remove(&ticket) {
            self.tickets_inline_bytes -= b.len();
        }
    }

    /// Whether the file's used pages exceed `max_bytes` (two cheap pragmas).
    fn over_size_cap(&self) -> bool {
        self.settings
            .max_bytes
            .is_some_and(|max| pages(&self.conn).is_ok_and(|p| p.used_bytes() > max))
    }

    /// Chunks held for staged bodies: retention must not delete them.
    fn pinned(&self) -> HashSet<i64> {
        self.tickets
            .values()
            .filter_map(|s| match s {
                StoredBody::Chunks(ids) => Some(ids.iter().copied()),
                StoredBody::Inline(_) => None,
            })
            .flatten()
            .collect()
    }

    fn prune_once(&mut self) {
        if self.prune.is_none() {
            return;
        }
        let pinned = self.pinned();
        let Some(run) = self.prune.as_mut() else {
            return;
        };
        let chunks_before = run.chunks_deleted;
        let result = prune_step(&self.conn, &self.settings, run, now_ms(), &pinned);
        thread::yield_now();
        if result.is_err() || run.chunks_deleted != chunks_before {
            // The cache may name a chunk just deleted (whose id SQLite may
            // give to a new chunk); after a failed step, assume it does.
            self.prefix_cache.clear();
        }
        let deleted = run.deleted;
        match result {
            Ok(true) => return,
            Ok(false) => {
                self.shared.pruned.fetch_add(deleted, Ordering::Relaxed);
                for ack in self.prune_waiters.drain(..) {
                    let _ = ack.send(Ok(deleted));
                }
            }
            Err(e) => {
                let message = format!("prune failed: {e}");
                self.shared.pruned.fetch_add(deleted, Ordering::Relaxed);
                self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                self.shared.set_error(message.clone());
                for ack in self.prune_waiters.drain(..) {
                    let _ = ack.send(Err(message.clone()));
                }
            }
        }
        self.prune = None;
    }

    /// Shutdown: take what is still in the queue, commit everything (a few
    /// tries), then count what could not be written as dropped.
    fn finish(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            self.handle(msg);
        }
        for attempt in 1..=FINAL_ATTEMPTS {
            if self.commit_gathering(true).is_ok() {
                break;
            }
            if attempt < FINAL_ATTEMPTS {
                thread::sleep(FINAL_PAUSE);
            }
        }
        if !self.batch.is_empty() {
            let n = self.batch_rows;
            let counted: usize = self.batch.iter().map(Pending::counted_bytes).sum();
            self.shared.lose(n, counted);
            let message = format!(
                "{n} audit records could not be written at shutdown and were dropped: {}",
                self.shared.last_error().unwrap_or_default()
            );
            tracing::error!("audit store: {message}");
            self.shared.set_error(message);
            self.shared
                .lost_at_shutdown
                .fetch_add(n as u64, Ordering::Relaxed);
            self.batch.clear();
        }
        for ack in self.prune_waiters.drain(..) {
            let _ = ack.send(Err("audit store shut down".to_owned()));
        }
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::prune::MS_PER_DAY;
    use crate::audit::tests::prose;

    fn rec(id: &str, ts: i64, body: usize) -> AuditRecord {
        AuditRecord {
            request_id: id.into(),
            timestamp_ms: ts,
            provider: Some("p".into()),
            requested_model: Some("m".into()),
            endpoint: "messages".into(),
            status: 200,
            outcome: "complete".into(),
            request_body: Some("x".repeat(body).into()),
            response_body: Some("y".repeat(body / 2).into()),
            ..Default::default()
        }
    }

    /// Write rows as one batch (no staged bodies), chunking past the default
    /// threshold.
    fn insert_rows(conn: &mut Connection, rows: &[Row]) -> rusqlite::Result<()> {
        let batch: Vec<Pending> = rows.iter().cloned().map(Pending::Row).collect();
        write_batch(
            conn,
            &batch,
            &BTreeMap::new(),
            chunks::CHUNK_THRESHOLD,
            usize::MAX,
            &mut PrefixCache::new(),
        )
        .map(|_| ())
    }

    fn settings(retention_days: Option<u32>, max_bytes: Option<u64>) -> WriterSettings {
        WriterSettings {
            batch_max: 10,
            flush_interval: Duration::from_millis(50),
            retention_days,
            max_bytes,
            prune_interval: Duration::from_secs(300),
            queue_capacity: 16,
            max_staged: 16,
            chunk_threshold: chunks::CHUNK_THRESHOLD,
            priority: crate::audit::WriterPriority::Idle,
            path: std::path::PathBuf::from("unused.db"),
        }
    }

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM audit_records", [], |r| r.get(0))
            .unwrap()
    }

    fn prune_all(conn: &Connection, s: &WriterSettings, now: i64) -> u64 {
        let mut run = PruneRun::default();
        let mut steps = 0;
        while prune_step(conn, s, &mut run, now, &HashSet::new()).unwrap() {
            steps += 1;
            assert!(steps < 10_000, "prune does not terminate");
        }
        run.deleted
    }

    #[test]
    fn row_keeps_bodies_out_of_the_json() {
        let r = rec("a", 5, 10);
        let row = Row::new(r.clone(), 15);
        assert_eq!(row.request_body, r.request_body);
        assert_eq!(row.response_body, r.response_body);
        let v: serde_json::Value = serde_json::from_str(&row.record_json).unwrap();
        assert!(v["request_body"].is_null());
        assert!(v["response_body"].is_null());
        assert_eq!(v["request_id"], "a");
        assert_eq!(row.counted_bytes, 15);
    }

    #[test]
    fn insert_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = schema::open_writer(&dir.path().join("a.db")).unwrap();
        let rows: Vec<Row> = (0..5)
            .map(|i| Row::new(rec(&i.to_string(), i, 4), 0))
            .collect();
        insert_rows(&mut conn, &rows).unwrap();
        assert_eq!(count(&conn), 5);
        // Hold the write lock elsewhere: the insert fails and leaves nothing.
        let other = Connection::open(dir.path().join("a.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.busy_timeout(Duration::from_millis(10)).unwrap();
        assert!(insert_rows(&mut conn, &rows).is_err());
        other.execute_batch("ROLLBACK").unwrap();
        assert_eq!(count(&conn), 5);
    }

    #[test]
    fn prune_by_age_deletes_only_old_rows_and_shrinks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = schema::open_writer(&dir.path().join("a.db")).unwrap();
        let now = 100 * MS_PER_DAY;
        let mut rows: Vec<Row> = (0..300)
            .map(|i| Row::new(rec(&format!("old{i}"), now - 30 * MS_PER_DAY + i, 4000), 0))
            .collect();
        rows.extend((0..20).map(|i| Row::new(rec(&format!("new{i}"), now - i, 4000), 0)));
        insert_rows(&mut conn, &rows).unwrap();
        let before = pages(&conn).unwrap();
        let deleted = prune_all(&conn, &settings(Some(7), None), now);
        assert_eq!(deleted, 300);
        assert_eq!(count(&conn), 20);
        let after = pages(&conn).unwrap();
        assert_eq!(after.freelist_count, 0, "vacuum released the free pages");
        assert!(
            after.page_count * 5 < before.page_count,
            "pages {} -> {}",
            before.page_count,
            after.page_count
        );
        // Nothing more to do on a second run.
        assert_eq!(prune_all(&conn, &settings(Some(7), None), now), 0);
    }

    #[test]
    fn prune_by_size_keeps_the_newest_under_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = schema::open_writer(&dir.path().join("a.db")).unwrap();
        let rows: Vec<Row> = (0..200)
            .map(|i| Row::new(rec(&format!("r{i:03}"), i, 8000), 0))
            .collect();
        insert_rows(&mut conn, &rows).unwrap();
        let used = pages(&conn).unwrap().used_bytes();
        let max = used / 4;
        let deleted = prune_all(&conn, &settings(None, Some(max)), 0);
        assert!(deleted > 100, "deleted {deleted}");
        let after = pages(&conn).unwrap();
        assert!(after.used_bytes() <= max, "{} > {max}", after.used_bytes());
        assert_eq!(after.freelist_count, 0);
        // The survivors are the newest ones.
        let oldest: String = conn
            .query_row(
                "SELECT request_id FROM audit_records ORDER BY seq LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(oldest, format!("r{deleted:03}"));
        let newest: String = conn
            .query_row(
                "SELECT request_id FROM audit_records ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(newest, "r199");
    }

    fn row_with(id: &str, body: &str) -> Pending {
        let mut r = rec(id, 1, 0);
        r.request_body = Some(body.to_owned().into());
        r.response_body = None;
        Pending::Row(Row::new(r, 0))
    }

    #[test]
    fn a_rolled_back_batch_leaves_nothing_in_the_prefix_cache() {
        // Batch 2 stores B (A's prefix + a tail: new chunks) and then fails.
        // Its new chunk ids are rolled back and SQLite hands them out again
        // in batch 3; had the cache kept B, C (B + more) would list B's
        // vanished ids, now holding C's other bytes.
        let dir = tempfile::tempdir().unwrap();
        let mut conn = schema::open_writer(&dir.path().join("a.db")).unwrap();
        let mut cache = PrefixCache::new();
        let a = prose(1, 90_000);
        let b = format!("{a}{}", prose(2, 20_000));
        let c = format!("{b}{}", prose(3, 20_000));
        let write = |conn: &mut Connection, cache: &mut PrefixCache, batch: &[Pending]| {
            write_batch(
                conn,
                batch,
                &BTreeMap::new(),
                chunks::CHUNK_THRESHOLD,
                usize::MAX,
                cache,
            )
        };
        write(&mut conn, &mut cache, &[row_with("a", &a)]).unwrap();
        conn.execute_batch(
            "CREATE TEMP TRIGGER boom BEFORE INSERT ON main.audit_records \
             WHEN NEW.request_id = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
        .unwrap();
        let failed = write(
            &mut conn,
            &mut cache,
            &[row_with("b", &b), row_with("boom", "x")],
        );
        assert!(failed.is_err());
        conn.execute_batch("DROP TRIGGER boom").unwrap();
        write(&mut conn, &mut cache, &[row_with("c", &c)]).unwrap();

        let mut stmt = conn
            .prepare("SELECT request_id, request_chunks FROM audit_records ORDER BY seq")
            .unwrap();
        let rows: Vec<(String, Vec<u8>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows.len(), 2);
        for ((id, list), want) in rows.iter().zip([&a, &c]) {
            let back = chunks::read_chunks(&conn, list).unwrap();
            assert!(back == want.as_bytes(), "{id} reads back different bytes");
        }
    }

    #[test]
    fn prune_with_nothing_configured_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = schema::open_writer(&dir.path().join("a.db")).unwrap();
        insert_rows(&mut conn, &[Row::new(rec("a", 0, 10), 0)]).unwrap();
        assert_eq!(prune_all(&conn, &settings(None, None), i64::MAX), 0);
        assert_eq!(count(&conn), 1);
        // A cap smaller than the empty schema cannot loop forever.
        assert_eq!(prune_all(&conn, &settings(None, Some(1)), 0), 1);
        assert_eq!(count(&conn), 0);
    }
}
