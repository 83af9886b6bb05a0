//! The pricing step of the usage tap: each attempt's usage priced exactly.
//!
//! A model the price table does not know is reported with `cost: None` — never as zero —
//! and so is usage that could not be read whole (a count that is negative, fractional,
//! huge or not a number).

use super::UsageReport;
use crate::pricing::{CostBreakdown, Money, PriceTable};
use std::sync::Arc;

/// One attempt's usage with its price.
#[derive(Clone, Debug, PartialEq)]
pub struct CostReport {
    /// What the attempt used.
    pub usage: UsageReport,
    /// What it cost; `None` when the model has no price, or when part of the usage could
    /// not be read (`usage.parse_failures > 0`): a broken count is never priced.
    pub cost: Option<Money>,
    /// The cost part by part, when priced.
    pub breakdown: Option<CostBreakdown>,
    /// The price-table key that priced it (also a bounded label for metrics).
    pub priced_as: Option<String>,
    /// The price table's version, carried into every record (empty when the tap has no
    /// price table).
    pub price_table_version: Arc<str>,
}

/// A hook that receives each [`CostReport`].
///
/// Implemented for `()`, for closures `Fn(CostReport)`, and for `Arc<T>`.
pub trait OnCost: Send + Sync + 'static {
    /// Called once per priced attempt.
    fn on_cost(&self, report: CostReport);
}

impl OnCost for () {
    fn on_cost(&self, _: CostReport) {}
}

impl<F: Fn(CostReport) + Send + Sync + 'static> OnCost for F {
    fn on_cost(&self, report: CostReport) {
        self(report)
    }
}

impl<T: OnCost + ?Sized> OnCost for Arc<T> {
    fn on_cost(&self, report: CostReport) {
        (**self).on_cost(report)
    }
}

/// The price table with its version as a shared string, and who hears each price.
pub(crate) struct Pricing {
    table: PriceTable,
    version: Arc<str>,
    hook: Arc<dyn OnCost>,
}

impl Pricing {
    pub(crate) fn new(table: PriceTable, hook: Arc<dyn OnCost>) -> Self {
        let version = Arc::from(table.version());
        Self {
            table,
            version,
            hook,
        }
    }

    /// Price one report.
    pub(crate) fn price(&self, usage: UsageReport) -> CostReport {
        let matched = usage
            .model
            .as_deref()
            .filter(|_| usage.parse_failures == 0)
            .and_then(|model| self.table.lookup_match(Some(&usage.provider), model));
        let (cost, breakdown, priced_as) = match matched {
            Some(m) => {
                let breakdown = crate::pricing::cost_breakdown(m.price, &usage.usage);
                (
                    Some(breakdown.total),
                    Some(breakdown),
                    Some(m.key.to_owned()),
                )
            }
            None => (None, None, None),
        };
        CostReport {
            usage,
            cost,
            breakdown,
            priced_as,
            price_table_version: self.version.clone(),
        }
    }

    pub(crate) fn hook(&self) -> &dyn OnCost {
        &*self.hook
    }
}

/// A report from a tap without a price table: nothing priced.
pub(crate) fn unpriced(usage: UsageReport) -> CostReport {
    CostReport {
        usage,
        cost: None,
        breakdown: None,
        priced_as: None,
        price_table_version: Arc::from(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{Outcome, Usage};

    fn report(parse_failures: u32) -> UsageReport {
        UsageReport {
            request_id: "gw_1".into(),
            provider: Arc::from("anthropic"),
            model: Some("claude-sonnet-4-5".into()),
            agent_type: None,
            client: None,
            stream: true,
            usage: Usage {
                input_tokens: Some(1_000),
                output_tokens: Some(10),
                ..Usage::default()
            },
            outcome: Outcome::Complete,
            ttft: None,
            duration: std::time::Duration::ZERO,
            parse_failures,
        }
    }

    #[test]
    fn usage_that_could_not_be_read_whole_is_never_priced() {
        let pricing = Pricing::new(PriceTable::builtin(), Arc::new(()));
        assert!(pricing.price(report(0)).cost.is_some());
        let broken = pricing.price(report(1));
        assert_eq!(broken.cost, None);
        assert_eq!(broken.breakdown, None);
    }
}
