use super::price::Pricing;
use super::{OnCost, OnUsage, UsageService};
use crate::pricing::PriceTable;
use std::sync::Arc;
use tower::Layer;

/// Wraps a service so every answer's usage is read, priced (with a price table) and
/// reported to the hooks and the request's ledger.
pub struct UsageLayer<H> {
    hook: Arc<H>,
    pricing: Option<Arc<Pricing>>,
}

impl<H: OnUsage> UsageLayer<H> {
    /// A layer that reports each attempt's usage to `hook`.
    pub fn new(hook: H) -> Self {
        Self {
            hook: Arc::new(hook),
            pricing: None,
        }
    }

    /// Also price each attempt's usage with `table` and hand the
    /// [`CostReport`](super::CostReport) to `on_cost` (and to the request's ledger).
    pub fn priced(mut self, table: PriceTable, on_cost: impl OnCost) -> Self {
        self.pricing = Some(Arc::new(Pricing::new(table, Arc::new(on_cost))));
        self
    }
}

impl<H> Clone for UsageLayer<H> {
    fn clone(&self) -> Self {
        Self {
            hook: self.hook.clone(),
            pricing: self.pricing.clone(),
        }
    }
}

impl<H> std::fmt::Debug for UsageLayer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageLayer")
            .field("priced", &self.pricing.is_some())
            .finish_non_exhaustive()
    }
}

impl<S, H> Layer<S> for UsageLayer<H> {
    type Service = UsageService<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        UsageService::new(inner, self.hook.clone(), self.pricing.clone())
    }
}
