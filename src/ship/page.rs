//! `/gateway/audit` from PostgreSQL: the same filters, order, paging and byte bound as
//! the SQLite reader, so every replica answers the same.

use super::month::{ms_of_time, time_of_ms};
use super::pg::{PgAudit, PgError};
use crate::audit::{parse_since, AuditError, AuditPage, AuditQuery, AuditRecord, MAX_PAGE_BYTES};
use std::time::SystemTime;
use tokio_postgres::types::ToSql;

impl PgAudit {
    /// One page of records matching `filter`, newest first (by timestamp, then by
    /// insertion), bounded by `limit` and by [`MAX_PAGE_BYTES`] of JSON, with bodies
    /// only when [`AuditQuery::wants_bodies`]; `next_cursor` continues it.
    pub async fn page(&self, filter: &AuditQuery) -> Result<AuditPage, PgError> {
        self.page_within(filter, MAX_PAGE_BYTES).await
    }

    /// [`page`](Self::page) with another byte budget.
    pub async fn page_within(
        &self,
        filter: &AuditQuery,
        max_bytes: usize,
    ) -> Result<AuditPage, PgError> {
        let since = non_empty(&filter.since).map(parse_since).transpose()?;
        let cursor = non_empty(&filter.cursor).map(parse_cursor).transpose()?;
        let limit = filter.effective_limit();
        let bodies = filter.wants_bodies();
        if limit == 0 {
            return Ok(AuditPage {
                bodies,
                ..AuditPage::default()
            });
        }
        let mut clauses: Vec<String> = Vec::new();
        let mut texts: Vec<(String, String)> = Vec::new();
        for (column, value) in [
            ("r.request_id", &filter.request_id),
            ("r.provider", &filter.provider),
            ("r.client", &filter.client),
            ("r.team", &filter.team),
            ("r.session", &filter.session),
        ] {
            if let Some(value) = non_empty(value) {
                texts.push((column.to_owned(), value.to_owned()));
            }
        }
        let model = non_empty(&filter.model).map(str::to_owned);
        let since = since.map(time_of_ms);
        let cursor = cursor.map(|(ts, id)| (time_of_ms(ts), id));
        let limit_param = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);

        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        for (column, value) in &texts {
            params.push(value);
            clauses.push(format!("{column} = ${}", params.len()));
        }
        if let Some(model) = &model {
            params.push(model);
            let n = params.len();
            clauses.push(format!(
                "(r.requested_model = ${n} OR r.served_model = ${n})"
            ));
        }
        if let Some(since) = &since {
            params.push(since);
            clauses.push(format!("r.ts >= ${}", params.len()));
        }
        if let Some((ts, id)) = &cursor {
            params.push(ts);
            params.push(id);
            let (t, i) = (params.len() - 1, params.len());
            clauses.push(format!("(r.ts < ${t} OR (r.ts = ${t} AND r.id < ${i}))"));
        }
        params.push(&limit_param);
        let body_columns = if bodies {
            "b.request_body, b.response_body FROM audit_records r LEFT JOIN audit_bodies b \
             ON b.request_id = r.request_id AND b.ts = r.ts"
        } else {
            "NULL::bytea, NULL::bytea FROM audit_records r"
        };
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT r.id, r.ts, r.record::text, {body_columns}{filter_sql} \
             ORDER BY r.ts DESC, r.id DESC LIMIT ${}",
            params.len()
        );
        let rows = self.query(&sql, &params).await?;

        let mut records = Vec::new();
        let mut last = None;
        let mut used = 0usize;
        let mut more = false;
        for row in rows {
            let json: String = row.get(2);
            let mut record: AuditRecord =
                serde_json::from_str(&json).map_err(|e| PgError::Invalid(e.into()))?;
            record.request_body = row.get::<_, Option<Vec<u8>>>(3).map(Into::into);
            record.response_body = row.get::<_, Option<Vec<u8>>>(4).map(Into::into);
            let size = serde_json::to_vec(&record).map_or(0, |json| json.len());
            if records.len() == limit
                || (!records.is_empty() && used.saturating_add(size) > max_bytes)
            {
                more = true;
                break;
            }
            used += size;
            let ts: SystemTime = row.get(1);
            last = Some((ms_of_time(ts), row.get::<_, i64>(0)));
            records.push(record);
        }
        let next_cursor = if more {
            last.map(|(ts, id)| format!("{ts}:{id}"))
        } else {
            None
        };
        Ok(AuditPage {
            records,
            bodies,
            next_cursor,
        })
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// `"<unix ms>:<id>"`, the shape of the SQLite reader's cursor.
fn parse_cursor(cursor: &str) -> Result<(i64, i64), AuditError> {
    let parsed = cursor
        .split_once(':')
        .and_then(|(ts, id)| Some((ts.parse().ok()?, id.parse().ok()?)));
    parsed.ok_or_else(|| {
        let expected = "expected the next_cursor of an earlier page";
        AuditError::InvalidQuery(format!("cursor: {expected}, got {cursor:?}"))
    })
}
