//! The Redis ledger against a real Redis (`LLM_GATEWAY_TEST_REDIS`, e.g.
//! `redis://127.0.0.1:6379`; skipped when unset): the in-memory ledger's scenarios run
//! through one shared function on both backends; two ledgers ("replicas") hammering one
//! budget never overshoot and agree on its spend; a lease expiring on the server's clock;
//! an unreachable Redis in deny and allow mode; two gateways on one Redis sharing one
//! budget and one `rpm`. Every test keeps its keys under its own random prefix (or key
//! name), so tests run in parallel.

mod common;

use common::tcp_proxy::{target_of, Proxy};
use common::*;
use llm_gateway::budget::{
    Admission, Budget, Ledger, Limits, MemoryLedger, OnUnavailable, Period, RedisLedger,
    RefusalReason, Scope, Settlement, TestClock, DEFAULT_LEASE,
};
use llm_gateway::config::Config;
use llm_gateway::pricing::Money;
use llm_gateway::Gateway;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MINUTE: Duration = Duration::from_secs(60);

/// The test Redis, or `None` after printing why the test is skipped.
fn redis_url() -> Option<String> {
    match std::env::var("LLM_GATEWAY_TEST_REDIS") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: LLM_GATEWAY_TEST_REDIS is not set");
            None
        }
    }
}

fn unique(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::now_v7().simple())
}

fn redis_ledger(url: &str, prefix: &str) -> RedisLedger {
    RedisLedger::new(url, OnUnavailable::Deny)
        .expect("the URL parses")
        .with_prefix(prefix)
}

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

async fn admitted(ledger: &dyn Ledger, admission: Admission) -> bool {
    ledger
        .admit(admission)
        .await
        .expect("the ledger answers")
        .is_ok()
}

/// Both backends on a test clock at [`start`]: the memory ledger always, Redis when set.
fn backends() -> Vec<(&'static str, Arc<dyn Ledger>, TestClock)> {
    let mut all = Vec::new();
    let clock = TestClock::at(start());
    all.push((
        "memory",
        Arc::new(MemoryLedger::new().with_clock(clock.clone())) as Arc<dyn Ledger>,
        clock,
    ));
    if let Some(url) = redis_url() {
        let clock = TestClock::at(start());
        let ledger = redis_ledger(&url, &unique("t")).with_test_clock(clock.clone());
        all.push(("redis", Arc::new(ledger), clock));
    }
    all
}

async fn a_reservation_cut_lets_the_next_request_in(ledger: Arc<dyn Ledger>, _: TestClock) {
    let scopes = [(Scope::key("ci"), budget(1_000, Period::Day))];
    assert!(admitted(&*ledger, ask("a", &scopes, 700, 0)).await);
    let refused = ledger
        .admit(ask("b", &scopes, 700, 0))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            refused.reason,
            RefusalReason::Budget { spent, reserved, needed, .. }
                if spent == Money::ZERO && reserved == picos(700) && needed == picos(700)
        ),
        "{refused:?}"
    );
    assert_eq!(
        refused.retry_at,
        Some(UNIX_EPOCH + Duration::from_secs(1_796_947_200)),
        "a day budget resets at the next midnight UTC"
    );
    ledger.reserve("a", picos(250), 0).await.unwrap().unwrap();
    assert!(admitted(&*ledger, ask("b", &scopes, 700, 0)).await);
    let grow = ledger.reserve("a", picos(400), 0).await.unwrap();
    assert!(
        matches!(&grow, Err(r) if matches!(r.reason, RefusalReason::Budget { needed, .. } if needed == picos(150))),
        "{grow:?}"
    );
    let usage = ledger.usage(&scopes[0].0, &scopes[0].1).await.unwrap();
    assert_eq!(usage.reserved, picos(950));
    ledger.reserve("a", picos(300), 0).await.unwrap().unwrap();
    let usage = ledger.usage(&scopes[0].0, &scopes[0].1).await.unwrap();
    assert_eq!(usage.reserved, picos(1_000));
}

