//! [`AuditStore`]: open the database, accept records without blocking,
//! flush, prune, query, shut down.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::error::AuditError;
use super::prune::Retention;
use super::query::AuditReader;
use super::record::AuditRecord;
use super::schema;
use super::writer::{Msg, Shared, Writer, WriterSettings};
use super::AuditSink;

/// What replaces a body the store could not keep because its queue's byte
/// budget was exhausted. The rest of the record is kept.
pub const BODY_SHED_MARKER: &str = "[body not stored: audit queue overloaded]";

/// What a record counts against the byte budget besides its bodies (generously).
const RECORD_BYTES: usize = 1024;

/// How often a waiting [`AuditStore::flush`] checks whether the store is failing.
const FLUSH_POLL: Duration = Duration::from_millis(100);

/// Configuration of an [`AuditStore`]; see each field for its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditStoreConfig {
    /// The SQLite file; created (with its directory) if missing.
    pub path: PathBuf,
    /// Records the channel to the writer holds at most (default 32,768; 0 is
    /// treated as 1). Memory is bounded by `queue_max_bytes`.
    pub queue_capacity: usize,
    /// The byte budget of records waiting for their commit, bodies included
    /// (default 256 MiB); see [`AuditStore::submit`].
    pub queue_max_bytes: usize,
    /// Records per transaction at most (default 256; 0 is treated as 1).
    pub batch_max: usize,
    /// How long a record may wait for its batch to fill (default 200 ms).
    /// Keep it well under the one second within which records are durable.
    pub flush_interval: Duration,
    /// Delete records whose timestamp is older than this many days.
    pub retention_days: Option<u32>,
    /// Delete the oldest records while the main file's used pages exceed this
    /// many bytes (down to 90 % of it); the WAL is capped at 64 MiB apart.
    pub max_bytes: Option<u64>,
    /// How often retention runs after the one at start-up (default 5 min).
    pub prune_interval: Duration,
    /// A file holding a `seq` (the PostgreSQL shipper's cursor): retention never deletes
    /// a record above it, so a spool keeps what is not shipped yet (default none).
    pub keep_unshipped: Option<PathBuf>,
}

impl AuditStoreConfig {
    /// Defaults with the given path: no retention, the defaults of each field.
    pub fn new(path: impl Into<PathBuf>) -> AuditStoreConfig {
        AuditStoreConfig {
            path: path.into(),
            queue_capacity: 32_768,
            queue_max_bytes: 256 * 1024 * 1024,
            batch_max: 256,
            flush_interval: Duration::from_millis(200),
            retention_days: None,
            max_bytes: None,
            prune_interval: Duration::from_secs(300),
            keep_unshipped: None,
        }
    }
}

/// A snapshot of the store's counters (for metrics and health):
/// `submitted = written + dropped + queue_depth` at every moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AuditStats {
    /// Records submitted and not yet committed (`audit_queue_depth`).
    pub queue_depth: usize,
    /// What those records count against the byte budget.
    pub queued_bytes: usize,
    /// Records committed to the database since open.
    pub written: u64,
    /// Records kept with their bodies replaced by [`BODY_SHED_MARKER`].
    pub bodies_shed: u64,
    /// Records lost: the budget exhausted even without bodies, the channel
    /// full, the writer gone, or still failing to commit at shutdown.
    pub dropped: u64,
    /// Failed commits and prunes (each retried or re-run later).
    pub write_errors: u64,
    /// Records deleted by retention.
    pub pruned: u64,
    /// The last commit failed and none has succeeded since (its records are
    /// kept and retried; [`AuditStore::last_error`] says why).
    pub failing: bool,
    /// Times the database file was found deleted or replaced, and reopened.
    pub reopened: u64,
}

/// The durable audit store: a bounded channel with a byte budget in front of
/// one writer thread that commits batches to SQLite (see the
/// [module docs](super)). Dropping it commits everything and joins the writer.
#[derive(Debug)]
pub struct AuditStore {
    tx: Option<SyncSender<Msg>>,
    handle: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    reader: AuditReader,
    budget: usize,
}

