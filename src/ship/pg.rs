//! [`PgAudit`]: one PostgreSQL connection to the audit schema, opened on first use and
//! again after it broke.

use super::month::{time_of_ms, Month};
use super::schema;
use crate::audit::{AuditError, AuditRecord};
use crate::config::{ConfigError, Secret};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one statement or batch may take before the connection is given up.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Body bytes one insert statement carries at most (a batch may use several).
const BODY_STATEMENT_BYTES: usize = 8 * 1024 * 1024;

/// Why a PostgreSQL call failed. Never names the URL or its password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// PostgreSQL could not be reached, or a statement failed or timed out.
    #[error("the audit database is unavailable: {0}")]
    Unavailable(String),
    /// The query was refused before reaching PostgreSQL (a bad filter or cursor).
    #[error(transparent)]
    Invalid(#[from] AuditError),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(error: tokio_postgres::Error) -> Self {
        PgError::Unavailable(error.to_string())
    }
}

/// The audit schema in PostgreSQL: ship records in, read pages out.
///
/// Holds one connection (opened on first use, migrating the schema; opened again when
/// it broke); calls take turns on it. Uses no TLS: point it at a loopback or otherwise
/// trusted network. Its `Debug` shows the schema, never the URL.
pub struct PgAudit {
    config: tokio_postgres::Config,
    schema: String,
    state: Mutex<Conn>,
}

#[derive(Default)]
struct Conn {
    client: Option<Client>,
    /// Months whose partitions exist (as far as this connection made sure).
    partitions: HashSet<Month>,
}

impl std::fmt::Debug for PgAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAudit")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PgAudit {
    /// The audit schema `schema` in the database at `url` (`postgres://…`). Connects
    /// nothing yet. Errors name `audit.postgres_url` or `audit.postgres_schema`.
    pub fn new(url: &Secret, schema: &str) -> Result<PgAudit, ConfigError> {
        let mut config: tokio_postgres::Config = url.expose().parse().map_err(|_| {
            ConfigError::at(
                "audit.postgres_url",
                "is not a valid PostgreSQL URL (postgres://user@host:port/database)",
            )
        })?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("llm-gateway");
        if !schema::valid_schema_name(schema) {
            return Err(ConfigError::at(
                "audit.postgres_schema",
                format!("{schema:?} must be lower-case letters, digits and _ (at most 63)"),
            ));
        }
        Ok(PgAudit {
            config,
            schema: schema.to_owned(),
            state: Mutex::new(Conn::default()),
        })
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The connection, opened (and the schema migrated) first when needed.
    async fn connected(&self) -> Result<tokio::sync::MutexGuard<'_, Conn>, PgError> {
        let mut conn = self.state.lock().await;
        if conn.client.as_ref().is_none_or(Client::is_closed) {
            conn.client = None;
            conn.partitions.clear();
            let opened = tokio::time::timeout(CALL_TIMEOUT, async {
                let (mut client, connection) = self.config.connect(NoTls).await?;
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "audit database connection closed");
                    }
                });
                schema::migrate(&mut client, &self.schema)
                    .await
                    .map_err(PgError::Unavailable)?;
                Ok::<_, PgError>(client)
            })
            .await
            .unwrap_or_else(|_| Err(PgError::Unavailable("connecting timed out".into())))?;
            conn.client = Some(opened);
        }
        Ok(conn)
    }

    /// Connect and migrate the schema now (otherwise done by the first call).
    pub async fn connect(&self) -> Result<(), PgError> {
        self.connected().await.map(drop)
    }

    /// Make sure the partitions for the months of `timestamps_ms` exist.
    pub async fn ensure_partitions(&self, timestamps_ms: &[i64]) -> Result<(), PgError> {
        let months: Vec<Month> = timestamps_ms.iter().map(|&ms| Month::of_ms(ms)).collect();
        let mut guard = self.connected().await?;
        let conn = &mut *guard;
        let client = conn.client.as_mut().expect("connected");
        let result = timed(ensure(client, &mut conn.partitions, &self.schema, months)).await;
        settle(conn, result)
    }

    /// Insert `records` in one transaction, each at most once: a record already there
    /// (same `request_id` and timestamp) is left as it is. Creates missing partitions.
    /// Returns how many rows were new. A record whose timestamp does not parse is
    /// stored at the epoch.
    pub async fn ship(&self, records: &[AuditRecord]) -> Result<u64, PgError> {
        if records.is_empty() {
            return Ok(0);
        }
        let rows: Vec<Row> = records.iter().map(Row::of).collect::<Result<_, _>>()?;
        let months = rows.iter().map(|row| Month::of_ms(row.ts_ms)).collect();
        let mut guard = self.connected().await?;
        let conn = &mut *guard;
        let client = conn.client.as_mut().expect("connected");
        let known = &mut conn.partitions;
        let schema = self.schema.as_str();
        let result = timed(async move {
            ensure(client, known, schema, months).await?;
            let tx = client.transaction().await?;
            let inserted = insert_records(&tx, &rows).await?;
            insert_bodies(&tx, &rows).await?;
            tx.commit().await?;
            Ok(inserted)
        })
        .await;
        settle(conn, result)
    }

    /// Drop the partitions that end at or before `cutoff_ms` (unix ms); their names.
    pub async fn drop_partitions_before(&self, cutoff_ms: i64) -> Result<Vec<String>, PgError> {
        let mut guard = self.connected().await?;
        let conn = &mut *guard;
        let client = conn.client.as_mut().expect("connected");
        let result = timed(async {
            Ok(schema::drop_partitions_before(client, &self.schema, cutoff_ms).await?)
        })
        .await;
        conn.partitions.clear();
        settle(conn, result)
    }

    /// Run one statement on the connection (the page and usage queries, the key store's reads and
    /// writes), in its own transaction.
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, PgError> {
        let mut guard = self.connected().await?;
        let conn = &mut *guard;
        let client = conn.client.as_ref().expect("connected");
        let result = timed(async { Ok(client.query(sql, params).await?) }).await;
        settle(conn, result)
    }
}

