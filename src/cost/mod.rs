//! The cost layer: prices each attempt's usage with a [`PriceTable`], exactly.
//!
//! [`CostLayer`] sits above [`UsageLayer`](crate::usage::UsageLayer). For each request it
//! registers a request-scoped observer of usage reports; when the tap reports an attempt,
//! the observer prices it (integer pico-dollars, see [`pricing`](crate::pricing)) and
//! hands a [`CostReport`] to the layer's [`OnCost`] hook and to any [`CostObservers`] an
//! outer layer (metrics, audit) put on the request. A model the table does not know is
//! reported with `cost: None` — never as zero — and so is usage that could not be read
//! whole (a count that is negative, fractional, huge or not a number).
//!
//! ```
//! use llm_gateway::cost::{CostLayer, CostReport};
//! use llm_gateway::pricing::PriceTable;
//! use llm_gateway::usage::UsageLayer;
//! use tower::ServiceBuilder;
//! # fn wrap<S>(provider: S) {
//! let stack = ServiceBuilder::new()
//!     .layer(CostLayer::new(PriceTable::builtin(), |report: CostReport| {
//!         match report.cost {
//!             Some(cost) => println!("{}: ${cost}", report.usage.request_id),
//!             None => println!("{}: unpriced", report.usage.request_id),
//!         }
//!     }))
//!     .layer(UsageLayer::new(()))
//!     .service(provider);
//! # let _ = stack; }
//! ```

use crate::pricing::{CostBreakdown, Money, PriceTable};
use crate::usage::{OnUsage, UsageObservers, UsageReport};
use http::Request;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

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
    /// The price table's version, carried into every record.
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

/// Request-scoped receivers of this request's cost reports (put there by outer layers).
pub type CostObservers = crate::observers::Observers<dyn OnCost>;

/// Collects the cost reports of one request's attempts (an outer layer's observer).
#[derive(Debug, Default)]
pub struct CostCollector(std::sync::Mutex<Vec<CostReport>>);

impl CostCollector {
    /// The reports collected so far, leaving none behind.
    pub fn take(&self) -> Vec<CostReport> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl OnCost for CostCollector {
    fn on_cost(&self, report: CostReport) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(report);
    }
}

/// Prices usage reports; see the [module docs](self).
pub struct CostLayer<H> {
    pricer: Arc<Pricer>,
    hook: Arc<H>,
}

impl<H> Clone for CostLayer<H> {
    fn clone(&self) -> Self {
        Self {
            pricer: self.pricer.clone(),
            hook: self.hook.clone(),
        }
    }
}

impl<H: OnCost> CostLayer<H> {
    /// A layer pricing with `table` and reporting to `hook`.
    pub fn new(table: PriceTable, hook: H) -> Self {
        Self {
            pricer: Arc::new(Pricer::new(table)),
            hook: Arc::new(hook),
        }
    }
}

impl<S, H> Layer<S> for CostLayer<H> {
    type Service = CostService<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        CostService {
            inner,
            pricer: self.pricer.clone(),
            hook: self.hook.clone(),
        }
    }
}

/// The service made by [`CostLayer`].
pub struct CostService<S, H> {
    inner: S,
    pricer: Arc<Pricer>,
    hook: Arc<H>,
}

impl<S: Clone, H> Clone for CostService<S, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            pricer: self.pricer.clone(),
            hook: self.hook.clone(),
        }
    }
}

impl<S, H, B> Service<Request<B>> for CostService<S, H>
where
    S: Service<Request<B>>,
    H: OnCost,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        let observer = CostObserver {
            pricer: self.pricer.clone(),
            hook: self.hook.clone(),
            downstream: request.extensions().get::<CostObservers>().cloned(),
        };
        UsageObservers::push(request.extensions_mut(), Arc::new(observer));
        self.inner.call(request)
    }
}

/// The price table with its version as a shared string.
pub(crate) struct Pricer {
    table: PriceTable,
    version: Arc<str>,
}

impl Pricer {
    pub(crate) fn new(table: PriceTable) -> Self {
        let version = Arc::from(table.version());
        Self { table, version }
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
}

struct CostObserver<H> {
    pricer: Arc<Pricer>,
    hook: Arc<H>,
    downstream: Option<CostObservers>,
}

impl<H: OnCost> OnUsage for CostObserver<H> {
    fn on_usage(&self, report: UsageReport) {
        let priced = self.pricer.price(report);
        if let Some(downstream) = &self.downstream {
            for observer in downstream.iter() {
                observer.on_cost(priced.clone());
            }
        }
        self.hook.on_cost(priced);
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
        let pricer = Pricer::new(PriceTable::builtin());
        assert!(pricer.price(report(0)).cost.is_some());
        let broken = pricer.price(report(1));
        assert_eq!(broken.cost, None);
        assert_eq!(broken.breakdown, None);
    }
}
