//! Attribution: each request's client, team and session reach the audit trail (and its
//! filters), `/gateway/metrics` sums spend by client and team exactly, and the budget
//! series render through a real Prometheus recorder.
//!
//! The client key's name and team are put on the request the way auth does (as
//! `ClientName` and `ClientTeam` extensions), by a middleware in front of the real
//! gateway router that reads them from test headers.

mod common;

use common::*;
use llm_gateway::budget::Scope;
use llm_gateway::meta::{ClientName, ClientTeam};
use llm_gateway::metrics::GatewayMetrics;
use llm_gateway::pricing::Money;
use llm_gateway::Gateway;
use serde_json::Value;
use std::sync::Arc;

/// Picos of one answer of [`message_json`]`(10, 20)` on claude-sonnet-4-5: 10 input
/// tokens at $3/M and 20 output tokens at $15/M.
const ANSWER_PICOS: u128 = 10 * 3_000_000 + 20 * 15_000_000;

/// A gateway whose requests carry the key and team named by the `x-test-key` and
/// `x-test-team` headers, as if auth had set them.
struct Attributed {
    url: String,
    _gateway: Gateway,
    _dir: tempfile::TempDir,
}

async fn as_auth_would(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let key = test_header(request.headers(), "x-test-key");
    let team = test_header(request.headers(), "x-test-team");
    if let Some(key) = key {
        request.extensions_mut().insert(ClientName(key));
    }
    if let Some(team) = team {
        request.extensions_mut().insert(ClientTeam(team));
    }
    next.run(request).await
}

fn test_header(headers: &http::HeaderMap, name: &str) -> Option<Arc<str>> {
    headers.get(name)?.to_str().ok().map(Arc::from)
}

async fn start(upstream: &MockUpstream, audit_path: Option<std::path::PathBuf>) -> Attributed {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(upstream);
    config.audit.path = audit_path.unwrap_or_else(|| dir.path().join("audit.db"));
    let gateway = Gateway::builder(config)
        .metrics_recorder(prometheus_recorder())
        .build()
        .expect("gateway builds");
    let router = gateway
        .router()
        .layer(axum::middleware::from_fn(as_auth_would));
    let url = serve_behind_edge(router).await;
    Attributed {
        url,
        _gateway: gateway,
        _dir: dir,
    }
}

