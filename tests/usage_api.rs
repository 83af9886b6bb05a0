//! `/gateway/usage` and `/gateway/audit/stream` against known traffic: figures exact to
//! the pico-dollar, grouped and bucketed, bad parameters refused naming the parameter,
//! the same answer from PostgreSQL (with `LLM_GATEWAY_TEST_POSTGRES`), and one stream
//! event per record.

mod common;

use common::*;
use llm_gateway::audit::{AuditRecord, AuditStore, AuditStoreConfig};
use llm_gateway::config::{Config, Secret, SecretRef};
use llm_gateway::ship::PgAudit;
use llm_gateway::usage::Usage;
use llm_gateway::Gateway;
use serde_json::{json, Value};
use std::path::Path;

const ADMIN_TOKEN: &str = "admin-usage-test-token";
const ENV: &str = "LLM_GATEWAY_TEST_POSTGRES";

/// A record of known attribution, usage and cost.
#[allow(clippy::too_many_arguments)]
fn record(
    id: &str,
    at: &str,
    model: &str,
    client: &str,
    team: &str,
    agent: Option<&str>,
    cost: Option<&str>,
    tokens: [u64; 4],
) -> AuditRecord {
    let mut r = AuditRecord::new(id, llm_gateway::audit::parse_since(at).unwrap());
    r.requested_model = Some(model.into());
    r.served_model = Some(model.into());
    r.provider = Some("anthropic".into());
    r.client = Some(client.into());
    r.team = Some(team.into());
    r.session = Some(format!("session-{client}"));
    r.agent_type = agent.map(str::to_owned);
    r.cost_usd = cost.map(str::to_owned);
    r.usage = Usage {
        input_tokens: Some(tokens[0]),
        output_tokens: Some(tokens[1]),
        cache_creation_input_tokens: Some(tokens[2]),
        cache_read_input_tokens: Some(tokens[3]),
        ..Usage::default()
    };
    r.request_body = Some(bytes::Bytes::from_static(b"{\"secret\":\"body\"}"));
    r
}

/// Four records over two days: 0.1 + 0.2 + one pico-dollar is exact only in integers.
fn known_records() -> Vec<AuditRecord> {
    vec![
        record(
            "gw_a",
            "2026-01-01T10:15:00Z",
            "claude-sonnet-4-5",
            "alice",
            "red",
            Some("main"),
            Some("0.1"),
            [10, 5, 2, 100],
        ),
        record(
            "gw_b",
            "2026-01-01T10:45:00Z",
            "claude-haiku-4-5",
            "bob",
            "blue",
            None,
            Some("0.2"),
            [20, 6, 0, 0],
        ),
        record(
            "gw_c",
            "2026-01-01T13:00:00Z",
            "claude-sonnet-4-5",
            "alice",
            "red",
            Some("subagent"),
            Some("0.000000000001"),
            [1, 1, 1, 1],
        ),
        record(
            "gw_d",
            "2026-01-02T01:30:00Z",
            "claude-sonnet-4-5",
            "bob",
            "blue",
            Some("main"),
            None,
            [7, 0, 0, 0],
        ),
    ]
}

fn write_store(path: &Path, records: Vec<AuditRecord>) {
    let store = AuditStore::open(AuditStoreConfig::new(path)).unwrap();
    for r in records {
        store.submit(r);
    }
    store.shutdown().unwrap();
}

async fn serve(config: Config) -> (String, tokio::task::JoinHandle<()>) {
    let gateway = Gateway::builder(config).build().expect("gateway builds");
    serve_gateway(gateway).await
}

async fn get(url: &str, path: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{url}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap(),
    )
}

