use super::*;
use crate::budget::{Budget, RefusalReason};
use std::time::UNIX_EPOCH;

fn bulk(text: &str) -> Value {
    Value::BulkString(text.as_bytes().to_vec())
}

fn budgeted() -> Vec<(Scope, Limits)> {
    let limits = Limits {
        budget: Some(Budget {
            limit: Money::from_picos(1_000),
            period: Period::Day,
        }),
        rpm: Some(5),
        ..Limits::default()
    };
    vec![
        (Scope::key("ci"), Limits::default()),
        (Scope::team("platform"), limits),
    ]
}

#[test]
fn a_budget_refusal_names_its_scope_and_the_window_reset_on_the_server_clock() {
    // 2026-12-10T12:00:00Z on the server.
    let reply = [
        bulk("budget"),
        bulk("1796904000000"),
        Value::Int(2),
        bulk("18446744073709551617"),
        bulk("300"),
    ];
    let refused = refusal(&reply, &budgeted(), Money::from_picos(700), None)
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.scope, Scope::team("platform"));
    assert!(matches!(
        refused.reason,
        RefusalReason::Budget { spent, reserved, needed, .. }
            if spent == Money::from_picos(18_446_744_073_709_551_617)
                && reserved == Money::from_picos(300)
                && needed == Money::from_picos(700)
    ));
    assert_eq!(
        refused.retry_at,
        Some(UNIX_EPOCH + Duration::from_secs(1_796_947_200))
    );
}

#[test]
fn a_growth_refusal_needs_only_the_growth() {
    let reply = [
        bulk("budget"),
        bulk("1796904000000"),
        Value::Int(2),
        bulk("0"),
        bulk("950"),
        bulk("250"),
    ];
    let refused = refusal(&reply, &budgeted(), Money::from_picos(400), Some(()))
        .unwrap()
        .unwrap_err();
    assert!(matches!(
        refused.reason,
        RefusalReason::Budget { needed, .. } if needed == Money::from_picos(150)
    ));
}

#[test]
fn a_rate_refusal_carries_its_retry_time_and_a_confused_reply_is_an_error() {
    let reply = [
        bulk("rpm"),
        bulk("1796904000000"),
        Value::Int(2),
        bulk("1796904060000"),
        bulk(""),
    ];
    let refused = refusal(&reply, &budgeted(), Money::ZERO, None)
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.reason, RefusalReason::Rpm(5));
    assert_eq!(
        refused.retry_at,
        Some(UNIX_EPOCH + Duration::from_secs(1_796_904_060))
    );
    assert!(
        refusal(&[bulk("ok"), bulk("1")], &budgeted(), Money::ZERO, None)
            .unwrap()
            .is_ok()
    );
    // Scope 1 has no rpm; scope 3 does not exist.
    let mut wrong = reply.clone();
    wrong[2] = Value::Int(1);
    assert!(refusal(&wrong, &budgeted(), Money::ZERO, None).is_err());
    wrong[2] = Value::Int(3);
    assert!(refusal(&wrong, &budgeted(), Money::ZERO, None).is_err());
}

#[test]
fn amounts_past_redis_integers_are_cut_to_the_documented_bound() {
    assert_eq!(picos(Money::from_picos(12)), "12");
    assert_eq!(
        picos(Money::from_picos(u128::MAX)),
        (1u128 << 62).to_string()
    );
}