impl Attributed {
    /// POST a non-streaming Messages `body` with these headers; the answer must be 200.
    async fn post(&self, body: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = client()
            .post(format!("{}/v1/messages", self.url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{headers:?}");
        response
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }

    /// `/gateway/audit?QUERY` once it holds at least `n` records, newest first.
    async fn audit(&self, query: &str, n: usize) -> Vec<Value> {
        eventually(&format!("{n} audit records for ?{query}"), || async {
            let page = self.get_json(&format!("/gateway/audit?{query}")).await;
            let records = page["records"].as_array().cloned().unwrap_or_default();
            if records.len() >= n {
                Ok(records)
            } else {
                Err(records.len())
            }
        })
        .await
    }
}

fn body_with_metadata(user_id: &str) -> String {
    let metadata = serde_json::json!({ "user_id": user_id });
    format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":64,"metadata":{metadata},"messages":[{{"role":"user","content":"Hello"}}]}}"#
    )
}

/// Claude Code's `metadata.user_id`: a JSON object written into the string.
fn claude_code_user_id(session: &str) -> String {
    serde_json::json!({"device_id": "d-1", "account_uuid": "", "session_id": session}).to_string()
}

/// One request of [`the_session_comes_from_each_source_in_order`]: the key that sends
/// it, its body, its headers, and the session its record must show.
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Option<&'a str>);

#[tokio::test]
async fn the_session_comes_from_each_source_in_order() {
    let upstream = MockUpstream::start().await;
    let gateway = start(&upstream, None).await;
    let json_meta = body_with_metadata(&claude_code_user_id("from-metadata"));
    let old_meta = body_with_metadata(
        "user_5e1f_account_11111111-2222-3333-4444-555555555555_session_0b7e2a6c-1d3f-4c1e-9a55-7d2f3e4b5c6d",
    );
    let too_long = "s".repeat(257);
    let cases: Vec<Case> = vec![
        ("plain", messages_body(false), vec![], None),
        ("metadata", json_meta.clone(), vec![], Some("from-metadata")),
        (
            "old-metadata",
            old_meta,
            vec![],
            Some("0b7e2a6c-1d3f-4c1e-9a55-7d2f3e4b5c6d"),
        ),
        (
            "claude-code",
            json_meta.clone(),
            vec![("x-claude-code-session-id", "from-cc")],
            Some("from-cc"),
        ),
        (
            "gateway",
            json_meta.clone(),
            vec![
                ("x-claude-code-session-id", "from-cc"),
                ("x-gateway-session", "from-gateway"),
            ],
            Some("from-gateway"),
        ),
        (
            "too-long",
            json_meta,
            vec![("x-gateway-session", too_long.as_str())],
            Some("from-metadata"),
        ),
    ];
    for (agent, body, headers, _) in &cases {
        upstream.push(Reply::json(200, message_json(10, 20)));
        let mut headers = headers.clone();
        headers.push(("x-test-key", agent));
        let _ = gateway.post(body, &headers).await.bytes().await;
    }
    let records = gateway.audit("", cases.len()).await;
    for (agent, _, _, session) in &cases {
        let record = records
            .iter()
            .find(|r| r["client"] == *agent)
            .unwrap_or_else(|| panic!("a record of {agent}: {records:?}"));
        assert_eq!(record["session"].as_str(), *session, "{agent}");
        assert_eq!(record["team"], Value::Null, "{agent}");
    }
    // The gateway's own header stays in the gateway; Claude Code's goes on as it came.
    let sent = upstream.requests();
    assert_eq!(sent.len(), cases.len());
    assert!(sent.iter().all(|r| r.header("x-gateway-session").is_none()));
    assert_eq!(sent[4].header("x-claude-code-session-id"), Some("from-cc"));
    // The body goes upstream untouched, metadata included.
    assert!(String::from_utf8_lossy(&sent[1].body).contains("from-metadata"));
}

#[tokio::test]
async fn malformed_metadata_is_ignored_and_the_request_served() {
    let upstream = MockUpstream::start().await;
    let gateway = start(&upstream, None).await;
    let bodies = [
        body_with_metadata("{\"session_id\": unquoted}"),
        body_with_metadata("[\"session_id\",\"x\"]"),
        body_with_metadata(&serde_json::json!({"session_id": 42}).to_string()),
        r#"{"model":"claude-sonnet-4-5","max_tokens":64,"metadata":"just text","messages":[{"role":"user","content":"Hello"}]}"#.to_owned(),
        r#"{"model":"claude-sonnet-4-5","max_tokens":64,"metadata":{"user_id":{"session_id":"nested"}},"messages":[{"role":"user","content":"Hello"}]}"#.to_owned(),
    ];
    for body in &bodies {
        upstream.push(Reply::json(200, message_json(10, 20)));
        let response = gateway.post(body, &[("x-test-key", "k")]).await;
        let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(answer["type"], "message", "{body}");
    }
    let records = gateway.audit("client=k", bodies.len()).await;
    assert!(
        records.iter().all(|r| r["session"].is_null()),
        "{records:?}"
    );
    assert!(records.iter().all(|r| r["status"] == 200));
}

#[tokio::test]
async fn audit_filters_by_client_team_and_session_and_metrics_sum_by_client_and_team() {
    let upstream = MockUpstream::start().await;
    let gateway = start(&upstream, None).await;
    let requests: [(&str, Option<&str>, &str); 5] = [
        ("ci", Some("platform"), "s-1"),
        ("ci", Some("platform"), "s-2"),
        ("dev", Some("platform"), "s-1"),
        ("dev", Some("platform"), "s-1"),
        ("solo", None, "s-3"),
    ];
    for (key, team, session) in requests {
        upstream.push(Reply::json(200, message_json(10, 20)));
        let mut headers = vec![("x-test-key", key), ("x-gateway-session", session)];
        if let Some(team) = team {
            headers.push(("x-test-team", team));
        }
        let _ = gateway
            .post(&messages_body(false), &headers)
            .await
            .bytes()
            .await;
    }
    let all = gateway.audit("", requests.len()).await;
    assert_eq!(all.len(), 5);
    let ids = |records: &[Value]| -> Vec<String> {
        let mut ids: Vec<String> = records
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["client"].as_str().unwrap(),
                    r["session"].as_str().unwrap()
                )
            })
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&gateway.audit("team=platform", 4).await),
        ["ci/s-1", "ci/s-2", "dev/s-1", "dev/s-1"]
    );
    assert_eq!(
        ids(&gateway.audit("session=s-1", 3).await),
        ["ci/s-1", "dev/s-1", "dev/s-1"]
    );
    assert_eq!(
        ids(&gateway.audit("client=ci&session=s-1", 1).await),
        ["ci/s-1"]
    );
    assert_eq!(
        ids(&gateway.audit("team=platform&client=solo", 0).await),
        Vec::<String>::new()
    );
    let solo = gateway.audit("client=solo", 1).await;
    assert_eq!(solo.len(), 1);
    assert_eq!(solo[0]["team"], Value::Null);
    let platform = gateway.audit("team=platform", 4).await;
    assert!(platform.iter().all(|r| r["team"] == "platform"));

    // /gateway/metrics: each key's and team's spend, summed exactly from the same costs
    // the audit records carry.
    let audit_picos = |records: &[Value]| -> u128 {
        records
            .iter()
            .map(|r| picos_of(r["cost_usd"].as_str().expect("priced")))
            .sum()
    };
    assert_eq!(audit_picos(&all), 5 * ANSWER_PICOS);
    let metrics = eventually("5 requests counted", || async {
        let metrics = gateway.get_json("/gateway/metrics").await;
        if metrics["summary"]["total_requests"] == 5 {
            Ok(metrics)
        } else {
            Err(metrics["summary"]["total_requests"].clone())
        }
    })
    .await;
    let usd = |picos: u128| Value::from(Money::from_picos(picos).to_usd_f64());
    assert_eq!(metrics["by_client"]["ci"], usd(2 * ANSWER_PICOS));
    assert_eq!(metrics["by_client"]["dev"], usd(2 * ANSWER_PICOS));
    assert_eq!(metrics["by_client"]["solo"], usd(ANSWER_PICOS));
    assert_eq!(metrics["by_client"].as_object().unwrap().len(), 3);
    assert_eq!(metrics["by_team"]["platform"], usd(audit_picos(&platform)));
    assert_eq!(metrics["by_team"]["platform"], usd(4 * ANSWER_PICOS));
    assert_eq!(metrics["by_team"].as_object().unwrap().len(), 1);
}

