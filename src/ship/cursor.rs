//! The shipper's cursor: the last `seq` PostgreSQL committed, in a side file next to
//! the spool, replaced atomically (write, fsync, rename, fsync the directory).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The side file `<spool>.pg-cursor` holding the last shipped `seq`.
#[derive(Debug, Clone)]
pub struct Cursor {
    path: PathBuf,
}

impl Cursor {
    /// The cursor of the spool at `spool`.
    pub fn for_spool(spool: &Path) -> Cursor {
        let mut name = spool.as_os_str().to_owned();
        name.push(".pg-cursor");
        Cursor {
            path: PathBuf::from(name),
        }
    }

    /// The side file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last shipped `seq`: 0 when nothing was shipped (or the file is unreadable,
    /// which only re-sends records PostgreSQL already ignores).
    pub fn load(&self) -> i64 {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => text.trim().parse().unwrap_or_else(|_| {
                tracing::warn!(path = %self.path.display(), "unreadable audit cursor; shipping the spool again from the start");
                0
            }),
            Err(_) => 0,
        }
    }

    /// Record `seq` as shipped, durably.
    pub fn store(&self, seq: i64) -> std::io::Result<()> {
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = std::fs::File::create(&tmp)?;
        writeln!(file, "{seq}")?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_cursor_is_loaded_back() {
        let dir = tempfile::tempdir().unwrap();
        let cursor = Cursor::for_spool(&dir.path().join("audit.db"));
        assert_eq!(cursor.load(), 0);
        cursor.store(42).unwrap();
        assert_eq!(cursor.load(), 42);
        assert!(cursor.path().ends_with("audit.db.pg-cursor"));
        std::fs::write(cursor.path(), "garbage").unwrap();
        assert_eq!(cursor.load(), 0);
    }
}
