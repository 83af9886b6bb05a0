//! The writer thread. It waits for a message until the batch's deadline (or
//! the retry time, or the next prune); commits when `batch_max` records are
//! pending or the deadline passed; keeps a failed batch and retries it with
//! back-off (100 ms doubling to 2 s). Pending records still count against
//! the store's byte budget, so a failing disk cannot exhaust memory. When
//! every sender is gone it commits what is left (a few tries) and counts the
//! rest as dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rusqlite::{params, Connection, TransactionBehavior};

use super::chunks::ChunkWriter;
use super::prune::Retention;
use super::record::AuditRecord;
use super::schema;
use super::time::now_ms;

/// Commit tries at shutdown, and the pause between them.
const FINAL_ATTEMPTS: u32 = 3;
const FINAL_PAUSE: Duration = Duration::from_millis(200);
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the store sends to the writer.
pub(crate) enum Msg {
    /// One record and what it counts against the byte budget.
    Record(Box<AuditRecord>, usize),
    /// Commit everything received so far, then answer.
    Flush(Sender<Result<(), String>>),
    /// Run retention now, then answer with the rows deleted.
    Prune(Sender<Result<u64, String>>),
}

/// State shared by the store (submit side) and the writer: the counters.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Records accepted and not yet committed or dropped.
    pub(crate) queue_depth: AtomicUsize,
    /// What those records count against the byte budget.
    pub(crate) queued_bytes: AtomicUsize,
    pub(crate) written: AtomicU64,
    pub(crate) bodies_shed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) pruned: AtomicU64,
    pub(crate) reopened: AtomicU64,
    /// The last commit failed and none has succeeded since (a failure
    /// episode, logged once when it starts and once when it ends).
    pub(crate) failing: AtomicBool,
    /// Records that could not be written at shutdown (in `dropped` too).
    pub(crate) lost_at_shutdown: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn error_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_error(&self, message: String) {
        *self.error_slot() = Some(message);
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.error_slot().clone()
    }

    /// `n` accepted records worth `bytes` left the queue (written or lost).
    pub(crate) fn release(&self, n: usize, bytes: usize) {
        self.queue_depth.fetch_sub(n, Ordering::Relaxed);
        self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The writer's knobs, from the store's config.
#[derive(Debug, Clone)]
pub(crate) struct WriterSettings {
    pub(crate) batch_max: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) retention: Retention,
    pub(crate) prune_interval: Duration,
    /// The database file, checked before each commit: if it was deleted or
    /// replaced, the writer opens the path again.
    pub(crate) path: std::path::PathBuf,
}

/// A file's identity: device and inode.
type FileId = (u64, u64);

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

/// A record waiting for its commit, and its cost in the byte budget.
struct Pending {
    record: AuditRecord,
    cost: usize,
}

