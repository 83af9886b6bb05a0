//! [`MemoryLedger`]: the ledger in this process's memory, one lock around all of it
//! (so every operation is atomic across a request's scopes).

use super::spend::SpendWindows;
use super::{
    Admission, Clock, Ledger, LedgerError, Limits, Period, Refusal, RefusalReason, Scope,
    ScopeUsage, Settlement, SpendJournal, SystemClock,
};
use crate::pricing::Money;
use futures_util::future::{ready, BoxFuture};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

/// The rate-limit window.
const MINUTE: Duration = Duration::from_secs(60);

/// How many settled request ids are remembered, so a repeated settle changes nothing.
const REMEMBERED_SETTLED: usize = 65_536;

/// The ledger of one gateway process; see the [module docs](super).
///
/// ```
/// use llm_gateway::budget::{Admission, Budget, Ledger, Limits, MemoryLedger, Period, Scope, Settlement, DEFAULT_LEASE};
/// use llm_gateway::pricing::Money;
/// # futures_executor_block_on(async {
/// let ledger = MemoryLedger::new();
/// let limits = Limits {
///     budget: Some(Budget { limit: Money::from_picos(1_000), period: Period::Day }),
///     ..Limits::default()
/// };
/// let ask = |id: &str| Admission {
///     request_id: id.into(),
///     scopes: vec![(Scope::key("ci"), limits)],
///     cost_bound: Money::from_picos(600),
///     token_bound: 100,
///     lease: DEFAULT_LEASE,
/// };
/// assert!(ledger.admit(ask("a")).await.unwrap().is_ok());
/// // 600 reserved of 1,000: a second 600 does not fit...
/// assert!(ledger.admit(ask("b")).await.unwrap().is_err());
/// // ...until the first settles at what it really cost.
/// ledger.settle("a", Settlement { cost: Money::from_picos(250), tokens: 40 });
/// assert!(ledger.admit(ask("b")).await.unwrap().is_ok());
/// # });
/// # fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub struct MemoryLedger {
    clock: Arc<dyn Clock>,
    journal: Option<SpendJournal>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    scopes: HashMap<Scope, ScopeState>,
    open: HashMap<String, OpenRequest>,
    settled: HashSet<String>,
    settled_order: VecDeque<String>,
    next_sweep: Option<SystemTime>,
}

/// One scope's counters.
#[derive(Default)]
struct ScopeState {
    spent: SpendWindows,
    reserved: Money,
    reserved_tokens: u64,
    open: u32,
    /// When each request of the last minute was admitted (for `rpm`).
    admitted: VecDeque<SystemTime>,
    /// Tokens charged in the last minute, when (for `tpm`).
    charged: VecDeque<(SystemTime, u64)>,
}

/// An admitted request not yet settled.
struct OpenRequest {
    scopes: Vec<(Scope, Limits)>,
    cost: Money,
    tokens: u64,
    lease: Duration,
    expires: SystemTime,
    /// The lease expired: its reservation and slot were released (a late settle still
    /// charges what it used).
    released: bool,
}

impl Default for MemoryLedger {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLedger").finish_non_exhaustive()
    }
}

