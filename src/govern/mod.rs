//! [`GovernLayer`]: budgets, rate limits and model permissions, before anything goes
//! upstream.
//!
//! A request carrying a [`ChargeTo`] (auth inserts one for every client key: the key's
//! scope and its team's, each with its limits and allowed models) is governed:
//!
//! 1. its model must match the `models` globs of every scope that sets some, else 403
//!    `permission_error`;
//! 2. for `/v1/messages`, an upper bound of its cost is computed for every routed
//!    attempt (see [`MEDIA_ALLOWANCE_TOKENS`] for how), the dearest is the bound; a
//!    budgeted request must carry `max_tokens` (400 otherwise) and an attempt whose model
//!    has no price is dropped from a budgeted request's attempts (its cost could not be
//!    bounded), a request with none left is refused with 402;
//! 3. the [`Ledger`] admits it in one atomic step against every scope's `rpm`, `tpm`,
//!    `max_concurrent` and budget, and reserves the bound, or refuses it: 429
//!    `rate_limit_error` with `retry-after`, or 402 `billing_error` naming the scope and
//!    when its budget resets. Nothing of a refused request goes upstream;
//! 4. the admitted request carries its [`Reservation`]: the usage tap cuts it to the
//!    exact input at `message_start` and counts each attempt's cost, fallback asks it
//!    before each further attempt, and `Record`'s [`BudgetRecordSink`] settles it when
//!    the request is over — however it ends.
//!
//! Govern sits below `Route` (the bound needs the models the attempts will ask for) and
//! above `Fallback`; it needs `Record` outside it (the request's
//! [`RequestLedger`](crate::ledger::RequestLedger) carries the reservation to the sink),
//! and refuses to govern without one rather than hold budget nobody settles.
//!
//! [`BudgetRecordSink`]: crate::record::BudgetRecordSink
//! [`Reservation`]: crate::budget::Reservation

mod bound;
mod hold;
mod refuse;
mod service;

pub use bound::MEDIA_ALLOWANCE_TOKENS;
pub use service::GovernService;

use crate::budget::{Ledger, Limits, Refusal, Scope};
use crate::pricing::PriceTable;
use std::sync::Arc;

/// Who a request is charged to, and under which limits; in the request's extensions.
#[derive(Clone, Debug, Default)]
pub struct ChargeTo {
    /// Each scope the request counts in (the key, then its team), with its limits.
    pub scopes: Vec<(Scope, Limits)>,
    /// The model globs a scope allows, for the scopes that restrict models; the
    /// requested model must match one glob of each.
    pub models: Vec<(Scope, Vec<String>)>,
}

/// Told of every refusal (metrics count them).
pub type OnRefusal = Arc<dyn Fn(&Refusal) + Send + Sync>;

/// Governs requests that carry a [`ChargeTo`]; see the [module docs](self).
#[derive(Clone)]
pub struct GovernLayer {
    ledger: Arc<dyn Ledger>,
    prices: Arc<PriceTable>,
    on_refusal: OnRefusal,
}

impl std::fmt::Debug for GovernLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernLayer").finish_non_exhaustive()
    }
}

impl GovernLayer {
    /// A layer admitting requests through `ledger`, bounding their cost with `prices`.
    ///
    /// ```
    /// use llm_gateway::budget::MemoryLedger;
    /// use llm_gateway::govern::GovernLayer;
    /// use llm_gateway::pricing::PriceTable;
    /// use std::sync::Arc;
    /// let layer = GovernLayer::new(Arc::new(MemoryLedger::new()), PriceTable::builtin());
    /// # let _ = layer;
    /// ```
    pub fn new(ledger: Arc<dyn Ledger>, prices: PriceTable) -> Self {
        Self {
            ledger,
            prices: Arc::new(prices),
            on_refusal: Arc::new(|_: &Refusal| {}),
        }
    }

    /// Call `hook` with every refusal (rate limits and budgets, at admission and before a
    /// further attempt).
    pub fn on_refusal(mut self, hook: impl Fn(&Refusal) + Send + Sync + 'static) -> Self {
        self.on_refusal = Arc::new(hook);
        self
    }
}

impl<S> tower::Layer<S> for GovernLayer {
    type Service = GovernService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GovernService::new(inner, self.clone())
    }
}
