//! Exact pricing of model usage: a price table and integer money.
//!
//! Every answer's [`Usage`](crate::usage::Usage) is priced with a [`ModelPrice`] from a
//! [`PriceTable`] into [`Money`], an integer count of pico-dollars. No float is ever summed:
//! a rate is whole micro-dollars per million tokens ([`Rate`]), so tokens × rate is exactly
//! pico-dollars, and a million costs add up to their exact total.
//!
//! ```
//! use llm_gateway::pricing::{serialize_usd_opt, Money, PriceTable};
//! use llm_gateway::usage::Usage;
//!
//! let table = PriceTable::builtin();
//! let usage = Usage { input_tokens: Some(1_000), output_tokens: Some(500), ..Usage::default() };
//!
//! // 1_000 × 3_000_000 + 500 × 15_000_000 pico-dollars.
//! let cost = table.cost_of(None, "claude-sonnet-4-5-20250929", &usage).map(|b| b.total);
//! assert_eq!(cost, Some(Money::from_picos(10_500_000_000)));
//! assert_eq!(cost.map(|m| m.to_string()).as_deref(), Some("0.0105"));
//!
//! // A model the table does not know is unpriced (cost null), never free.
//! assert_eq!(table.cost_of(None, "mystery-model", &usage), None);
//!
//! #[derive(serde::Serialize)]
//! struct Record {
//!     #[serde(serialize_with = "serialize_usd_opt")]
//!     cost_usd: Option<Money>,
//! }
//! let json = serde_json::to_string(&Record { cost_usd: cost }).unwrap();
//! assert_eq!(json, r#"{"cost_usd":0.0105}"#);
//! ```
//!
//! # The table
//!
//! [`PriceTable::builtin`] is `data/pricing-reference.json` (litellm's prices, USD per
//! million tokens), embedded at build time and parsed once. Its
//! [`version`](PriceTable::version) (`litellm@00035b69+2026-11-25`) goes into every audit
//! record; overrides from configuration ([`PriceTable::with_override`]) append a digest.
//!
//! # Lookup order
//!
//! [`PriceTable::lookup`]`(hint, model)` tries these keys in order, first among the
//! overrides and then, only if no override matched at any step, among the base table:
//!
//! 1. `model` exactly (`claude-sonnet-4-5-20250929`, `azure/gpt-4o`);
//! 2. `{hint}/{model}` (`deepseek` + `deepseek-flash` → `deepseek/deepseek-flash`);
//! 3. the dated family: `model` without a trailing `-YYYYMMDD`
//!    (`claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`), then `{hint}/{family}`;
//!    OpenAI-style `-YYYY-MM-DD` snapshots are not stripped, as they were priced apart;
//! 4. `{hint}/*`, then `{prefix}/*` when `model` is `prefix/…` (`ollama/*` prices every local
//!    model at zero, on purpose, as a price, not as a missing one).
//!
//! So an override of a family (`claude-sonnet-4-5`) also reprices its dated ids, even though
//! the built-in table lists them. Nothing matched → `None`: the caller records `cost_usd:
//! null` and counts the request; no function here turns an unknown model into zero.
//!
//! # How a request is billed
//!
//! `input×in + (5m + unattributed)×w5m + 1h×w1h + read×r + output×out` ([`cost_breakdown`]):
//!
//! - `None` counts are zero. The cache-write total is `cache_creation_input_tokens`, or
//!   `5m + 1h` when that is absent; writes in the total but in neither TTL are billed at the
//!   5m rate (litellm's rule for a missing or partial `cache_creation` split).
//! - Long-context tier: when the prompt (input + cache writes + cache reads) is strictly
//!   above the tier's threshold (200,000 for `above_200k_tokens`, 100,000 for
//!   `above_100k_tokens`), every rate is the tier's; at exactly the threshold none is.
//! - Absent rates ([`RateCard::resolve`]), always within one level so a request never mixes
//!   base and tier rates:
//!   - cache read → the input rate. Every built-in entry has one; a configured model without
//!     it is billed as if uncached (the discount is what the field encodes), not for free.
//!   - 5m cache write → the input rate. The entries without one are OpenAI-kind (Azure,
//!     DeepSeek): they charge no cache-write premium and bill a cache miss as ordinary input.
//!     An explicit `0` (as `deepseek/deepseek-chat` has) is kept as written.
//!   - 1h cache write → the level's 5m write rate (litellm's rule for tiers). For
//!     `claude-sonnet-4-20250514` above 200k this is 7.5, where Anthropic lists 12: the
//!     source has no value; override the entry to change it.
//! - `provider_specific_entry` multipliers (`us` 1.1 for US-only inference, `fast` mode) are
//!   not applied: [`Usage`](crate::usage::Usage) does not carry `inference_geo` or speed.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cost;
mod money;
mod price;
mod rate;
mod table;

pub use cost::{cost, cost_breakdown, BillableTokens, CostBreakdown};
pub use money::{serialize_usd, serialize_usd_opt, Money};
pub use price::{EffectiveRates, ModelPrice, PriceTier, RateCard};
pub use rate::{Rate, RateError};
pub use table::{PriceMatch, PriceSource, PriceTable, PriceTableError};