impl MemoryLedger {
    /// An empty ledger on the system clock, keeping nothing on disk.
    pub fn new() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            journal: None,
            state: Mutex::new(State::default()),
        }
    }

    /// Read the time from `clock` (windows, the rate-limit minute, leases).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Start from the spend `journal` holds and write every settlement to it, so spend
    /// survives a restart.
    pub fn with_journal(mut self, journal: SpendJournal) -> Self {
        {
            let mut state = self.lock();
            for (scope, period, window_start, spent) in journal.load() {
                state
                    .scopes
                    .entry(scope)
                    .or_default()
                    .spent
                    .restore(period, window_start, spent);
            }
        }
        self.journal = Some(journal);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update below is applied whole or not at all; a poisoned lock holds
        // consistent counters.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn admit_now(&self, admission: Admission) -> Result<(), Box<Refusal>> {
        let now = self.clock.now();
        let mut state = self.lock();
        state.sweep(now);
        if state.open.contains_key(&admission.request_id)
            || state.settled.contains(&admission.request_id)
        {
            // Admitting the same request twice would count it twice.
            return Ok(());
        }
        for (scope, limits) in &admission.scopes {
            let counters = state.scopes.entry(scope.clone()).or_default();
            counters.check(scope, limits, now, admission.cost_bound)?;
        }
        for (scope, limits) in &admission.scopes {
            let counters = state.scopes.entry(scope.clone()).or_default();
            counters.open += 1;
            counters.admitted.push_back(now);
            counters.reserved_tokens += admission.token_bound;
            if limits.budget.is_some() {
                counters.reserved += admission.cost_bound;
            }
        }
        state.open.insert(
            admission.request_id,
            OpenRequest {
                scopes: admission.scopes,
                cost: admission.cost_bound,
                tokens: admission.token_bound,
                lease: admission.lease,
                expires: now + admission.lease,
                released: false,
            },
        );
        Ok(())
    }

    fn reserve_now(&self, request_id: &str, cost: Money, tokens: u64) -> Result<(), Box<Refusal>> {
        let now = self.clock.now();
        let mut state = self.lock();
        let State { scopes, open, .. } = &mut *state;
        let Some(request) = open.get_mut(request_id).filter(|r| !r.released) else {
            return Ok(());
        };
        if cost > request.cost {
            let more = Money::from_picos(cost.picos() - request.cost.picos());
            for (scope, limits) in &request.scopes {
                if let (Some(budget), Some(counters)) = (limits.budget, scopes.get(scope)) {
                    counters.check_budget(scope, budget, now, more)?;
                }
            }
        }
        for (scope, limits) in &request.scopes {
            let Some(counters) = scopes.get_mut(scope) else {
                continue;
            };
            if limits.budget.is_some() {
                counters.reserved = sub(counters.reserved, request.cost) + cost;
            }
            counters.reserved_tokens =
                counters.reserved_tokens - request.tokens.min(counters.reserved_tokens) + tokens;
        }
        request.cost = cost;
        request.tokens = tokens;
        request.expires = now + request.lease;
        Ok(())
    }

    fn settle_now(&self, request_id: &str, settlement: Settlement) {
        let now = self.clock.now();
        let mut state = self.lock();
        if state.settled.contains(request_id) {
            return;
        }
        let Some(request) = state.open.remove(request_id) else {
            return;
        };
        state.remember_settled(request_id);
        let mut written = Vec::new();
        for (scope, limits) in &request.scopes {
            let counters = state.scopes.entry(scope.clone()).or_default();
            if !request.released {
                counters.release(&request, limits);
            }
            counters.spent.add(now, settlement.cost);
            counters.charged.push_back((now, settlement.tokens));
            if self.journal.is_some() {
                for (period, window_start, spent) in counters.spent.current(now) {
                    written.push((scope.clone(), period, window_start, spent));
                }
            }
        }
        drop(state);
        if let Some(journal) = &self.journal {
            journal.record(written);
        }
    }

    fn usage_now(&self, scope: &Scope, limits: &Limits) -> ScopeUsage {
        let now = self.clock.now();
        let mut state = self.lock();
        state.sweep(now);
        let Some(counters) = state.scopes.get_mut(scope) else {
            return ScopeUsage {
                window: limits.budget.map(|b| b.period.window(now)),
                ..ScopeUsage::default()
            };
        };
        counters.forget_before(now);
        let period = limits.budget.map_or(Period::Day, |b| b.period);
        ScopeUsage {
            window: limits.budget.map(|b| b.period.window(now)),
            spent: counters.spent.in_window(period, now),
            reserved: counters.reserved,
            requests_last_minute: counters.admitted.len() as u32,
            tokens_last_minute: counters.tokens_last_minute(),
            open: counters.open,
        }
    }
}

impl State {
    /// Release the reservations whose lease expired (at most once a second).
    fn sweep(&mut self, now: SystemTime) {
        if self.next_sweep.is_some_and(|next| now < next) {
            return;
        }
        self.next_sweep = Some(now + Duration::from_secs(1));
        let State { scopes, open, .. } = self;
        for request in open.values_mut() {
            if request.released || request.expires > now {
                continue;
            }
            request.released = true;
            for (scope, limits) in &request.scopes {
                if let Some(counters) = scopes.get_mut(scope) {
                    counters.release(request, limits);
                }
            }
        }
    }

    fn remember_settled(&mut self, request_id: &str) {
        self.settled.insert(request_id.to_owned());
        self.settled_order.push_back(request_id.to_owned());
        if self.settled_order.len() > REMEMBERED_SETTLED {
            if let Some(oldest) = self.settled_order.pop_front() {
                self.settled.remove(&oldest);
            }
        }
    }
}

