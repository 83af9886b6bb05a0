//! A ledger's refusal as the client sees it: 429 `rate_limit_error` with `retry-after`,
//! or 402 `billing_error` naming the scope and when its budget resets.

use crate::budget::{LedgerError, Refusal, RefusalReason};
use crate::error::{Error, ErrorKind};
use std::time::SystemTime;

/// The answer to a refused request.
pub(crate) fn refusal_error(refusal: &Refusal, now: SystemTime) -> Error {
    let scope = &refusal.scope;
    let wait = refusal.retry_at.map(|at| seconds_until(at, now));
    let resets = match refusal.retry_at {
        Some(at) => format!("it resets at {}", humantime::format_rfc3339_seconds(at)),
        None => "it never resets".to_owned(),
    };
    let (kind, message) = match &refusal.reason {
        RefusalReason::Rpm(rpm) => (
            ErrorKind::RateLimited,
            format!("rate limited: {scope} is at its rpm limit ({rpm} requests per minute)"),
        ),
        RefusalReason::Tpm(tpm) => (
            ErrorKind::RateLimited,
            format!("rate limited: {scope} is at its tpm limit ({tpm} tokens per minute)"),
        ),
        RefusalReason::Concurrent(max) => (
            ErrorKind::RateLimited,
            format!("rate limited: {scope} is at its max_concurrent limit ({max} open at once)"),
        ),
        RefusalReason::Budget {
            budget,
            spent,
            reserved,
            needed,
        } => {
            let message = if spent >= &budget.limit {
                format!(
                    "budget exhausted: {scope} has spent ${spent} of its ${} {} budget; {resets}",
                    budget.limit, budget.period
                )
            } else {
                let left = budget.limit.picos() - spent.picos();
                format!(
                    "budget: this request may cost up to ${needed}, and {scope} has \
                     ${} of its ${} {} budget left (${reserved} of it held by requests \
                     still open); {resets}",
                    crate::pricing::Money::from_picos(left),
                    budget.limit,
                    budget.period
                )
            };
            (ErrorKind::BudgetExceeded, message)
        }
    };
    let error = Error::new(kind, message);
    match wait {
        Some(seconds) if kind == ErrorKind::RateLimited => {
            let message = format!("{}; retry after {seconds} s", error.message());
            Error::new(kind, message).with_retry_after(seconds)
        }
        Some(seconds) => error.with_retry_after(seconds),
        None => error,
    }
}

/// The ledger could not be asked: nothing goes upstream unchecked.
pub(crate) fn unavailable(error: &LedgerError) -> Error {
    Error::new(ErrorKind::Unavailable, error.to_string())
}

/// Whole seconds from `now` to `at`, rounded up, at least 1.
fn seconds_until(at: SystemTime, now: SystemTime) -> u64 {
    let wait = at.duration_since(now).unwrap_or_default();
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::{Budget, Period, Scope};
    use crate::pricing::Money;
    use std::time::Duration;

    #[test]
    fn rate_limits_say_when_to_retry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let refusal = Refusal {
            scope: Scope::key("ci"),
            reason: RefusalReason::Rpm(60),
            retry_at: Some(now + Duration::from_millis(12_300)),
        };
        let error = refusal_error(&refusal, now);
        assert_eq!(error.status().as_u16(), 429);
        assert_eq!(error.anthropic_type(), "rate_limit_error");
        assert_eq!(error.retry_after(), Some(13));
        assert_eq!(
            error.message(),
            "rate limited: key \"ci\" is at its rpm limit (60 requests per minute); retry after 13 s"
        );
    }

    #[test]
    fn budgets_name_the_scope_and_the_reset() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_904_000);
        let budget = Budget {
            limit: Money::from_picos(5_000_000_000_000),
            period: Period::Day,
        };
        let refusal = Refusal {
            scope: Scope::team("platform"),
            reason: RefusalReason::Budget {
                budget,
                spent: Money::from_picos(5_000_000_000_000),
                reserved: Money::ZERO,
                needed: Money::from_picos(1),
            },
            retry_at: budget.period.window(now).resets_at(),
        };
        let error = refusal_error(&refusal, now);
        assert_eq!(error.status().as_u16(), 402);
        assert_eq!(error.anthropic_type(), "billing_error");
        assert_eq!(
            error.message(),
            "budget exhausted: team \"platform\" has spent $5 of its $5 day budget; \
             it resets at 2026-12-11T00:00:00Z"
        );
    }
}
