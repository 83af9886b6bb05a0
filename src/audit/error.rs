//! The one error type of the audit store.

use std::path::PathBuf;

/// Everything that can go wrong opening, querying or flushing the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// SQLite reported an error.
    #[error("audit store: sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A filesystem operation failed (creating the directory, spawning the
    /// writer thread).
    #[error("audit store: io: {0}")]
    Io(#[from] std::io::Error),
    /// A stored record could not be decoded.
    #[error("audit store: bad stored record: {0}")]
    Decode(#[from] serde_json::Error),
    /// A query parameter was invalid (e.g. an unparsable `since`).
    #[error("audit query: {0}")]
    InvalidQuery(String),
    /// The database file does not exist (readers never create it).
    #[error("audit store: no database at {}", .0.display())]
    Missing(PathBuf),
    /// The file is not an audit store of this version (an older gateway's,
    /// a newer one's, or another program's). It is left as it is.
    #[error(
        "audit store: {} has schema version {found}, this gateway reads and writes version \
         {supported} only; the file was not changed: move it aside (or set [audit] path to \
         another file) and start again",
        path.display()
    )]
    WrongSchema {
        /// The file.
        path: PathBuf,
        /// `PRAGMA user_version` found in it.
        found: i64,
        /// The version this code reads and writes.
        supported: i64,
    },
    /// SQLite refused to switch the database to WAL mode.
    #[error("audit store: could not enable WAL journal mode (got {0:?})")]
    NoWal(String),
    /// The writer thread reported a failure (commit or prune); the text is
    /// the underlying error. Records stay queued and are retried.
    #[error("audit store: writer: {0}")]
    Writer(String),
    /// The writer thread is no longer running.
    #[error("audit store: writer thread is not running")]
    WriterGone,
}