impl ScopeState {
    /// Refuse if any of `limits` is reached, or if `cost` does not fit the budget.
    fn check(
        &mut self,
        scope: &Scope,
        limits: &Limits,
        now: SystemTime,
        cost: Money,
    ) -> Result<(), Box<Refusal>> {
        self.forget_before(now);
        let refuse = |reason, retry_at| {
            Box::new(Refusal {
                scope: scope.clone(),
                reason,
                retry_at: Some(retry_at),
            })
        };
        if let Some(rpm) = limits.rpm {
            if self.admitted.len() >= rpm as usize {
                let oldest = self.admitted.front().copied().unwrap_or(now);
                return Err(refuse(RefusalReason::Rpm(rpm), oldest + MINUTE));
            }
        }
        if let Some(tpm) = limits.tpm {
            if self.tokens_last_minute() >= tpm {
                return Err(refuse(RefusalReason::Tpm(tpm), self.tpm_frees_at(tpm, now)));
            }
        }
        if let Some(max) = limits.max_concurrent {
            if self.open >= max {
                return Err(refuse(
                    RefusalReason::Concurrent(max),
                    now + Duration::from_secs(1),
                ));
            }
        }
        if let Some(budget) = limits.budget {
            self.check_budget(scope, budget, now, cost)?;
        }
        Ok(())
    }

    /// Refuse if `more` does not fit what is left of `budget` now.
    fn check_budget(
        &self,
        scope: &Scope,
        budget: super::Budget,
        now: SystemTime,
        more: Money,
    ) -> Result<(), Box<Refusal>> {
        let spent = self.spent.in_window(budget.period, now);
        let needed = spent.saturating_add(self.reserved).saturating_add(more);
        if needed <= budget.limit {
            return Ok(());
        }
        Err(Box::new(Refusal {
            scope: scope.clone(),
            reason: RefusalReason::Budget {
                budget,
                spent,
                reserved: self.reserved,
                needed: more,
            },
            retry_at: budget.period.window(now).resets_at(),
        }))
    }

    /// Give back what an open request held.
    fn release(&mut self, request: &OpenRequest, limits: &Limits) {
        if limits.budget.is_some() {
            self.reserved = sub(self.reserved, request.cost);
        }
        self.reserved_tokens -= request.tokens.min(self.reserved_tokens);
        self.open = self.open.saturating_sub(1);
    }

    fn forget_before(&mut self, now: SystemTime) {
        let cutoff = now.checked_sub(MINUTE).unwrap_or(SystemTime::UNIX_EPOCH);
        while self.admitted.front().is_some_and(|at| *at <= cutoff) {
            self.admitted.pop_front();
        }
        while self.charged.front().is_some_and(|(at, _)| *at <= cutoff) {
            self.charged.pop_front();
        }
    }

    fn tokens_last_minute(&self) -> u64 {
        self.charged
            .iter()
            .map(|(_, tokens)| tokens)
            .sum::<u64>()
            .saturating_add(self.reserved_tokens)
    }

    /// When enough charged tokens leave the minute for the scope to be under `tpm`.
    fn tpm_frees_at(&self, tpm: u64, now: SystemTime) -> SystemTime {
        let mut used = self.tokens_last_minute();
        for (at, tokens) in &self.charged {
            used -= tokens;
            if used < tpm {
                return *at + MINUTE;
            }
        }
        // Reservations alone fill it: they free when their requests end.
        now + Duration::from_secs(1)
    }
}

fn sub(a: Money, b: Money) -> Money {
    Money::from_picos(a.picos().saturating_sub(b.picos()))
}

impl Ledger for MemoryLedger {
    fn admit(
        &self,
        admission: Admission,
    ) -> BoxFuture<'static, Result<Result<(), Refusal>, LedgerError>> {
        Box::pin(ready(Ok(self.admit_now(admission).map_err(|r| *r))))
    }

    fn reserve(
        &self,
        request_id: &str,
        cost: Money,
        tokens: u64,
    ) -> BoxFuture<'static, Result<Result<(), Refusal>, LedgerError>> {
        Box::pin(ready(Ok(self
            .reserve_now(request_id, cost, tokens)
            .map_err(|r| *r))))
    }

    fn settle(&self, request_id: &str, settlement: Settlement) {
        self.settle_now(request_id, settlement);
    }

    fn usage(
        &self,
        scope: &Scope,
        limits: &Limits,
    ) -> BoxFuture<'static, Result<ScopeUsage, LedgerError>> {
        Box::pin(ready(Ok(self.usage_now(scope, limits))))
    }

    fn now(&self) -> SystemTime {
        self.clock.now()
    }
}

#[cfg(test)]
mod tests;
