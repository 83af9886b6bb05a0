//! [`UsageWatch`]: hearing an attempt's usage while it runs, not only at its end.

use super::{CostReport, Usage};
use std::sync::Arc;

/// Told by the usage tap, per attempt, when the answer says its exact input
/// (`message_start`) and when the attempt ends (budgets use it: the reservation shrinks
/// to the exact input, then each attempt's cost is counted).
pub trait UsageWatch: Send + Sync + 'static {
    /// The answer of the attempt at `provider` (serving `model`, if it said) gave its
    /// input usage; output so far is in `usage` too.
    fn input_known(&self, provider: &str, model: Option<&str>, usage: &Usage);

    /// The attempt ended; `report` is its usage, priced.
    fn attempt_ended(&self, report: &CostReport);
}

/// The request's [`UsageWatch`], in its extensions (inserted by an outer layer, such as
/// `Govern`).
#[derive(Clone)]
pub struct WatchUsage(pub Arc<dyn UsageWatch>);

impl std::fmt::Debug for WatchUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchUsage")
    }
}
