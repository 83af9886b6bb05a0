//! The PostgreSQL half: the same answer summed by PostgreSQL over the shared audit
//! table (time range on its `ts` index; cost summed as `numeric`, exact).

use super::cell::Cell;
use super::query::{time_of, GroupBy, UsageQuery};
use super::UsageAnswer;
use crate::keys::parse_usd;
use crate::ship::{PgAudit, PgError};
use std::collections::BTreeMap;

/// The SQL expression of an attribute's value.
fn key_expression(group: Option<GroupBy>) -> &'static str {
    match group {
        None => "NULL::text",
        Some(GroupBy::Model) => "coalesce(served_model, requested_model)",
        Some(GroupBy::Provider) => "provider",
        Some(GroupBy::AgentType) => "record->>'agent_type'",
        Some(GroupBy::Client) => "client",
        Some(GroupBy::Team) => "team",
        Some(GroupBy::Session) => "session",
    }
}

/// A token count from the record's usage, summed as `numeric` (never wraps).
fn tokens(field: &str) -> String {
    format!("coalesce(sum((record->'usage'->>'{field}')::numeric), 0)::text")
}

impl PgAudit {
    /// The usage `query` asks for, summed over every replica's records.
    pub async fn usage(&self, query: &UsageQuery) -> Result<UsageAnswer, PgError> {
        let sql = format!(
            "SELECT (floor(extract(epoch FROM ts) * 1000 / $3::bigint) * $3::bigint)::bigint, {key}, \
             count(*)::bigint, (count(*) FILTER (WHERE cost_usd IS NULL))::bigint, \
             coalesce(sum(cost_usd), 0)::text, {input}, {output}, {write}, {read} \
             FROM audit_records WHERE ts >= $1 AND ts < $2 GROUP BY 1, 2",
            key = key_expression(query.group_by),
            input = tokens("input_tokens"),
            output = tokens("output_tokens"),
            write = tokens("cache_creation_input_tokens"),
            read = tokens("cache_read_input_tokens"),
        );
        let since = time_of(query.since_ms);
        let until = time_of(query.until_ms);
        let width = query.bucket.millis();
        let rows = self.query(&sql, &[&since, &until, &width]).await?;
        let mut cells: BTreeMap<(Option<String>, i64), Cell> = BTreeMap::new();
        for row in rows {
            let count = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
            let big = |i: usize| {
                let text: String = row.get(i);
                text.parse::<u64>().unwrap_or(u64::MAX)
            };
            let cost: String = row.get(4);
            let cell = Cell {
                requests: count(2),
                unpriced: count(3),
                cost: parse_usd(&cost).map_err(PgError::Unavailable)?,
                input_tokens: big(5),
                output_tokens: big(6),
                cache_write_tokens: big(7),
                cache_read_tokens: big(8),
            };
            cells.insert((row.get(1), row.get(0)), cell);
        }
        Ok(UsageAnswer::from_cells(query, cells))
    }
}
