//! The PostgreSQL schema: created and migrated at start, partitions made and dropped.
//!
//! ```sql
//! schema_version(version integer)            -- one row: the version applied
//! audit_records(
//!     id bigint DEFAULT nextval(...),        -- order among equal timestamps (paging)
//!     request_id text, ts timestamptz,       -- primary key (request_id, ts)
//!     provider, requested_model, served_model, client, team, session text,
//!     status integer, cost_usd numeric(38,12),
//!     record jsonb                           -- the record, bodies null
//! ) PARTITION BY RANGE (ts)
//! audit_bodies(request_id text, ts timestamptz, request_body bytea, response_body bytea)
//!     PARTITION BY RANGE (ts)                -- primary key (request_id, ts)
//! api_keys(name text PRIMARY KEY, sha256 text UNIQUE, team, limits, models,
//!     created/expires/revoked_at_ms bigint,  -- the API-created client keys (digests only)
//!     version bigint)                        -- from api_keys_version_seq on every write
//! ```
//!
//! A unique key of a partitioned table must hold the partition key, so records are
//! unique on `(request_id, ts)`: `ts` comes from the record, identical on every
//! re-send. Partitions are named `<table>_pYYYYMM` and hold one UTC month. DDL runs
//! under a transaction-scoped advisory lock, so replicas starting together do not race.

use super::month::{time_of_ms, Month};
use tokio_postgres::Client;

/// The version [`MIGRATIONS`] brings a schema to.
pub(crate) const VERSION: i32 = 2;

/// Step `n` (1-based) brings version `n - 1` to `n`.
const MIGRATIONS: &[&str] = &[
    "
CREATE SEQUENCE audit_records_id_seq;
CREATE TABLE audit_records (
    id bigint NOT NULL DEFAULT nextval('audit_records_id_seq'),
    request_id text NOT NULL,
    ts timestamptz NOT NULL,
    provider text,
    requested_model text,
    served_model text,
    client text,
    team text,
    session text,
    status integer NOT NULL,
    cost_usd numeric(38, 12),
    record jsonb NOT NULL,
    PRIMARY KEY (request_id, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX audit_records_time ON audit_records (ts DESC, id DESC);
CREATE INDEX audit_records_provider ON audit_records (provider, ts DESC);
CREATE INDEX audit_records_requested ON audit_records (requested_model, ts DESC);
CREATE INDEX audit_records_served ON audit_records (served_model, ts DESC);
CREATE INDEX audit_records_client ON audit_records (client, ts DESC);
CREATE INDEX audit_records_team ON audit_records (team, ts DESC);
CREATE INDEX audit_records_session ON audit_records (session, ts DESC);
CREATE TABLE audit_bodies (
    request_id text NOT NULL,
    ts timestamptz NOT NULL,
    request_body bytea,
    response_body bytea,
    PRIMARY KEY (request_id, ts)
) PARTITION BY RANGE (ts);
",
    "
CREATE SEQUENCE api_keys_version_seq;
CREATE TABLE api_keys (
    name text PRIMARY KEY,
    sha256 text NOT NULL UNIQUE,
    team text,
    budget_picos text,
    budget_period text,
    rpm bigint,
    tpm bigint,
    max_concurrent bigint,
    models text,
    created_at_ms bigint NOT NULL,
    expires_at_ms bigint,
    revoked_at_ms bigint,
    version bigint NOT NULL
);
CREATE INDEX api_keys_version ON api_keys (version);
",
];

/// The two partitioned tables.
const TABLES: [&str; 2] = ["audit_records", "audit_bodies"];

/// Whether `name` is a plain lower-case identifier (letters, digits, `_`; not
/// starting with a digit; at most 63 bytes): safe to put into SQL unquoted.
pub(crate) fn valid_schema_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && name.len() <= 63
}

/// Take the DDL lock of `schema` for the rest of the transaction.
async fn lock(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('llm_gateway_audit:' || $1::text))",
        &[&schema],
    )
    .await
    .map(drop)
}

/// Create `schema` if needed, make it the connection's `search_path`, and apply the
/// migrations it lacks. Fails on a schema newer than this code.
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<(), String> {
    let db = |e: tokio_postgres::Error| e.to_string();
    let tx = client.transaction().await.map_err(db)?;
    lock(&tx, schema).await.map_err(db)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; SET LOCAL search_path TO {schema}; \
         CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL);"
    ))
    .await
    .map_err(db)?;
    let current: Option<i32> = tx
        .query_opt("SELECT max(version) FROM schema_version", &[])
        .await
        .map_err(db)?
        .and_then(|row| row.get(0));
    let current = current.unwrap_or(0);
    if current > VERSION {
        return Err(format!(
            "the audit schema {schema} is at version {current}, newer than this gateway's {VERSION}"
        ));
    }
    for step in &MIGRATIONS[current as usize..] {
        tx.batch_execute(step).await.map_err(db)?;
    }
    if current < VERSION {
        tx.execute("DELETE FROM schema_version", &[])
            .await
            .map_err(db)?;
        tx.execute("INSERT INTO schema_version VALUES ($1)", &[&VERSION])
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    client
        .batch_execute(&format!("SET search_path TO {schema}"))
        .await
        .map_err(db)
}

/// Create the partitions of `months` that are missing (both tables).
pub(crate) async fn ensure_partitions(
    client: &mut Client,
    schema: &str,
    months: &[Month],
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    lock(&tx, schema).await?;
    for month in months {
        let from = time_of_ms(month.start_ms());
        let to = time_of_ms(month.next().start_ms());
        for table in TABLES {
            // DDL takes no parameters: the bounds come from integers, quoted by
            // PostgreSQL itself through format().
            let sql: String = tx
                .query_one(
                    "SELECT format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I \
                     FOR VALUES FROM (%L) TO (%L)', $1::text, $2::text, $3::timestamptz, $4::timestamptz)",
                    &[&format!("{table}_{}", month.suffix()), &table, &from, &to],
                )
                .await?
                .get(0);
            tx.batch_execute(&sql).await?;
        }
    }
    tx.commit().await
}

/// Drop every partition (of both tables) that ends at or before `cutoff_ms`; the
/// names dropped.
pub(crate) async fn drop_partitions_before(
    client: &mut Client,
    schema: &str,
    cutoff_ms: i64,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    lock(&tx, schema).await?;
    let rows = tx
        .query(
            "SELECT c.relname::text, p.relname::text FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent \
             JOIN pg_namespace n ON n.oid = p.relnamespace \
             WHERE n.nspname = $1 AND p.relname = ANY($2) ORDER BY 1",
            &[&schema, &TABLES.to_vec()],
        )
        .await?;
    let mut dropped = Vec::new();
    for row in rows {
        let (name, parent): (String, String) = (row.get(0), row.get(1));
        let month = name
            .strip_prefix(parent.as_str())
            .and_then(|rest| rest.strip_prefix('_'))
            .and_then(Month::parse_suffix);
        if month.is_some_and(|m| m.next().start_ms() <= cutoff_ms) {
            tx.batch_execute(&format!("DROP TABLE {schema}.{name}"))
                .await?;
            dropped.push(name);
        }
    }
    tx.commit().await?;
    Ok(dropped)
}
