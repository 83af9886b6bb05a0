//! The parameters of a usage query, checked: each error names its parameter.

use crate::audit::parse_since;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Most hourly buckets one query spans (92 days).
pub const MAX_HOUR_BUCKETS: i64 = 24 * 92;
/// Most daily buckets one query spans (about ten years).
const MAX_DAY_BUCKETS: i64 = 3660;

/// The width of a bucket: a UTC hour or a UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// One hour.
    Hour,
    /// One UTC day.
    Day,
}

impl Bucket {
    /// The bucket's width in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            Bucket::Hour => HOUR_MS,
            Bucket::Day => DAY_MS,
        }
    }

    /// The start of the bucket holding `ms`.
    pub fn floor(self, ms: i64) -> i64 {
        ms.div_euclid(self.millis()) * self.millis()
    }
}

/// The attribute series are split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupBy {
    /// The served model, else the requested one.
    Model,
    /// The provider.
    Provider,
    /// The agent type.
    AgentType,
    /// The client key's name.
    Client,
    /// The key's team.
    Team,
    /// The client's session.
    Session,
}

impl GroupBy {
    /// Every attribute, in a fixed order.
    pub const ALL: [GroupBy; 6] = [
        GroupBy::Model,
        GroupBy::Provider,
        GroupBy::AgentType,
        GroupBy::Client,
        GroupBy::Team,
        GroupBy::Session,
    ];

    /// The parameter value naming it.
    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Model => "model",
            GroupBy::Provider => "provider",
            GroupBy::AgentType => "agent_type",
            GroupBy::Client => "client",
            GroupBy::Team => "team",
            GroupBy::Session => "session",
        }
    }

    fn parse(text: &str) -> Option<GroupBy> {
        GroupBy::ALL.into_iter().find(|g| g.name() == text)
    }
}

/// The query string of `GET /gateway/usage`, as sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UsageParams {
    /// `hour` (default) or `day`.
    pub bucket: Option<String>,
    /// Start: unix ms, RFC 3339 or a date; default a day (hourly) or 30 days (daily)
    /// before `until`.
    pub since: Option<String>,
    /// End (exclusive): same forms; default now.
    pub until: Option<String>,
    /// `model`, `provider`, `agent_type`, `client`, `team` or `session`; default none
    /// (one series).
    pub group_by: Option<String>,
}

/// A checked usage query: whole buckets from `since_ms` to `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageQuery {
    /// Bucket width.
    pub bucket: Bucket,
    /// How to split the series (`None`: one series).
    pub group_by: Option<GroupBy>,
    /// First bucket's start, unix ms.
    pub since_ms: i64,
    /// End of the last bucket (exclusive), unix ms.
    pub until_ms: i64,
}

impl UsageQuery {
    /// Daily buckets from the epoch to the end of the day after `now`, split by
    /// `group_by` (for all-time totals; no bucket limit applies).
    pub fn all_time(group_by: Option<GroupBy>, now: SystemTime) -> UsageQuery {
        UsageQuery {
            bucket: Bucket::Day,
            group_by,
            since_ms: 0,
            until_ms: Bucket::Day.floor(ms_of(now)).saturating_add(2 * DAY_MS),
        }
    }
}

impl UsageParams {
    /// Check the parameters against the clock `now`; an error names the parameter.
    pub fn check(&self, now: SystemTime) -> Result<UsageQuery, String> {
        let bucket = match given(&self.bucket) {
            None | Some("hour") => Bucket::Hour,
            Some("day") => Bucket::Day,
            Some(other) => return Err(format!("bucket: expected hour or day, got {other:?}")),
        };
        let group_by = given(&self.group_by)
            .map(|g| {
                GroupBy::parse(g).ok_or_else(|| {
                    format!(
                        "group_by: expected one of model, provider, agent_type, client, team, session, got {g:?}"
                    )
                })
            })
            .transpose()?;
        let now_ms = ms_of(now);
        let until = match given(&self.until) {
            Some(text) => parse_time("until", text)?,
            None => now_ms,
        };
        let default_span = match bucket {
            Bucket::Hour => DAY_MS,
            Bucket::Day => 30 * DAY_MS,
        };
        let since = match given(&self.since) {
            Some(text) => parse_time("since", text)?,
            None => until.saturating_sub(default_span),
        };
        if since >= until {
            return Err("since: must be before until".to_owned());
        }
        let since_ms = bucket.floor(since);
        let until_ms = bucket
            .floor(until.saturating_sub(1))
            .saturating_add(bucket.millis());
        let buckets = (until_ms - since_ms) / bucket.millis();
        let most = match bucket {
            Bucket::Hour => MAX_HOUR_BUCKETS,
            Bucket::Day => MAX_DAY_BUCKETS,
        };
        if buckets > most {
            return Err(format!(
                "since: the range spans {buckets} {} buckets, at most {most} are answered",
                self.bucket.as_deref().unwrap_or("hour")
            ));
        }
        Ok(UsageQuery {
            bucket,
            group_by,
            since_ms,
            until_ms,
        })
    }
}

/// A parameter's value, trimmed; `None` when absent or empty.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn parse_time(name: &str, text: &str) -> Result<i64, String> {
    parse_since(text).map_err(|_| {
        format!("{name}: expected unix milliseconds or an RFC 3339 timestamp, got {text:?}")
    })
}

/// Unix milliseconds of `t` (negative before the epoch).
pub(crate) fn ms_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The instant `ms` unix milliseconds name.
pub(crate) fn time_of(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str) -> Result<UsageQuery, String> {
        let params: UsageParams = serde_urlencoded_like(query);
        params.check(time_of(1_700_000_000_000))
    }

    fn serde_urlencoded_like(query: &str) -> UsageParams {
        let mut params = UsageParams::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            let v = Some(v.to_owned());
            match k {
                "bucket" => params.bucket = v,
                "since" => params.since = v,
                "until" => params.until = v,
                "group_by" => params.group_by = v,
                _ => panic!("{k}"),
            }
        }
        params
    }

    #[test]
    fn buckets_are_whole_and_cover_the_range() {
        let q = check("bucket=hour&since=2026-01-01T10:30:00Z&until=2026-01-01T12:00:00Z").unwrap();
        assert_eq!(q.since_ms, parse_since("2026-01-01T10:00:00Z").unwrap());
        assert_eq!(q.until_ms, parse_since("2026-01-01T12:00:00Z").unwrap());
        let q = check("bucket=day&since=2026-01-01&until=2026-01-03T00:00:01Z").unwrap();
        assert_eq!(q.until_ms, parse_since("2026-01-04").unwrap());
    }

    #[test]
    fn each_bad_parameter_is_named() {
        for (query, name) in [
            ("bucket=week", "bucket:"),
            ("group_by=colour", "group_by:"),
            ("since=yesterday", "since:"),
            ("until=soon", "until:"),
            ("since=2026-01-02&until=2026-01-01", "since:"),
            ("bucket=hour&since=2025-01-01&until=2026-01-01", "since:"),
        ] {
            let error = check(query).unwrap_err();
            assert!(error.starts_with(name), "{query}: {error}");
        }
    }
}
