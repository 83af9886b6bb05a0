//! Budgets and rate limits through the real gateway: a budget hammered by concurrent
//! streams never overshoots and equals its audit records to the pico-dollar; the cut at
//! `message_start` lets a request in that the upper bound alone refuses; every refusal's
//! status, type, `retry-after` and message; `max_concurrent` counted until a stream's
//! body ends; window rollover on a test clock; spend surviving a restart.

mod common;

use common::mock::split_events;
use common::*;
use llm_gateway::budget::{MemoryLedger, TestClock};
use llm_gateway::config::Config;
use llm_gateway::Gateway;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

const KEY: &str = "gk-budget-test-key-0123456789";

/// Every answer the mock gives: 10,000 input tokens, 500 output tokens. On
/// claude-sonnet-4-5 ($3 in, $15 out per million) that is exactly $0.0375.
const ANSWER_PICOS: u128 = 10_000 * 3_000_000 + 500 * 15_000_000;

fn answer_events() -> String {
    [
        r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"usage":{"input_tokens":10000,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":500}}"#,
        r#"{"type":"message_stop"}"#,
    ]
    .iter()
    .map(|data| {
        let name = serde_json::from_str::<Value>(data).unwrap()["type"]
            .as_str()
            .unwrap()
            .to_owned();
        format!("event: {name}\ndata: {data}\n\n")
    })
    .collect()
}

/// One step sending each of `events`.
fn sends(events: &[String]) -> Vec<Step> {
    events
        .iter()
        .map(|e| Step::Send(e.clone().into_bytes()))
        .collect()
}

/// A Claude Code-sized request (~50 KB of conversation) asking for `max_tokens` 1,000.
fn big_body() -> String {
    let history = "Read src/main.rs and explain the error handling. ".repeat(1_000);
    format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":1000,"stream":true,"messages":[{{"role":"user","content":"{history}"}}]}}"#
    )
}

/// A config with the mock as its anthropic provider and one key with `key_toml` lines.
fn config(upstream: &MockUpstream, dir: &std::path::Path, key_toml: &str) -> Config {
    let text = format!(
        r#"
[auth]
store_path = "{store}"
[[auth.client_keys]]
name = "ci"
key = "{KEY}"
{key_toml}

[providers.anthropic]
kind = "anthropic"
base_url = "{url}"

[audit]
path = "{audit}"
"#,
        store = dir.join("keys.db").display(),
        audit = dir.join("audit.db").display(),
        url = upstream.url(),
    );
    Config::from_toml_str(&text).expect("config parses")
}

struct Running {
    url: String,
    _task: tokio::task::JoinHandle<()>,
}

async fn serve(config: Config, ledger: Option<Arc<MemoryLedger>>) -> Running {
    let mut builder = Gateway::builder(config).metrics_recorder(prometheus_recorder());
    if let Some(ledger) = ledger {
        builder = builder.ledger(ledger);
    }
    let (url, task) = serve_gateway(builder.build().expect("gateway builds")).await;
    Running { url, _task: task }
}

