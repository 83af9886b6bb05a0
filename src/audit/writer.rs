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
//! - pruning runs in small steps (at most [`PRUNE_CHUNK`] rows deleted or
//!   [`VACUUM_CHUNK`] pages vacuumed per step) when idle or after a commit, so
//!   a large prune never holds records back for long;
//! - when every sender is gone (shutdown), it drains the queue, takes the
//!   spill, commits (up to [`FINAL_ATTEMPTS`] tries) and exits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, TransactionBehavior};

use super::record::AuditRecord;
use super::schema::{self, Pages};

/// A batch is committed early once its bodies reach this many bytes, which
/// keeps one transaction (and so the WAL) from growing to hundreds of MiB
/// when bodies are large.
pub(crate) const MAX_BATCH_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Rows deleted per prune step.
pub(crate) const PRUNE_CHUNK: i64 = 1000;
/// Pages released per `PRAGMA incremental_vacuum` step.
pub(crate) const VACUUM_CHUNK: u64 = 2048;
/// Commit tries at shutdown before the remaining records are counted as
/// dropped.
pub(crate) const FINAL_ATTEMPTS: u32 = 3;
/// Pause between the final tries.
const FINAL_PAUSE: Duration = Duration::from_millis(200);
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const MIN_WAIT: Duration = Duration::from_millis(10);
const MS_PER_DAY: i64 = 86_400_000;

/// What the submit side sends to the writer.
pub(crate) enum Msg {
    /// One record; `counted_bytes` is what the submit side added to
    /// [`Shared::queued_body_bytes`] for it.
    Record {
        record: Box<AuditRecord>,
        counted_bytes: usize,
    },
    /// Commit everything received so far (and the spill), then answer.
    Flush(Sender<Result<(), String>>),
    /// Run a full prune, then answer with the number of rows deleted.
    Prune(Sender<Result<u64, String>>),
}

/// State shared by the submit side and the writer: the overflow spill and
/// the counters.
#[derive(Debug, Default)]
pub(crate) struct Shared {
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
    pub(crate) last_error: Mutex<Option<String>>,
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
    pub(crate) request_body: Option<String>,
    pub(crate) response_body: Option<String>,
    counted_bytes: usize,
}

impl Row {
    pub(crate) fn new(mut record: AuditRecord, counted_bytes: usize) -> Row {
        let request_body = record.request_body.take();
        let response_body = record.response_body.take();
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
            counted_bytes,
        }
    }
}

/// Insert `rows` in one IMMEDIATE transaction: all or none.
pub(crate) fn insert_rows(conn: &mut Connection, rows: &[Row]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(schema::INSERT)?;
        for r in rows {
            stmt.execute(params![
                r.request_id,
                r.timestamp_ms,
                r.provider,
                r.requested_model,
                r.served_model,
                r.record_json,
                r.request_body,
                r.response_body,
            ])?;
        }
    }
    tx.commit()
}

/// Progress of one prune run (kept across steps).
#[derive(Debug, Default)]
pub(crate) struct PruneRun {
    pub(crate) deleted: u64,
    size_target: Option<u64>,
    last_freelist: Option<u64>,
    did_work: bool,
}

/// One bounded prune step. Returns `Ok(true)` while there is more to do.
///
/// Order: rows older than `retention_days`; then, while the used pages
/// exceed `max_bytes`, the oldest rows until 90 % of `max_bytes` is reached
/// (the 10 % slack keeps it from pruning on every commit); then
/// `incremental_vacuum` until the free list is empty; finally a truncating
/// WAL checkpoint so the file on disk actually shrinks.
pub(crate) fn prune_step(
    conn: &Connection,
    settings: &WriterSettings,
    run: &mut PruneRun,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    if let Some(days) = settings.retention_days {
        let cutoff = now_ms.saturating_sub(i64::from(days).saturating_mul(MS_PER_DAY));
        let n = conn.execute(schema::DELETE_OLDER_THAN, params![cutoff, PRUNE_CHUNK])?;
        if n > 0 {
            run.deleted += n as u64;
            run.did_work = true;
            return Ok(true);
        }
    }
    if let Some(max) = settings.max_bytes {
        let used = pages(conn)?.used_bytes();
        let target = match run.size_target {
            Some(t) => Some(t),
            None if used > max => Some(max - max / 10),
            None => None,
        };
        run.size_target = target;
        if let Some(target) = target.filter(|&t| used > t) {
            let count: i64 =
                conn.query_row("SELECT count(*) FROM audit_records", [], |r| r.get(0))?;
            if count > 0 {
                let count = count as u64;
                let avg = (used / count).max(1);
                let want = (used - target).div_ceil(avg);
                let n = want.clamp(1, PRUNE_CHUNK as u64).min(count);
                let n = conn.execute(schema::DELETE_OLDEST, params![n as i64])?;
                run.deleted += n as u64;
                run.did_work = true;
                return Ok(true);
            }
        }
    }
    let free = pages(conn)?.freelist_count;
    if free > 0 && run.last_freelist.is_none_or(|last| free < last) {
        run.last_freelist = Some(free);
        let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({VACUUM_CHUNK})"))?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
        run.did_work = true;
        return Ok(true);
    }
    if run.did_work {
        // Best effort: a reader holding an old snapshot can keep it from
        // truncating; the next run tries again.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        run.did_work = false;
    }
    Ok(false)
}