async fn settling_is_idempotent_and_ignores_strangers(ledger: Arc<dyn Ledger>, _: TestClock) {
    let scopes = [(Scope::key("ci"), budget(1_000, Period::Day))];
    assert!(admitted(&*ledger, ask("a", &scopes, 500, 0)).await);
    ledger.settle("a", settled(300, 0));
    ledger.settle("a", settled(300, 0));
    ledger.settle("never-admitted", settled(300, 0));
    // Admitting a settled id again does not count it twice either.
    assert!(admitted(&*ledger, ask("a", &scopes, 500, 0)).await);
    let usage = ledger.usage(&scopes[0].0, &scopes[0].1).await.unwrap();
    assert_eq!(
        (usage.spent, usage.reserved, usage.open),
        (picos(300), Money::ZERO, 0)
    );
}

async fn rpm_refuses_until_the_oldest_request_leaves_the_minute(
    ledger: Arc<dyn Ledger>,
    clock: TestClock,
) {
    let limits = Limits {
        rpm: Some(2),
        ..Limits::default()
    };
    let scopes = [(Scope::key("ci"), limits)];
    assert!(admitted(&*ledger, ask("a", &scopes, 0, 0)).await);
    clock.advance(Duration::from_secs(10));
    assert!(admitted(&*ledger, ask("b", &scopes, 0, 0)).await);
    let refused = ledger
        .admit(ask("c", &scopes, 0, 0))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.reason, RefusalReason::Rpm(2));
    assert_eq!(refused.retry_at, Some(start() + MINUTE));
    clock.advance(Duration::from_secs(50));
    assert!(admitted(&*ledger, ask("c", &scopes, 0, 0)).await);
    let usage = ledger.usage(&scopes[0].0, &limits).await.unwrap();
    assert_eq!(usage.requests_last_minute, 2, "a left the minute");
}

async fn tpm_counts_reserved_then_charged_tokens(ledger: Arc<dyn Ledger>, clock: TestClock) {
    let limits = Limits {
        tpm: Some(1_000),
        ..Limits::default()
    };
    let scopes = [(Scope::key("ci"), limits)];
    assert!(admitted(&*ledger, ask("a", &scopes, 0, 1_200)).await);
    let refused = ledger
        .admit(ask("b", &scopes, 0, 10))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.reason, RefusalReason::Tpm(1_000));
    ledger.settle("a", settled(0, 900));
    assert!(admitted(&*ledger, ask("b", &scopes, 0, 50)).await);
    ledger.settle("b", settled(0, 200));
    let refused = ledger
        .admit(ask("c", &scopes, 0, 10))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        refused.retry_at,
        Some(start() + MINUTE),
        "900 of 1,100 leave at once"
    );
    let usage = ledger.usage(&scopes[0].0, &limits).await.unwrap();
    assert_eq!(usage.tokens_last_minute, 1_100);
    clock.advance(MINUTE);
    assert!(admitted(&*ledger, ask("c", &scopes, 0, 10)).await);
}

async fn max_concurrent_is_atomic_across_key_and_team(ledger: Arc<dyn Ledger>, _: TestClock) {
    let key = Limits {
        max_concurrent: Some(2),
        ..Limits::default()
    };
    let team = Limits {
        max_concurrent: Some(1),
        ..Limits::default()
    };
    let both = [(Scope::key("ci"), key), (Scope::team("platform"), team)];
    assert!(admitted(&*ledger, ask("a", &both, 0, 0)).await);
    let refused = ledger
        .admit(ask("b", &both, 0, 0))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.scope, Scope::team("platform"));
    assert_eq!(refused.reason, RefusalReason::Concurrent(1));
    // The refusal by the team left the key's counters as they were.
    assert_eq!(ledger.usage(&Scope::key("ci"), &key).await.unwrap().open, 1);
    ledger.settle("a", settled(0, 0));
    assert!(admitted(&*ledger, ask("b", &both, 0, 0)).await);
}

