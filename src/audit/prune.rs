//! Retention: rows past `retention_days`, then the oldest rows while the
//! used pages exceed `max_bytes`; then the chunks no row lists any more, the
//! free pages, and a truncating checkpoint so the file on disk shrinks.
//!
//! Runs on the writer thread between batches. Rows go in steps of
//! [`STEP`], each its own short transaction, so readers and the WAL never see
//! one huge delete.

use rusqlite::{params, Connection};

use super::chunks;
use super::schema;
use super::time::MS_PER_DAY;

/// Rows deleted per statement.
const STEP: i64 = 1000;

/// What retention keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Retention {
    pub(crate) days: Option<u32>,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) keep_unshipped: Option<std::path::PathBuf>,
}

impl Retention {
    pub(crate) fn enabled(&self) -> bool {
        self.days.is_some() || self.max_bytes.is_some()
    }

    /// Whether the used pages exceed `max_bytes` (two cheap pragmas).
    pub(crate) fn over_size_cap(&self, conn: &Connection) -> bool {
        self.max_bytes
            .is_some_and(|max| schema::used_bytes(conn).is_ok_and(|used| used > max))
    }

    /// The highest `seq` retention may delete: all, or what is shipped (an unreadable
    /// cursor file counts as nothing shipped).
    fn floor(&self) -> i64 {
        self.keep_unshipped.as_ref().map_or(i64::MAX, |file| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            text.trim().parse().unwrap_or(0)
        })
    }

    /// Prune now; returns the rows deleted. With nothing configured it only
    /// gives free pages back. Deleting down to 90 % of `max_bytes` keeps it
    /// from pruning again on the next commit.
    pub(crate) fn prune(&self, conn: &Connection, now_ms: i64) -> rusqlite::Result<u64> {
        let mut deleted = 0;
        let floor = self.floor();
        if let Some(days) = self.days {
            let cutoff = now_ms.saturating_sub(i64::from(days).saturating_mul(MS_PER_DAY));
            loop {
                let n = conn.execute(
                    "DELETE FROM audit_records WHERE seq IN (SELECT seq FROM audit_records \
                     WHERE timestamp_ms < ?1 AND seq <= ?3 ORDER BY timestamp_ms LIMIT ?2)",
                    params![cutoff, STEP, floor],
                )?;
                deleted += n as u64;
                if (n as i64) < STEP {
                    break;
                }
            }
        }
        if deleted > 0 {
            chunks::sweep(conn)?;
        }
        if let Some(max) = self.max_bytes {
            let target = max - max / 10;
            while schema::used_bytes(conn)? > target {
                let n = self.delete_oldest(conn, target, floor)?;
                if n == 0 {
                    break;
                }
                deleted += n;
                chunks::sweep(conn)?;
            }
        }
        let mut vacuum = conn.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = vacuum.query([])?;
        while rows.next()?.is_some() {}
        // Best effort: a reader holding an old snapshot can keep it from
        // truncating; the next run tries again.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(deleted)
    }

    /// Delete about as many of the oldest rows as bring the used pages to
    /// `target` (estimated from the average row), at least one.
    fn delete_oldest(&self, conn: &Connection, target: u64, floor: i64) -> rusqlite::Result<u64> {
        let used = schema::used_bytes(conn)?;
        let count: i64 = conn.query_row("SELECT count(*) FROM audit_records", [], |r| r.get(0))?;
        if count == 0 {
            return Ok(0);
        }
        let average = (used / count as u64).max(1);
        let want = used.saturating_sub(target).div_ceil(average);
        let n = want.clamp(1, STEP as u64);
        let n = conn.execute(
            "DELETE FROM audit_records WHERE seq IN \
             (SELECT seq FROM audit_records WHERE seq <= ?2 ORDER BY seq LIMIT ?1)",
            [n as i64, floor],
        )?;
        Ok(n as u64)
    }
}
