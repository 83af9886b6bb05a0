//! The audit trail through the real gateway: one complete record per request on every
//! path, bodies as configured, and no secret anywhere in the store or the logs.

mod common;

use common::*;
use llm_gateway::config::{Secret, SecretRef};
use serde_json::Value;
use std::sync::Arc;

fn by_id<'a>(records: &'a [Value], id: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["request_id"] == id)
        .unwrap_or_else(|| panic!("no record for {id} in {records:?}"))
}

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-gateway-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_kind_of_request_leaves_one_complete_record() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse_events(&fixture("thinking_cache.sse")));
    upstream.push(Reply::json(200, message_json(11, 6)));
    upstream.push(Reply::json(
        401,
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
    ));
    let gateway = start_gateway(config_for(&upstream)).await;
    let client = client();
    let stream_body = r#"{"model":"claude-opus-4-5","max_tokens":64,"stream":true,"agent_type":"planner","messages":[{"role":"user","content":"Hi"}]}"#;

    let response = client
        .post(gateway.url("/v1/messages"))
        .body(stream_body)
        .send()
        .await
        .unwrap();
    let stream_id = request_id(&response);
    let streamed = response.text().await.unwrap();
    let response = client
        .post(gateway.url("/v1/messages"))
        .body(messages_body(false))
        .send()
        .await
        .unwrap();
    let json_id = request_id(&response);
    let _ = response.bytes().await.unwrap();
    let response = client
        .post(gateway.url("/v1/messages"))
        .body(messages_body(false))
        .send()
        .await
        .unwrap();
    let upstream_error_id = request_id(&response);
    assert_eq!(response.status(), 401);
    let _ = response.bytes().await.unwrap();
    let response = client
        .post(gateway.url("/v1/messages"))
        .body("{\"model\": 1")
        .send()
        .await
        .unwrap();
    let bad_id = request_id(&response);
    assert_eq!(response.status(), 400);
    let _ = response.bytes().await.unwrap();

    let records = gateway.wait_audit("limit=10&bodies=true", 4).await;
    assert_eq!(records.len(), 4, "exactly one record per request");
    assert_eq!(records[0]["request_id"], bad_id.as_str(), "newest first");

    let record = by_id(&records, &stream_id);
    assert_eq!(record["endpoint"], "messages");
    assert_eq!(record["status"], 200);
    assert_eq!(record["stream"], true);
    assert_eq!(record["outcome"], "complete");
    assert_eq!(record["agent_type"], "planner");
    assert_eq!(record["requested_model"], "claude-opus-4-5");
    assert_eq!(record["served_model"], "claude-opus-4-5");
    assert_eq!(record["provider"], "anthropic");
    assert_eq!(record["usage"]["input_tokens"], 2048);
    assert_eq!(record["usage"]["cache_write_1h_tokens"], 2000);
    assert_eq!(record["cost_usd"], "0.06929");
    assert_eq!(record["price_table_version"], "litellm@00035b69+2026-11-25");
    assert!(record["ttft_ms"].is_u64());
    assert_eq!(record["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(record["attempts"][0]["provider"], "anthropic");
    assert_eq!(record["attempts"][0]["status"], 200);
    assert_eq!(record["request_body"], stream_body, "as the client sent it");
    assert_eq!(
        record["response_body"],
        streamed.as_str(),
        "the SSE text as sent"
    );

    let record = by_id(&records, &json_id);
    assert_eq!(record["stream"], false);
    assert_eq!(record["outcome"], "complete");
    assert_eq!(record["response_body"], message_json(11, 6).as_str());
    assert_eq!(record["cost_usd"], "0.000123");

    let record = by_id(&records, &upstream_error_id);
    assert_eq!(record["status"], 401);
    assert_eq!(record["outcome"], "error");
    assert_eq!(record["attempts"][0]["status"], 401);
    assert!(record["error"].as_str().unwrap().contains("401"));

    let record = by_id(&records, &bad_id);
    assert_eq!(record["status"], 400);
    assert_eq!(record["outcome"], "error");
    assert_eq!(record["request_body"], "{\"model\": 1");
    assert!(record["error"].as_str().unwrap().contains("JSON"));
    assert_eq!(
        record["attempts"].as_array().unwrap().len(),
        0,
        "nothing went upstream"
    );

    // Filters.
    let only = gateway
        .wait_audit(&format!("request_id={json_id}"), 1)
        .await;
    assert_eq!(only.len(), 1);
    let opus = gateway.wait_audit("model=claude-opus-4-5", 1).await;
    assert_eq!(opus.len(), 1);
    let response = client
        .get(gateway.url("/gateway/audit?since=not-a-time"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn a_client_disconnect_is_recorded_with_the_usage_seen_so_far() {
    let upstream = MockUpstream::start().await;
    let events = mock::split_events(&fixture("text_basic.sse"));
    let commit = through_commit(&events);
    let steps = through_commit_then(&events, vec![Step::Hang]);
    upstream.push(Reply::sse(steps));
    let closed = upstream.on_close();
    let gateway = start_gateway(config_for(&upstream)).await;
    let mut response = gateway.post_messages(messages_body(true)).await;
    let id = request_id(&response);
    let mut seen = String::new();
    read_events(&mut response, &mut seen, commit).await;
    drop(response);
    tokio::time::timeout(HANG_GUARD, closed)
        .await
        .unwrap()
        .unwrap();
    let records = gateway.wait_audit(&format!("request_id={id}"), 1).await;
    assert_eq!(records[0]["outcome"], "client_disconnected");
    assert_eq!(records[0]["usage"]["input_tokens"], 11);
    assert_eq!(records[0]["response_body"], seen.as_str());
}

#[tokio::test]
async fn a_fallback_records_every_attempt() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    primary.push(Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ));
    backup.push(Reply::sse_events(&fixture("text_basic.sse")));
    let config = llm_gateway::Config::from_toml_str(&format!(
        "[routing]\ndefault_provider = \"primary\"\nfallback_chain = [\"primary\", \"backup\"]\n[providers.primary]\nkind = \"anthropic\"\nbase_url = \"{}\"\n[providers.backup]\nkind = \"anthropic\"\nbase_url = \"{}\"\n",
        primary.url(),
        backup.url()
    ))
    .unwrap();
    let gateway = start_gateway(config).await;
    let response = gateway.post_messages(messages_body(true)).await;
    let id = request_id(&response);
    let _ = response.text().await.unwrap();
    let records = gateway.wait_audit(&format!("request_id={id}"), 1).await;
    let record = &records[0];
    assert_eq!(record["provider"], "backup");
    assert_eq!(record["outcome"], "complete");
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["provider"], "primary");
    assert_eq!(attempts[0]["status"], 529);
    assert!(attempts[0]["error"].is_string());
    assert_eq!(attempts[1]["provider"], "backup");
    assert_eq!(attempts[1]["status"], 200);
    assert_eq!(gateway.wait_audit("provider=backup", 1).await.len(), 1);
}

#[tokio::test]
async fn long_bodies_are_cut_with_a_visible_marker() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse_events(&fixture("tool_use.sse")));
    let mut config = config_for(&upstream);
    config.audit.max_body_bytes = 64;
    let gateway = start_gateway(config).await;
    let body = messages_body(true);
    let response = gateway.post_messages(body.clone()).await;
    let id = request_id(&response);
    let _ = response.text().await.unwrap();
    let record = &gateway.wait_audit(&format!("request_id={id}"), 1).await[0];
    let request = record["request_body"].as_str().unwrap();
    assert!(request.starts_with(&body[..64]));
    assert!(
        request.ends_with(&format!(
            "[llm-gateway: body cut at 64 of {} bytes]",
            body.len()
        )),
        "{request}"
    );
    let response = record["response_body"].as_str().unwrap();
    assert!(response.ends_with(&format!(
        "[llm-gateway: body cut at 64 of {} bytes]",
        fixture("tool_use.sse").len()
    )));
}