async fn a_window_rollover_starts_the_budget_again(ledger: Arc<dyn Ledger>, clock: TestClock) {
    let scopes = [(Scope::key("ci"), budget(1_000, Period::Hour))];
    assert!(admitted(&*ledger, ask("a", &scopes, 1_000, 0)).await);
    ledger.settle("a", settled(1_000, 0));
    assert!(!admitted(&*ledger, ask("b", &scopes, 1, 0)).await);
    clock.advance(Duration::from_secs(3_600));
    assert!(admitted(&*ledger, ask("b", &scopes, 1_000, 0)).await);
    let usage = ledger.usage(&scopes[0].0, &scopes[0].1).await.unwrap();
    assert_eq!(usage.spent, Money::ZERO);
    assert_eq!(
        usage.window.and_then(|w| w.end),
        Some(1_796_904_000 + 7_200)
    );
    // Every period counted all along: the month holds the first hour's spend.
    let month = budget(1_000_000, Period::Month);
    let usage = ledger.usage(&scopes[0].0, &month).await.unwrap();
    assert_eq!(usage.spent, picos(1_000));
    let window = usage.window.unwrap();
    assert_eq!(
        (window.start, window.end),
        (1_796_083_200, Some(1_798_761_600)),
        "December 2026 in UTC"
    );
}

async fn an_expired_lease_is_released_and_a_late_settle_still_charges(
    ledger: Arc<dyn Ledger>,
    clock: TestClock,
) {
    let limits = Limits {
        max_concurrent: Some(1),
        ..budget(1_000, Period::Day)
    };
    let scopes = [(Scope::key("ci"), limits)];
    let mut short = ask("a", &scopes, 900, 0);
    short.lease = Duration::from_secs(30);
    assert!(admitted(&*ledger, short).await);
    assert!(!admitted(&*ledger, ask("b", &scopes, 100, 0)).await);
    clock.advance(Duration::from_secs(31));
    assert!(admitted(&*ledger, ask("b", &scopes, 100, 0)).await);
    ledger.settle("a", settled(50, 0));
    let usage = ledger.usage(&scopes[0].0, &scopes[0].1).await.unwrap();
    assert_eq!(
        (usage.spent, usage.reserved, usage.open),
        (picos(50), picos(100), 1)
    );
}

async fn money_beyond_doubles_is_exact(ledger: Arc<dyn Ledger>, _: TestClock) {
    // $9,007.199254740993: one pico past what a double holds exactly.
    let limit = (1u128 << 53) + 1;
    let scopes = [(Scope::key("ci"), budget(limit + 10, Period::Total))];
    assert!(admitted(&*ledger, ask("a", &scopes, limit, 0)).await);
    ledger.settle("a", settled(limit, 0));
    assert!(admitted(&*ledger, ask("b", &scopes, 10, 0)).await);
    assert!(!admitted(&*ledger, ask("c", &scopes, 1, 0)).await);
    let usage = ledger.usage(&scopes[0].0, &scopes[0].1).await.unwrap();
    assert_eq!((usage.spent, usage.reserved), (picos(limit), picos(10)));
}

macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $scenario() {
            for (name, ledger, clock) in backends() {
                println!("{name}");
                super::$scenario(ledger, clock).await;
            }
        }
    )*};
}