impl AuditStore {
    /// Open (or create) the database at `config.path` and start the writer
    /// thread. A file of another schema is refused ([`AuditError::WrongSchema`])
    /// and left as it is.
    pub fn open(config: AuditStoreConfig) -> Result<AuditStore, AuditError> {
        let conn = schema::open_writer(&config.path)?;
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity.max(1));
        let shared = Arc::new(Shared::default());
        let settings = WriterSettings {
            batch_max: config.batch_max.max(1),
            flush_interval: config.flush_interval,
            retention: Retention {
                days: config.retention_days,
                max_bytes: config.max_bytes,
                keep_unshipped: config.keep_unshipped.clone(),
            },
            prune_interval: config.prune_interval.max(Duration::from_secs(1)),
            path: config.path.clone(),
        };
        let writer = Writer::new(conn, rx, Arc::clone(&shared), settings)?;
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run())?;
        Ok(AuditStore {
            tx: Some(tx),
            handle: Some(handle),
            shared,
            reader: AuditReader::new(config.path),
            budget: config.queue_max_bytes,
        })
    }

    /// Hand a record to the writer. Never blocks, never waits on disk.
    ///
    /// If the record does not fit the byte budget, its bodies are replaced
    /// by [`BODY_SHED_MARKER`] ([`AuditStats::bodies_shed`]); if it does not
    /// fit even so, or the channel is full, it is dropped
    /// ([`AuditStats::dropped`], and [`last_error`](Self::last_error) says
    /// why).
    pub fn submit(&self, mut record: AuditRecord) {
        let shared = &*self.shared;
        let mut cost = RECORD_BYTES + record.body_bytes();
        if !self.reserve(cost) {
            let had_bodies = shed_bodies(&mut record);
            cost = RECORD_BYTES + record.body_bytes();
            if !had_bodies || !self.reserve(cost) {
                return self.drop_record("the byte budget is exhausted");
            }
            shared.bodies_shed.fetch_add(1, Ordering::Relaxed);
        }
        let sent = self
            .tx
            .as_ref()
            .map(|tx| tx.try_send(Msg::Record(Box::new(record), cost)));
        let why = match sent {
            Some(Ok(())) => return,
            Some(Err(TrySendError::Full(_))) => "the queue is full",
            _ => "the writer thread is not running",
        };
        shared.release(1, cost);
        self.drop_record(why);
    }

    /// Count `cost` bytes and one record against the budget, if they fit.
    fn reserve(&self, cost: usize) -> bool {
        let queued = &self.shared.queued_bytes;
        let fits = queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                q.checked_add(cost).filter(|&total| total <= self.budget)
            })
            .is_ok();
        if fits {
            self.shared.queue_depth.fetch_add(1, Ordering::Relaxed);
        }
        fits
    }

    fn drop_record(&self, why: &str) {
        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        self.shared
            .set_error(format!("audit record dropped: {why}"));
    }

    /// Block until every record submitted before this call is committed (for
    /// SIGTERM handling and tests, not the request path). Errors if the
    /// commit failed; while the store is [failing](AuditStats::failing) it
    /// returns the failure within 100 ms instead of waiting for the disk.
    pub fn flush(&self) -> Result<(), AuditError> {
        let (ack, done) = mpsc::channel();
        self.send_control(Msg::Flush(ack))?;
        loop {
            match done.recv_timeout(FLUSH_POLL) {
                Ok(result) => return result.map_err(AuditError::Writer),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(AuditError::WriterGone),
                Err(mpsc::RecvTimeoutError::Timeout) => self.fail_if_failing()?,
            }
        }
    }

    /// The current failure, as the error of a call that would wait for it.
    fn fail_if_failing(&self) -> Result<(), AuditError> {
        if !self.shared.failing.load(Ordering::Relaxed) {
            return Ok(());
        }
        Err(AuditError::Writer(format!(
            "{} audit records are not written: {}",
            self.shared.queue_depth.load(Ordering::Relaxed),
            self.last_error().unwrap_or_default()
        )))
    }

    /// Commit, run retention now and wait for it; returns the records deleted.
    pub fn prune(&self) -> Result<u64, AuditError> {
        let (ack, done) = mpsc::channel();
        self.send_control(Msg::Prune(ack))?;
        done.recv()
            .map_err(|_| AuditError::WriterGone)?
            .map_err(AuditError::Writer)
    }

    /// Send a control message; while the channel is full, wait for room,
    /// unless the store is failing (then the writer is not keeping up).
    fn send_control(&self, mut msg: Msg) -> Result<(), AuditError> {
        let tx = self.tx.as_ref().ok_or(AuditError::WriterGone)?;
        loop {
            match tx.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(_)) => return Err(AuditError::WriterGone),
                Err(TrySendError::Full(back)) => {
                    self.fail_if_failing()?;
                    msg = back;
                    std::thread::sleep(FLUSH_POLL / 10);
                }
            }
        }
    }

    /// Stop accepting, commit everything queued, join the writer, and return
    /// the final counters. Records still not committed after a few tries are
    /// counted in `dropped`, logged, and make this an error naming them.
    pub fn shutdown(mut self) -> Result<AuditStats, AuditError> {
        self.close()?;
        if self.shared.lost_at_shutdown.load(Ordering::Relaxed) > 0 {
            return Err(AuditError::Writer(self.last_error().unwrap_or_default()));
        }
        Ok(self.stats())
    }

    fn close(&mut self) -> Result<(), AuditError> {
        drop(self.tx.take());
        match self.handle.take() {
            Some(handle) => handle.join().map_err(|_| AuditError::WriterGone),
            None => Ok(()),
        }
    }

    #[cfg(test)]
    pub(crate) fn shared_for_tests(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Current counters.
    pub fn stats(&self) -> AuditStats {
        let s = &*self.shared;
        AuditStats {
            queue_depth: s.queue_depth.load(Ordering::Relaxed),
            queued_bytes: s.queued_bytes.load(Ordering::Relaxed),
            written: s.written.load(Ordering::Relaxed),
            bodies_shed: s.bodies_shed.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
            pruned: s.pruned.load(Ordering::Relaxed),
            failing: s.failing.load(Ordering::Relaxed),
            reopened: s.reopened.load(Ordering::Relaxed),
        }
    }

    /// The most recent writer or overload error, for health output.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error()
    }

    /// A reader for the same file (cheap; clone it into `spawn_blocking`).
    pub fn reader(&self) -> &AuditReader {
        &self.reader
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
}

/// Replace present bodies with the marker; true if there was one.
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
