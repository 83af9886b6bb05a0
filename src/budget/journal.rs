//! [`SpendJournal`]: settled spend kept in SQLite, so it survives a restart.

use std::path::Path;

/// Settled spend per scope and window, in a SQLite file.
pub struct SpendJournal {}

impl SpendJournal {
    /// Open (or create) the journal in the SQLite file at `path`.
    pub fn open(_path: &Path) -> Result<Self, rusqlite::Error> {
        todo!()
    }
}
