//! [`Ledger`] for [`RedisLedger`]: every operation is queued in call order.

use super::{Open, RedisLedger};
use crate::budget::Clock;
use crate::budget::{
    Admission, Ledger, LedgerError, Limits, Refusal, Scope, ScopeUsage, Settlement,
};
use crate::pricing::Money;
use futures_util::future::{ready, BoxFuture};
use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::SystemTime;

impl Ledger for RedisLedger {
    fn admit(
        &self,
        admission: Admission,
    ) -> BoxFuture<'static, Result<Result<(), Refusal>, LedgerError>> {
        let inner = self.inner.clone();
        let unlimited = admission.scopes.iter().all(|(_, l)| l.is_unlimited());
        let open = Open {
            scopes: admission.scopes.clone(),
            unlimited,
        };
        inner.remember(&admission.request_id, open);
        if unlimited {
            // Nothing to check: no round trip, and Redis being down does not matter.
            return Box::pin(ready(Ok(Ok(()))));
        }
        let request_id = admission.request_id.clone();
        let job = {
            let inner = inner.clone();
            async move { Ok(inner.admit(admission).await) }
        };
        let answer = self.inner.queue.submit(job);
        Box::pin(async move {
            let answer = match answer.await.and_then(|answer| answer) {
                Ok(answer) => Ok(answer),
                Err(error) => inner.unavailable(error, "admit a request"),
            };
            if !matches!(answer, Ok(Ok(()))) {
                inner.forget(&request_id);
            }
            answer
        })
    }

    fn reserve(
        &self,
        request_id: &str,
        cost: Money,
        tokens: u64,
    ) -> BoxFuture<'static, Result<Result<(), Refusal>, LedgerError>> {
        let inner = self.inner.clone();
        let request_id = request_id.to_owned();
        let scopes = {
            let open = inner.open.lock().unwrap_or_else(PoisonError::into_inner);
            match open.get(&request_id) {
                // Unknown here (settled, or another replica's): ignored, as by any ledger.
                None => None,
                Some(open) if open.unlimited => None,
                Some(open) => Some(open.scopes.clone()),
            }
        };
        let Some(scopes) = scopes else {
            return Box::pin(ready(Ok(Ok(()))));
        };
        let job = {
            let inner = inner.clone();
            async move { Ok(inner.reserve(request_id, scopes, cost, tokens).await) }
        };
        let answer = self.inner.queue.submit(job);
        Box::pin(async move {
            match answer.await.and_then(|answer| answer) {
                Ok(answer) => Ok(answer),
                Err(error) => inner.unavailable(error, "change a reservation"),
            }
        })
    }

    fn settle(&self, request_id: &str, settlement: Settlement) {
        let inner = self.inner.clone();
        let request_id = request_id.to_owned();
        // Queued now, in call order; the answer is only logged.
        let answer = self
            .inner
            .queue
            .submit(async move { inner.settle(request_id, settlement).await });
        if let Some(Err(error)) = futures_util::FutureExt::now_or_never(answer) {
            // Parked, and sent again once Redis answers the ping.
            tracing::warn!(%error, "the Redis ledger could not settle a request");
        }
    }

    fn usage(
        &self,
        scope: &Scope,
        limits: &Limits,
    ) -> BoxFuture<'static, Result<ScopeUsage, LedgerError>> {
        let inner = self.inner.clone();
        let (scope, limits) = (scope.clone(), *limits);
        let answer = self
            .inner
            .queue
            .submit(async move { inner.usage(scope, limits).await });
        Box::pin(answer)
    }

    fn now(&self) -> SystemTime {
        match &self.inner.test_clock {
            Some(clock) => clock.now(),
            None => SystemTime::now(),
        }
    }

    fn healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed)
    }
}
