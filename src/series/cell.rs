//! [`Cell`]: the sums of one bucket of one key, and what a record adds to them.

use super::{GroupBy, UsagePoint};
use crate::audit::AuditRecord;
use crate::keys::parse_usd;
use crate::pricing::Money;

/// Exact sums of some records: counts, cost in pico-dollars, tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cell {
    /// Records.
    pub requests: u64,
    /// The priced records' cost.
    pub cost: Money,
    /// Records without a known cost.
    pub unpriced: u64,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-write tokens.
    pub cache_write_tokens: u64,
    /// Cache-read tokens.
    pub cache_read_tokens: u64,
}

impl Cell {
    /// Add `other` into this cell (saturating: a sum never wraps).
    pub fn add(&mut self, other: &Cell) {
        self.requests = self.requests.saturating_add(other.requests);
        self.cost = self.cost.saturating_add(other.cost);
        self.unpriced = self.unpriced.saturating_add(other.unpriced);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cache_write_tokens = self
            .cache_write_tokens
            .saturating_add(other.cache_write_tokens);
        self.cache_read_tokens = self
            .cache_read_tokens
            .saturating_add(other.cache_read_tokens);
    }

    /// The point of this cell for the bucket starting at `start_ms`.
    pub(crate) fn point(&self, start_ms: i64) -> UsagePoint {
        UsagePoint {
            start: crate::audit::AuditRecord::format_timestamp(super::query::time_of(start_ms)),
            requests: self.requests,
            cost_usd: self.cost,
            unpriced_requests: self.unpriced,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_write_tokens: self.cache_write_tokens,
            cache_read_tokens: self.cache_read_tokens,
        }
    }

    /// The sums a point shows.
    pub(crate) fn of_point(point: &UsagePoint) -> Cell {
        Cell {
            requests: point.requests,
            cost: point.cost_usd,
            unpriced: point.unpriced_requests,
            input_tokens: point.input_tokens,
            output_tokens: point.output_tokens,
            cache_write_tokens: point.cache_write_tokens,
            cache_read_tokens: point.cache_read_tokens,
        }
    }
}

/// What one audit record adds to the sums: one request, its cost and tokens.
pub fn record_cell(record: &AuditRecord) -> Cell {
    let cost = record.cost_usd.as_deref().and_then(|c| parse_usd(c).ok());
    let usage = &record.usage;
    Cell {
        requests: 1,
        cost: cost.unwrap_or(Money::ZERO),
        unpriced: u64::from(cost.is_none()),
        input_tokens: usage.input_tokens.unwrap_or(0),
        output_tokens: usage.output_tokens.unwrap_or(0),
        cache_write_tokens: usage.cache_creation_input_tokens.unwrap_or(0),
        cache_read_tokens: usage.cache_read_input_tokens.unwrap_or(0),
    }
}

/// The record's value of `group`: the served model (else the one asked for) for
/// `model`; `None` when the record has none.
pub fn record_key(record: &AuditRecord, group: GroupBy) -> Option<&str> {
    match group {
        GroupBy::Model => record
            .served_model
            .as_deref()
            .or(record.requested_model.as_deref()),
        GroupBy::Provider => record.provider.as_deref(),
        GroupBy::AgentType => record.agent_type.as_deref(),
        GroupBy::Client => record.client.as_deref(),
        GroupBy::Team => record.team.as_deref(),
        GroupBy::Session => record.session.as_deref(),
    }
}

/// Money as its exact decimal text in JSON.
pub(super) fn usd_string<S: serde::Serializer>(money: &Money, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(money)
}

/// An optional amount as its exact decimal text (`None` is skipped by the field).
pub(super) fn usd_string_opt<S: serde::Serializer>(
    money: &Option<Money>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match money {
        Some(money) => s.collect_str(money),
        None => s.serialize_none(),
    }
}
