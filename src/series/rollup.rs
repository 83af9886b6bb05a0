//! [`UsageRollup`]: usage per hour and attribute, kept in a SQLite file beside the
//! audit file (`<audit path>.usage.db`) and brought up to date from the audit file's new
//! rows (by `seq`) before each answer.
//!
//! Summing a 90-day range straight from the records reads every record's JSON (a
//! minute for a million records on a small machine); the rollup holds one row per hour
//! and key, so an answer reads at most a few thousand rows per key. Catching up reads
//! only the records added since the last time (their JSON, never their bodies).
//!
//! ```sql
//! rollup_state(id INTEGER PRIMARY KEY CHECK (id = 0), last_seq INTEGER NOT NULL)
//! usage_hours(dim TEXT, hour_ms INTEGER, key TEXT,  -- primary key, in this order
//!     requests, unpriced, input, output, cache_write, cache_read INTEGER,
//!     cost_picos TEXT)                              -- exact u128 pico-dollars
//! ```
//!
//! `dim` is the attribute's name (`''`: every record); `key` is `''` when the record
//! has no value and `=` followed by the value otherwise. Hours older than the oldest
//! record still in the audit file are deleted (retention pruned their records); a file
//! whose `seq` went backwards (replaced) is summed again from the start.

use super::cell::{record_cell, record_key, Cell};
use super::query::{Bucket, GroupBy, UsageQuery};
use super::UsageAnswer;
use crate::audit::AuditRecord;
use crate::pricing::Money;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Records read from the audit file per catch-up transaction.
const BATCH: i64 = 20_000;

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS rollup_state (id INTEGER PRIMARY KEY CHECK (id = 0), last_seq INTEGER NOT NULL);
INSERT OR IGNORE INTO rollup_state VALUES (0, 0);
CREATE TABLE IF NOT EXISTS usage_hours (
    dim TEXT NOT NULL, hour_ms INTEGER NOT NULL, key TEXT NOT NULL,
    requests INTEGER NOT NULL, unpriced INTEGER NOT NULL,
    input INTEGER NOT NULL, output INTEGER NOT NULL,
    cache_write INTEGER NOT NULL, cache_read INTEGER NOT NULL,
    cost_picos TEXT NOT NULL,
    PRIMARY KEY (dim, hour_ms, key)
) WITHOUT ROWID;
";

/// The hourly usage rollup of one audit file; see the [module docs](self). Calls block
/// (SQLite): from async code use `spawn_blocking`. One catch-up runs at a time.
#[derive(Debug)]
pub struct UsageRollup {
    audit: PathBuf,
    rollup: PathBuf,
    writing: Mutex<()>,
}

impl UsageRollup {
    /// The rollup of the audit file at `audit` (kept in `<audit>.usage.db`).
    pub fn new(audit: impl Into<PathBuf>) -> UsageRollup {
        let audit = audit.into();
        let mut rollup = audit.clone().into_os_string();
        rollup.push(".usage.db");
        UsageRollup {
            audit,
            rollup: rollup.into(),
            writing: Mutex::new(()),
        }
    }

    /// Where the rollup is kept.
    pub fn path(&self) -> &Path {
        &self.rollup
    }

    /// Bring the rollup up to date with the audit file; the records added.
    pub fn catch_up(&self) -> Result<u64, rusqlite::Error> {
        let _one = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        // No audit file, no rollup file: nothing is created beside a store not yet used.
        let Some(audit) = self.open_audit()? else {
            return Ok(0);
        };
        let mut rollup = self.open()?;
        // Two queries: each is one seek (min and max together would scan the index).
        let oldest: Option<i64> =
            audit.query_row("SELECT min(timestamp_ms) FROM audit_records", [], |r| {
                r.get(0)
            })?;
        let max_seq: i64 =
            audit.query_row("SELECT coalesce(max(seq), 0) FROM audit_records", [], |r| {
                r.get(0)
            })?;
        let mut last: i64 =
            rollup.query_row("SELECT last_seq FROM rollup_state", [], |r| r.get(0))?;
        if max_seq < last {
            // Another file at the path: sum it from the start.
            rollup
                .execute_batch("DELETE FROM usage_hours; UPDATE rollup_state SET last_seq = 0")?;
            last = 0;
        }
        let mut added = 0u64;
        loop {
            let (cells, next, read) = read_batch(&audit, last)?;
            if read == 0 {
                break;
            }
            let tx = rollup.transaction()?;
            merge(&tx, &cells)?;
            tx.execute("UPDATE rollup_state SET last_seq = ?1", [next])?;
            tx.commit()?;
            added += read;
            last = next;
            if read < BATCH as u64 {
                break;
            }
        }
        // Hours before the oldest record left: retention deleted their records.
        let cutoff = oldest.map_or(i64::MAX, |ms| Bucket::Hour.floor(ms));
        // One range of the primary key per attribute, never a scan of the table.
        let mut prune =
            rollup.prepare_cached("DELETE FROM usage_hours WHERE dim = ?1 AND hour_ms < ?2")?;
        for dim in std::iter::once("").chain(GroupBy::ALL.map(GroupBy::name)) {
            prune.execute(params![dim, cutoff])?;
        }
        Ok(added)
    }