/// A Messages request read to its end; its request id.
async fn post(url: &str, stream: bool) -> String {
    let response = client()
        .post(format!("{url}/v1/messages"))
        .body(messages_body(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-gateway-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    response.bytes().await.unwrap();
    id
}

fn config(upstream: &MockUpstream, audit: &Path) -> Config {
    let mut config = config_for(upstream);
    config.audit.path = audit.to_owned();
    config.admin_token = Some(SecretRef::Literal(Secret::new(ADMIN_TOKEN)));
    config
}

const RANGE: &str = "since=2026-01-01T00:00:00Z&until=2026-01-03T00:00:00Z";

/// The checks both halves must pass on [`known_records`].
async fn assert_known_figures(url: &str) -> Vec<Value> {
    let (status, hourly) = get(url, &format!("/gateway/usage?bucket=hour&{RANGE}")).await;
    assert_eq!(status, 200, "{hourly}");
    assert_eq!(hourly["bucket"], "hour");
    assert_eq!(
        hourly["series"],
        json!([{"key": null, "points": [
            {"start": "2026-01-01T10:00:00.000Z", "requests": 2, "cost_usd": "0.3", "unpriced_requests": 0,
             "input_tokens": 30, "output_tokens": 11, "cache_write_tokens": 2, "cache_read_tokens": 100},
            {"start": "2026-01-01T13:00:00.000Z", "requests": 1, "cost_usd": "0.000000000001", "unpriced_requests": 0,
             "input_tokens": 1, "output_tokens": 1, "cache_write_tokens": 1, "cache_read_tokens": 1},
            {"start": "2026-01-02T01:00:00.000Z", "requests": 1, "cost_usd": "0", "unpriced_requests": 1,
             "input_tokens": 7, "output_tokens": 0, "cache_write_tokens": 0, "cache_read_tokens": 0},
        ]}])
    );
    let (_, by_model) = get(
        url,
        &format!("/gateway/usage?bucket=day&group_by=model&{RANGE}"),
    )
    .await;
    let series = by_model["series"].as_array().unwrap();
    let keys: Vec<&str> = series.iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["claude-haiku-4-5", "claude-sonnet-4-5"]);
    let sonnet = &series[1]["points"];
    assert_eq!(sonnet[0]["start"], "2026-01-01T00:00:00.000Z");
    assert_eq!(sonnet[0]["requests"], 2);
    assert_eq!(sonnet[0]["cost_usd"], "0.100000000001");
    assert_eq!(sonnet[1]["start"], "2026-01-02T00:00:00.000Z");
    assert_eq!(sonnet[1]["unpriced_requests"], 1);
    // 101 cache-read tokens of Sonnet at $3/MTok instead of $0.30/MTok saved $0.0002727.
    assert_eq!(series[1]["cache_saved_usd"], "0.0002727");
    for (group, expected) in [
        ("client", vec![("alice", 2), ("bob", 2)]),
        ("team", vec![("blue", 2), ("red", 2)]),
        ("session", vec![("session-alice", 2), ("session-bob", 2)]),
        ("provider", vec![("anthropic", 4)]),
    ] {
        let (_, answer) = get(
            url,
            &format!("/gateway/usage?bucket=day&group_by={group}&{RANGE}"),
        )
        .await;
        let got: Vec<(String, u64)> = answer["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let n = s["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["requests"].as_u64().unwrap())
                    .sum();
                (s["key"].as_str().unwrap().to_owned(), n)
            })
            .collect();
        let expected: Vec<(String, u64)> = expected
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect();
        assert_eq!(got, expected, "group_by={group}");
    }
    let (_, agents) = get(
        url,
        &format!("/gateway/usage?bucket=day&group_by=agent_type&{RANGE}"),
    )
    .await;
    let keys: Vec<Value> = agents["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].clone())
        .collect();
    assert_eq!(keys, [json!(null), json!("main"), json!("subagent")]);
    hourly["series"].as_array().unwrap().clone()
}

#[tokio::test]
async fn usage_from_sqlite_is_exact_grouped_and_bucketed_and_follows_new_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.db");
    write_store(&audit, known_records());
    let upstream = MockUpstream::start().await;
    let (url, _task) = serve(config(&upstream, &audit)).await;
    assert_known_figures(&url).await;

    // Live traffic lands in the current hour, summed exactly as the records say.
    for _ in 0..2 {
        upstream.push(Reply::json(200, message_json(1000, 500)));
        post(&url, false).await;
    }
    let records: Vec<Value> = eventually("two live records", || async {
        let (_, page) = get(&url, "/gateway/audit?since=2026-06-01").await;
        let records = page["records"].as_array().cloned().unwrap_or_default();
        if records.len() == 2 {
            Ok(records)
        } else {
            Err(records.len())
        }
    })
    .await;
    let cost = records[0]["cost_usd"].as_str().unwrap().to_owned();
    assert_eq!(records[1]["cost_usd"], cost.as_str());
    let two_hours_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 7_200_000;
    let (status, now) = get(
        &url,
        &format!("/gateway/usage?bucket=hour&since={two_hours_ago}&group_by=model"),
    )
    .await;
    assert_eq!(status, 200, "{now}");
    let points = &now["series"][0]["points"];
    assert_eq!(now["series"].as_array().unwrap().len(), 1, "{now}");
    let requests: u64 = points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(requests, 2);
    let one = llm_gateway::keys::parse_usd(&cost).unwrap();
    let total = points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| llm_gateway::keys::parse_usd(p["cost_usd"].as_str().unwrap()).unwrap())
        .sum::<llm_gateway::pricing::Money>();
    assert_eq!(total, one + one);
    // The old figures are unchanged by the catch-up.
    assert_known_figures(&url).await;
}

