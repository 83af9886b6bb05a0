//! The credential store: named secrets in a file only its owner can read.
//!
//! The file is `credentials.json` in the gateway's home directory —
//! `$LLM_GATEWAY_HOME`, else the user's config directory (`~/.config/llm-gateway` on
//! Linux) — created with mode 0600 on the first [`CredentialStore::set`] and rewritten
//! atomically (a 0600 temporary file renamed over it). Changes hold an exclusive advisory
//! lock on the sibling `credentials.json.lock` across the whole read-modify-write, so
//! concurrent `credentials store` runs each keep their name. A file that others can read is
//! refused, as ssh refuses a key file. Values are never logged or shown, except by
//! [`CredentialStore::get`] for the one caller that asked.
//!
//! A provider's `api_key = "credential:NAME"` reads `NAME` from here at start-up.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable that overrides the gateway's home directory.
pub const HOME_ENV: &str = "LLM_GATEWAY_HOME";

/// A credential store failure; never contains a secret value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// No home directory could be found.
    #[error("no home directory: set {HOME_ENV}")]
    NoHome,
    /// A name with characters outside `A-Z a-z 0-9 _ - .`.
    #[error("credential names use only letters, digits, `_`, `-` and `.`: {0:?}")]
    BadName(String),
    /// The file is readable or writable by others.
    #[error("{path} is accessible by others (mode {mode:o}); run: chmod 600 {path}")]
    TooOpen {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Reading or writing the file failed.
    #[error("credential store {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a credential store.
    #[error("credential store {path} is not valid: {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// A secret value. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The gateway's home directory: `$LLM_GATEWAY_HOME`, else `<config dir>/llm-gateway`.
pub fn gateway_home() -> Result<PathBuf, CredentialError> {
    match std::env::var_os(HOME_ENV) {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home)),
        _ => dirs::config_dir()
            .map(|dir| dir.join("llm-gateway"))
            .ok_or(CredentialError::NoHome),
    }
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    version: u32,
    credentials: BTreeMap<String, String>,
}

/// Named secrets in a 0600 file.
#[derive(Clone, Debug)]
pub struct CredentialStore {
    path: PathBuf,
}

impl CredentialStore {
    /// The store in the gateway's home directory.
    pub fn open_default() -> Result<Self, CredentialError> {
        Ok(Self::at(gateway_home()?.join("credentials.json")))
    }

    /// The store at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The secret named `name`, if stored.
    pub fn get(&self, name: &str) -> Result<Option<Secret>, CredentialError> {
        check_name(name)?;
        Ok(self.read()?.credentials.remove(name).map(Secret::new))
    }

    /// Store `value` as `name`, replacing any earlier value.
    pub fn set(&self, name: &str, value: &Secret) -> Result<(), CredentialError> {
        check_name(name)?;
        let _lock = self.lock()?;
        let mut file = self.read()?;
        file.credentials
            .insert(name.to_owned(), value.expose().to_owned());
        self.write(&file)
    }

    /// Remove `name`; whether it was there.
    pub fn remove(&self, name: &str) -> Result<bool, CredentialError> {
        check_name(name)?;
        let _lock = self.lock()?;
        let mut file = self.read()?;
        let removed = file.credentials.remove(name).is_some();
        if removed {
            self.write(&file)?;
        }
        Ok(removed)
    }

    /// The stored names (never the values).
    pub fn names(&self) -> Result<Vec<String>, CredentialError> {
        Ok(self.read()?.credentials.into_keys().collect())
    }

    fn io(&self, source: std::io::Error) -> CredentialError {
        CredentialError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Take the store's exclusive lock (blocking until other writers are done); it is
    /// released when the returned file is dropped. The lock lives on a sibling file,
    /// not on the store itself, because the store is replaced by rename and a lock on
    /// the replaced inode would not exclude the next writer.
    fn lock(&self) -> Result<std::fs::File, CredentialError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(dir.join(name)).map_err(|e| self.io(e))?;
        #[cfg(unix)]
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| self.io(e.into()))?;
        Ok(file)
    }

    fn read(&self) -> Result<StoreFile, CredentialError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(StoreFile {
                    version: 1,
                    ..StoreFile::default()
                })
            }
            Err(e) => return Err(self.io(e)),
        };
        self.check_mode()?;
        serde_json::from_slice(&text).map_err(|e| CredentialError::Corrupt {
            path: self.path.display().to_string(),
            // serde's message names the position, never the value.
            message: format!("line {}, column {}", e.line(), e.column()),
        })
    }

    #[cfg(unix)]
    fn check_mode(&self) -> Result<(), CredentialError> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&self.path)
            .map_err(|e| self.io(e))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(CredentialError::TooOpen {
                path: self.path.display().to_string(),
                mode,
            });
        }
        Ok(())
    }

    #[cfg(not(unix))]
    fn check_mode(&self) -> Result<(), CredentialError> {
        Ok(())
    }

    fn write(&self, file: &StoreFile) -> Result<(), CredentialError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        // Unique per writer even within one process; the lock makes one writer at a time,
        // but a name per writer keeps a crashed one's leftover from being reused.
        static NEXT_TEMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT_TEMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = dir.join(format!(".credentials.{}.{n}.tmp", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let text = serde_json::to_vec_pretty(file).map_err(|e| CredentialError::Corrupt {
            path: self.path.display().to_string(),
            message: e.to_string(),
        })?;
        let result = options
            .open(&temp)
            .and_then(|mut f| f.write_all(&text).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&temp, &self.path));
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result.map_err(|e| self.io(e))
    }
}

fn check_name(name: &str) -> Result<(), CredentialError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(CredentialError::BadName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::at(dir.path().join("sub/credentials.json"));
        assert!(store.get("A").unwrap().is_none());
        store
            .set("ANTHROPIC_API_KEY", &Secret::new("sk-ant-xyz"))
            .unwrap();
        store.set("OTHER", &Secret::new("v2")).unwrap();
        assert_eq!(
            store.get("ANTHROPIC_API_KEY").unwrap().unwrap().expose(),
            "sk-ant-xyz"
        );
        assert_eq!(store.names().unwrap(), ["ANTHROPIC_API_KEY", "OTHER"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(store.remove("OTHER").unwrap());
        assert!(!store.remove("OTHER").unwrap());
        assert_eq!(store.names().unwrap(), ["ANTHROPIC_API_KEY"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::at(dir.path().join("credentials.json"));
        store.set("K", &Secret::new("secret-value-1")).unwrap();
        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = store.get("K").unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("secret-value-1"));
    }

    #[test]
    fn concurrent_writers_all_keep_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.json");
        let threads: Vec<_> = (0..20)
            .map(|i| {
                let store = CredentialStore::at(&path);
                std::thread::spawn(move || {
                    store
                        .set(&format!("NAME_{i:02}"), &Secret::new(format!("value-{i}")))
                        .unwrap()
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let store = CredentialStore::at(&path);
        let want: Vec<String> = (0..20).map(|i| format!("NAME_{i:02}")).collect();
        assert_eq!(store.names().unwrap(), want);
        for i in 0..20 {
            let got = store.get(&format!("NAME_{i:02}")).unwrap().unwrap();
            assert_eq!(got.expose(), format!("value-{i}"));
        }
        // No temporary file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn bad_names_are_refused() {
        let store = CredentialStore::at("/nonexistent/x.json");
        assert!(matches!(store.get("a b"), Err(CredentialError::BadName(_))));
        assert!(matches!(store.get(""), Err(CredentialError::BadName(_))));
    }
}
