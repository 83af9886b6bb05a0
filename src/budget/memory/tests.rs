use super::*;
use crate::budget::{Budget, TestClock, DEFAULT_LEASE};
use std::time::UNIX_EPOCH;

fn picos(n: u128) -> Money {
    Money::from_picos(n)
}

fn start() -> SystemTime {
    // 2026-12-10T12:00:00Z, a Thursday.
    UNIX_EPOCH + Duration::from_secs(1_796_904_000)
}

fn budget(limit: u128, period: Period) -> Limits {
    Limits {
        budget: Some(Budget {
            limit: picos(limit),
            period,
        }),
        ..Limits::default()
    }
}

fn ask(id: &str, scopes: &[(Scope, Limits)], cost: u128, tokens: u64) -> Admission {
    Admission {
        request_id: id.into(),
        scopes: scopes.to_vec(),
        cost_bound: picos(cost),
        token_bound: tokens,
        lease: DEFAULT_LEASE,
    }
}

fn settled(cost: u128, tokens: u64) -> Settlement {
    Settlement {
        cost: picos(cost),
        tokens,
    }
}

fn on_clock() -> (MemoryLedger, TestClock) {
    let clock = TestClock::at(start());
    (MemoryLedger::new().with_clock(clock.clone()), clock)
}

#[test]
fn concurrent_requests_never_settle_past_the_budget() {
    let ledger = Arc::new(MemoryLedger::new());
    let scopes = vec![(Scope::key("ci"), budget(1_000_000, Period::Total))];
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let ledger = ledger.clone();
            let scopes = scopes.clone();
            std::thread::spawn(move || {
                let mut admitted = 0u32;
                for i in 0..500u128 {
                    let id = format!("r{t}-{i}");
                    let bound = 1_000 + (i * 7 + t) % 3_000;
                    if ledger.admit_now(ask(&id, &scopes, bound, 10)).is_ok() {
                        admitted += 1;
                        // Used somewhere between nothing and the whole bound.
                        ledger.settle_now(&id, settled(bound * ((i % 4) + 1) / 4, 5));
                    }
                }
                admitted
            })
        })
        .collect();
    let admitted: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let usage = ledger.usage_now(&Scope::key("ci"), &scopes[0].1);
    assert!(usage.spent <= picos(1_000_000), "spent {}", usage.spent);
    assert!(
        usage.spent > picos(990_000),
        "the budget was used up: {}",
        usage.spent
    );
    assert!(admitted < 4_000, "some were refused");
    assert_eq!(usage.reserved, Money::ZERO);
    assert_eq!(usage.open, 0);
}

#[test]
fn a_reservation_cut_to_the_exact_input_lets_the_next_request_in() {
    let (ledger, _) = on_clock();
    let scopes = [(Scope::key("ci"), budget(1_000, Period::Day))];
    assert!(ledger.admit_now(ask("a", &scopes, 700, 0)).is_ok());
    let refused = ledger.admit_now(ask("b", &scopes, 700, 0)).unwrap_err();
    assert!(matches!(
        refused.reason,
        RefusalReason::Budget { spent, reserved, needed, .. }
            if spent == Money::ZERO && reserved == picos(700) && needed == picos(700)
    ));
    assert_eq!(
        refused.retry_at,
        Some(UNIX_EPOCH + Duration::from_secs(1_796_947_200)),
        "a day budget resets at the next midnight UTC"
    );
    ledger.reserve_now("a", picos(250), 0).unwrap();
    assert!(ledger.admit_now(ask("b", &scopes, 700, 0)).is_ok());
    // Growing back past what is left is refused and changes nothing.
    assert!(ledger.reserve_now("a", picos(400), 0).is_err());
    assert_eq!(
        ledger.usage_now(&scopes[0].0, &scopes[0].1).reserved,
        picos(950)
    );
    assert!(ledger.reserve_now("a", picos(300), 0).is_ok());
    assert_eq!(
        ledger.usage_now(&scopes[0].0, &scopes[0].1).reserved,
        picos(1_000)
    );
}

#[test]
fn settling_is_idempotent_and_ignores_strangers() {
    let (ledger, _) = on_clock();
    let scopes = [(Scope::key("ci"), budget(1_000, Period::Day))];
    ledger.admit_now(ask("a", &scopes, 500, 0)).unwrap();
    ledger.settle_now("a", settled(300, 0));
    ledger.settle_now("a", settled(300, 0));
    ledger.settle_now("never-admitted", settled(300, 0));
    // Admitting a settled id again does not count it twice either.
    ledger.admit_now(ask("a", &scopes, 500, 0)).unwrap();
    let usage = ledger.usage_now(&scopes[0].0, &scopes[0].1);
    assert_eq!(
        (usage.spent, usage.reserved, usage.open),
        (picos(300), Money::ZERO, 0)
    );
}

