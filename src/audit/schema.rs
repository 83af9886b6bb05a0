//! The SQL: table layout, pragmas, and opening connections.
//!
//! Layout (`user_version` 2):
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
//!     request_body  TEXT,     -- inline body: TEXT if valid UTF-8, else BLOB
//!     response_body TEXT,
//!     request_chunks  BLOB,   -- or: chunk ids in order, 8 bytes LE each (v2)
//!     response_chunks BLOB
//! )
//! audit_chunks(                                        -- v2
//!     id    INTEGER PRIMARY KEY,
//!     hash  BLOB NOT NULL UNIQUE,   -- blake3 of the chunk's bytes
//!     size  INTEGER NOT NULL,
//!     refs  INTEGER NOT NULL        -- references from audit_records rows
//! )
//! audit_chunk_data(id INTEGER PRIMARY KEY, data BLOB NOT NULL)  -- v2
//! ```
//!
//! The bodies live in their own columns, last, so that (a) they are not
//! JSON-escaped a second time (SSE text and JSON bodies are full of quotes and
//! newlines, which escaping would grow by 10–20 %), and (b) the filter columns
//! and the small JSON sit in the row's first page while the large bodies go
//! to overflow pages.
//!
//! A body over the writer's threshold is split into content-defined chunks,
//! each stored once under its hash; the row keeps the list of chunk ids
//! (either the inline column or the chunk list is set, never both). `refs`
//! counts the rows that list a chunk (with multiplicity); it lives apart
//! from the chunk's bytes so that bumping it rewrites a small row, not a
//! 64 KiB blob. A chunk at `refs = 0` is garbage unless the writer holds it
//! for a staged body whose record has not arrived yet; retention deletes
//! the others (a partial index finds them).
//!
//! `AUTOINCREMENT` (not just a rowid alias) guarantees `seq` is never reused,
//! even after retention deletes the newest rows, so a follower's cursor stays
//! valid.
//!
//! Version 1 (no chunk columns or tables) is upgraded in place when the
//! writer opens it: two `ALTER TABLE … ADD COLUMN` and the new tables; its
//! rows keep their inline bodies and read as before. Readers never upgrade:
//! on a version-1 file they simply read no chunk columns.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::error::AuditError;

