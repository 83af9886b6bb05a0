//! [`PgKeyStore`]: the API-created keys in PostgreSQL, one table every replica reads.
//!
//! The same row as the SQLite store (digests only, never a key), plus `version`: every
//! insert and update takes the next number of `api_keys_version_seq` under a
//! transaction-scoped advisory lock, so writes commit in `version` order and a reader
//! that asks for `version > last` never skips a row that commits later with a lower
//! number. Each write is one statement (the lock, the number and the row together), so
//! one round trip.

use super::store::Row;
use super::{KeyError, KeyInfo, StoreError};
use crate::ship::{PgAudit, PgError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use tokio_postgres::types::ToSql;

/// The columns of a row, in [`Row`]'s order.
const COLUMNS: &str = "name, sha256, team, budget_picos, budget_period, rpm, tpm, \
                       max_concurrent, models, created_at_ms, expires_at_ms, revoked_at_ms";

/// Serialises key writes of one schema until their statement commits.
const LOCK: &str = "WITH lock AS (SELECT pg_advisory_xact_lock(\
                    hashtext('llm_gateway_keys:' || current_schema())))";

/// The shared side of a [`KeyRegistry`](super::KeyRegistry): the connection writes go through and what the
/// poller last saw.
#[derive(Debug)]
pub struct SharedKeys {
    pub(super) writer: PgKeyStore,
    pub(super) healthy: AtomicBool,
    pub(super) last_error: Mutex<Option<String>>,
}

impl SharedKeys {
    /// Whether the last poll reached PostgreSQL.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Why the last poll failed, while it fails.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn polled(&self, result: Result<(), String>) {
        self.healthy.store(result.is_ok(), Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = result.err();
    }
}

/// A key read back with the version of its last write.
pub(super) type Versioned = (i64, KeyInfo, [u8; 32]);

/// The `api_keys` table of the schema `[audit] postgres_schema`, on its own connection.
#[derive(Debug)]
pub(super) struct PgKeyStore {
    pg: PgAudit,
}

impl From<PgError> for KeyError {
    fn from(error: PgError) -> Self {
        match error {
            PgError::Unavailable(cause) => KeyError::Unavailable(cause),
            PgError::Invalid(error) => KeyError::Store(StoreError::from_message(error.to_string())),
        }
    }
}

impl PgKeyStore {
    /// Keys in the schema `pg` migrates (the key table comes with the audit schema).
    pub(super) fn new(pg: PgAudit) -> Self {
        Self { pg }
    }

    /// Add a new key; [`KeyError::NameTaken`] when any replica already stored the name.
    pub(super) async fn insert(&self, key: &KeyInfo, digest: &[u8; 32]) -> Result<(), KeyError> {
        let row = Row::of(key, digest);
        let sql = format!(
            "{LOCK} INSERT INTO api_keys ({COLUMNS}, version) \
             SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::int8, $7::int8, \
                    $8::int8, $9::text, $10::int8, $11::int8, $12::int8, \
                    nextval('api_keys_version_seq') FROM lock \
             ON CONFLICT (name) DO NOTHING RETURNING version"
        );
        let params: [&(dyn ToSql + Sync); 12] = [
            &row.name,
            &row.sha256,
            &row.team,
            &row.budget_picos,
            &row.budget_period,
            &row.rpm,
            &row.tpm,
            &row.max_concurrent,
            &row.models,
            &row.created_at_ms,
            &row.expires_at_ms,
            &row.revoked_at_ms,
        ];
        if self.pg.query(&sql, &params).await?.is_empty() {
            return Err(KeyError::NameTaken(row.name));
        }
        Ok(())
    }

    /// Write `key`'s team, limits, models, expiry and revocation over its row. A key
    /// revoked by any replica stays revoked (a write from a stale copy cannot undo it).
    pub(super) async fn update(&self, key: &KeyInfo) -> Result<(), KeyError> {
        let row = Row::of(key, &[0; 32]);
        let sql = format!(
            "{LOCK} UPDATE api_keys SET team = $2::text, budget_picos = $3::text, \
                 budget_period = $4::text, rpm = $5::int8, tpm = $6::int8, \
                 max_concurrent = $7::int8, models = $8::text, expires_at_ms = $9::int8, \
                 revoked_at_ms = COALESCE(api_keys.revoked_at_ms, $10::int8), \
                 version = nextval('api_keys_version_seq') \
             FROM lock WHERE name = $1::text RETURNING version"
        );
        let params: [&(dyn ToSql + Sync); 10] = [
            &row.name,
            &row.team,
            &row.budget_picos,
            &row.budget_period,
            &row.rpm,
            &row.tpm,
            &row.max_concurrent,
            &row.models,
            &row.expires_at_ms,
            &row.revoked_at_ms,
        ];
        if self.pg.query(&sql, &params).await?.is_empty() {
            return Err(KeyError::NotFound(row.name));
        }
        Ok(())
    }

    /// Every key written after `version`, in version order.
    pub(super) async fn changes_since(&self, version: i64) -> Result<Vec<Versioned>, KeyError> {
        let sql = format!(
            "SELECT {COLUMNS}, version FROM api_keys WHERE version > $1::int8 ORDER BY version"
        );
        let rows = self.pg.query(&sql, &[&version]).await?;
        rows.iter()
            .map(|r| {
                let row = Row {
                    name: r.try_get(0)?,
                    sha256: r.try_get(1)?,
                    team: r.try_get(2)?,
                    budget_picos: r.try_get(3)?,
                    budget_period: r.try_get(4)?,
                    rpm: r.try_get(5)?,
                    tpm: r.try_get(6)?,
                    max_concurrent: r.try_get(7)?,
                    models: r.try_get(8)?,
                    created_at_ms: r.try_get(9)?,
                    expires_at_ms: r.try_get(10)?,
                    revoked_at_ms: r.try_get(11)?,
                };
                let version: i64 = r.try_get(12)?;
                let (info, digest) = row.into_key()?;
                Ok((version, info, digest))
            })
            .collect::<Result<_, KeyError>>()
    }
}

impl From<tokio_postgres::Error> for KeyError {
    fn from(error: tokio_postgres::Error) -> Self {
        KeyError::Store(StoreError::from_message(error.to_string()))
    }
}