/// `call` bounded by [`CALL_TIMEOUT`].
async fn timed<T>(
    call: impl std::future::Future<Output = Result<T, PgError>>,
) -> Result<T, PgError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(PgError::Unavailable("timed out".into())))
}

/// Pass `result` on; an unavailable database drops the connection, so the next call
/// opens a new one.
fn settle<T>(conn: &mut Conn, result: Result<T, PgError>) -> Result<T, PgError> {
    if matches!(result, Err(PgError::Unavailable(_))) {
        conn.client = None;
    }
    result
}

async fn ensure(
    client: &mut Client,
    known: &mut HashSet<Month>,
    schema: &str,
    months: Vec<Month>,
) -> Result<(), PgError> {
    let mut missing: Vec<Month> = months.into_iter().filter(|m| !known.contains(m)).collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        schema::ensure_partitions(client, schema, &missing).await?;
        known.extend(missing);
    }
    Ok(())
}

/// One record as its columns.
struct Row {
    request_id: String,
    ts_ms: i64,
    ts: std::time::SystemTime,
    provider: Option<String>,
    requested_model: Option<String>,
    served_model: Option<String>,
    client: Option<String>,
    team: Option<String>,
    session: Option<String>,
    status: i32,
    cost_usd: Option<String>,
    json: String,
    request_body: Option<Vec<u8>>,
    response_body: Option<Vec<u8>>,
}

impl Row {
    fn of(record: &AuditRecord) -> Result<Row, PgError> {
        let ts_ms = record.timestamp_ms().unwrap_or(0);
        let mut bare = record.clone();
        let request_body = bare.request_body.take().map(|b| b.to_vec());
        let response_body = bare.response_body.take().map(|b| b.to_vec());
        let json = serde_json::to_string(&bare).map_err(|e| PgError::Invalid(e.into()))?;
        Ok(Row {
            request_id: bare.request_id,
            ts_ms,
            ts: time_of_ms(ts_ms),
            provider: bare.provider,
            requested_model: bare.requested_model,
            served_model: bare.served_model,
            client: bare.client,
            team: bare.team,
            session: bare.session,
            status: i32::from(bare.status),
            cost_usd: bare.cost_usd,
            json,
            request_body,
            response_body,
        })
    }
}

/// `($1, $2, …)` groups of `width` placeholders for `rows` rows, with `casts` applied
/// per column (empty for none).
fn placeholders(rows: usize, casts: &[&str]) -> String {
    let width = casts.len();
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = casts
                .iter()
                .enumerate()
                .map(|(c, cast)| format!("${}{cast}", r * width + c + 1))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn insert_records(
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[Row],
) -> Result<u64, PgError> {
    const CASTS: [&str; 11] = [
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "::int4",
        "::text::numeric",
        "::text::jsonb",
    ];
    let mut inserted = 0;
    // 11 parameters a row; PostgreSQL takes at most 65535 a statement.
    for chunk in rows.chunks(1000) {
        let sql = format!(
            "INSERT INTO audit_records (request_id, ts, provider, requested_model, \
             served_model, client, team, session, status, cost_usd, record) \
             VALUES {} ON CONFLICT (request_id, ts) DO NOTHING",
            placeholders(chunk.len(), &CASTS)
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * 11);
        for row in chunk {
            params.extend([
                &row.request_id as &(dyn ToSql + Sync),
                &row.ts,
                &row.provider,
                &row.requested_model,
                &row.served_model,
                &row.client,
                &row.team,
                &row.session,
                &row.status,
                &row.cost_usd,
                &row.json,
            ]);
        }
        inserted += tx.execute(&sql, &params).await?;
    }
    Ok(inserted)
}

async fn insert_bodies(tx: &tokio_postgres::Transaction<'_>, rows: &[Row]) -> Result<(), PgError> {
    let with_bodies: Vec<&Row> = rows
        .iter()
        .filter(|r| r.request_body.is_some() || r.response_body.is_some())
        .collect();
    let mut start = 0;
    while start < with_bodies.len() {
        // As many rows as fit the statement's byte budget, at least one.
        let mut end = start;
        let mut bytes = 0;
        while end < with_bodies.len() && (end == start || bytes < BODY_STATEMENT_BYTES) {
            let row = with_bodies[end];
            bytes += row.request_body.as_ref().map_or(0, Vec::len)
                + row.response_body.as_ref().map_or(0, Vec::len);
            end += 1;
        }
        let chunk = &with_bodies[start..end];
        let sql = format!(
            "INSERT INTO audit_bodies (request_id, ts, request_body, response_body) \
             VALUES {} ON CONFLICT (request_id, ts) DO NOTHING",
            placeholders(chunk.len(), &["", "", "", ""])
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * 4);
        for row in chunk {
            params.extend([
                &row.request_id as &(dyn ToSql + Sync),
                &row.ts,
                &row.request_body,
                &row.response_body,
            ]);
        }
        tx.execute(&sql, &params).await?;
        start = end;
    }
    Ok(())
}
