//! The SQL: table layout, pragmas, and opening connections.
//!
//! Layout (`user_version` 1):
//!
//! ```sql
//! audit_records(
//!     seq           INTEGER PRIMARY KEY AUTOINCREMENT, -- order for `logs --follow`
//!     request_id    TEXT NOT NULL,                     -- indexed
//!     timestamp_ms  INTEGER NOT NULL,                  -- indexed with seq
//!     provider      TEXT,
//!     requested_model TEXT,
//!     served_model  TEXT,
//!     record_json   TEXT NOT NULL,                     -- the record, bodies set to null
//!     request_body  TEXT,
//!     response_body TEXT
//! )
//! ```
//!
//! The bodies live in their own columns, last, so that (a) they are not
//! JSON-escaped a second time (SSE text and JSON bodies are full of quotes and
//! newlines, which escaping would grow by 10–20 %), and (b) the filter columns
//! and the small JSON sit in the row's first page while the large bodies go
//! to overflow pages.
//!
//! `AUTOINCREMENT` (not just a rowid alias) guarantees `seq` is never reused,
//! even after retention deletes the newest rows, so a follower's cursor stays
//! valid.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::error::AuditError;

/// The newest schema version this code writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// How long the writer waits for a lock held by someone else before the
/// commit fails (it is then retried with back-off).
const WRITER_BUSY_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long a reader waits for a lock (rare in WAL mode: only during
/// recovery or a truncating checkpoint).
const READER_BUSY_TIMEOUT: Duration = Duration::from_millis(2000);
/// Cap on the size the WAL file is truncated back to after a checkpoint.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS audit_records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    provider TEXT,
    requested_model TEXT,
    served_model TEXT,
    record_json TEXT NOT NULL,
    request_body TEXT,
    response_body TEXT
);
CREATE INDEX IF NOT EXISTS audit_records_request_id ON audit_records(request_id);
CREATE INDEX IF NOT EXISTS audit_records_time ON audit_records(timestamp_ms, seq);
";

/// Insert one row; parameters in column order, `seq` assigned by SQLite.
pub(crate) const INSERT: &str = "INSERT INTO audit_records \
    (request_id, timestamp_ms, provider, requested_model, served_model, \
     record_json, request_body, response_body) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// Columns every read selects, in this order: seq, json, request body,
/// response body.
pub(crate) const SELECT_COLUMNS: &str = "seq, record_json, request_body, response_body";

/// Delete up to `?2` rows older than `?1` (unix ms).
pub(crate) const DELETE_OLDER_THAN: &str = "DELETE FROM audit_records WHERE seq IN \
    (SELECT seq FROM audit_records WHERE timestamp_ms < ?1 ORDER BY timestamp_ms LIMIT ?2)";

/// Delete the `?1` oldest rows (insertion order).
pub(crate) const DELETE_OLDEST: &str =
    "DELETE FROM audit_records WHERE seq IN (SELECT seq FROM audit_records ORDER BY seq LIMIT ?1)";

/// Open (creating if needed) the writer's connection and bring the file to
/// the current schema: incremental auto-vacuum, WAL, `synchronous=FULL`.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, AuditError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(WRITER_BUSY_TIMEOUT)?;

    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(AuditError::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }

    // auto_vacuum only takes effect on a database without tables; an
    // existing file that lacks it is converted once with VACUUM.
    let auto_vacuum: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
    if auto_vacuum != 2 {
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if tables > 0 {
            conn.execute_batch("VACUUM")?;
        }
    }

    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(AuditError::NoWal(mode));
    }
    // FULL fsyncs the WAL on every commit. Commits are batched (a few per
    // second), so the cost is small and a commit survives power loss, not
    // only a killed process.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;

    let tx = conn.transaction()?;
    tx.execute_batch(CREATE)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(conn)
}

/// Open a read-only connection for one query. Never creates the file.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, AuditError> {
    if !path.exists() {
        return Err(AuditError::Missing(path.to_path_buf()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(READER_BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Page accounting of the main database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pages {
    pub(crate) page_size: u64,
    pub(crate) page_count: u64,
    pub(crate) freelist_count: u64,
}

impl Pages {
    pub(crate) fn read(conn: &Connection) -> rusqlite::Result<Pages> {
        let get = |name: &str| -> rusqlite::Result<u64> {
            let v: i64 = conn.pragma_query_value(None, name, |r| r.get(0))?;
            Ok(u64::try_from(v).unwrap_or(0))
        };
        Ok(Pages {
            page_size: get("page_size")?,
            page_count: get("page_count")?,
            freelist_count: get("freelist_count")?,
        })
    }

    /// Bytes in pages that hold data (the file size less free pages).
    pub(crate) fn used_bytes(&self) -> u64 {
        self.page_count
            .saturating_sub(self.freelist_count)
            .saturating_mul(self.page_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_file_gets_wal_incremental_vacuum_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/audit.db");
        let conn = open_writer(&path).unwrap();
        let av: i64 = conn
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
            .unwrap();
        assert_eq!(av, 2, "auto_vacuum must be INCREMENTAL");
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous must be FULL");
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        // Opening again is idempotent.
        drop(conn);
        open_writer(&path).unwrap();
    }

    #[test]
    fn existing_file_without_auto_vacuum_is_converted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE other(x); INSERT INTO other VALUES (1);")
                .unwrap();
            let av: i64 = c
                .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
                .unwrap();
            assert_eq!(av, 0);
        }
        let conn = open_writer(&path).unwrap();
        let av: i64 = conn
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
            .unwrap();
        assert_eq!(av, 2);
        let x: i64 = conn
            .query_row("SELECT x FROM other", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, 1, "conversion keeps existing data");
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        match open_writer(&path) {
            Err(AuditError::SchemaTooNew { found, .. }) => assert_eq!(found, SCHEMA_VERSION + 1),
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[test]
    fn reader_never_creates_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.db");
        assert!(matches!(open_reader(&path), Err(AuditError::Missing(_))));
        assert!(!path.exists());
    }
}
