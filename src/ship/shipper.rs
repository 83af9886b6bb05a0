//! [`Shipper`]: the thread that moves records from the spool into PostgreSQL.

use super::cursor::Cursor;
use super::month::Month;
use super::pg::PgAudit;
use crate::audit::AuditReader;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Records read from the spool and sent per transaction.
const BATCH: usize = 100;
/// First wait after a failure; doubled each time up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between tries while PostgreSQL is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an idle shipper looks at the spool again.
const IDLE: Duration = Duration::from_millis(100);
/// How often partitions are made ahead and retention runs.
const MAINTENANCE: Duration = Duration::from_secs(3600);
/// How often an idle shipper checks that the spool was not replaced by a new file.
const SPOOL_CHECK: Duration = Duration::from_secs(10);
const MS_PER_DAY: i64 = 86_400_000;

/// What the shipper has done, readable while it runs.
#[derive(Debug, Default)]
pub struct ShipperStatus {
    shipped_seq: AtomicI64,
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
    stop: AtomicBool,
    wake: Notify,
}

impl ShipperStatus {
    /// The last spool `seq` PostgreSQL committed.
    pub fn shipped_seq(&self) -> i64 {
        self.shipped_seq.load(Ordering::Acquire)
    }

    /// Whether the last try failed (PostgreSQL unreachable or refusing).
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// The last failure, while failing.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().map(|e| e.clone()).unwrap_or(None)
    }
}

/// Ships the spool at a reader's path into PostgreSQL, on its own thread, until it is
/// dropped. Dropping it only asks the thread to stop: what is not shipped yet stays in
/// the spool, and the next shipper on that file resumes from the cursor.
#[derive(Debug)]
pub struct Shipper {
    status: Arc<ShipperStatus>,
}

impl Shipper {
    /// Start shipping the spool `spool` into `pg`, from the cursor next to it.
    /// `retention_days` drops whole months of records that are older (absent: kept).
    pub fn start(
        pg: Arc<PgAudit>,
        spool: AuditReader,
        retention_days: Option<u32>,
    ) -> std::io::Result<Shipper> {
        let status = Arc::new(ShipperStatus::default());
        let cursor = Cursor::for_spool(spool.path());
        let seq = cursor.load();
        status.shipped_seq.store(seq, Ordering::Release);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut run = Run {
            pg,
            spool,
            cursor,
            seq,
            retention_days,
            status: status.clone(),
            next_maintenance: None,
            next_spool_check: None,
        };
        std::thread::Builder::new()
            .name("audit-shipper".into())
            .spawn(move || runtime.block_on(run.run()))?;
        Ok(Shipper { status })
    }

    /// What it has done so far.
    pub fn status(&self) -> &ShipperStatus {
        &self.status
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.status.stop.store(true, Ordering::Release);
        self.status.wake.notify_one();
    }
}

struct Run {
    pg: Arc<PgAudit>,
    spool: AuditReader,
    cursor: Cursor,
    seq: i64,
    retention_days: Option<u32>,
    status: Arc<ShipperStatus>,
    next_maintenance: Option<Instant>,
    next_spool_check: Option<Instant>,
}

impl Run {
    async fn run(&mut self) {
        let mut backoff = MIN_BACKOFF;
        while !self.status.stop.load(Ordering::Acquire) {
            match self.step().await {
                Ok(shipped) => {
                    if self.status.failing.swap(false, Ordering::AcqRel) {
                        tracing::info!("audit records are shipped to PostgreSQL again");
                        *self
                            .status
                            .last_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()) = None;
                    }
                    backoff = MIN_BACKOFF;
                    if !shipped {
                        self.wait(IDLE).await;
                    }
                }
                Err(error) => {
                    if !self.status.failing.swap(true, Ordering::AcqRel) {
                        tracing::warn!(%error, "cannot ship audit records to PostgreSQL; they wait in the spool");
                    }
                    *self
                        .status
                        .last_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(error.clone());
                    self.wait(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn wait(&self, duration: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = self.status.wake.notified() => {}
        }
    }

    /// Ship one batch; whether there was one.
    async fn step(&mut self) -> Result<bool, String> {
        let now = Instant::now();
        if self.next_maintenance.is_none_or(|at| now >= at) {
            self.maintain().await?;
            self.next_maintenance = Some(now + MAINTENANCE);
        }
        let batch = self
            .spool
            .query_after(self.seq, BATCH)
            .map_err(|e| format!("cannot read the spool: {e}"))?;
        let Some(&(last, _)) = batch.last() else {
            self.check_spool(now)?;
            return Ok(false);
        };
        let cutoff = self.cutoff_ms();
        let records: Vec<_> = batch
            .into_iter()
            .map(|(_, record)| record)
            .filter(|record| {
                let month = Month::of_ms(record.timestamp_ms().unwrap_or(0));
                cutoff.is_none_or(|cutoff| month.next().start_ms() > cutoff)
            })
            .collect();
        self.pg.ship(&records).await.map_err(|e| e.to_string())?;
        self.seq = last;
        if let Err(error) = self.cursor.store(last) {
            // Shipping goes on; after a restart the records since the last stored
            // cursor are sent again, and PostgreSQL ignores them.
            tracing::warn!(%error, path = %self.cursor.path().display(), "cannot store the audit cursor");
        }
        // After the side file: a reader that sees the new seq finds it stored too.
        self.status.shipped_seq.store(last, Ordering::Release);
        Ok(true)
    }

    /// Partitions for this month and the next, and retention.
    async fn maintain(&self) -> Result<(), String> {
        let now = now_ms();
        let next = Month::of_ms(now).next().start_ms();
        self.pg
            .ensure_partitions(&[now, next])
            .await
            .map_err(|e| e.to_string())?;
        if let Some(cutoff) = self.cutoff_ms() {
            let dropped = self
                .pg
                .drop_partitions_before(cutoff)
                .await
                .map_err(|e| e.to_string())?;
            if !dropped.is_empty() {
                tracing::info!(?dropped, "dropped audit partitions past retention");
            }
        }
        Ok(())
    }

    /// A spool whose highest `seq` is below the cursor is a new file: ship it all.
    fn check_spool(&mut self, now: Instant) -> Result<(), String> {
        if self.next_spool_check.is_some_and(|at| now < at) {
            return Ok(());
        }
        self.next_spool_check = Some(now + SPOOL_CHECK);
        let stats = self
            .spool
            .stats()
            .map_err(|e| format!("cannot read the spool: {e}"))?;
        if stats.max_seq < self.seq {
            tracing::warn!("the audit spool is a new file; shipping it from the start");
            self.seq = 0;
        }
        Ok(())
    }

    fn cutoff_ms(&self) -> Option<i64> {
        self.retention_days
            .map(|days| now_ms().saturating_sub(i64::from(days) * MS_PER_DAY))
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