/// The writer thread's state.
pub(crate) struct Writer {
    conn: Connection,
    /// Device and inode of the file `conn` has open; `None` after a reopen
    /// failed (then `conn` is a placeholder and nothing is committed to it).
    file: Option<FileId>,
    chunks: ChunkWriter,
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    settings: WriterSettings,
    pending: Vec<Pending>,
    /// When the oldest pending record must be committed.
    deadline: Option<Instant>,
    /// After a failed commit: not before this.
    retry_at: Option<Instant>,
    backoff: Duration,
    next_prune: Option<Instant>,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        rx: Receiver<Msg>,
        shared: Arc<Shared>,
        settings: WriterSettings,
    ) -> std::io::Result<Writer> {
        Ok(Writer {
            file: file_id(&settings.path).ok(),
            conn,
            chunks: ChunkWriter::new()?,
            rx,
            shared,
            pending: Vec::with_capacity(settings.batch_max.min(4096)),
            // Retention runs once at start, then every `prune_interval`.
            next_prune: settings.retention.enabled().then(Instant::now),
            settings,
            deadline: None,
            retry_at: None,
            backoff: INITIAL_BACKOFF,
        })
    }

    /// The thread body: returns when every sender is gone and everything
    /// was committed or counted as dropped.
    pub(crate) fn run(mut self) {
        loop {
            let now = Instant::now();
            if self.next_prune.is_some_and(|t| t <= now) {
                self.next_prune = Some(now + self.settings.prune_interval);
                if self.retry_at.is_none() {
                    let _ = self.prune();
                }
            }
            match self.rx.recv_timeout(self.wait_time(now)) {
                Ok(Msg::Record(record, cost)) => {
                    self.pending.push(Pending {
                        record: *record,
                        cost,
                    });
                    self.deadline
                        .get_or_insert_with(|| Instant::now() + self.settings.flush_interval);
                }
                Ok(Msg::Flush(ack)) => {
                    let _ = ack.send(self.commit());
                }
                Ok(Msg::Prune(ack)) => {
                    let _ = ack.send(self.commit().and_then(|()| self.prune()));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            let due = self.pending.len() >= self.settings.batch_max
                || self.deadline.is_some_and(|d| d <= now);
            if due && self.retry_at.is_none_or(|t| t <= now) {
                let committed = self.commit().is_ok();
                if committed && self.settings.retention.over_size_cap(&self.conn) {
                    // The size cap holds between the periodic runs too.
                    let _ = self.prune();
                }
            }
        }
        self.finish();
    }

    /// How long to wait for the next message: until the batch is due (or
    /// may be retried), the next prune, or a second at most.
    fn wait_time(&self, now: Instant) -> Duration {
        let mut until = now + Duration::from_secs(1);
        if let Some(deadline) = self.deadline {
            until = until.min(self.retry_at.map_or(deadline, |r| r.max(deadline)));
        }
        if let Some(prune) = self.next_prune {
            until = until.min(prune);
        }
        until.saturating_duration_since(now)
    }

    /// Commit every pending record, `batch_max` per transaction.
    fn commit(&mut self) -> Result<(), String> {
        while !self.pending.is_empty() {
            let n = self.pending.len().min(self.settings.batch_max);
            if let Err(e) = self.ensure_file() {
                return Err(self.commit_failed(n, &e));
            }
            if let Err(e) = write_batch(&mut self.conn, &mut self.chunks, &mut self.pending[..n]) {
                return Err(self.commit_failed(n, &e.to_string()));
            }
            let cost = self.pending.drain(..n).map(|p| p.cost).sum();
            self.shared.written.fetch_add(n as u64, Ordering::Relaxed);
            self.shared.release(n, cost);
            self.retry_at = None;
            self.backoff = INITIAL_BACKOFF;
            if self.shared.failing.swap(false, Ordering::Relaxed) {
                tracing::info!(
                    path = %self.settings.path.display(),
                    records = n,
                    "audit store: writes recovered; the kept records are committed"
                );
            }
        }
        self.deadline = None;
        Ok(())
    }

    /// A commit failed: count it, keep the reason, log the start of a
    /// failure episode (once, not per retry), and schedule the retry.
    fn commit_failed(&mut self, n: usize, error: &str) -> String {
        let message = format!("commit of {n} records failed: {error}");
        self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
        self.shared.set_error(message.clone());
        if !self.shared.failing.swap(true, Ordering::Relaxed) {
            tracing::error!(
                path = %self.settings.path.display(),
                error = %message,
                "audit store: writes are failing; records are kept in memory (bounded) and retried"
            );
        }
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        message
    }

    /// Make sure `conn` writes to the file at the configured path: if that
    /// file was deleted or replaced (its device/inode differ; one `stat` per
    /// commit), close the old connection and open the path again. Errors
    /// when the path cannot be (re)opened.
    fn ensure_file(&mut self) -> Result<(), String> {
        let now = file_id(&self.settings.path);
        match (self.file, &now) {
            (Some(open), Ok(now)) if open == *now => return Ok(()),
            // Cannot tell (e.g. a permission change on the directory): keep writing.
            (Some(_), Err(e)) if e.kind() != std::io::ErrorKind::NotFound => return Ok(()),
            (Some(_), _) => tracing::warn!(
                path = %self.settings.path.display(),
                "audit store: the database file was deleted or replaced; reopening it"
            ),
            (None, _) => {}
        }
        // Close the old connection first: closing removes its WAL by name,
        // which must not be the new file's.
        self.file = None;
        let placeholder = Connection::open_in_memory().map_err(|e| e.to_string())?;
        drop(std::mem::replace(&mut self.conn, placeholder));
        let conn = schema::open_writer(&self.settings.path)
            .map_err(|e| format!("cannot reopen {}: {e}", self.settings.path.display()))?;
        self.conn = conn;
        self.file = file_id(&self.settings.path).ok();
        self.shared.reopened.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            path = %self.settings.path.display(),
            "audit store: reopened the database file; records from now on go to it"
        );
        Ok(())
    }

    fn prune(&mut self) -> Result<u64, String> {
        match self.settings.retention.prune(&self.conn, now_ms()) {
            Ok(deleted) => {
                self.shared.pruned.fetch_add(deleted, Ordering::Relaxed);
                Ok(deleted)
            }
            Err(e) => {
                let message = format!("prune failed: {e}");
                self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                self.shared.set_error(message.clone());
                Err(message)
            }
        }
    }

    /// Shutdown: commit what is left (a few tries), then count what could
    /// not be written as dropped, and say so.
    fn finish(&mut self) {
        for attempt in 1..=FINAL_ATTEMPTS {
            if self.commit().is_ok() {
                break;
            }
            if attempt < FINAL_ATTEMPTS {
                std::thread::sleep(FINAL_PAUSE);
            }
        }
        if !self.pending.is_empty() {
            let n = self.pending.len();
            let cost = self.pending.drain(..).map(|p| p.cost).sum();
            self.shared.release(n, cost);
            self.shared.dropped.fetch_add(n as u64, Ordering::Relaxed);
            self.shared
                .lost_at_shutdown
                .fetch_add(n as u64, Ordering::Relaxed);
            let message = format!(
                "{n} audit records could not be written at shutdown and were dropped: {}",
                self.shared.last_error().unwrap_or_default()
            );
            tracing::error!(path = %self.settings.path.display(), "audit store: {message}");
            self.shared.set_error(message);
        }
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
}

/// Write `batch` in one IMMEDIATE transaction: all or none. The record's
/// JSON is stored with its bodies nulled; the bodies go in as chunk lists.
fn write_batch(
    conn: &mut Connection,
    chunks: &mut ChunkWriter,
    batch: &mut [Pending],
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(schema::INSERT)?;
        for Pending { record, .. } in batch {
            let mut list = |body: &Option<Bytes>| -> rusqlite::Result<Option<Vec<u8>>> {
                body.as_ref().map(|b| chunks.store(&tx, b)).transpose()
            };
            let request = list(&record.request_body)?;
            let response = list(&record.response_body)?;
            // The JSON without the bodies (stored apart); they go back for a retry.
            let bodies = (record.request_body.take(), record.response_body.take());
            let json = serde_json::to_string(&*record);
            (record.request_body, record.response_body) = bodies;
            let json = json.map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            insert.execute(params![
                record.request_id,
                record.timestamp_ms().unwrap_or_else(now_ms),
                record.provider,
                record.requested_model,
                record.served_model,
                json,
                request,
                response,
            ])?;
        }
    }
    tx.commit()
}