/// An exact decimal USD string (`"0.00033"`) in pico-dollars.
fn picos_of(usd: &str) -> u128 {
    let (whole, fraction) = usd.split_once('.').unwrap_or((usd, ""));
    assert!(fraction.len() <= 12, "{usd}");
    let fraction = format!("{fraction:0<12}");
    whole.parse::<u128>().unwrap() * 1_000_000_000_000 + fraction.parse::<u128>().unwrap()
}

#[tokio::test]
async fn a_store_file_of_the_schema_before_opens_and_gains_the_attribution() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // What the gateway wrote before it kept team and session: version 3.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE audit_records (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 request_id TEXT NOT NULL UNIQUE, timestamp_ms INTEGER NOT NULL,
                 provider TEXT, requested_model TEXT, served_model TEXT,
                 record_json TEXT NOT NULL, request_body BLOB, response_body BLOB);
             CREATE INDEX audit_records_time ON audit_records(timestamp_ms, seq);
             CREATE TABLE audit_chunks (id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE,
                 data BLOB NOT NULL);
             INSERT INTO audit_records (request_id, timestamp_ms, provider, record_json)
                 VALUES ('gw_old', 1700000000000, 'anthropic',
                 '{\"request_id\":\"gw_old\",\"timestamp\":\"2023-11-14T22:13:20.000Z\",\"client\":\"ci\",\"status\":200,\"latency_ms\":1,\"outcome\":\"complete\"}');
             PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let upstream = MockUpstream::start().await;
    let gateway = start(&upstream, Some(path)).await;
    upstream.push(Reply::json(200, message_json(10, 20)));
    let headers = [
        ("x-test-key", "ci"),
        ("x-test-team", "platform"),
        ("x-gateway-session", "s-new"),
    ];
    let _ = gateway
        .post(&messages_body(false), &headers)
        .await
        .bytes()
        .await;
    let records = gateway.audit("client=ci", 2).await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["request_id"], "gw_old");
    assert_eq!(records[1]["team"], Value::Null);
    assert_eq!(records[0]["team"], "platform");
    let by_session = gateway.audit("session=s-new", 1).await;
    assert_eq!(by_session.len(), 1);
    assert_eq!(by_session[0]["client"], "ci");
}

