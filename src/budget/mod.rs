//! Budgets and rate limits that never overshoot: the [`Ledger`] and its in-memory
//! backend, [`MemoryLedger`].
//!
//! Every request a limited client key sends is counted in each of its scopes (the key,
//! and its team when it has one). Before anything goes upstream, `Govern` asks the
//! ledger to **admit** it in one atomic step: every scope must be under its `rpm`, `tpm`
//! and `max_concurrent`, and an upper bound of the request's cost must fit what is left
//! of every budget; that bound is then **reserved** in every budgeted scope. When the
//! answer's `message_start` gives the exact input, the reservation is cut to it (plus
//! `max_tokens` of output); when the request ends, however it ends, it is **settled** to
//! the exact cost. In every window, therefore:
//!
//! ```text
//! settled spend  ≤  settled spend + open reservations  ≤  budget
//! ```
//!
//! Settling is idempotent by request id. A reservation is a lease: if its holder never
//! settles (a crashed replica, with a shared backend), it expires and its money and
//! concurrency slot are released.
//!
//! Windows follow the calendar in UTC ([`Period`]); the ledger reads a [`Clock`], so
//! tests move a [`TestClock`] across a boundary instead of waiting. Money is integer
//! pico-dollars ([`Money`]) throughout.
//!
//! The backend is a trait so replicas can share one (Redis): each operation is one
//! atomic step on the backend's state, the kind one Lua script does.

mod clock;
mod journal;
mod memory;
mod redis;
mod reservation;
mod scope;
mod spend;
mod window;

pub use clock::{Clock, SystemClock, TestClock};
pub use journal::SpendJournal;
pub use memory::MemoryLedger;
pub use redis::{OnUnavailable, RedisLedger};
pub use reservation::{AttemptRefused, Reservation};
pub use scope::{Budget, Limits, Scope, ScopeKind};
pub use window::{Period, Window};

use crate::pricing::Money;
use futures_util::future::BoxFuture;
use std::time::{Duration, SystemTime};

/// How long a reservation lives without being settled, by default: the longest a
/// request may hold budget before the ledger assumes its holder is gone.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(3_600);

/// A request asking to be admitted.
#[derive(Clone, Debug)]
pub struct Admission {
    /// The gateway's request id: settling and adjusting name the request by it.
    pub request_id: String,
    /// Each scope the request counts in, with that scope's limits.
    pub scopes: Vec<(Scope, Limits)>,
    /// The upper bound of the request's cost, reserved in every budgeted scope.
    pub cost_bound: Money,
    /// The upper bound of its tokens, counted against `tpm` until charged.
    pub token_bound: u64,
    /// How long the reservation lives unless settled ([`DEFAULT_LEASE`]).
    pub lease: Duration,
}

/// Why a request was not admitted (or a reservation could not grow).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The scope whose limit refused it.
    pub scope: Scope,
    /// Which limit.
    pub reason: RefusalReason,
    /// When trying again may succeed (rate limits: when the minute frees room; budgets:
    /// when the window resets, if it ever does).
    pub retry_at: Option<SystemTime>,
}

/// The limit that refused a request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// `rpm` requests were already admitted in the last 60 seconds.
    Rpm(u32),
    /// `tpm` tokens were already charged or reserved in the last 60 seconds.
    Tpm(u64),
    /// `max_concurrent` requests are open.
    Concurrent(u32),
    /// The request's reservation does not fit what is left of the budget.
    Budget {
        /// The budget.
        budget: Budget,
        /// Settled in the current window.
        spent: Money,
        /// Reserved by open requests.
        reserved: Money,
        /// What this request needed.
        needed: Money,
    },
}

impl RefusalReason {
    /// The limit's name as in the config and the `rate_limited_total` metric
    /// (`rpm`, `tpm`, `max_concurrent`, `budget`).
    pub fn limit_name(&self) -> &'static str {
        match self {
            RefusalReason::Rpm(_) => "rpm",
            RefusalReason::Tpm(_) => "tpm",
            RefusalReason::Concurrent(_) => "max_concurrent",
            RefusalReason::Budget { .. } => "budget",
        }
    }
}