/// POST a Messages `body` to the gateway at `url` with the test key.
async fn send(url: &str, body: &str) -> reqwest::Response {
    client()
        .post(format!("{url}/v1/messages"))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

impl Running {
    async fn send(&self, body: &str) -> reqwest::Response {
        send(&self.url, body).await
    }

    async fn key(&self) -> Value {
        let response = client()
            .get(format!("{}/gateway/keys/ci", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }

    async fn audit_costs(&self, n: usize) -> u128 {
        eventually(&format!("{n} audit records"), || async {
            let response = client()
                .get(format!("{}/gateway/audit?limit=1000", self.url))
                .send()
                .await
                .unwrap();
            let page: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            let records = page["records"].as_array().cloned().unwrap_or_default();
            if records.len() >= n {
                Ok(records
                    .iter()
                    .filter_map(|r| r["cost_usd"].as_str())
                    .map(picos)
                    .sum())
            } else {
                Err(records.len())
            }
        })
        .await
    }
}

/// Exact decimal USD text as pico-dollars.
fn picos(usd: &str) -> u128 {
    let (whole, fraction) = usd.split_once('.').unwrap_or((usd, ""));
    let fraction = format!("{fraction:0<12}");
    whole.parse::<u128>().unwrap() * 1_000_000_000_000 + fraction.parse::<u128>().unwrap()
}

async fn error_of(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    (status, retry_after, body["error"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_hammered_by_concurrent_streams_never_overshoots() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = serve(config(&upstream, dir.path(), "budget_usd = 1.0"), None).await;
    let body = Arc::new(big_body());
    let (mut answered, mut refused) = (0usize, 0usize);
    for _wave in 0..40 {
        for _ in 0..100 {
            upstream.push(Reply::sse_events(&answer_events()));
        }
        let streams = (0..100).map(|_| {
            let gateway_url = gateway.url.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let response = send(&gateway_url, &body).await;
                if response.status() == 200 {
                    let text = response.text().await.unwrap();
                    assert!(text.contains("message_stop"), "{text}");
                    Ok(())
                } else {
                    Err(error_of(response).await)
                }
            })
        });
        let results = futures_util::future::join_all(streams).await;
        let wave_answered = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
        for result in results {
            if let Err((status, _, error)) = result.unwrap() {
                assert_eq!(status, 402, "{error}");
                assert_eq!(error["type"], "billing_error");
                let message = error["message"].as_str().unwrap();
                assert!(message.contains("key \"ci\""), "{message}");
                assert!(message.contains("resets at"), "{message}");
                refused += 1;
            }
        }
        answered += wave_answered;
        if wave_answered == 0 {
            break;
        }
    }
    assert!(
        refused > 0 && answered > 0,
        "{answered} answered, {refused} refused"
    );
    // Nothing of a refused request went upstream.
    assert_eq!(upstream.requests().len(), answered);
    let key = eventually("every request settled", || async {
        let key = gateway.key().await;
        if key["reserved_usd"] == "0" && key["open_requests"] == 0 {
            Ok(key)
        } else {
            Err(key)
        }
    })
    .await;
    let spent = picos(key["spent_usd"].as_str().unwrap());
    assert_eq!(spent, answered as u128 * ANSWER_PICOS);
    assert!(
        spent <= 1_000_000_000_000,
        "spent {spent} picos of a $1 budget"
    );
    // The upper bound of one more request (~$0.62) no longer fits what is left.
    assert!(
        spent > 1_000_000_000_000 - 630_000_000_000,
        "spent only {spent}"
    );
    assert_eq!(gateway.audit_costs(answered + refused).await, spent);
}

#[tokio::test]
async fn the_cut_at_message_start_lets_in_a_request_the_bound_alone_refuses() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = serve(config(&upstream, dir.path(), "budget_usd = 1.0"), None).await;
    let events = split_events(&answer_events());
    let (start_tx, start_rx) = tokio::sync::oneshot::channel();
    let (rest_tx, rest_rx) = tokio::sync::oneshot::channel();
    let mut steps = vec![Step::Wait(start_rx)];
    steps.extend(sends(&events[..1]));
    steps.push(Step::Wait(rest_rx));
    steps.extend(sends(&events[1..]));
    upstream.push(Reply::sse(steps));
    upstream.push(Reply::sse_events(&answer_events()));

    let body = big_body();
    let first = {
        let url = gateway.url.clone();
        let body = body.clone();
        tokio::spawn(async move { send(&url, &body).await.text().await.unwrap() })
    };
    // The first request holds its upper bound (~$0.62 of $1): a second does not fit.
    eventually("the first request reserved", || async {
        let reserved = gateway.key().await["reserved_usd"]
            .as_str()
            .unwrap()
            .to_owned();
        if reserved != "0" {
            Ok(())
        } else {
            Err(reserved)
        }
    })
    .await;
    let (status, _, error) = error_of(gateway.send(&body).await).await;
    assert_eq!(
        (status, error["type"].as_str()),
        (402, Some("billing_error"))
    );
    // Its message_start says the exact input: the hold shrinks to $0.03 + 1,000 output
    // tokens at $15/M = $0.045, and the second request fits.
    start_tx.send(()).unwrap();
    eventually("the reservation cut to the exact input", || async {
        let reserved = gateway.key().await["reserved_usd"]
            .as_str()
            .unwrap()
            .to_owned();
        if reserved == "0.045" {
            Ok(())
        } else {
            Err(reserved)
        }
    })
    .await;
    let second = gateway.send(&body).await;
    assert_eq!(second.status(), 200);
    assert!(second.text().await.unwrap().contains("message_stop"));
    rest_tx.send(()).unwrap();
    assert!(first.await.unwrap().contains("message_stop"));
    eventually("both settled", || async {
        let key = gateway.key().await;
        let spent = picos(key["spent_usd"].as_str().unwrap());
        if spent == 2 * ANSWER_PICOS && key["reserved_usd"] == "0" {
            Ok(())
        } else {
            Err(key)
        }
    })
    .await;
}

#[tokio::test]
async fn refusals_say_what_and_when_and_nothing_goes_upstream() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let limits = "rpm = 2\nmodels = [\"claude-sonnet-*\"]";
    let gateway = serve(config(&upstream, dir.path(), limits), None).await;
    let small = messages_body(false);
    for _ in 0..2 {
        upstream.push(Reply::json(200, message_json(10, 20)));
        assert_eq!(gateway.send(&small).await.status(), 200);
    }
    let (status, retry_after, error) = error_of(gateway.send(&small).await).await;
    assert_eq!(
        (status, error["type"].as_str()),
        (429, Some("rate_limit_error"))
    );
    let seconds: u64 = retry_after.expect("retry-after").parse().unwrap();
    assert!((1..=60).contains(&seconds), "{seconds}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("rpm limit (2 requests per minute)"),
        "{message}"
    );

    let haiku = small.replace("claude-sonnet-4-5", "claude-haiku-4-5");
    let (status, _, error) = error_of(gateway.send(&haiku).await).await;
    assert_eq!(
        (status, error["type"].as_str()),
        (403, Some("permission_error"))
    );
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("claude-sonnet-*"));
    assert_eq!(
        upstream.requests().len(),
        2,
        "refused requests never went upstream"
    );
}