    /// Catch up once on a thread of its own (at start, so the first answer after a long
    /// time without one does not wait for it); failures are logged and retried by the
    /// next answer.
    pub fn catch_up_in_background(self: &std::sync::Arc<Self>) {
        let rollup = std::sync::Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("usage-rollup".into())
            .spawn(move || {
                if let Err(error) = rollup.catch_up() {
                    tracing::warn!(%error, "usage rollup catch-up failed");
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the usage rollup catch-up");
        }
    }

    /// The usage `query` asks for, after catching up.
    pub fn usage(&self, query: &UsageQuery) -> Result<UsageAnswer, rusqlite::Error> {
        self.catch_up()?;
        if !self.rollup.exists() {
            return Ok(UsageAnswer::from_cells(query, BTreeMap::new()));
        }
        let conn = self.open()?;
        let mut stmt = conn.prepare_cached(
            "SELECT hour_ms, key, requests, unpriced, input, output, cache_write, cache_read, \
             cost_picos FROM usage_hours WHERE dim = ?1 AND hour_ms >= ?2 AND hour_ms < ?3",
        )?;
        let dim = query.group_by.map_or("", GroupBy::name);
        let mut rows = stmt.query(params![dim, query.since_ms, query.until_ms])?;
        let mut cells: BTreeMap<(Option<String>, i64), Cell> = BTreeMap::new();
        while let Some(row) = rows.next()? {
            let hour: i64 = row.get(0)?;
            let key: String = row.get(1)?;
            let key = key.strip_prefix('=').map(str::to_owned);
            let cell = cell_of(row, 2)?;
            cells
                .entry((key, query.bucket.floor(hour)))
                .or_default()
                .add(&cell);
        }
        Ok(UsageAnswer::from_cells(query, cells))
    }

    fn open(&self) -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open(&self.rollup)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(CREATE)?;
        Ok(conn)
    }

    /// A read-only connection to the audit file; `None` while it does not exist.
    fn open_audit(&self) -> Result<Option<Connection>, rusqlite::Error> {
        if !self.audit.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            &self.audit,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let tables: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE name = 'audit_records'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(tables.map(|_| conn))
    }
}

/// Cells keyed by (dim, hour, key).
type Cells = HashMap<(&'static str, i64, String), Cell>;

/// The sums of up to [`BATCH`] records after `after_seq`: the cells, the last `seq`
/// read and how many records.
fn read_batch(audit: &Connection, after_seq: i64) -> Result<(Cells, i64, u64), rusqlite::Error> {
    let mut stmt = audit.prepare_cached(
        "SELECT seq, timestamp_ms, record_json FROM audit_records \
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![after_seq, BATCH])?;
    let mut cells = Cells::new();
    let (mut last, mut read) = (after_seq, 0u64);
    while let Some(row) = rows.next()? {
        last = row.get(0)?;
        read += 1;
        let hour = Bucket::Hour.floor(row.get(1)?);
        let json: String = row.get(2)?;
        // A record that does not decode still counts as a request.
        let record: AuditRecord = serde_json::from_str(&json).unwrap_or_default();
        let cell = record_cell(&record);
        cells
            .entry(("", hour, String::new()))
            .or_default()
            .add(&cell);
        for group in GroupBy::ALL {
            let key = record_key(&record, group).map_or_else(String::new, |k| format!("={k}"));
            cells
                .entry((group.name(), hour, key))
                .or_default()
                .add(&cell);
        }
    }
    Ok((cells, last, read))
}

/// Add `cells` to the stored rows.
fn merge(tx: &rusqlite::Transaction<'_>, cells: &Cells) -> Result<(), rusqlite::Error> {
    let mut get = tx.prepare_cached(
        "SELECT requests, unpriced, input, output, cache_write, cache_read, cost_picos \
         FROM usage_hours WHERE dim = ?1 AND hour_ms = ?2 AND key = ?3",
    )?;
    let mut put = tx.prepare_cached(
        "INSERT OR REPLACE INTO usage_hours VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for ((dim, hour, key), cell) in cells {
        let mut sum = get
            .query_row(params![dim, hour, key], |row| cell_of(row, 0))
            .optional()?
            .unwrap_or_default();
        sum.add(cell);
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        put.execute(params![
            dim,
            hour,
            key,
            int(sum.requests),
            int(sum.unpriced),
            int(sum.input_tokens),
            int(sum.output_tokens),
            int(sum.cache_write_tokens),
            int(sum.cache_read_tokens),
            sum.cost.picos().to_string(),
        ])?;
    }
    Ok(())
}

/// The cell stored in `row` from column `at` on (requests … cost_picos).
fn cell_of(row: &rusqlite::Row<'_>, at: usize) -> Result<Cell, rusqlite::Error> {
    let count = |i: usize| -> Result<u64, rusqlite::Error> {
        Ok(u64::try_from(row.get::<_, i64>(at + i)?).unwrap_or(0))
    };
    let picos: String = row.get(at + 6)?;
    Ok(Cell {
        requests: count(0)?,
        unpriced: count(1)?,
        input_tokens: count(2)?,
        output_tokens: count(3)?,
        cache_write_tokens: count(4)?,
        cache_read_tokens: count(5)?,
        cost: Money::from_picos(picos.parse().unwrap_or(0)),
    })
}