#[tokio::test]
async fn bad_parameters_are_refused_naming_the_parameter_and_the_token_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().await;
    let (url, _task) = serve(config(&upstream, &dir.path().join("audit.db"))).await;
    for (query, name) in [
        ("bucket=week", "bucket"),
        ("group_by=colour", "group_by"),
        ("since=yesterday", "since"),
        ("until=later", "until"),
        ("since=2026-01-02&until=2026-01-01", "since"),
        ("bucket=hour&since=2020-01-01&until=2026-01-01", "since"),
    ] {
        let (status, body) = get(&url, &format!("/gateway/usage?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{name}:")),
            "{query}: {message}"
        );
    }
    // No audit file yet: an empty answer, not an error.
    let (status, empty) = get(&url, "/gateway/usage").await;
    assert_eq!((status, empty["series"].clone()), (200, json!([])));
    let unauthenticated = client()
        .get(format!("{url}/gateway/usage"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 403);
    let stream = client()
        .get(format!("{url}/gateway/audit/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 403);
}

#[tokio::test]
async fn the_audit_stream_carries_one_event_per_record_without_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().await;
    let (url, _task) = serve(config(&upstream, &dir.path().join("audit.db"))).await;
    let mut stream = client()
        .get(format!("{url}/gateway/audit/stream"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut ids = Vec::new();
    for stream_it in [false, true] {
        if stream_it {
            upstream.push(Reply::sse_events(&fixture("text_basic.sse")));
        } else {
            upstream.push(Reply::json(200, message_json(12, 3)));
        }
        ids.push(post(&url, stream_it).await);
    }
    let mut buffer = String::new();
    read_events(&mut stream, &mut buffer, 2).await;
    let events = mock::split_events(&buffer);
    let records: Vec<Value> = events
        .iter()
        .map(|e| {
            assert!(e.starts_with("event: record"), "{e}");
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            serde_json::from_str(data).unwrap()
        })
        .collect();
    let got: Vec<&str> = records
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(records[0]["usage"]["input_tokens"], 12);
    assert!(records[0]["cost_usd"].is_string());
    for r in &records {
        assert!(
            r["request_body"].is_null() && r["response_body"].is_null(),
            "{r}"
        );
    }
}

#[tokio::test]
async fn usage_from_postgres_matches_the_sqlite_answer() {
    let Some(pg_url) = std::env::var(ENV).ok().filter(|u| !u.is_empty()) else {
        println!("skipped: {ENV} is not set");
        return;
    };
    let schema = format!("t_usage_{}", uuid::Uuid::now_v7().simple());
    let pg = PgAudit::new(&Secret::new(pg_url.clone()), &schema).unwrap();
    let mut bare = known_records();
    for r in &mut bare {
        r.request_body = None;
    }
    assert_eq!(pg.ship(&bare).await.unwrap(), 4);

    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().await;
    let mut config = config(&upstream, &dir.path().join("spool.db"));
    config.audit.postgres_url = Some(SecretRef::Literal(Secret::new(pg_url.clone())));
    config.audit.postgres_schema = schema.clone();
    let (url, _task) = serve(config).await;
    let from_pg = assert_known_figures(&url).await;
    // The JSON summary's totals come from the shared table too.
    let (_, metrics) = get(&url, "/gateway/metrics").await;
    assert_eq!(metrics["source"], "postgres");
    assert_eq!(metrics["summary"]["total_requests"], 4);
    assert_eq!(metrics["summary"]["total_cost_usd_exact"], "0.300000000001");
    assert_eq!(metrics["summary"]["unpriced_requests"], 1);
    assert_eq!(metrics["summary"]["total_input_tokens"], 38);
    assert_eq!(metrics["by_client"]["alice"], 0.100000000001);

    let sqlite_dir = tempfile::tempdir().unwrap();
    let audit = sqlite_dir.path().join("audit.db");
    write_store(&audit, known_records());
    let (sqlite_url, _sqlite) = serve(self::config(&upstream, &audit)).await;
    assert_eq!(from_pg, assert_known_figures(&sqlite_url).await);

    let (client, connection) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// The figures the README quotes: `/gateway/usage` over a million records. Run by hand
/// (`--ignored`): `LLM_GATEWAY_USAGE_1M_DB` names an audit file holding them (SQLite
/// half); with `LLM_GATEWAY_TEST_POSTGRES` also a million rows generated in PostgreSQL.
#[tokio::test]
#[ignore]
async fn million_record_figures() {
    use llm_gateway::series::{UsageParams, UsageRollup};
    use std::time::{Instant, SystemTime};
    let queries = [
        ("90 days by day", "day", 90 * 86_400_000u128),
        ("1 hour by hour", "hour", 3_600_000),
    ];
    let now_ms = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let query = |bucket: &str, span: u128| {
        UsageParams {
            bucket: Some(bucket.into()),
            since: Some((now_ms - span).to_string()),
            until: Some(now_ms.to_string()),
            group_by: Some("model".into()),
        }
        .check(SystemTime::now())
        .unwrap()
    };
    if let Ok(path) = std::env::var("LLM_GATEWAY_USAGE_1M_DB") {
        let rollup = UsageRollup::new(&path);
        let started = Instant::now();
        let added = rollup.catch_up().unwrap();
        println!(
            "sqlite: rollup caught up on {added} records in {:?}",
            started.elapsed()
        );
        for (name, bucket, span) in queries {
            let started = Instant::now();
            let answer = rollup.usage(&query(bucket, span)).unwrap();
            println!(
                "sqlite: {name}: {} requests in {:?}",
                answer.total().requests,
                started.elapsed()
            );
        }
    }
    if let Some(url) = std::env::var(ENV).ok().filter(|u| !u.is_empty()) {
        let schema = format!("t_usage_1m_{}", uuid::Uuid::now_v7().simple());
        let pg = PgAudit::new(&Secret::new(url.clone()), &schema).unwrap();
        let months: Vec<i64> = (0..4)
            .map(|m| now_ms as i64 - m * 30 * 86_400_000)
            .collect();
        pg.ensure_partitions(&months).await.unwrap();
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let started = Instant::now();
        client
            .batch_execute(&format!(
                "SET search_path TO {schema};
                 INSERT INTO audit_records (request_id, ts, provider, requested_model, served_model,
                     client, team, session, status, cost_usd, record)
                 SELECT 'gw_' || i, now() - (random() * interval '90 days'), 'anthropic',
                     'claude-sonnet-4-5', 'claude-sonnet-4-5', 'key' || (i % 20), 'team' || (i % 4),
                     's' || (i % 5000), 200, 0.012345,
                     jsonb_build_object('agent_type', 'main', 'usage', jsonb_build_object(
                         'input_tokens', 1200, 'output_tokens', 300,
                         'cache_creation_input_tokens', 100, 'cache_read_input_tokens', 20000))
                 FROM generate_series(1, 1000000) AS i;
                 ANALYZE audit_records;"
            ))
            .await
            .unwrap();
        println!(
            "postgres: 1,000,000 rows generated in {:?}",
            started.elapsed()
        );
        for (name, bucket, span) in queries {
            let started = Instant::now();
            let answer = pg.usage(&query(bucket, span)).await.unwrap();
            println!(
                "postgres: {name}: {} requests in {:?}",
                answer.total().requests,
                started.elapsed()
            );
        }
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_dashboard_is_served_from_the_binary_under_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().await;
    let (url, _task) = serve(config(&upstream, &dir.path().join("audit.db"))).await;
    for path in [
        "/gateway/ui",
        "/gateway/ui/app.js",
        "/gateway/ui/uPlot.min.js",
        "/gateway/ui/uPlot.LICENSE",
    ] {
        // Open, like any static page: the data behind it needs the token.
        let response = client().get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let body = response.text().await.unwrap();
        if path == "/gateway/ui" {
            // Every script is a file of the gateway's; no inline script, no CDN.
            assert_eq!(
                body.matches("<script").count(),
                body.matches("<script src=\"/gateway/ui/").count()
            );
            assert!(!body.contains("http://") && !body.contains("https://"));
        }
    }
}
