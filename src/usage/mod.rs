//! The usage tap: reads token usage from answers as they pass, without changing a byte.
//!
//! [`UsageLayer`] wraps each response body in a [`UsageBody`] that forwards every frame
//! unchanged, decodes SSE incrementally (holding only the unfinished line), parses only
//! the events that carry usage, and hands one [`UsageReport`] per attempt to an
//! [`OnUsage`] hook: when the stream ends, fails, or is dropped because the client left.
//! With a price table ([`UsageLayer::priced`]) the tap also prices the report exactly
//! (integer pico-dollars) and hands the [`CostReport`]
//! to an [`OnCost`] hook; a request with a `RequestLedger`
//! gets each attempt's priced report there too.
//!
//! **What it needs.** Nothing but a provider service whose answers are Anthropic
//! Messages with a `text/event-stream` or `application/json` content type (answers
//! of another type pass untouched). With a [`RequestMeta`](crate::RequestMeta) in
//! the request (inserted by `IngressLayer`), reports also name the client and agent
//! type, and only `/v1/messages` answers are read; without one, every answer is read
//! and the report's `request_id` is the edge's `RequestId` (or empty). The provider
//! that answered is named by the response's [`ServedBy`](crate::ServedBy) extension,
//! `"unknown"` without it; pricing uses it and the answer's own `model`.
//!
//! Merge rules: `message_start.message.usage` gives input,
//! cache-write (with the 5m/1h split) and cache-read tokens; every `message_delta.usage`
//! **replaces** the fields it carries; nothing is ever added. A non-streaming answer's
//! `usage` object gives the same numbers for the same content.
//!
//! ```
//! use llm_gateway::pricing::PriceTable;
//! use llm_gateway::usage::{CostReport, UsageLayer, UsageReport};
//! let layer = UsageLayer::new(|report: UsageReport| {
//!     println!("{} used {:?} output tokens", report.request_id, report.usage.output_tokens);
//! })
//! .priced(PriceTable::builtin(), |report: CostReport| match report.cost {
//!     Some(cost) => println!("{}: ${cost}", report.usage.request_id),
//!     None => println!("{}: unpriced", report.usage.request_id),
//! });
//! # let _ = layer;
//! ```

mod body;
mod layer;
mod price;
mod service;
mod tracker;
mod watch;

pub use body::{UsageBody, UsageTap};
pub use layer::UsageLayer;
pub use price::{CostReport, OnCost};
pub use service::{UsageFuture, UsageService};
pub use tracker::UsageTracker;
pub use watch::{UsageWatch, WatchUsage};

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Token counts reported by a provider. `None` = not reported, `Some(0)` = reported zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached prompt tokens (Anthropic `input_tokens`).
    pub input_tokens: Option<u64>,
    /// Output tokens, thinking included.
    pub output_tokens: Option<u64>,
    /// All cache-write tokens (`cache_creation_input_tokens`) = 5m + 1h + any part not attributed to a TTL.
    pub cache_creation_input_tokens: Option<u64>,
    /// Cache-write tokens with the 5-minute TTL (`cache_creation.ephemeral_5m_input_tokens`).
    pub cache_write_5m_tokens: Option<u64>,
    /// Cache-write tokens with the 1-hour TTL (`cache_creation.ephemeral_1h_input_tokens`).
    pub cache_write_1h_tokens: Option<u64>,
    /// Cache-read tokens (`cache_read_input_tokens`).
    pub cache_read_input_tokens: Option<u64>,
}

/// How an attempt's answer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The answer arrived whole (`message_stop`, or a complete JSON body).
    Complete,
    /// The upstream sent an in-band `error` event, or a non-success status.
    Error,
    /// The client went away before the end; usage is what was seen so far.
    ClientDisconnected,
    /// The upstream stream broke or ended early; usage is what was seen so far.
    Incomplete,
}

/// What one attempt used, delivered once per attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageReport {
    /// The gateway's request id.
    pub request_id: String,
    /// The provider that answered.
    pub provider: Arc<str>,
    /// The model the upstream was asked for (or, if it said, the model it served).
    pub model: Option<String>,
    /// The request's `agent_type`, if it had one.
    pub agent_type: Option<String>,
    /// The name of the client key that made the request, when auth is on.
    pub client: Option<String>,
    /// Whether the answer was a stream.
    pub stream: bool,
    /// The usage seen.
    pub usage: Usage,
    /// How the answer ended.
    pub outcome: Outcome,
    /// Time from the request's arrival to the first content event (streams only).
    pub ttft: Option<Duration>,
    /// Time from the request's arrival to the end of the answer.
    pub duration: Duration,
    /// Usage-bearing events (or bodies) that could not be parsed; never silently zero.
    pub parse_failures: u32,
}

/// A hook that receives each [`UsageReport`].
///
/// Implemented for `()` (ignore), for closures `Fn(UsageReport)`, and for `Arc<T>`.
pub trait OnUsage: Send + Sync + 'static {
    /// Called exactly once per attempt whose answer had a body.
    fn on_usage(&self, report: UsageReport);
}

impl OnUsage for () {
    fn on_usage(&self, _: UsageReport) {}
}

impl<F> OnUsage for F
where
    F: Fn(UsageReport) + Send + Sync + 'static,
{
    fn on_usage(&self, report: UsageReport) {
        self(report)
    }
}

impl<T: OnUsage + ?Sized> OnUsage for Arc<T> {
    fn on_usage(&self, report: UsageReport) {
        (**self).on_usage(report)
    }
}