fn pages(conn: &Connection) -> rusqlite::Result<Pages> {
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

/// The writer thread's state.
pub(crate) struct Writer {
    conn: Connection,
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    settings: WriterSettings,
    batch: Vec<Row>,
    batch_bytes: usize,
    deadline: Option<Instant>,
    retry_at: Option<Instant>,
    backoff: Duration,
    open: bool,
    prune: Option<PruneRun>,
    prune_waiters: Vec<Sender<Result<u64, String>>>,
    next_prune: Instant,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        rx: Receiver<Msg>,
        shared: Arc<Shared>,
        settings: WriterSettings,
    ) -> Writer {
        let next_prune = later(Instant::now(), settings.prune_interval);
        Writer {
            conn,
            rx,
            shared,
            batch: Vec::with_capacity(settings.batch_max.min(4096)),
            settings,
            batch_bytes: 0,
            deadline: None,
            retry_at: None,
            backoff: INITIAL_BACKOFF,
            open: true,
            prune: None,
            prune_waiters: Vec::new(),
            next_prune,
        }
    }

    /// The thread body. Returns when every sender is gone and everything
    /// was committed (or counted as dropped).
    pub(crate) fn run(mut self) {
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
                match self.rx.recv_timeout(self.wait_time(now)) {
                    Ok(msg) => self.handle(msg),
                    Err(RecvTimeoutError::Timeout) => idle = true,
                    Err(RecvTimeoutError::Disconnected) => self.open = false,
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
        }
        self.finish();
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Record {
                record,
                counted_bytes,
            } => self.push(Row::new(*record, counted_bytes)),
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

    fn push(&mut self, row: Row) {
        self.batch_bytes += row.request_body.as_ref().map_or(0, String::len)
            + row.response_body.as_ref().map_or(0, String::len);
        self.batch.push(row);
    }

    fn batch_full(&self) -> bool {
        self.batch.len() >= self.settings.batch_max || self.batch_bytes >= MAX_BATCH_BODY_BYTES
    }

    /// Start the flush clock when something is pending and it is not running.
    fn arm_deadline(&mut self, now: Instant) {
        if self.deadline.is_none()
            && (!self.batch.is_empty() || !self.shared.lock_spill().is_empty())
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

    /// Take the spill and commit everything pending in one transaction.
    fn commit(&mut self) -> Result<(), String> {
        let spilled = std::mem::take(&mut *self.shared.lock_spill());
        for record in spilled {
            self.push(Row::new(record, 0));
        }
        if self.batch.is_empty() {
            self.deadline = None;
            return Ok(());
        }
        match insert_rows(&mut self.conn, &self.batch) {
            Ok(()) => {
                let n = self.batch.len();
                let counted: usize = self.batch.iter().map(|r| r.counted_bytes).sum();
                self.shared.written.fetch_add(n as u64, Ordering::Relaxed);
                self.shared.queue_depth.fetch_sub(n, Ordering::Relaxed);
                self.shared
                    .queued_body_bytes
                    .fetch_sub(counted, Ordering::Relaxed);
                self.batch.clear();
                self.batch_bytes = 0;
                self.deadline = None;
                self.retry_at = None;
                self.backoff = INITIAL_BACKOFF;
                Ok(())
            }
            Err(e) => {
                let message = format!("commit of {} records failed: {e}", self.batch.len());
                self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                self.shared.set_error(message.clone());
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                Err(message)
            }
        }
    }

    fn prune_once(&mut self) {
        let Some(run) = self.prune.as_mut() else {
            return;
        };
        let result = prune_step(&self.conn, &self.settings, run, now_ms());
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
            if self.commit().is_ok() {
                break;
            }
            if attempt < FINAL_ATTEMPTS {
                thread::sleep(FINAL_PAUSE);
            }
        }
        if !self.batch.is_empty() {
            let n = self.batch.len();
            let counted: usize = self.batch.iter().map(|r| r.counted_bytes).sum();
            self.shared.lose(n, counted);
            self.shared.set_error(format!(
                "{n} audit records could not be written at shutdown and were dropped"
            ));
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

    fn rec(id: &str, ts: i64, body: usize) -> AuditRecord {
        AuditRecord {
            request_id: id.into(),
            timestamp_ms: ts,
            provider: Some("p".into()),
            requested_model: Some("m".into()),
            endpoint: "messages".into(),
            status: 200,
            outcome: "complete".into(),
            request_body: Some("x".repeat(body)),
            response_body: Some("y".repeat(body / 2)),
            ..Default::default()
        }
    }

    fn settings(retention_days: Option<u32>, max_bytes: Option<u64>) -> WriterSettings {
        WriterSettings {
            batch_max: 10,
            flush_interval: Duration::from_millis(50),
            retention_days,
            max_bytes,
            prune_interval: Duration::from_secs(300),
        }
    }

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM audit_records", [], |r| r.get(0))
            .unwrap()
    }

    fn prune_all(conn: &Connection, s: &WriterSettings, now: i64) -> u64 {
        let mut run = PruneRun::default();
        let mut steps = 0;
        while prune_step(conn, s, &mut run, now).unwrap() {
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
