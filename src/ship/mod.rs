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

mod cursor;
mod month;
mod page;
mod pg;
mod schema;
mod shipper;

pub use cursor::Cursor;
pub use pg::{PgAudit, PgError};
pub use shipper::{Shipper, ShipperStatus};