/// What one request finally used, given when it is settled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settlement {
    /// The exact cost of every attempt the request made.
    pub cost: Money,
    /// The tokens they used (input, cache writes, cache reads, output).
    pub tokens: u64,
}

/// One scope's counters now, for `/gateway/keys`, `/gateway/me` and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScopeUsage {
    /// The budget's current window, when the scope has a budget.
    pub window: Option<Window>,
    /// Settled in that window (or in the current day's window, without a budget).
    pub spent: Money,
    /// Reserved by requests still open.
    pub reserved: Money,
    /// Requests admitted in the last 60 seconds.
    pub requests_last_minute: u32,
    /// Tokens charged or reserved in the last 60 seconds.
    pub tokens_last_minute: u64,
    /// Requests open now.
    pub open: u32,
}

/// A backend that could not answer (a shared store that is down).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the budget ledger is unavailable: {0}")]
pub struct LedgerError(pub String);

/// Admission, reservations and spend, atomic across a request's scopes; see the
/// [module docs](self).
///
/// Every operation takes effect when it is called; the future only carries its answer
/// (dropping it cancels nothing). `settle` and [`reserve`](Ledger::reserve)'s shrinking
/// are therefore safe to call from code that cannot wait.
pub trait Ledger: Send + Sync + 'static {
    /// Admit `admission` against every scope's rate limits and reserve its cost bound
    /// in every budgeted scope, or refuse it and change nothing.
    fn admit(
        &self,
        admission: Admission,
    ) -> BoxFuture<'static, Result<Result<(), Refusal>, LedgerError>>;

    /// Set an admitted request's reservation to `cost` and `tokens` (shrinking always
    /// succeeds; growing must fit every budget, else nothing changes). An unknown or
    /// settled request id is ignored.
    fn reserve(
        &self,
        request_id: &str,
        cost: Money,
        tokens: u64,
    ) -> BoxFuture<'static, Result<Result<(), Refusal>, LedgerError>>;

    /// The request is over: charge `settlement` to every scope it was admitted in,
    /// release its reservation and its concurrency slot. Idempotent: a second settle of
    /// the same id, or one for an id never admitted, changes nothing.
    fn settle(&self, request_id: &str, settlement: Settlement);

    /// `scope`'s counters now, its budget window taken from `limits`.
    fn usage(
        &self,
        scope: &Scope,
        limits: &Limits,
    ) -> BoxFuture<'static, Result<ScopeUsage, LedgerError>>;

    /// The time the ledger counts by (its windows, the rate-limit minute); a refusal's
    /// `retry_at` is on this clock.
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    /// Whether the backend answers now (`/gateway/health` says `degraded` when not).
    fn healthy(&self) -> bool {
        true
    }
}

impl<T: Ledger + ?Sized> Ledger for std::sync::Arc<T> {
    fn admit(
        &self,
        admission: Admission,
    ) -> BoxFuture<'static, Result<Result<(), Refusal>, LedgerError>> {
        (**self).admit(admission)
    }

    fn reserve(
        &self,
        request_id: &str,
        cost: Money,
        tokens: u64,
    ) -> BoxFuture<'static, Result<Result<(), Refusal>, LedgerError>> {
        (**self).reserve(request_id, cost, tokens)
    }

    fn settle(&self, request_id: &str, settlement: Settlement) {
        (**self).settle(request_id, settlement)
    }

    fn usage(
        &self,
        scope: &Scope,
        limits: &Limits,
    ) -> BoxFuture<'static, Result<ScopeUsage, LedgerError>> {
        (**self).usage(scope, limits)
    }

    fn now(&self) -> SystemTime {
        (**self).now()
    }

    fn healthy(&self) -> bool {
        (**self).healthy()
    }
}
