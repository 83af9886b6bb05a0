//! Reading the scripts' replies.

use crate::budget::LedgerError;
use crate::budget::{Limits, Refusal, RefusalReason, Scope};
use crate::pricing::Money;
use ::redis::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Read a script's reply: `{'ok', now}` or `{limit, now, scope index, a, b[, old]}`.
/// `growth` is set for a reservation's growth (the budget refusal then needs only the
/// growth, `cost - old`).
pub(super) fn refusal(
    reply: &[Value],
    scopes: &[(Scope, Limits)],
    cost: Money,
    growth: Option<()>,
) -> Result<Result<(), Refusal>, LedgerError> {
    let field = |i: usize| reply.get(i).map(text).unwrap_or_default();
    let kind = field(0);
    if kind == "ok" {
        return Ok(Ok(()));
    }
    let now = time(&field(1));
    let index: usize = field(2).parse().unwrap_or(0);
    let Some((scope, limits)) = index.checked_sub(1).and_then(|i| scopes.get(i)) else {
        return Err(LedgerError(format!(
            "the Redis ledger answered {kind:?} for an unknown scope"
        )));
    };
    let refused = |reason, retry_at| {
        Ok(Err(Refusal {
            scope: scope.clone(),
            reason,
            retry_at,
        }))
    };
    let retry = time(&field(3));
    match (kind.as_str(), limits) {
        ("rpm", Limits { rpm: Some(rpm), .. }) => refused(RefusalReason::Rpm(*rpm), Some(retry)),
        ("tpm", Limits { tpm: Some(tpm), .. }) => refused(RefusalReason::Tpm(*tpm), Some(retry)),
        (
            "max_concurrent",
            Limits {
                max_concurrent: Some(max),
                ..
            },
        ) => refused(RefusalReason::Concurrent(*max), Some(retry)),
        (
            "budget",
            Limits {
                budget: Some(budget),
                ..
            },
        ) => {
            let needed = match growth {
                Some(()) => {
                    Money::from_picos(cost.picos().saturating_sub(money(&field(5)).picos()))
                }
                None => cost,
            };
            refused(
                RefusalReason::Budget {
                    budget: *budget,
                    spent: money(&field(3)),
                    reserved: money(&field(4)),
                    needed,
                },
                budget.period.window(now).resets_at(),
            )
        }
        _ => Err(LedgerError(format!(
            "the Redis ledger answered {kind:?}, which {scope} has no limit for"
        ))),
    }
}

pub(super) fn text(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        _ => String::new(),
    }
}

pub(super) fn money(text: &str) -> Money {
    Money::from_picos(text.parse::<i128>().unwrap_or(0).max(0) as u128)
}

pub(super) fn time(millis_text: &str) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis_text.parse().unwrap_or(0))
}

pub(super) fn millis(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}
