//! [`RedisLedger`]: the ledger in one Redis, shared by every replica of the gateway
//! (how it works is on the type).

mod keys;
mod ledger;
mod queue;
mod reply;
mod scripts;

use reply::{millis, money, refusal, text, time};

use super::{
    Admission, LedgerError, Limits, Period, Refusal, Scope, ScopeUsage, Settlement, TestClock,
};
use crate::budget::Clock;
use crate::pricing::Money;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The largest amount one value holds, in pico-dollars (2^62: sums of a few stay in
/// Redis's 64-bit integers).
const MAX_PICOS: u128 = 1 << 62;

/// How long a settled request id is remembered, so a repeated settle changes nothing.
const REMEMBER_SETTLED: Duration = Duration::from_secs(86_400);

/// How long an operation may take before the ledger counts Redis as unreachable.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long operations fail at once after Redis failed to answer one.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// How many open requests this replica remembers (their scopes, until they settle).
const MAX_OPEN: usize = 65_536;

/// How many settlements that Redis could not take are kept to be sent again.
const MAX_PARKED: usize = 65_536;

/// What a request with limits gets while Redis cannot answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// Refused (the gateway answers 503 naming the cause).
    #[default]
    Deny,
    /// Admitted without holding anything: limits are not enforced until Redis returns.
    Allow,
}

/// The ledger of every replica that shares one Redis.
///
/// Built on the `redis` crate's `ConnectionManager` (maintained, tokio-native, and it
/// reconnects on its own after Redis comes back).
///
/// Each operation is one Lua script, atomic on the server; the windows, the rate-limit
/// minute and the leases follow the server's `TIME`, so replicas with skewed clocks still
/// agree. Every key of one scope shares one hash tag (`{lg:key:NAME}`, `{lg:team:NAME}`)
/// and each request has its own (`{lg:req:ID}`); an admission touches the request's tag
/// and every scope's. That is the one-node design: on Redis Cluster, the key, its team
/// and the request would have to hash to one slot, which these keys do not promise.
///
/// Money is integer pico-dollars, added with Redis's 64-bit `INCRBY` and compared in Lua
/// as (dollars, picos) pairs, never as a double: nothing is lost. One amount (a limit, a
/// bound, a cost) is cut to 2^62 pico-dollars (about $4.6 million); a window's counter
/// holds up to 2^63 - 1 (about $9.2 million), past which Redis refuses to add.
///
/// Expired leases are swept inside every script that touches a scope: each scope keeps its
/// open reservations (request id → amount) and their expiry times, so a crashed replica's
/// holds are given back.
///
/// Every operation is queued when it is called, on one bounded channel to one task per
/// ledger that sends them to Redis in call order: `settle` (which cannot wait) takes
/// effect before anything this replica asks after it. A full queue fails an operation at
/// once; so does Redis for a second after it failed to answer within the timeout
/// (default 2 s), so a dead Redis does not hold every request behind it. A settle that
/// fails is logged and parked (up to 65,536, in memory): once Redis answers the
/// gateway's ping again ([`note_reachable`](Self::note_reachable)) they are sent again,
/// oldest first, and charged then (within the request's two-lease memory in Redis,
/// about two hours; a replica that restarts meanwhile loses its parked ones).
/// Admissions whose scopes have no limit are answered at once without Redis (and
/// charged there when they settle), so they are unaffected while Redis is down.
/// Growing a reservation for a fallback attempt needs an answer at once, which a remote
/// ledger cannot give: such an attempt is refused (it never overshoots).
pub struct RedisLedger {
    inner: Arc<Inner>,
}

struct Inner {
    client: ::redis::Client,
    connection: Mutex<Option<ConnectionManager>>,
    prefix: String,
    on_unavailable: OnUnavailable,
    timeout: Duration,
    /// Scripts read this clock instead of the server's `TIME` (tests only).
    test_clock: Option<TestClock>,
    healthy: AtomicBool,
    /// The requests this replica admitted and has not settled, with their scopes.
    open: Mutex<HashMap<String, Open>>,
    /// Every operation, in call order.
    queue: queue::Queue,
    /// After a failure, operations fail at once until then (one slow or silent Redis
    /// must not queue every request behind its timeout).
    down_until: Mutex<Option<Instant>>,
    /// Settlements Redis could not take, oldest first, sent again once it answers.
    parked: Mutex<VecDeque<Parked>>,
}

/// A settlement waiting for Redis.
struct Parked {
    request_id: String,
    settlement: Settlement,
    open: Option<Open>,
}

/// A request this replica admitted.
struct Open {
    scopes: Vec<(Scope, Limits)>,
    /// None of its scopes has a limit: it was never sent to Redis, and is charged
    /// there when it settles.
    unlimited: bool,
}

impl std::fmt::Debug for RedisLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("RedisLedger")
            .field("prefix", &self.inner.prefix)
            .field("on_unavailable", &self.inner.on_unavailable)
            .finish_non_exhaustive()
    }
}

