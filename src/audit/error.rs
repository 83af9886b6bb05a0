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
    /// The database was written by a newer version of this store.
    SchemaTooNew {
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// The newest version this code understands.
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
            AuditError::SchemaTooNew { found, supported } => write!(
                f,
                "audit store: database schema version {found} is newer than supported {supported}"
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn display_and_source() {
        let e = AuditError::InvalidQuery("since: bad".into());
        assert_eq!(e.to_string(), "audit query: since: bad");
        assert!(e.source().is_none());
        let e: AuditError = std::io::Error::other("boom").into();
        assert!(e.to_string().contains("boom"));
        assert!(e.source().is_some());
        let e = AuditError::SchemaTooNew {
            found: 9,
            supported: 1,
        };
        assert!(e.to_string().contains('9'));
    }
}
