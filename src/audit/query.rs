//! The read side: query filters, `since` parsing, and [`AuditReader`]. In WAL
//! mode readers see the last commit and never block the writer, nor it them.

use std::path::{Path, PathBuf};

use rusqlite::types::{Value, ValueRef};
use rusqlite::{params_from_iter, Connection};
use serde::{Deserialize, Serialize};

use super::chunks;
use super::error::AuditError;
use super::record::AuditRecord;
use super::schema;

/// `limit` used when a query gives none.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest `limit` honoured; larger values are clamped to it.
pub const MAX_LIMIT: usize = 1000;
/// Bytes of serialized records one [`AuditReader::page`] returns at most
/// (8 MiB); the page ends early at the record that would go over (a single
/// record is always returned, however large: bodies are capped when stored).
pub const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// Filters for [`AuditReader::query`] (and `GET /gateway/audit`, whose query
/// string deserializes straight into it).
///
/// All filters are ANDed. An empty string counts as "no filter".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditQuery {
    /// Most records to return: default [`DEFAULT_LIMIT`], clamped to
    /// [`MAX_LIMIT`]; `0` returns nothing.
    pub limit: Option<usize>,
    /// Only the record with this request id.
    pub request_id: Option<String>,
    /// Records whose requested model *or* served model is exactly this.
    pub model: Option<String>,
    /// Records served (or last tried) by this provider.
    pub provider: Option<String>,
    /// Records of the client key with this name.
    pub client: Option<String>,
    /// Records of keys of this team.
    pub team: Option<String>,
    /// Records of this session (as the client named it).
    pub session: Option<String>,
    /// Records whose `timestamp` is at or after this instant: unix
    /// milliseconds, RFC 3339 or a bare date (see [`parse_since`]).
    pub since: Option<String>,
    /// Continue a listing after the `next_cursor` of the previous
    /// [`AuditPage`] (`"<unix ms>:<seq>"`; also accepted as `before`). Records
    /// inserted meanwhile never shift a page: none is listed twice or skipped.
    #[serde(alias = "before")]
    pub cursor: Option<String>,
    /// Include bodies in a [`AuditReader::page`] listing (default: only when
    /// `request_id` is given). Still bounded by [`MAX_PAGE_BYTES`].
    /// [`AuditReader::query`] always includes them.
    pub bodies: Option<bool>,
}

/// One page of a listing ([`AuditReader::page`]): what `GET /gateway/audit`
/// answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditPage {
    /// The records, newest first.
    pub records: Vec<AuditRecord>,
    /// Whether the records carry their bodies (otherwise `request_body` and
    /// `response_body` are null whatever was stored).
    pub bodies: bool,
    /// Pass as `cursor` for the next page; `None` when there is nothing more.
    pub next_cursor: Option<String>,
}

impl AuditQuery {
    /// The limit this query will use: default 50, at most 1000.
    pub fn effective_limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT)
    }

    /// Whether a [`AuditReader::page`] for this query includes bodies: when
    /// it is for one record (`request_id`) or asks for them (`bodies`).
    pub fn wants_bodies(&self) -> bool {
        self.bodies.unwrap_or(false) || non_empty(&self.request_id).is_some()
    }
}

/// The cursor that continues a listing after the record at (`timestamp_ms`, `seq`).
pub(crate) fn cursor_after(timestamp_ms: i64, seq: i64) -> String {
    format!("{timestamp_ms}:{seq}")
}

pub(crate) fn parse_cursor(cursor: &str) -> Result<(i64, i64), AuditError> {
    let parsed = cursor
        .split_once(':')
        .and_then(|(ts, seq)| Some((ts.parse().ok()?, seq.parse().ok()?)));
    parsed.ok_or_else(|| {
        let expected = "expected the next_cursor of an earlier page";
        AuditError::InvalidQuery(format!("cursor: {expected}, got {cursor:?}"))
    })
}

/// Size and content figures of a database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AuditDbStats {
    /// Number of stored records.
    pub records: u64,
    /// Highest `seq` currently stored (0 when empty); a follower starts after it.
    pub max_seq: i64,
    /// SQLite page size in bytes.
    pub page_size: u64,
    /// Pages in the database (main file as seen through the WAL).
    pub page_count: u64,
    /// Pages on the free list (reclaimed by incremental vacuum).
    pub freelist_count: u64,
}

impl AuditDbStats {
    /// `page_count × page_size`: the main file's size once checkpointed.
    pub fn file_bytes(&self) -> u64 {
        self.page_count.saturating_mul(self.page_size)
    }
}