impl RedisLedger {
    /// A ledger on the Redis at `url` (`redis://[:password@]host:port[/db]`), keeping its
    /// keys under the prefix `lg`. Nothing is sent until the first operation, so a Redis
    /// that is down at start is not an error here. The error never repeats the URL.
    pub fn new(url: &str, on_unavailable: OnUnavailable) -> Result<Self, LedgerError> {
        let client = ::redis::Client::open(url).map_err(|_| {
            LedgerError("the Redis URL is not valid (expected redis://host:port)".into())
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                connection: Mutex::new(None),
                prefix: "lg".into(),
                on_unavailable,
                timeout: DEFAULT_TIMEOUT,
                test_clock: None,
                healthy: AtomicBool::new(true),
                open: Mutex::new(HashMap::new()),
                queue: queue::Queue::default(),
                down_until: Mutex::new(None),
                parked: Mutex::new(VecDeque::new()),
            }),
        })
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner).expect("configured before it is shared")
    }

    /// Keep every key under `prefix` instead of `lg` (several gateways, or tests, on one
    /// Redis).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.inner_mut().prefix = prefix.to_owned();
        self
    }

    /// Count Redis as unreachable when an operation takes longer than `timeout`
    /// (default 2 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.inner_mut().timeout = timeout;
        self
    }

    /// Note whether Redis answered a call made beside the ledger (the gateway's idle
    /// ping): `/gateway/health` then follows Redis without waiting for traffic, and an
    /// answer ends the second of failing at once that a failure started.
    /// Settlements parked while Redis was down are then sent again, in the order they
    /// were made.
    pub fn note_reachable(&self, reachable: bool) {
        self.inner.healthy.store(reachable, Ordering::Relaxed);
        if reachable {
            *self
                .inner
                .down_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
            if self.inner.has_parked() {
                let inner = self.inner.clone();
                // Queued like any operation: in order with what this replica asks next.
                drop(self.inner.queue.submit(async move { inner.replay().await }));
            }
        }
    }

    /// Read the time from `clock` instead of the server's `TIME`, in the scripts as in
    /// [`Ledger::now`](crate::budget::Ledger::now): lets a test cross a window or a minute without waiting.
    pub fn with_test_clock(mut self, clock: TestClock) -> Self {
        self.inner_mut().test_clock = Some(clock);
        self
    }
}