#[test]
fn budget_and_rate_limit_series_render_through_a_prometheus_recorder() {
    let recorder = prometheus_recorder();
    let handle = recorder.handle();
    let metrics = GatewayMetrics::with_recorder(recorder);
    let key = Scope::key("ci");
    let team = Scope::team("platform");
    // $1.25 and $0.1 exactly, set (not added) each time.
    metrics.budget_spent(&key, Money::from_picos(900_000_000_000));
    metrics.budget_spent(&key, Money::from_picos(1_250_000_000_000));
    metrics.budget_spent(&team, Money::from_picos(100_000_000_000));
    metrics.budget_limit(&key, Some(Money::from_picos(50_000_000_000_000)));
    metrics.budget_limit(&team, Some(Money::from_picos(500_000_000_000_000)));
    metrics.budget_limit(&team, None);
    for limit in ["rpm", "rpm", "tpm", "max_concurrent", "budget"] {
        metrics.rate_limited(&key, limit);
    }
    metrics.rate_limited(&team, "budget");
    let text = handle.render();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the exposition parses");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let found: Vec<_> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .collect();
        assert_eq!(found.len(), 1, "one {name}{labels:?} in\n{text}");
        match found[0].value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: {other:?}"),
        }
    };
    let spent = "llm_gateway_budget_spent_usd";
    let limit = "llm_gateway_budget_limit_usd";
    let limited = "llm_gateway_rate_limited_total";
    assert_eq!(value(spent, &[("scope", "key"), ("name", "ci")]), 1.25);
    assert_eq!(
        value(spent, &[("scope", "team"), ("name", "platform")]),
        0.1
    );
    assert_eq!(value(limit, &[("scope", "key"), ("name", "ci")]), 50.0);
    assert_eq!(
        value(limit, &[("scope", "team"), ("name", "platform")]),
        0.0
    );
    for (limit, n) in [
        ("rpm", 2.0),
        ("tpm", 1.0),
        ("max_concurrent", 1.0),
        ("budget", 1.0),
    ] {
        let labels = [("scope", "key"), ("name", "ci"), ("limit", limit)];
        assert_eq!(value(limited, &labels), n, "{limit}");
    }
    let labels = [("scope", "team"), ("name", "platform"), ("limit", "budget")];
    assert_eq!(value(limited, &labels), 1.0);
    for name in [spent, limit, limited] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has help:\n{text}"
        );
    }
}