#[tokio::test]
async fn a_budgeted_key_needs_a_priced_model_and_max_tokens() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = serve(config(&upstream, dir.path(), "budget_usd = 5.0"), None).await;
    let unpriced = messages_body(false).replace("claude-sonnet-4-5", "house-model-7");
    let (status, _, error) = error_of(gateway.send(&unpriced).await).await;
    assert_eq!(
        (status, error["type"].as_str()),
        (402, Some("billing_error"))
    );
    assert!(error["message"].as_str().unwrap().contains("has no price"));
    let unbounded = messages_body(false).replace(r#""max_tokens":64,"#, "");
    let (status, _, error) = error_of(gateway.send(&unbounded).await).await;
    assert_eq!(
        (status, error["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    assert!(error["message"].as_str().unwrap().contains("max_tokens"));
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn max_concurrent_holds_until_the_stream_body_ends_client_disconnects_included() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = serve(config(&upstream, dir.path(), "max_concurrent = 1"), None).await;
    let events = split_events(&answer_events());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut steps = sends(&events[..3]);
    steps.push(Step::Wait(rx));
    steps.extend(sends(&events[3..]));
    upstream.push(Reply::sse(steps));
    let stream_body = messages_body(true);
    let mut open = gateway.send(&stream_body).await;
    let mut seen = String::new();
    read_events(&mut open, &mut seen, 3).await;
    // The head and the first content went out; the stream is still open.
    let (status, retry_after, error) = error_of(gateway.send(&stream_body).await).await;
    assert_eq!(
        (status, error["type"].as_str()),
        (429, Some("rate_limit_error"))
    );
    assert!(retry_after.is_some());
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("max_concurrent limit (1 open at once)"));
    tx.send(()).unwrap();
    let rest = open.text().await.unwrap();
    assert!(rest.contains("message_stop"));
    let mut steps = sends(&events[..3]);
    steps.push(Step::Hang);
    upstream.push(Reply::sse(steps));
    let mut left = eventually("the slot is free once the body ended", || async {
        let response = gateway.send(&stream_body).await;
        if response.status() == 200 {
            Ok(response)
        } else {
            Err(response.status())
        }
    })
    .await;
    read_events(&mut left, &mut String::new(), 3).await;
    drop(left); // the client goes away mid-stream
    upstream.push(Reply::sse_events(&answer_events()));
    eventually("the slot is free once the client left", || async {
        let response = gateway.send(&stream_body).await;
        if response.status() == 200 {
            Ok(())
        } else {
            Err(response.status())
        }
    })
    .await;
}

#[tokio::test]
async fn a_day_budget_starts_again_at_midnight_utc() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // 2026-12-10T23:00:00Z.
    let clock = TestClock::at(UNIX_EPOCH + Duration::from_secs(1_796_943_600));
    let ledger = Arc::new(MemoryLedger::new().with_clock(clock.clone()));
    let limits = "budget_usd = 0.01\nbudget_period = \"day\"";
    let gateway = serve(config(&upstream, dir.path(), limits), Some(ledger)).await;
    let small = messages_body(false);
    upstream.push(Reply::json(200, message_json(10, 20)));
    assert_eq!(gateway.send(&small).await.status(), 200);
    upstream.push(Reply::json(200, message_json(100, 20)));
    assert_eq!(gateway.send(&small).await.status(), 200);
    let mut refusals = 0;
    loop {
        upstream.push(Reply::json(200, message_json(100, 20)));
        let response = gateway.send(&small).await;
        if response.status() == 402 {
            let (_, retry_after, error) = error_of(response).await;
            assert!(error["message"]
                .as_str()
                .unwrap()
                .contains("2026-12-11T00:00:00Z"));
            assert_eq!(retry_after.as_deref(), Some("3600"));
            refusals += 1;
            break;
        }
        assert_eq!(response.status(), 200);
    }
    assert_eq!(refusals, 1);
    clock.advance(Duration::from_secs(3_600));
    assert_eq!(gateway.send(&small).await.status(), 200);
    let key = gateway.key().await;
    assert_eq!(key["resets_at"], "2026-12-12T00:00:00.000Z");
}

#[tokio::test]
async fn spend_survives_a_restart() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let limits = "budget_usd = 10.0\nbudget_period = \"month\"";
    let spent = {
        let gateway = serve(config(&upstream, dir.path(), limits), None).await;
        upstream.push(Reply::sse_events(&answer_events()));
        let text = gateway
            .send(&messages_body(true))
            .await
            .text()
            .await
            .unwrap();
        assert!(text.contains("message_stop"));
        eventually("settled", || async {
            let spent = gateway.key().await["spent_usd"]
                .as_str()
                .unwrap()
                .to_owned();
            if spent != "0" {
                Ok(spent)
            } else {
                Err(spent)
            }
        })
        .await
    };
    assert_eq!(picos(&spent), ANSWER_PICOS);
    // The journal writes within its flush interval; a clean stop writes the rest.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = serve(config(&upstream, dir.path(), limits), None).await;
    assert_eq!(again.key().await["spent_usd"], spent.as_str());
}