/// Reads an audit database. Cheap to clone; holds only the path. Every call
/// opens its own read-only connection (with or without a running store) and
/// never creates the file. Calls block: from async code use `spawn_blocking`.
#[derive(Debug, Clone)]
pub struct AuditReader {
    path: PathBuf,
}

impl AuditReader {
    /// A reader for the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> AuditReader {
        AuditReader { path: path.into() }
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records matching `filter`, newest first (by `timestamp_ms`, then by
    /// `seq`).
    pub fn query(&self, filter: &AuditQuery) -> Result<Vec<AuditRecord>, AuditError> {
        let rows = self.select(filter, true, filter.effective_limit(), |_| true)?;
        Ok(rows.into_iter().map(|row| row.record).collect())
    }

    /// Like [`query`](Self::query) but each record comes with its `seq`, so a
    /// follower can show recent records and then continue with
    /// [`query_after`](Self::query_after) from the largest `seq` shown.
    pub fn query_with_seq(
        &self,
        filter: &AuditQuery,
    ) -> Result<Vec<(i64, AuditRecord)>, AuditError> {
        let rows = self.select(filter, true, filter.effective_limit(), |_| true)?;
        Ok(rows.into_iter().map(|row| (row.seq, row.record)).collect())
    }

    /// One page of records matching `filter`, newest first, bounded by count
    /// (`limit`) and by bytes ([`MAX_PAGE_BYTES`] of serialized records).
    /// Bodies are included only when [`AuditQuery::wants_bodies`]; a listing
    /// without them reads no body from the file. `next_cursor` continues it.
    pub fn page(&self, filter: &AuditQuery) -> Result<AuditPage, AuditError> {
        self.page_within(filter, MAX_PAGE_BYTES)
    }

    /// [`page`](Self::page) with another byte budget.
    pub fn page_within(
        &self,
        filter: &AuditQuery,
        max_bytes: usize,
    ) -> Result<AuditPage, AuditError> {
        let limit = filter.effective_limit();
        let bodies = filter.wants_bodies();
        let mut used = 0usize;
        let mut taken = 0usize;
        let mut more = false;
        // One row past the limit tells whether there is a next page.
        let rows = self.select(filter, bodies, limit.saturating_add(1), |record| {
            let size = serde_json::to_vec(record).map_or(0, |json| json.len());
            if taken == limit || (taken > 0 && used.saturating_add(size) > max_bytes) {
                more = true;
                return false;
            }
            used += size;
            taken += 1;
            true
        })?;
        let next_cursor = if more {
            rows.last()
                .map(|row| cursor_after(row.timestamp_ms, row.seq))
        } else {
            None
        };
        Ok(AuditPage {
            records: rows.into_iter().map(|row| row.record).collect(),
            bodies,
            next_cursor,
        })
    }

    /// The filtered, newest-first select behind [`query_with_seq`](Self::query_with_seq)
    /// and [`page`](Self::page): at most `limit` rows, with or without bodies,
    /// stopping before the first record `keep` refuses.
    fn select(
        &self,
        filter: &AuditQuery,
        bodies: bool,
        limit: usize,
        keep: impl FnMut(&AuditRecord) -> bool,
    ) -> Result<Vec<Row>, AuditError> {
        let since = non_empty(&filter.since).map(parse_since).transpose()?;
        let cursor = non_empty(&filter.cursor).map(parse_cursor).transpose()?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let text = |s: &str| Value::Text(s.to_owned());
        let mut clauses: Vec<&str> = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        if let Some(id) = non_empty(&filter.request_id) {
            clauses.push("request_id = ?");
            params.push(text(id));
        }
        if let Some(model) = non_empty(&filter.model) {
            clauses.push("(requested_model = ? OR served_model = ?)");
            params.extend([text(model), text(model)]);
        }
        if let Some(provider) = non_empty(&filter.provider) {
            clauses.push("provider = ?");
            params.push(text(provider));
        }
        for (clause, value) in [
            ("json_extract(record_json, '$.client') = ?", &filter.client),
            ("json_extract(record_json, '$.team') = ?", &filter.team),
            (
                "json_extract(record_json, '$.session') = ?",
                &filter.session,
            ),
        ] {
            if let Some(value) = non_empty(value) {
                clauses.push(clause);
                params.push(text(value));
            }
        }
        if let Some(since) = since {
            clauses.push("timestamp_ms >= ?");
            params.push(Value::Integer(since));
        }
        if let Some((ts, seq)) = cursor {
            clauses.push("(timestamp_ms < ? OR (timestamp_ms = ? AND seq < ?))");
            params.extend([ts, ts, seq].map(Value::Integer));
        }
        let columns = if bodies {
            schema::SELECT_COLUMNS
        } else {
            schema::SELECT_COLUMNS_NO_BODIES
        };
        let mut sql = format!("SELECT {columns} FROM audit_records");
        if !clauses.is_empty() {
            sql = format!("{sql} WHERE {}", clauses.join(" AND "));
        }
        sql.push_str(" ORDER BY timestamp_ms DESC, seq DESC LIMIT ?");
        params.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let conn = schema::open_reader(&self.path)?;
        read_rows(&conn, &sql, params, keep)
    }

    /// Up to `limit` records with `seq > after_seq`, oldest first (by `seq`),
    /// each with its `seq`. `limit` is clamped to [`MAX_LIMIT`]. For
    /// `logs --follow`: poll with the last `seq` seen.
    pub fn query_after(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<(i64, AuditRecord)>, AuditError> {
        let limit = limit.min(MAX_LIMIT);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let conn = schema::open_reader(&self.path)?;
        let sql = format!(
            "SELECT {} FROM audit_records WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            schema::SELECT_COLUMNS
        );
        let params = vec![
            Value::Integer(after_seq),
            Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)),
        ];
        let rows = read_rows(&conn, &sql, params, |_| true)?;
        Ok(rows.into_iter().map(|row| (row.seq, row.record)).collect())
    }

