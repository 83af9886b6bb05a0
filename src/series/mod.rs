//! Usage over time: requests, cost and tokens per time bucket, split by one attribute
//! (model, provider, agent type, client, team or session), from the audit store.
//!
//! Two halves answer the same [`UsageQuery`] with the same [`UsageAnswer`]:
//! [`UsageRollup`] reads the SQLite audit file through an hourly rollup kept in a file
//! beside it, and [`PgAudit::usage`](crate::ship::PgAudit) aggregates the shared
//! PostgreSQL copy (so every replica answers the same). Money is summed exactly in
//! pico-dollars ([`Money`]) and written as decimal strings.

mod cell;
mod pg;
mod query;
mod rollup;

pub use cell::{record_cell, record_key, Cell};
pub use query::{Bucket, GroupBy, UsageParams, UsageQuery, MAX_HOUR_BUCKETS};
pub use rollup::UsageRollup;

use crate::pricing::Money;
use serde::Serialize;
use std::collections::BTreeMap;

/// One bucket of one series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsagePoint {
    /// The bucket's start: RFC 3339 UTC.
    pub start: String,
    /// Requests recorded in the bucket.
    pub requests: u64,
    /// Their exact cost in USD, as a decimal string (priced requests only).
    #[serde(serialize_with = "cell::usd_string")]
    pub cost_usd: Money,
    /// Requests whose cost is unknown (a model without a price).
    pub unpriced_requests: u64,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-write tokens.
    pub cache_write_tokens: u64,
    /// Cache-read tokens.
    pub cache_read_tokens: u64,
}

/// The points of one key, oldest first; only buckets that saw requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageSeries {
    /// The attribute's value (`null`: records without it, or no `group_by`).
    pub key: Option<String>,
    /// The buckets, oldest first.
    pub points: Vec<UsagePoint>,
    /// With `group_by=model`: what the cache reads of the range would have cost at the
    /// model's input rate, less what they cost (absent for other groupings, and for a
    /// model without a price).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "cell::usd_string_opt"
    )]
    pub cache_saved_usd: Option<Money>,
}

impl UsageSeries {
    /// Every point added up.
    pub fn total(&self) -> Cell {
        let mut total = Cell::default();
        for point in &self.points {
            total.add(&Cell::of_point(point));
        }
        total
    }
}

/// What `GET /gateway/usage` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageAnswer {
    /// `hour` or `day`.
    pub bucket: Bucket,
    /// The first bucket's start (the `since` asked for, rounded down to a bucket).
    pub since: String,
    /// The end of the last bucket (exclusive).
    pub until: String,
    /// One series per key, ordered by key.
    pub series: Vec<UsageSeries>,
}

impl UsageAnswer {
    /// Build the answer from cells keyed by (bucket start ms, key).
    pub(crate) fn from_cells(
        query: &UsageQuery,
        cells: BTreeMap<(Option<String>, i64), Cell>,
    ) -> UsageAnswer {
        let mut series: Vec<UsageSeries> = Vec::new();
        for ((key, start_ms), cell) in cells {
            if series.last().is_none_or(|s| s.key != key) {
                series.push(UsageSeries {
                    key: key.clone(),
                    points: Vec::new(),
                    cache_saved_usd: None,
                });
            }
            let last = series.last_mut().expect("pushed above");
            last.points.push(cell.point(start_ms));
        }
        UsageAnswer {
            bucket: query.bucket,
            since: crate::audit::AuditRecord::format_timestamp(query::time_of(query.since_ms)),
            until: crate::audit::AuditRecord::format_timestamp(query::time_of(query.until_ms)),
            series,
        }
    }

    /// With `group_by=model`, set each series' `cache_saved_usd` from `prices`.
    pub fn price_cache_savings(&mut self, prices: &crate::pricing::PriceTable) {
        for series in &mut self.series {
            let Some(price) = series.key.as_deref().and_then(|m| prices.lookup(None, m)) else {
                continue;
            };
            let read: u64 = series.points.iter().map(|p| p.cache_read_tokens).sum();
            let full = price.input.cost_of(read);
            let paid = price.cache_read.unwrap_or(price.input).cost_of(read);
            series.cache_saved_usd =
                Some(Money::from_picos(full.picos().saturating_sub(paid.picos())));
        }
    }

    /// Every point of every series added up.
    pub fn total(&self) -> Cell {
        let mut total = Cell::default();
        for series in &self.series {
            total.add(&series.total());
        }
        total
    }
}