#[tokio::test]
async fn bodies_are_not_kept_when_turned_off() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(1, 1)));
    let mut config = config_for(&upstream);
    config.audit.log_request_bodies = false;
    config.audit.log_response_bodies = false;
    let gateway = start_gateway(config).await;
    let response = gateway.post_messages(messages_body(false)).await;
    let _ = response.bytes().await.unwrap();
    let record = &gateway.wait_audit("bodies=true", 1).await[0];
    assert_eq!(record["request_body"], Value::Null);
    assert_eq!(record["response_body"], Value::Null);
    assert_eq!(
        record["usage"]["output_tokens"], 1,
        "the rest is still there"
    );
}

const PROVIDER_KEY: &str = "sk-ant-PROVIDERKEY-5f1e0c";
const CLIENT_KEY: &str = "sk-ant-CLIENTKEY-9a7b3d";
const BEARER: &str = "BEARERTOKEN-77aa21";

#[tokio::test]
async fn secrets_never_reach_the_store_or_the_logs() {
    let logs = CapturedLogs::default();
    let _guard = logs.install();

    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse_events(&fixture("text_basic.sse")));
    upstream.push(Reply::json(
        401,
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
    ));
    let mut steps: Vec<Step> = mock::split_events(&fixture("cut_before_delta.sse"))
        .into_iter()
        .map(|e| Step::Send(e.into_bytes()))
        .collect();
    steps.push(Step::Close);
    upstream.push(Reply::sse(steps));
    let mut config = config_for(&upstream);
    config.providers.get_mut("anthropic").unwrap().api_key =
        Some(SecretRef::Literal(Secret::new(PROVIDER_KEY)));
    let gateway = start_gateway(config).await;
    let client = client();
    for body in [
        messages_body(true),
        messages_body(false),
        messages_body(true),
        "{oops".to_owned(),
    ] {
        let response = client
            .post(gateway.url("/v1/messages"))
            .header("x-api-key", CLIENT_KEY)
            .header("authorization", format!("Bearer {BEARER}"))
            .header("api-key", CLIENT_KEY)
            .body(body)
            .send()
            .await
            .unwrap();
        let text = response.text().await.unwrap();
        for secret in [PROVIDER_KEY, CLIENT_KEY, BEARER] {
            assert!(!text.contains(secret), "a secret in an answer: {text}");
        }
    }
    assert_eq!(
        upstream.requests()[0].header("x-api-key"),
        Some(PROVIDER_KEY),
        "the key was used"
    );
    let records = gateway.wait_audit("bodies=true", 4).await;
    assert_eq!(records.len(), 4);
    drop(gateway); // closes the store: everything is in the files now

    assert_no_secret(
        &searched_outputs(&records, &logs),
        &[PROVIDER_KEY, CLIENT_KEY, BEARER],
    );
}