#[tokio::test]
async fn a_failed_attempt_that_used_tokens_is_charged_and_audited_alike() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&upstream, dir.path(), "budget_usd = 5.0");
    config.providers.insert(
        "backup".into(),
        llm_gateway::config::ProviderConfig::anthropic(upstream.url().parse().unwrap()),
    );
    config.routing.fallback_chain = vec!["anthropic".into(), "backup".into()];
    let gateway = serve(config, None).await;
    // The first attempt reads the whole prompt, then fails before any content.
    let events = split_events(&answer_events());
    let overloaded = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    upstream.push(Reply::sse(vec![
        Step::Send(events[0].clone().into_bytes()),
        Step::Send(overloaded.as_bytes().to_vec()),
    ]));
    upstream.push(Reply::sse_events(&answer_events()));
    let text = gateway
        .send(&messages_body(true))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("message_stop"), "{text}");
    assert_eq!(upstream.requests().len(), 2, "the second provider answered");
    // The failed attempt: 10,000 input tokens and 1 output token at Sonnet's prices.
    let failed = 10_000 * 3_000_000 + 15_000_000;
    let key = eventually("settled", || async {
        let key = gateway.key().await;
        if key["reserved_usd"] == "0" && key["spent_usd"] != "0" {
            Ok(key)
        } else {
            Err(key)
        }
    })
    .await;
    assert_eq!(
        picos(key["spent_usd"].as_str().unwrap()),
        ANSWER_PICOS + failed
    );
    assert_eq!(gateway.audit_costs(1).await, ANSWER_PICOS + failed);
}

