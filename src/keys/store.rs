//! [`KeyStore`]: the API-created keys in a SQLite file, so they survive a restart.
//!
//! One row per key: its name, the SHA-256 digest of the key (hex), its team, limits and
//! model globs, and when it was created, expires and was revoked. The key itself is never
//! written anywhere.

use super::{KeyInfo, KeySource};
use crate::budget::{Budget, Limits, Period};
use crate::pricing::Money;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    team TEXT,
    budget_picos TEXT,
    budget_period TEXT,
    rpm INTEGER,
    tpm INTEGER,
    max_concurrent INTEGER,
    models TEXT,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER,
    revoked_at_ms INTEGER
)";

/// A key store failure (the message never holds a key).
#[derive(Debug, thiserror::Error)]
#[error("key store: {0}")]
pub struct StoreError(String);

impl StoreError {
    pub(crate) fn from_message(message: String) -> Self {
        Self(message)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        Self(error.to_string())
    }
}

/// The API-created keys, in one SQLite file.
pub struct KeyStore {
    conn: std::sync::Mutex<Connection>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Open (or create) the store in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: std::sync::Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every stored key with its digest, in name order.
    pub fn load(&self) -> Result<Vec<(KeyInfo, [u8; 32])>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT name, sha256, team, budget_picos, budget_period, rpm, tpm, max_concurrent,
                    models, created_at_ms, expires_at_ms, revoked_at_ms
             FROM api_keys ORDER BY name",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(Row {
                name: row.get(0)?,
                sha256: row.get(1)?,
                team: row.get(2)?,
                budget_picos: row.get(3)?,
                budget_period: row.get(4)?,
                rpm: row.get(5)?,
                tpm: row.get(6)?,
                max_concurrent: row.get(7)?,
                models: row.get(8)?,
                created_at_ms: row.get(9)?,
                expires_at_ms: row.get(10)?,
                revoked_at_ms: row.get(11)?,
            })
        })?;
        let mut keys = Vec::new();
        for row in rows {
            keys.push(row?.into_key()?);
        }
        Ok(keys)
    }

    /// Add a new key; its name must be free.
    pub fn insert(&self, key: &KeyInfo, digest: &[u8; 32]) -> Result<(), StoreError> {
        let row = Row::of(key, digest);
        self.conn().execute(
            "INSERT INTO api_keys (name, sha256, team, budget_picos, budget_period, rpm, tpm,
                 max_concurrent, models, created_at_ms, expires_at_ms, revoked_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                row.name,
                row.sha256,
                row.team,
                row.budget_picos,
                row.budget_period,
                row.rpm,
                row.tpm,
                row.max_concurrent,
                row.models,
                row.created_at_ms,
                row.expires_at_ms,
                row.revoked_at_ms
            ],
        )?;
        Ok(())
    }

    /// Write `key`'s team, limits, models, expiry and revocation over its stored row.
    pub fn update(&self, key: &KeyInfo) -> Result<(), StoreError> {
        let row = Row::of(key, &[0; 32]);
        let changed = self.conn().execute(
            "UPDATE api_keys SET team = ?2, budget_picos = ?3, budget_period = ?4, rpm = ?5,
                 tpm = ?6, max_concurrent = ?7, models = ?8, expires_at_ms = ?9,
                 revoked_at_ms = ?10
             WHERE name = ?1",
            params![
                row.name,
                row.team,
                row.budget_picos,
                row.budget_period,
                row.rpm,
                row.tpm,
                row.max_concurrent,
                row.models,
                row.expires_at_ms,
                row.revoked_at_ms
            ],
        )?;
        if changed == 0 {
            return Err(StoreError(format!("no stored key named {:?}", &*key.name)));
        }
        Ok(())
    }

    /// Whether a key with this digest is stored (a check used by tests and tools).
    pub fn has_digest(&self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM api_keys WHERE sha256 = ?1",
                [hex(digest)],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

/// One row as a store holds it (SQLite here, PostgreSQL in `pg.rs`: the same columns).
pub(super) struct Row {
    pub(super) name: String,
    pub(super) sha256: String,
    pub(super) team: Option<String>,
    pub(super) budget_picos: Option<String>,
    pub(super) budget_period: Option<String>,
    pub(super) rpm: Option<i64>,
    pub(super) tpm: Option<i64>,
    pub(super) max_concurrent: Option<i64>,
    pub(super) models: Option<String>,
    pub(super) created_at_ms: i64,
    pub(super) expires_at_ms: Option<i64>,
    pub(super) revoked_at_ms: Option<i64>,
}

impl Row {
    pub(super) fn of(key: &KeyInfo, digest: &[u8; 32]) -> Self {
        let limits = key.limits;
        Self {
            name: key.name.to_string(),
            sha256: hex(digest),
            team: key.team.as_deref().map(str::to_owned),
            budget_picos: limits.budget.map(|b| b.limit.picos().to_string()),
            budget_period: limits.budget.map(|b| b.period.as_str().to_owned()),
            rpm: limits.rpm.map(i64::from),
            tpm: limits.tpm.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            max_concurrent: limits.max_concurrent.map(i64::from),
            models: key
                .models
                .as_ref()
                .map(|m| serde_json::to_string(m).unwrap_or_else(|_| "[]".to_owned())),
            created_at_ms: to_ms(key.created_at),
            expires_at_ms: key.expires_at.map(to_ms),
            revoked_at_ms: key.revoked_at.map(to_ms),
        }
    }

    pub(super) fn into_key(self) -> Result<(KeyInfo, [u8; 32]), StoreError> {
        let bad = |what: &str| StoreError(format!("key {:?}: bad {what}", self.name));
        let digest = unhex(&self.sha256).ok_or_else(|| bad("sha256"))?;
        let budget = match (&self.budget_picos, &self.budget_period) {
            (Some(picos), Some(period)) => Some(Budget {
                limit: Money::from_picos(picos.parse().map_err(|_| bad("budget"))?),
                period: period.parse::<Period>().map_err(|_| bad("budget_period"))?,
            }),
            (None, None) => None,
            _ => return Err(bad("budget")),
        };
        let limits = Limits {
            budget,
            rpm: self
                .rpm
                .map(u32::try_from)
                .transpose()
                .map_err(|_| bad("rpm"))?,
            tpm: self
                .tpm
                .map(u64::try_from)
                .transpose()
                .map_err(|_| bad("tpm"))?,
            max_concurrent: self
                .max_concurrent
                .map(u32::try_from)
                .transpose()
                .map_err(|_| bad("max_concurrent"))?,
        };
        let models = self
            .models
            .as_deref()
            .map(serde_json::from_str::<Vec<String>>)
            .transpose()
            .map_err(|_| bad("models"))?;
        let info = KeyInfo {
            name: Arc::from(self.name.as_str()),
            team: self.team.as_deref().map(Arc::from),
            limits,
            models,
            expires_at: self.expires_at_ms.map(from_ms),
            revoked_at: self.revoked_at_ms.map(from_ms),
            source: KeySource::Api,
            created_at: from_ms(self.created_at_ms),
        };
        Ok((info, digest))
    }
}

fn to_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.db");
        let key = KeyInfo {
            name: "ci".into(),
            team: Some("platform".into()),
            limits: Limits {
                budget: Some(Budget {
                    limit: Money::from_picos(12_345),
                    period: Period::Week,
                }),
                rpm: Some(60),
                tpm: Some(1_000_000),
                max_concurrent: Some(4),
            },
            models: Some(vec!["claude-*".into()]),
            expires_at: Some(UNIX_EPOCH + Duration::from_millis(1_900_000_000_123)),
            revoked_at: None,
            source: KeySource::Api,
            created_at: UNIX_EPOCH + Duration::from_millis(1_800_000_000_000),
        };
        let digest = [7u8; 32];
        {
            let store = KeyStore::open(&path).unwrap();
            store.insert(&key, &digest).unwrap();
            assert!(
                store.insert(&key, &digest).is_err(),
                "a name is stored once"
            );
        }
        let store = KeyStore::open(&path).unwrap();
        assert_eq!(store.load().unwrap(), vec![(key.clone(), digest)]);
        let revoked = KeyInfo {
            revoked_at: Some(UNIX_EPOCH + Duration::from_secs(1_850_000_000)),
            limits: Limits::default(),
            models: None,
            ..key
        };
        store.update(&revoked).unwrap();
        assert_eq!(store.load().unwrap(), vec![(revoked, digest)]);
        assert!(store.has_digest(&digest).unwrap());
    }
}