/// The newest schema version this code writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// How long the writer waits for a lock held by someone else before the
/// commit fails (it is then retried with back-off).
const WRITER_BUSY_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long a reader waits for a lock (rare in WAL mode: only during
/// recovery or a truncating checkpoint).
const READER_BUSY_TIMEOUT: Duration = Duration::from_millis(2000);
/// Cap on the size the WAL file is truncated back to after a checkpoint.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The version-1 table, as version 1 created it (kept for the upgrade test
/// and as the base the upgrade adds to).
pub(crate) const CREATE_V1: &str = "
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

/// What version 2 adds to version 1 (the columns go in with `ALTER TABLE`).
const CREATE_V2_TABLES: &str = "
CREATE TABLE IF NOT EXISTS audit_chunks (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    refs INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_chunks_unreferenced ON audit_chunks(id) WHERE refs <= 0;
CREATE TABLE IF NOT EXISTS audit_chunk_data (
    id INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
";

/// Columns version 2 adds to `audit_records`.
const V2_COLUMNS: [&str; 2] = ["request_chunks", "response_chunks"];

/// Insert one row; parameters in column order, `seq` assigned by SQLite.
pub(crate) const INSERT: &str = "INSERT INTO audit_records \
    (request_id, timestamp_ms, provider, requested_model, served_model, \
     record_json, request_body, response_body, request_chunks, response_chunks) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// Columns every read selects, in this order: seq, json, request body,
/// response body, request chunk list, response chunk list.
pub(crate) const SELECT_COLUMNS: &str =
    "seq, record_json, request_body, response_body, request_chunks, response_chunks";

/// [`SELECT_COLUMNS`] without the bodies (for listings of metadata): no body
/// is read from the file.
pub(crate) const SELECT_COLUMNS_NO_BODIES: &str = "seq, record_json, NULL, NULL, NULL, NULL";

/// [`SELECT_COLUMNS`] for a version-1 file, which has no chunk lists.
pub(crate) const SELECT_COLUMNS_V1: &str =
    "seq, record_json, request_body, response_body, NULL, NULL";

/// Delete up to `?2` rows older than `?1` (unix ms), returning their chunk
/// lists (so their chunks' `refs` can be released).
pub(crate) const DELETE_OLDER_THAN: &str = "DELETE FROM audit_records WHERE seq IN \
    (SELECT seq FROM audit_records WHERE timestamp_ms < ?1 ORDER BY timestamp_ms LIMIT ?2) \
    RETURNING request_chunks, response_chunks";

/// Delete the `?1` oldest rows (insertion order), returning their chunk lists.
pub(crate) const DELETE_OLDEST: &str = "DELETE FROM audit_records WHERE seq IN \
    (SELECT seq FROM audit_records ORDER BY seq LIMIT ?1) \
    RETURNING request_chunks, response_chunks";

/// The id of the chunk with hash `?1`.
pub(crate) const FIND_CHUNK: &str = "SELECT id FROM audit_chunks WHERE hash = ?1";
/// A new chunk (hash, size), unreferenced; its bytes go in with
/// [`INSERT_CHUNK_DATA`] under the same id.
pub(crate) const INSERT_CHUNK: &str =
    "INSERT INTO audit_chunks (hash, size, refs) VALUES (?1, ?2, 0)";
/// The bytes of chunk `?1`.
pub(crate) const INSERT_CHUNK_DATA: &str =
    "INSERT INTO audit_chunk_data (id, data) VALUES (?1, ?2)";
/// Add `?2` (may be negative) to the references of chunk `?1`.
pub(crate) const ADD_CHUNK_REFS: &str = "UPDATE audit_chunks SET refs = refs + ?2 WHERE id = ?1";
/// Up to `?2` unreferenced chunk ids above `?1`, in order.
pub(crate) const UNREFERENCED_CHUNKS: &str =
    "SELECT id FROM audit_chunks WHERE refs <= 0 AND id > ?1 ORDER BY id LIMIT ?2";
/// Delete chunk `?1` (its bytes go with [`DELETE_CHUNK_DATA`]).
pub(crate) const DELETE_CHUNK: &str = "DELETE FROM audit_chunks WHERE id = ?1 AND refs <= 0";
/// Delete the bytes of chunk `?1`.
pub(crate) const DELETE_CHUNK_DATA: &str = "DELETE FROM audit_chunk_data WHERE id = ?1";
/// The bytes of chunk `?1`.
pub(crate) const READ_CHUNK: &str = "SELECT data FROM audit_chunk_data WHERE id = ?1";

/// Open (creating if needed) the writer's connection and bring the file to
/// the current schema: incremental auto-vacuum, WAL, `synchronous=FULL`.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, AuditError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    create_private(path)?;
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
    tx.execute_batch(CREATE_V1)?;
    // Version 1 → 2 in place: add what is missing, keep every row as it is.
    for column in V2_COLUMNS {
        let present: bool = tx.query_row(
            "SELECT count(*) > 0 FROM pragma_table_info('audit_records') WHERE name = ?1",
            [column],
            |r| r.get(0),
        )?;
        if !present {
            tx.execute_batch(&format!(
                "ALTER TABLE audit_records ADD COLUMN {column} BLOB"
            ))?;
        }
    }
    tx.execute_batch(CREATE_V2_TABLES)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(conn)
}

/// The database file holds every prompt: create it owner-only (0600) before
/// SQLite opens it. SQLite gives its `-wal` and `-shm` files the main file's
/// mode, so they are 0600 too. An existing file (and its `-wal`/`-shm`) that
/// others can read is narrowed to 0600.
fn create_private(path: &Path) -> Result<(), AuditError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let mut name = path.as_os_str().to_owned();
                let base = name.clone();
                for suffix in ["", "-wal", "-shm"] {
                    name.clone_from(&base);
                    name.push(suffix);
                    let file = Path::new(&name);
                    if let Ok(meta) = std::fs::metadata(file) {
                        if meta.permissions().mode() & 0o077 != 0 {
                            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
                        }
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The columns to select from this file: a version-1 file (a reader never
/// upgrades it) has no chunk lists.
pub(crate) fn select_columns(conn: &Connection) -> rusqlite::Result<&'static str> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(if version >= 2 {
        SELECT_COLUMNS
    } else {
        SELECT_COLUMNS_V1
    })
}

/// A chunk list as stored: each id as 8 bytes little-endian, in order.
pub(crate) fn encode_chunk_list(ids: &[i64]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_le_bytes()).collect()
}

/// The ids of a stored chunk list; a trailing partial id (a damaged list)
/// is ignored.
pub(crate) fn decode_chunk_list(bytes: &[u8]) -> impl Iterator<Item = i64> + '_ {
    bytes.chunks_exact(8).map(|b| {
        let mut id = [0u8; 8];
        id.copy_from_slice(b);
        i64::from_le_bytes(id)
    })
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
    fn version_1_file_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(CREATE_V1).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO audit_records (request_id, timestamp_ms, record_json, request_body) \
                 VALUES ('old', 1, '{}', 'body')",
                [],
            )
            .unwrap();
        }
        let conn = open_writer(&path).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 2);
        let (body, chunks): (String, Option<Vec<u8>>) = conn
            .query_row(
                "SELECT request_body, request_chunks FROM audit_records WHERE request_id = 'old'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((body.as_str(), chunks), ("body", None));
        let chunks: i64 = conn
            .query_row("SELECT count(*) FROM audit_chunks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(chunks, 0);
        drop(conn);
        open_writer(&path).unwrap();
    }

    #[test]
    fn chunk_lists_round_trip() {
        let ids = [1, 2, i64::MAX, 0, 2];
        let bytes = encode_chunk_list(&ids);
        assert_eq!(bytes.len(), 40);
        assert_eq!(decode_chunk_list(&bytes).collect::<Vec<_>>(), ids);
        assert_eq!(decode_chunk_list(&bytes[..12]).count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn audit_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let conn = open_writer(&path).unwrap();
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        for name in ["audit.db", "audit.db-wal", "audit.db-shm"] {
            assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
        }
        drop(conn);
        // A file left readable by others (an older gateway made them 0644) is narrowed.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let conn = open_writer(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        for name in ["audit.db-wal", "audit.db-shm"] {
            let p = dir.path().join(name);
            if p.exists() {
                assert_eq!(mode(&p), 0o600, "{name}");
            }
        }
        drop(conn);
    }

    #[test]
    fn reader_never_creates_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.db");
        assert!(matches!(open_reader(&path), Err(AuditError::Missing(_))));
        assert!(!path.exists());
    }
}
