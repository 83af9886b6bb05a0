//! The audit trail in PostgreSQL, shared by every replica.
//!
//! With `[audit] postgres_url`, every record is still written first to the replica's
//! SQLite file at `[audit] path` (durable, never blocking a response): that file is the
//! replica's spool. A [`Shipper`] thread reads it in `seq` order and inserts batches
//! into PostgreSQL ([`PgAudit::ship`]), each record exactly once: the insert is
//! `ON CONFLICT DO NOTHING` on `(request_id, ts)`, and the last shipped `seq` (the
//! cursor, in a side file `<path>.pg-cursor`) advances only after PostgreSQL committed,
//! so a batch re-sent after a crash adds nothing. While PostgreSQL is unreachable the
//! shipper retries with back-off (100 ms doubling to 5 s) and the spool grows.
//!
//! # The PostgreSQL side
//!
//! Created and migrated at start (table `schema_version`), in the schema
//! `[audit] postgres_schema`: `audit_records` (the filter columns, the cost as
//! `numeric(38,12)`, the record as `jsonb` without bodies) and `audit_bodies` (the
//! bodies, keyed like the records), both partitioned by month on the record's
//! timestamp. The shipper creates partitions as records need them and one month ahead;
//! retention (`[audit] retention_days`) drops whole partitions (no `DELETE`).
//! `/gateway/audit` then answers from PostgreSQL ([`PgAudit::page`]), so every replica
//! answers the same.
//!
//! # Limits
//!
//! - The spool keeps its own retention: `[audit] retention_days` and `max_db_bytes`
//!   prune it by age and size whether or not a row was shipped. An outage longer than
//!   the retention, or one that fills `max_db_bytes`, loses the oldest unshipped
//!   records; the shipper goes on with the next `seq` it finds. Size the spool for the
//!   longest outage to ride out.
//! - Records older than `retention_days` when they are shipped are skipped (their
//!   month would be dropped at once).
//! - The cursor belongs to the spool, not to a database: pointing a spool at another
//!   database ships only what came after the cursor (delete `<path>.pg-cursor` to
//!   send everything again; PostgreSQL ignores what it already has).
//! - No TLS: use a loopback or otherwise trusted network to PostgreSQL.

mod cursor;
mod month;
mod page;
mod pg;
mod schema;
mod shipper;

pub use cursor::Cursor;
pub use pg::{PgAudit, PgError};
pub use shipper::{Shipper, ShipperStatus};