impl Inner {
    fn connection(&self) -> Result<ConnectionManager, LedgerError> {
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(connection) = &*slot {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|e| LedgerError(format!("cannot set up the Redis connection: {e}")))?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// The time override the scripts take as `ARGV[1]` (empty: the server's `TIME`).
    fn now_arg(&self) -> String {
        match &self.test_clock {
            Some(clock) => millis(clock.now()).to_string(),
            None => String::new(),
        }
    }

    /// Run `invocation` within the timeout, recording whether Redis answered.
    async fn run<T: ::redis::FromRedisValue>(
        &self,
        invocation: ::redis::ScriptInvocation<'_>,
    ) -> Result<T, LedgerError> {
        let down = *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if down.is_some_and(|until| Instant::now() < until) {
            return Err(LedgerError(
                "Redis is unreachable (it failed under a second ago)".into(),
            ));
        }
        let mut connection = self.connection()?;
        let answer =
            tokio::time::timeout(self.timeout, invocation.invoke_async::<T>(&mut connection)).await;
        let result = match answer {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(LedgerError(format!("Redis: {error}"))),
            Err(_) => Err(LedgerError(format!(
                "Redis did not answer within {} ms",
                self.timeout.as_millis()
            ))),
        };
        self.healthy.store(result.is_ok(), Ordering::Relaxed);
        *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = result
            .is_err()
            .then(|| Instant::now() + RETRY_AFTER_FAILURE);
        result
    }

    fn scope_args(&self, scope: &Scope) -> String {
        keys::scope_prefix(&self.prefix, scope)
    }

    async fn admit(&self, admission: Admission) -> Result<Result<(), Refusal>, LedgerError> {
        let mut invocation = scripts::ADMIT.prepare_invoke();
        invocation.key(keys::request_key(&self.prefix, &admission.request_id));
        for (scope, _) in &admission.scopes {
            invocation.key(self.scope_args(scope));
        }
        let lease = admission.lease.as_millis().max(1);
        invocation
            .arg(self.now_arg())
            .arg(&admission.request_id)
            .arg(picos(admission.cost_bound))
            .arg(admission.token_bound)
            .arg(lease as u64)
            .arg((2 * lease + 60_000) as u64);
        for (_, limits) in &admission.scopes {
            invocation
                .arg(opt(limits.rpm))
                .arg(opt(limits.tpm))
                .arg(opt(limits.max_concurrent))
                .arg(limits.budget.map_or(String::new(), |b| picos(b.limit)))
                .arg(limits.budget.map_or("", |b| b.period.as_str()));
        }
        let reply: Vec<Value> = self.run(invocation).await?;
        refusal(&reply, &admission.scopes, admission.cost_bound, None)
    }

    async fn reserve(
        &self,
        request_id: String,
        scopes: Vec<(Scope, Limits)>,
        cost: Money,
        tokens: u64,
    ) -> Result<Result<(), Refusal>, LedgerError> {
        let mut invocation = scripts::RESERVE.prepare_invoke();
        invocation
            .key(keys::request_key(&self.prefix, &request_id))
            .arg(self.now_arg())
            .arg(picos(cost))
            .arg(tokens);
        let reply: Vec<Value> = self.run(invocation).await?;
        refusal(&reply, &scopes, cost, Some(()))
    }

    /// Settle `request_id`; when Redis cannot take it, park it to be sent again.
    async fn settle(&self, request_id: String, settlement: Settlement) -> Result<(), LedgerError> {
        let open = self.forget(&request_id);
        let result = self
            .settle_once(&request_id, settlement, open.as_ref())
            .await;
        if result.is_err() {
            self.park(Parked {
                request_id,
                settlement,
                open,
            });
        }
        result
    }

    fn park(&self, parked: Parked) {
        let mut all = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
        if all.len() < MAX_PARKED {
            all.push_back(parked);
        } else {
            tracing::warn!("too many settlements wait for Redis; one is dropped uncharged");
        }
    }

    /// Send the parked settlements again, oldest first, until one fails (settling is
    /// idempotent by request id, so one Redis did take is not charged twice).
    async fn replay(&self) -> Result<(), LedgerError> {
        loop {
            let next = self
                .parked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
            let Some(parked) = next else { return Ok(()) };
            let open = parked.open.as_ref();
            if let Err(error) = self
                .settle_once(&parked.request_id, parked.settlement, open)
                .await
            {
                self.parked
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_front(parked);
                return Err(error);
            }
        }
    }

    fn has_parked(&self) -> bool {
        !self
            .parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    async fn settle_once(
        &self,
        request_id: &str,
        settlement: Settlement,
        open: Option<&Open>,
    ) -> Result<(), LedgerError> {
        let mut invocation = match open.filter(|open| open.unlimited) {
            Some(open) => {
                let mut invocation = scripts::CHARGE.prepare_invoke();
                for (scope, _) in &open.scopes {
                    invocation.key(self.scope_args(scope));
                }
                invocation.arg(self.now_arg()).arg(request_id);
                invocation
            }
            None => {
                let mut invocation = scripts::SETTLE.prepare_invoke();
                invocation
                    .key(keys::request_key(&self.prefix, request_id))
                    .arg(self.now_arg());
                invocation
            }
        };
        invocation
            .arg(picos(settlement.cost))
            .arg(settlement.tokens)
            .arg(REMEMBER_SETTLED.as_millis() as u64);
        let _: i64 = self.run(invocation).await?;
        Ok(())
    }

    async fn usage(&self, scope: Scope, limits: Limits) -> Result<ScopeUsage, LedgerError> {
        let period = limits.budget.map_or(Period::Day, |b| b.period);
        let mut invocation = scripts::USAGE.prepare_invoke();
        invocation
            .key(self.scope_args(&scope))
            .arg(self.now_arg())
            .arg(period.as_str());
        let reply: Vec<Value> = self.run(invocation).await?;
        let field = |i: usize| reply.get(i).map(text).unwrap_or_default();
        let now = time(&field(0));
        Ok(ScopeUsage {
            window: limits.budget.map(|b| b.period.window(now)),
            spent: money(&field(1)),
            reserved: money(&field(2)),
            requests_last_minute: field(3).parse().unwrap_or(0),
            tokens_last_minute: field(4).parse().unwrap_or(0),
            open: field(5).parse().unwrap_or(0),
        })
    }

    fn remember(&self, request_id: &str, open: Open) {
        let mut all = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if all.len() < MAX_OPEN {
            all.insert(request_id.to_owned(), open);
        }
    }

    fn forget(&self, request_id: &str) -> Option<Open> {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(request_id)
    }

    /// What a failed operation answers: the error, or (allow mode) an admission.
    fn unavailable(
        &self,
        error: LedgerError,
        what: &str,
    ) -> Result<Result<(), Refusal>, LedgerError> {
        tracing::warn!(%error, "the Redis ledger could not {what}");
        match self.on_unavailable {
            OnUnavailable::Deny => Err(error),
            OnUnavailable::Allow => Ok(Ok(())),
        }
    }
}

fn picos(money: Money) -> String {
    money.picos().min(MAX_PICOS).to_string()
}

fn opt(limit: Option<impl ToString>) -> String {
    limit.map_or(String::new(), |l| l.to_string())
}

#[cfg(test)]
mod tests;