mod both_backends {
    on_both_backends!(
        a_reservation_cut_lets_the_next_request_in,
        settling_is_idempotent_and_ignores_strangers,
        rpm_refuses_until_the_oldest_request_leaves_the_minute,
        tpm_counts_reserved_then_charged_tokens,
        max_concurrent_is_atomic_across_key_and_team,
        a_window_rollover_starts_the_budget_again,
        an_expired_lease_is_released_and_a_late_settle_still_charges,
        money_beyond_doubles_is_exact,
    );
    use super::backends;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_hammering_one_budget_never_overshoot_and_agree() {
    let Some(url) = redis_url() else { return };
    let prefix = unique("hammer");
    let replicas: Vec<Arc<dyn Ledger>> = (0..2)
        .map(|_| Arc::new(redis_ledger(&url, &prefix)) as Arc<dyn Ledger>)
        .collect();
    const LIMIT: u128 = 200_000;
    let scopes = vec![
        (Scope::key("ci"), budget(LIMIT, Period::Total)),
        (
            Scope::team("platform"),
            Limits {
                max_concurrent: Some(12),
                ..budget(LIMIT * 10, Period::Total)
            },
        ),
    ];
    let tasks: Vec<_> = (0..16u128)
        .map(|t| {
            let ledger = replicas[(t % 2) as usize].clone();
            let scopes = scopes.clone();
            tokio::spawn(async move {
                let mut admitted = 0u32;
                for i in 0..100u128 {
                    let id = format!("r{t}-{i}");
                    let bound = 1_000 + (i * 7 + t) % 3_000;
                    let answer = ledger.admit(ask(&id, &scopes, bound, 10)).await.unwrap();
                    if answer.is_ok() {
                        admitted += 1;
                        ledger.settle(&id, settled(bound * ((i % 4) + 1) / 4, 5));
                    }
                }
                admitted
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.unwrap();
    }
    assert!(admitted < 1_600, "some were refused");
    // Each replica's queue is flushed by its own read; then both read the same.
    for replica in &replicas {
        replica.usage(&scopes[0].0, &scopes[0].1).await.unwrap();
    }
    let a = replicas[0].usage(&scopes[0].0, &scopes[0].1).await.unwrap();
    let b = replicas[1].usage(&scopes[0].0, &scopes[0].1).await.unwrap();
    assert_eq!(a, b, "both replicas see one ledger");
    assert!(a.spent <= picos(LIMIT), "spent {}", a.spent);
    assert!(a.spent > picos(LIMIT - 4_000), "used up: {}", a.spent);
    assert_eq!((a.reserved, a.open), (Money::ZERO, 0));
    let team = replicas[0].usage(&scopes[1].0, &scopes[1].1).await.unwrap();
    assert_eq!(team.spent, a.spent, "the team was charged the same");
    assert_eq!(team.open, 0);
}

#[tokio::test]
async fn a_lease_expires_on_the_server_clock_and_gives_back_its_hold() {
    let Some(url) = redis_url() else { return };
    let prefix = unique("lease");
    // The replica that admits and then "crashes" (never settles).
    let crashed = redis_ledger(&url, &prefix);
    let survivor = redis_ledger(&url, &prefix);
    let limits = Limits {
        max_concurrent: Some(1),
        ..budget(1_000, Period::Day)
    };
    let scopes = [(Scope::key("ci"), limits)];
    let mut short = ask("held", &scopes, 900, 0);
    short.lease = Duration::from_millis(300);
    assert!(admitted(&crashed, short).await);
    drop(crashed);
    assert!(!admitted(&survivor, ask("b", &scopes, 100, 0)).await);
    let usage = eventually("the lease to expire", || async {
        let usage = survivor.usage(&scopes[0].0, &limits).await.unwrap();
        if usage.open == 0 {
            Ok(usage)
        } else {
            Err(usage)
        }
    })
    .await;
    assert_eq!(usage.reserved, Money::ZERO);
    assert!(admitted(&survivor, ask("b", &scopes, 1_000, 0)).await);
}

#[tokio::test]
async fn an_unreachable_redis_denies_or_allows_limited_requests_only() {
    // A port nothing listens on: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:hunter2-secret@127.0.0.1:{port}");
    let limited = [(Scope::key("ci"), budget(1_000, Period::Day))];
    let unlimited = [(Scope::key("free"), Limits::default())];

    let deny = RedisLedger::new(&url, OnUnavailable::Deny).unwrap();
    assert!(deny.healthy());
    let error = deny.admit(ask("a", &limited, 10, 0)).await.unwrap_err();
    assert!(!error.0.contains("hunter2"), "{error}");
    assert!(!format!("{deny:?}").contains("hunter2"));
    assert!(!deny.healthy(), "health says degraded");
    assert!(
        admitted(&deny, ask("b", &unlimited, 10, 0)).await,
        "no limits: unaffected"
    );
    deny.settle("b", settled(10, 0));
    assert!(deny.usage(&limited[0].0, &limited[0].1).await.is_err());

    let allow = RedisLedger::new(&url, OnUnavailable::Allow).unwrap();
    assert!(admitted(&allow, ask("c", &limited, 10, 0)).await);
    assert!(allow.reserve("c", picos(5), 0).await.unwrap().is_ok());
    assert!(!allow.healthy());

    assert!(RedisLedger::new("http://not-redis", OnUnavailable::Deny).is_err());
}

/// The mock's answer: 20 input and 10 output tokens, on claude-sonnet-4-5 ($3 in, $15
/// out per million) 210,000,000 pico-dollars.
fn small_answer() -> Reply {
    let events = [
        r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"usage":{"input_tokens":20,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":10}}"#,
        r#"{"type":"message_stop"}"#,
    ];
    let text: String = events
        .iter()
        .map(|data| {
            let name = serde_json::from_str::<Value>(data).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned();
            format!("event: {name}\ndata: {data}\n\n")
        })
        .collect();
    Reply::sse_events(&text)
}

const BODY: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hello"}]}"#;

struct Replica {
    url: String,
    _task: tokio::task::JoinHandle<()>,
}

impl Replica {
    async fn start(upstream: &MockUpstream, redis: &str, key: &str, limits: &str) -> Self {
        let dir = tempfile::tempdir().unwrap().keep();
        let text = format!(
            r#"
[state]
redis_url = "{redis}"

[auth]
store_path = "{store}"
[[auth.client_keys]]
name = "{key}"
key = "gk-{key}"
{limits}

[providers.anthropic]
kind = "anthropic"
base_url = "{url}"

[audit]
enabled = false
"#,
            store = dir.join("keys.db").display(),
            url = upstream.url(),
        );
        let config = Config::from_toml_str(&text).expect("config parses");
        let gateway = Gateway::builder(config)
            .metrics_recorder(prometheus_recorder())
            .build()
            .expect("gateway builds");
        let (url, task) = serve_gateway(gateway).await;
        Replica { url, _task: task }
    }

    async fn send(&self, key: &str) -> reqwest::Response {
        client()
            .post(format!("{}/v1/messages", self.url))
            .header("x-api-key", format!("gk-{key}"))
            .header("content-type", "application/json")
            .body(BODY)
            .send()
            .await
            .unwrap()
    }

    async fn json(&self, path: &str) -> Value {
        let response = client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }

    /// Wait until this replica sees `spent_usd` for `key`.
    async fn wait_spent(&self, key: &str, spent: &str) {
        eventually(&format!("{key} to have spent {spent}"), || async {
            let seen = self.json(&format!("/gateway/keys/{key}")).await;
            if seen["spent_usd"] == spent && seen["open_requests"] == 0 {
                Ok(())
            } else {
                Err(seen)
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_redis_share_one_budget() {
    let Some(redis) = redis_url() else { return };
    let upstream = MockUpstream::start().await;
    let key = unique("ci");
    // Each request reserves up to $0.001497 and costs $0.00021: two fit $0.0018, a
    // third does not, whichever replica it comes to.
    let limits = "budget_usd = 0.0018\nbudget_period = \"total\"";
    let a = Replica::start(&upstream, &redis, &key, limits).await;
    let b = Replica::start(&upstream, &redis, &key, limits).await;
    for _ in 0..3 {
        upstream.push(small_answer());
    }
    let first = a.send(&key).await;
    assert_eq!(first.status(), 200, "{}", first.text().await.unwrap());
    assert!(first.text().await.unwrap().contains("message_stop"));
    b.wait_spent(&key, "0.00021").await;
    let second = b.send(&key).await;
    assert_eq!(second.status(), 200);
    assert!(second.text().await.unwrap().contains("message_stop"));
    a.wait_spent(&key, "0.00042").await;
    let third = a.send(&key).await;
    assert_eq!(third.status(), 402);
    let error: Value = serde_json::from_slice(&third.bytes().await.unwrap()).unwrap();
    assert_eq!(error["error"]["type"], "billing_error");
    assert_eq!(
        upstream.requests().len(),
        2,
        "the refused one never went upstream"
    );
    let health = b.json("/gateway/health").await;
    assert_eq!(health["budgets"]["healthy"], true, "{health}");
    assert_eq!(health["budgets"]["shared"], true, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_redis_share_one_rpm() {
    let Some(redis) = redis_url() else { return };
    let upstream = MockUpstream::start().await;
    let key = unique("ci");
    let a = Replica::start(&upstream, &redis, &key, "rpm = 3").await;
    let b = Replica::start(&upstream, &redis, &key, "rpm = 3").await;
    for _ in 0..3 {
        upstream.push(small_answer());
    }
    for replica in [&a, &b, &a] {
        let response = replica.send(&key).await;
        assert_eq!(response.status(), 200);
        response.text().await.unwrap();
    }
    let refused = b.send(&key).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let error: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_error");
    let me = a.json(&format!("/gateway/keys/{key}")).await;
    assert_eq!(me["requests_last_minute"], 3, "{me}");
}

#[tokio::test]
async fn a_gateway_whose_redis_is_down_says_degraded_and_answers_503() {
    let upstream = MockUpstream::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = format!("redis://127.0.0.1:{port}");
    let key = unique("ci");
    let limited = Replica::start(&upstream, &redis, &key, "rpm = 3").await;
    // The idle ping finds it down before any request does.
    eventually("health to say degraded without traffic", || async {
        let health = limited.json("/gateway/health").await;
        (health["status"] == "degraded").then_some(()).ok_or(health)
    })
    .await;
    let refused = limited.send(&key).await;
    assert_eq!(refused.status(), 503);
    let error: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(error["error"]["type"], "api_error", "{error}");
    let health = limited.json("/gateway/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["budgets"]["healthy"], false, "{health}");
    // A key without limits is unaffected.
    let free = unique("free");
    let unlimited = Replica::start(&upstream, &redis, &free, "").await;
    upstream.push(small_answer());
    let response = unlimited.send(&free).await;
    assert_eq!(response.status(), 200);
    assert!(
        upstream.requests().len() == 1,
        "only the unlimited one went upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_redis_while_idle() {
    let Some(redis) = redis_url() else { return };
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::start(target_of(&redis), true).await;
    let key = unique("idle");
    let replica = Replica::start(&upstream, &proxy.url(&redis), &key, "rpm = 3").await;
    let status = |want: &'static str| {
        let replica = &replica;
        async move {
            eventually(&format!("health {want} with no traffic"), || async {
                let health = replica.json("/gateway/health").await;
                (health["status"] == want).then_some(()).ok_or(health)
            })
            .await
        }
    };
    status("healthy").await;
    proxy.cut();
    status("degraded").await;
    assert_eq!(
        replica.json("/gateway/health").await["budgets"]["healthy"],
        false
    );
    proxy.restore();
    status("healthy").await;
    // And the ledger answers again at once.
    upstream.push(small_answer());
    let response = replica.send(&key).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_made_while_redis_is_down_is_charged_when_it_is_back() {
    let Some(redis) = redis_url() else { return };
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::start(target_of(&redis), true).await;
    let key = unique("parked");
    let limits = "budget_usd = 1.0\nbudget_period = \"total\"";
    let replica = Replica::start(&upstream, &proxy.url(&redis), &key, limits).await;
    let events = mock::split_events(&fixture("text_basic.sse"));
    let (go, wait) = tokio::sync::oneshot::channel();
    let mut steps: Vec<Step> = events[..3]
        .iter()
        .map(|e| Step::Send(e.clone().into_bytes()))
        .collect();
    steps.push(Step::Wait(wait));
    steps.extend(
        events[3..]
            .iter()
            .map(|e| Step::Send(e.clone().into_bytes())),
    );
    upstream.push(Reply::sse(steps));
    let mut response = replica.send(&key).await;
    assert_eq!(response.status(), 200);
    let mut buffer = String::new();
    read_events(&mut response, &mut buffer, 3).await;
    // Redis goes away mid-stream: the stream still ends, its settle cannot be sent.
    proxy.cut();
    go.send(()).unwrap();
    let rest = response.text().await.unwrap();
    assert!(rest.contains("message_stop"), "{rest}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.restore();
    eventually("the parked settlement charged", || async {
        let seen = replica.json(&format!("/gateway/keys/{key}")).await;
        let charged = seen["spent_usd"] != "0" && seen["reserved_usd"] == "0";
        charged.then_some(()).ok_or(seen)
    })
    .await;
}