#[tokio::test]
async fn a_translated_streams_start_estimate_never_shrinks_the_hold() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[auth]
store_path = "{store}"
[[auth.client_keys]]
name = "ci"
key = "{KEY}"
budget_usd = 1.0

[providers.deepseek]
kind = "openai"
base_url = "{url}"
model = "deepseek-chat"

[pricing."deepseek-chat"]
input = 3.0
output = 15.0

[audit]
path = "{audit}"
"#,
        store = dir.path().join("keys.db").display(),
        audit = dir.path().join("audit.db").display(),
        url = upstream.url(),
    );
    let gateway = serve(Config::from_toml_str(&text).unwrap(), None).await;
    let chunk = |value: Value| format!("data: {value}\n\n").into_bytes();
    let (rest_tx, rest_rx) = tokio::sync::oneshot::channel();
    upstream.push(Reply::sse(vec![
        Step::Send(chunk(serde_json::json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}))),
        Step::Wait(rest_rx),
        Step::Send(chunk(serde_json::json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}))),
        Step::Send(chunk(serde_json::json!({"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":10000,"completion_tokens":500}}))),
        Step::Send(b"data: [DONE]\n\n".to_vec()),
    ]));

    let mut response = gateway.send(&big_body()).await;
    assert_eq!(response.status(), 200);
    let mut seen = String::new();
    // message_start (with the estimate), the text block's start and its first delta.
    read_events(&mut response, &mut seen, 3).await;
    assert!(seen.contains("content_block_delta"), "{seen}");
    let held = gateway.key().await["reserved_usd"]
        .as_str()
        .unwrap()
        .to_owned();
    // The upper bound: the body's bytes as tokens at $3/M plus 1,000 output tokens at
    // $15/M; an estimate is not the provider's count, so the hold stays there.
    let bound = picos(&held);
    assert!(
        bound > 100_000_000_000,
        "still the upper bound after message_start, not cut to an estimate: {held}"
    );
    rest_tx.send(()).unwrap();
    while response.chunk().await.unwrap().is_some() {}
    eventually("settled at the real count", || async {
        let key = gateway.key().await;
        let spent = picos(key["spent_usd"].as_str().unwrap());
        if spent == ANSWER_PICOS && key["reserved_usd"] == "0" {
            Ok(())
        } else {
            Err(key)
        }
    })
    .await;
}
