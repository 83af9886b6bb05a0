//! The SQL: table layout, pragmas, and opening connections.
//!
//! One schema, `user_version` 3:
//!
//! ```sql
//! audit_records(
//!     seq             INTEGER PRIMARY KEY AUTOINCREMENT, -- order for `logs --follow`
//!     request_id      TEXT NOT NULL UNIQUE,  -- a record is stored once per request
//!     timestamp_ms    INTEGER NOT NULL,      -- the record's timestamp; indexed with seq
//!     provider        TEXT,
//!     requested_model TEXT,
//!     served_model    TEXT,
//!     record_json     TEXT NOT NULL,         -- the record, bodies set to null
//!     request_body    BLOB,                  -- chunk ids in order, 8 bytes LE each
//!     response_body   BLOB
//! )
//! audit_chunks(
//!     id   INTEGER PRIMARY KEY,
//!     hash BLOB NOT NULL UNIQUE,             -- blake3 of the chunk's bytes
//!     data BLOB NOT NULL                     -- the bytes, zstd-compressed
//! )
//! ```
//!
//! A chunk is kept while some row lists it (see `chunks.rs`). `AUTOINCREMENT`
//! keeps `seq` from being reused, so a follower's cursor stays valid. The
//! file is created with `auto_vacuum=INCREMENTAL`, so retention can give
//! freed pages back. A file with another `user_version` is refused.
//!
//! The filters on client, team and session read the record's JSON; each has an
//! expression index (partial: rows without the value cost nothing), created when the
//! writer opens a file that lacks it, so no version step is needed.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::error::AuditError;

/// The schema version this code reads and writes.
pub(crate) const SCHEMA_VERSION: i64 = 3;

/// How long the writer waits for a lock held by someone else before the
/// commit fails (it is then retried with back-off).
const WRITER_BUSY_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long a reader waits for a lock (rare in WAL mode: only during
/// recovery or a truncating checkpoint).
const READER_BUSY_TIMEOUT: Duration = Duration::from_millis(2000);
/// Cap on the size the WAL file is truncated back to after a checkpoint.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

const CREATE: &str = "
CREATE TABLE audit_records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    timestamp_ms INTEGER NOT NULL,
    provider TEXT,
    requested_model TEXT,
    served_model TEXT,
    record_json TEXT NOT NULL,
    request_body BLOB,
    response_body BLOB
);
CREATE INDEX audit_records_time ON audit_records(timestamp_ms, seq);
CREATE TABLE audit_chunks (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    data BLOB NOT NULL
);
";

/// The attribution indexes: the query's filters use these very expressions.
const ATTRIBUTION_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS audit_records_client ON audit_records
    (json_extract(record_json, '$.client'), timestamp_ms, seq)
    WHERE json_extract(record_json, '$.client') IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_records_team ON audit_records
    (json_extract(record_json, '$.team'), timestamp_ms, seq)
    WHERE json_extract(record_json, '$.team') IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_records_session ON audit_records
    (json_extract(record_json, '$.session'), timestamp_ms, seq)
    WHERE json_extract(record_json, '$.session') IS NOT NULL;
";

/// Insert one row; parameters in column order, `seq` assigned by SQLite. A
/// request id already stored is left as it is (a record resubmitted, or a
/// batch retried after a commit whose outcome was unclear).
pub(crate) const INSERT: &str = "INSERT INTO audit_records \
    (request_id, timestamp_ms, provider, requested_model, served_model, \
     record_json, request_body, response_body) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (request_id) DO NOTHING";

/// Columns every read selects, in this order: seq, timestamp_ms, json,
/// request chunk list, response chunk list.
pub(crate) const SELECT_COLUMNS: &str =
    "seq, timestamp_ms, record_json, request_body, response_body";

/// [`SELECT_COLUMNS`] without the bodies (for listings of metadata): no body
/// is read from the file.
pub(crate) const SELECT_COLUMNS_NO_BODIES: &str = "seq, timestamp_ms, record_json, NULL, NULL";

/// Open (creating if needed) the writer's connection: owner-only files,
/// incremental auto-vacuum, WAL, `synchronous=FULL`, the schema.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, AuditError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    create_private(path)?;
    let conn = Connection::open(path)?;
    conn.busy_timeout(WRITER_BUSY_TIMEOUT)?;
    let fresh = check_version(&conn, path)?;
    if fresh {
        // Only takes effect before the first table is created.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
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
    if fresh {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(CREATE)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
    }
    conn.execute_batch(ATTRIBUTION_INDEXES)?;
    Ok(conn)
}

/// Whether the file is empty (`Ok(true)`: the schema is to be created) or
/// holds this schema (`Ok(false)`); anything else is refused.
fn check_version(conn: &Connection, path: &Path) -> Result<bool, AuditError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == SCHEMA_VERSION {
        return Ok(false);
    }
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    if version == 0 && tables == 0 {
        return Ok(true);
    }
    Err(AuditError::WrongSchema {
        path: path.to_path_buf(),
        found: version,
        supported: SCHEMA_VERSION,
    })
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
                for suffix in ["", "-wal", "-shm"] {
                    let mut name = path.as_os_str().to_owned();
                    name.push(suffix);
                    let meta = std::fs::metadata(&name);
                    if meta.is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                        std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600))?;
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
    if check_version(&conn, path)? {
        // Created but not yet given its schema: nothing to read.
        return Err(AuditError::WrongSchema {
            path: path.to_path_buf(),
            found: 0,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}

/// `page_size`, `page_count` and `freelist_count` of the main database file.
pub(crate) fn pages(conn: &Connection) -> rusqlite::Result<[u64; 3]> {
    let get = |name: &str| -> rusqlite::Result<u64> {
        let v: i64 = conn.pragma_query_value(None, name, |r| r.get(0))?;
        Ok(u64::try_from(v).unwrap_or(0))
    };
    Ok([
        get("page_size")?,
        get("page_count")?,
        get("freelist_count")?,
    ])
}

/// Bytes in pages that hold data (the file size less free pages).
pub(crate) fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let [size, count, free] = pages(conn)?;
    Ok(count.saturating_sub(free).saturating_mul(size))
}
