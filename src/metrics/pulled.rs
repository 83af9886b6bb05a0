//! Gauges and counters whose truth lives elsewhere (provider health, the audit store),
//! copied into the recorder on [`GatewayMetrics::refresh`](super::GatewayMetrics::refresh).

use super::series::{
    AUDIT_BODIES_SHED, AUDIT_DROPPED, AUDIT_QUEUE_DEPTH, AUDIT_REOPENED, AUDIT_WRITE_ERRORS,
    AUDIT_WRITTEN, PROVIDER_HEALTHY,
};
use crate::audit::AuditStore;
use crate::budget::Ledger;
use crate::fallback::ProviderHealth;
use crate::keys::KeyRegistry;
use futures_util::FutureExt;
use metrics::{counter, gauge};
use std::sync::{Arc, OnceLock};

/// What the pulled series read from, once the gateway has them; each is set once.
#[derive(Default)]
pub(crate) struct Sources {
    pub(crate) health: OnceLock<(Arc<ProviderHealth>, Vec<String>)>,
    pub(crate) audit: OnceLock<Arc<AuditStore>>,
    pub(crate) budgets: OnceLock<(Arc<KeyRegistry>, Arc<dyn Ledger>)>,
}

impl Sources {
    /// `llm_gateway_provider_healthy{provider}`: 1 while the provider is tried, read now
    /// so a cool-down that has run out shows at once.
    pub(crate) fn refresh_health(&self) {
        let Some((health, names)) = self.health.get() else {
            return;
        };
        for (name, available) in health.snapshot(names.iter().map(String::as_str)) {
            gauge!(PROVIDER_HEALTHY, "provider" => name).set(f64::from(u8::from(available)));
        }
    }

    /// `llm_gateway_budget_spent_usd` and `llm_gateway_budget_limit_usd` of every key
    /// and team, read from the ledger now (a ledger that cannot answer at once is
    /// skipped until the next scrape).
    pub(crate) fn refresh_budgets(&self) {
        let Some((keys, ledger)) = self.budgets.get() else {
            return;
        };
        let keys_limits = keys
            .list()
            .into_iter()
            .filter(|key| key.revoked_at.is_none())
            .map(|key| (key.scope(), key.limits));
        let teams_limits = keys
            .teams()
            .into_iter()
            .map(|(team, _)| (team.scope(), team.limits));
        for (scope, limits) in keys_limits.chain(teams_limits) {
            if let Some(Ok(usage)) = ledger.usage(&scope, &limits).now_or_never() {
                super::series::budget_spent(&scope, usage.spent.to_usd_f64());
                let limit = limits.budget.map_or(0.0, |b| b.limit.to_usd_f64());
                super::series::budget_limit(&scope, limit);
            }
        }
    }

    /// The audit store's queue depth and its counts of records written, bodies shed, dropped.
    pub(crate) fn refresh_audit(&self) {
        let Some(store) = self.audit.get() else {
            return;
        };
        let stats = store.stats();
        // A queue depth is far below 2^53: the cast is exact.
        gauge!(AUDIT_QUEUE_DEPTH).set(stats.queue_depth as f64);
        // The store's counters only grow; `absolute` copies them (and never goes back).
        counter!(AUDIT_WRITTEN).absolute(stats.written);
        counter!(AUDIT_BODIES_SHED).absolute(stats.bodies_shed);
        counter!(AUDIT_DROPPED).absolute(stats.dropped);
        counter!(AUDIT_WRITE_ERRORS).absolute(stats.write_errors);
        counter!(AUDIT_REOPENED).absolute(stats.reopened);
    }
}
