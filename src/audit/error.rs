//! The one error type of the audit store.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong opening, querying or flushing the store.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuditError {
    /// SQLite reported an error.
    Sqlite(rusqlite::Error),
    /// A filesystem operation failed (creating the directory, spawning the
    /// writer thread).
    Io(std::io::Error),
    /// A stored record could not be decoded.
    Decode(serde_json::Error),
    /// A query parameter was invalid (e.g. an unparsable `since`).
    InvalidQuery(String),
    /// The database file does not exist (readers never create it).
    Missing(PathBuf),
    /// The file is not an audit store of this version (an older gateway's,
    /// a newer one's, or another program's). It is left as it is.
    WrongSchema {
        /// The file.
        path: PathBuf,
        /// `PRAGMA user_version` found in it.
        found: i64,
        /// The version this code reads and writes.
        supported: i64,
    },
    /// SQLite refused to switch the database to WAL mode.
    NoWal(String),
    /// The writer thread reported a failure (commit or prune); the text is
    /// the underlying error. Records stay queued and are retried.
    Writer(String),
    /// The writer thread is no longer running.
    WriterGone,
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditError::Sqlite(e) => write!(f, "audit store: sqlite: {e}"),
            AuditError::Io(e) => write!(f, "audit store: io: {e}"),
            AuditError::Decode(e) => write!(f, "audit store: bad stored record: {e}"),
            AuditError::InvalidQuery(m) => write!(f, "audit query: {m}"),
            AuditError::Missing(p) => {
                write!(f, "audit store: no database at {}", p.display())
            }
            AuditError::WrongSchema {
                path,
                found,
                supported,
            } => write!(
                f,
                "audit store: {} has schema version {found}, this gateway reads and writes \
                 version {supported} only; the file was not changed: move it aside (or set \
                 [audit] path to another file) and start again",
                path.display()
            ),
            AuditError::NoWal(mode) => write!(
                f,
                "audit store: could not enable WAL journal mode (got {mode:?})"
            ),
            AuditError::Writer(m) => write!(f, "audit store: writer: {m}"),
            AuditError::WriterGone => write!(f, "audit store: writer thread is not running"),
        }
    }
}

impl std::error::Error for AuditError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AuditError::Sqlite(e) => Some(e),
            AuditError::Io(e) => Some(e),
            AuditError::Decode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for AuditError {
    fn from(e: rusqlite::Error) -> Self {
        AuditError::Sqlite(e)
    }
}

impl From<std::io::Error> for AuditError {
    fn from(e: std::io::Error) -> Self {
        AuditError::Io(e)
    }
}

impl From<serde_json::Error> for AuditError {
    fn from(e: serde_json::Error) -> Self {
        AuditError::Decode(e)
    }
}