/// The bytes to search: the audit records as served, and the captured log lines.
fn searched_outputs(records: &[Value], logs: &CapturedLogs) -> Vec<(String, Vec<u8>)> {
    let logged = logs.0.lock().unwrap().clone();
    assert!(!logged.is_empty(), "logs were captured");
    vec![
        (
            "the audit API".to_owned(),
            serde_json::to_vec(records).unwrap(),
        ),
        ("the logs".to_owned(), logged),
    ]
}

#[tokio::test]
async fn the_store_file_holds_no_secret() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse_events(&fixture("text_basic.sse")));
    upstream.push(Reply::json(
        500,
        r#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#,
    ));
    let mut config = config_for(&upstream);
    config.providers.get_mut("anthropic").unwrap().api_key =
        Some(SecretRef::Literal(Secret::new(PROVIDER_KEY)));
    let gateway = start_gateway(config).await;
    for stream in [true, false] {
        let response = client()
            .post(gateway.url("/v1/messages"))
            .header("x-api-key", CLIENT_KEY)
            .header("authorization", format!("Bearer {BEARER}"))
            .body(messages_body(stream))
            .send()
            .await
            .unwrap();
        let _ = response.bytes().await.unwrap();
    }
    gateway.wait_audit("", 2).await;
    let path = gateway.audit_path.clone();
    let dir = path.parent().unwrap().to_path_buf();
    let mut searched = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        searched += bytes.len();
        for secret in [PROVIDER_KEY, CLIENT_KEY, BEARER] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} found in {}",
                entry.path().display()
            );
        }
    }
    assert!(searched > 0);
    drop(gateway);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_requests_leave_two_thousand_records() {
    const N: usize = 2000;
    let upstream = MockUpstream::start().await;
    for _ in 0..N {
        // Concurrent requests reach the mock in any order: answer each in its own kind.
        upstream.push(Reply::by_stream(
            Reply::sse_events(&fixture("text_basic.sse")),
            Reply::json(200, message_json(10, 2)),
        ));
    }
    let gateway = start_gateway(config_for(&upstream)).await;
    let client = client();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for i in 0..N {
        let client = client.clone();
        let url = gateway.url("/v1/messages");
        let permit = semaphore.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .body(messages_body(i % 2 == 1))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let _ = response.bytes().await.unwrap();
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let path = gateway.audit_path.clone();
    // Hang guard on progress, not on the total: on a loaded machine a debug-build
    // writer may need longer than the guard for all of them, but never that long
    // for the next commit.
    let mut deadline = tokio::time::Instant::now() + HANG_GUARD;
    let mut seen = 0;
    loop {
        let stats = llm_gateway::audit::AuditReader::new(&path).stats().unwrap();
        if stats.records as usize >= N {
            assert_eq!(stats.records as usize, N);
            break;
        }
        if stats.records > seen {
            seen = stats.records;
            deadline = tokio::time::Instant::now() + HANG_GUARD;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {N} records, none more for {HANG_GUARD:?}",
            stats.records
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let prometheus = gateway.get_text("/metrics").await;
    assert!(
        prometheus.contains("llm_gateway_audit_records_dropped_total 0"),
        "{prometheus}"
    );
}

#[tokio::test]
async fn a_disabled_audit_records_nothing() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse_events(&fixture("text_basic.sse")));
    let mut config = config_for(&upstream);
    config.audit.enabled = false;
    let gateway = start_gateway(config).await;
    let text = gateway
        .post_messages(messages_body(true))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(text, fixture("text_basic.sse"));
    let response = client()
        .get(gateway.url("/gateway/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(!gateway.audit_path.exists(), "no store is created");
}

#[tokio::test]
async fn a_client_gone_before_any_answer_is_recorded_as_499() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::Silent);
    let closed = upstream.on_close();
    let gateway = start_gateway(config_for(&upstream)).await;
    let request = client()
        .post(gateway.url("/v1/messages"))
        .body(messages_body(true))
        .send();
    // Give up before the upstream (and so the gateway) answers anything.
    let _ = tokio::time::timeout(std::time::Duration::from_millis(300), request).await;
    tokio::time::timeout(HANG_GUARD, closed)
        .await
        .unwrap()
        .unwrap();
    let record = &gateway.wait_audit("", 1).await[0];
    assert_eq!(record["status"], 499);
    assert_eq!(record["outcome"], "client_disconnected");
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "the running attempt is listed too");
    assert_eq!(attempts[0]["error"], "client disconnected");
}