#[test]
fn rpm_refuses_until_the_oldest_request_leaves_the_minute() {
    let (ledger, clock) = on_clock();
    let limits = Limits {
        rpm: Some(2),
        ..Limits::default()
    };
    let scopes = [(Scope::key("ci"), limits)];
    ledger.admit_now(ask("a", &scopes, 0, 0)).unwrap();
    clock.advance(Duration::from_secs(10));
    ledger.admit_now(ask("b", &scopes, 0, 0)).unwrap();
    let refused = ledger.admit_now(ask("c", &scopes, 0, 0)).unwrap_err();
    assert_eq!(refused.reason, RefusalReason::Rpm(2));
    assert_eq!(refused.retry_at, Some(start() + MINUTE));
    clock.advance(Duration::from_secs(50));
    assert!(ledger.admit_now(ask("c", &scopes, 0, 0)).is_ok());
}

#[test]
fn tpm_counts_reserved_then_charged_tokens() {
    let (ledger, clock) = on_clock();
    let limits = Limits {
        tpm: Some(1_000),
        ..Limits::default()
    };
    let scopes = [(Scope::key("ci"), limits)];
    ledger.admit_now(ask("a", &scopes, 0, 1_200)).unwrap();
    let refused = ledger.admit_now(ask("b", &scopes, 0, 10)).unwrap_err();
    assert_eq!(refused.reason, RefusalReason::Tpm(1_000));
    ledger.settle_now("a", settled(0, 900));
    assert!(ledger.admit_now(ask("b", &scopes, 0, 50)).is_ok());
    ledger.settle_now("b", settled(0, 200));
    let refused = ledger.admit_now(ask("c", &scopes, 0, 10)).unwrap_err();
    assert_eq!(
        refused.retry_at,
        Some(start() + MINUTE),
        "900 of 1,100 leave at once"
    );
    clock.advance(MINUTE);
    assert!(ledger.admit_now(ask("c", &scopes, 0, 10)).is_ok());
}

#[test]
fn max_concurrent_holds_a_slot_until_settled_and_across_key_and_team_atomically() {
    let (ledger, _) = on_clock();
    let key = Limits {
        max_concurrent: Some(2),
        ..Limits::default()
    };
    let team = Limits {
        max_concurrent: Some(1),
        ..Limits::default()
    };
    let both = [(Scope::key("ci"), key), (Scope::team("platform"), team)];
    ledger.admit_now(ask("a", &both, 0, 0)).unwrap();
    let refused = ledger.admit_now(ask("b", &both, 0, 0)).unwrap_err();
    assert_eq!(refused.scope, Scope::team("platform"));
    assert_eq!(refused.reason, RefusalReason::Concurrent(1));
    // The refusal by the team left the key's counters as they were.
    assert_eq!(ledger.usage_now(&Scope::key("ci"), &key).open, 1);
    ledger.settle_now("a", settled(0, 0));
    assert!(ledger.admit_now(ask("b", &both, 0, 0)).is_ok());
}

#[test]
fn a_window_rollover_starts_the_budget_again() {
    let (ledger, clock) = on_clock();
    let scopes = [(Scope::key("ci"), budget(1_000, Period::Hour))];
    ledger.admit_now(ask("a", &scopes, 1_000, 0)).unwrap();
    ledger.settle_now("a", settled(1_000, 0));
    assert!(ledger.admit_now(ask("b", &scopes, 1, 0)).is_err());
    clock.advance(Duration::from_secs(3_600));
    assert!(ledger.admit_now(ask("b", &scopes, 1_000, 0)).is_ok());
    let usage = ledger.usage_now(&scopes[0].0, &scopes[0].1);
    assert_eq!(usage.spent, Money::ZERO);
    assert_eq!(
        usage.window.and_then(|w| w.end),
        Some(1_796_904_000 + 7_200)
    );
}

#[test]
fn an_expired_lease_is_released_and_a_late_settle_still_charges() {
    let (ledger, clock) = on_clock();
    let limits = Limits {
        max_concurrent: Some(1),
        ..budget(1_000, Period::Day)
    };
    let scopes = [(Scope::key("ci"), limits)];
    let mut short = ask("a", &scopes, 900, 0);
    short.lease = Duration::from_secs(30);
    ledger.admit_now(short).unwrap();
    assert!(ledger.admit_now(ask("b", &scopes, 100, 0)).is_err());
    clock.advance(Duration::from_secs(31));
    assert!(ledger.admit_now(ask("b", &scopes, 100, 0)).is_ok());
    ledger.settle_now("a", settled(50, 0));
    let usage = ledger.usage_now(&scopes[0].0, &scopes[0].1);
    assert_eq!(
        (usage.spent, usage.reserved, usage.open),
        (picos(50), picos(100), 1)
    );
}

#[test]
fn settled_spend_survives_a_restart_through_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let limits = budget(10_000, Period::Month);
    let scopes = [
        (Scope::key("ci"), limits),
        (Scope::team("platform"), limits),
    ];
    {
        let ledger = MemoryLedger::new().with_journal(SpendJournal::open(&path).unwrap());
        ledger.admit_now(ask("a", &scopes, 5_000, 0)).unwrap();
        ledger.settle_now("a", settled(1_234, 0));
    }
    let ledger = MemoryLedger::new().with_journal(SpendJournal::open(&path).unwrap());
    for (scope, limits) in &scopes {
        assert_eq!(
            ledger.usage_now(scope, limits).spent,
            picos(1_234),
            "{scope}"
        );
    }
    let daily = budget(10_000, Period::Day);
    assert_eq!(
        ledger.usage_now(&Scope::key("ci"), &daily).spent,
        picos(1_234)
    );
}