    /// Record count, highest `seq`, and page figures of the file.
    pub fn stats(&self) -> Result<AuditDbStats, AuditError> {
        let conn = schema::open_reader(&self.path)?;
        let (records, max_seq): (i64, i64) = conn.query_row(
            "SELECT count(*), coalesce(max(seq), 0) FROM audit_records",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let [page_size, page_count, freelist_count] = schema::pages(&conn)?;
        Ok(AuditDbStats {
            records: u64::try_from(records).unwrap_or(0),
            max_seq,
            page_size,
            page_count,
            freelist_count,
        })
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// One row read back.
struct Row {
    seq: i64,
    timestamp_ms: i64,
    record: AuditRecord,
}

/// Run a select of [`schema::SELECT_COLUMNS`] and rebuild the records,
/// reassembling the bodies byte-exact. One read transaction, so the rows and
/// their chunks come from the same snapshot even while the writer prunes.
/// Stops before the first record `keep` refuses.
fn read_rows(
    conn: &Connection,
    sql: &str,
    params: Vec<Value>,
    mut keep: impl FnMut(&AuditRecord) -> bool,
) -> Result<Vec<Row>, AuditError> {
    let tx = conn.unchecked_transaction()?;
    let mut stmt = tx.prepare(sql)?;
    let mut rows = stmt.query(params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let json: String = row.get(2)?;
        let mut record: AuditRecord = serde_json::from_str(&json)?;
        let body = |i: usize| -> Result<Option<bytes::Bytes>, AuditError> {
            match row.get_ref(i)? {
                ValueRef::Blob(list) => Ok(Some(chunks::read_body(&tx, list)?)),
                _ => Ok(None),
            }
        };
        record.request_body = body(3)?;
        record.response_body = body(4)?;
        if !keep(&record) {
            break;
        }
        out.push(Row {
            seq: row.get(0)?,
            timestamp_ms: row.get(1)?,
            record,
        });
    }
    Ok(out)
}

/// Parse a `since` value into unix milliseconds.
///
/// Accepted forms:
/// - unix milliseconds as a decimal integer, optionally negative:
///   `"1700000000000"`;
/// - RFC 3339: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, with `t`, `z` or
///   a space also accepted; a fraction is truncated to milliseconds; a leap
///   second `:60` is accepted;
/// - a bare date `YYYY-MM-DD`, meaning midnight UTC.
///
/// Anything else is [`AuditError::InvalidQuery`].
pub fn parse_since(input: &str) -> Result<i64, AuditError> {
    let s = input.trim();
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .map_err(|_| AuditError::InvalidQuery(format!("since: {input:?} is out of range")));
    }
    super::time::parse_rfc3339_ms(s).ok_or_else(|| {
        AuditError::InvalidQuery(format!(
            "since: expected unix milliseconds or an RFC 3339 timestamp, got {input:?}"
        ))
    })
}
