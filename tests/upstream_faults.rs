//! What a misbehaving provider can do, through the real gateway and scripted mock
//! upstreams on loopback: redirects, path tricks, foreign encodings, garbage, broken
//! usage, odd statuses and HTTP versions.

mod common;

use common::*;
use llm_gateway::config::{Secret, SecretRef};
use llm_gateway::Config;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PROVIDER_KEY: &str = "sk-ant-provider-secret-5e1f";

/// Two Anthropic-kind providers, `primary` (with a key of its own) then `backup`.
fn primary_then_backup(primary: &str, backup: &str) -> Config {
    let mut config = Config::from_toml_str(&format!(
        "[routing]\ndefault_provider = \"primary\"\nfallback_chain = [\"primary\", \"backup\"]\n\
         [providers.primary]\nkind = \"anthropic\"\nbase_url = \"{primary}\"\n\
         [providers.backup]\nkind = \"anthropic\"\nbase_url = \"{backup}\"\n"
    ))
    .unwrap();
    with_key(&mut config, "primary");
    config
}

fn with_key(config: &mut Config, provider: &str) {
    config.providers.get_mut(provider).unwrap().api_key =
        Some(SecretRef::Literal(Secret::new(PROVIDER_KEY)));
}

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-gateway-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The one audit record of `id`.
async fn record_of(gateway: &TestGateway, id: &str) -> Value {
    gateway
        .wait_audit(&format!("request_id={id}"), 1)
        .await
        .remove(0)
}

/// An error answer's `error.message`.
async fn error_message(response: reqwest::Response) -> String {
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["type"], "error", "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

/// Send `head` (request line and headers) as raw bytes, so the request target reaches the
/// gateway exactly as written; the status code and the whole answer.
async fn raw_request(gateway: &TestGateway, head: &str) -> (u16, String) {
    let addr = gateway.url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(format!("{head}\r\nhost: gateway\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(HANG_GUARD, socket.read_to_end(&mut answer))
        .await
        .expect("the gateway answers and closes")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    (status, answer)
}

// === Redirects ===

#[tokio::test]
async fn an_upstream_redirect_is_a_failed_attempt_and_its_location_gets_nothing() {
    let upstream = MockUpstream::start().await;
    let trap = MockUpstream::start().await;
    let location = format!("{}/steal", trap.url());
    upstream.push(Reply::raw(
        &format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}"),
        b"",
    ));
    let mut config = config_for(&upstream);
    with_key(&mut config, "anthropic");
    let gateway = start_gateway(config).await;

    let response = gateway.post_messages(messages_body(true)).await;
    assert_eq!(response.status(), 502);
    let id = request_id(&response);
    let message = error_message(response).await;
    assert!(message.contains("`anthropic`"), "{message}");
    assert!(message.contains("307"), "{message}");
    assert!(message.contains("redirect"), "{message}");
    assert!(!message.contains(&trap.url()), "{message}");
    assert!(!message.contains(PROVIDER_KEY), "{message}");

    let record = record_of(&gateway, &id).await;
    assert_eq!(record["outcome"], "error");
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    let attempt_error = attempts[0]["error"].as_str().unwrap();
    assert!(attempt_error.contains("redirect"), "{attempt_error}");
    assert!(!record.to_string().contains(&location));
    assert!(!record.to_string().contains(PROVIDER_KEY));
    assert!(trap.requests().is_empty(), "the Location never saw the key");
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn an_upstream_redirect_falls_back_to_the_next_provider() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    let trap = MockUpstream::start().await;
    primary.push(Reply::raw(
        &format!(
            "HTTP/1.1 308 Permanent Redirect\r\nlocation: {}/v1/messages",
            trap.url()
        ),
        b"",
    ));
    backup.push(Reply::sse_events(&fixture("text_basic.sse")));
    let gateway = start_gateway(primary_then_backup(&primary.url(), &backup.url())).await;

    let response = gateway.post_messages(messages_body(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-gateway-provider"], "backup");
    assert_eq!(response.text().await.unwrap(), fixture("text_basic.sse"));
    assert!(trap.requests().is_empty());
}

// === Path traversal through /v1/models/{id} ===

#[tokio::test]
async fn a_model_id_cannot_climb_out_of_the_base_path() {
    let upstream = MockUpstream::start().await;
    let models = r#"{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"}"#;
    upstream.push(Reply::json(200, models));
    let mut config = Config::default();
    config.providers.insert(
        "anthropic".into(),
        llm_gateway::config::ProviderConfig::anthropic(
            format!("{}/anthropic", upstream.url()).parse().unwrap(),
        ),
    );
    with_key(&mut config, "anthropic");
    let gateway = start_gateway(config).await;

    for target in [
        "/v1/models/../../../admin/secrets",
        "/v1/models/..%2f..%2f..%2fadmin%2fsecrets",
        "/v1/models/%2e%2e/%2e%2e/%2e%2e/admin/secrets",
        "/v1/models/%2e%2e%2f%2e%2e%2f%2e%2e%2fadmin",
        "/v1/models/%2E%2E",
        "/v1/models/..",
        "/v1/models/..\\..\\..\\admin\\secrets",
        "/v1/models/x%5c..%5c..%5cadmin",
    ] {
        let (status, answer) = raw_request(&gateway, &format!("GET {target} HTTP/1.1")).await;
        assert!(
            (400..500).contains(&status),
            "{target}: refused at ingress, got {answer}"
        );
        assert!(!answer.contains(PROVIDER_KEY));
    }
    assert!(
        upstream.requests().is_empty(),
        "nothing went upstream: {:?}",
        upstream.requests()
    );

    let (status, answer) = raw_request(&gateway, "GET /v1/models/claude-sonnet-4-5 HTTP/1.1").await;
    assert_eq!(status, 200, "{answer}");
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/anthropic/v1/models/claude-sonnet-4-5");
}

// === Content-Encoding ===

/// `data` as a real gzip member (one stored deflate block), CRC and all.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let len = u16::try_from(data.len()).expect("one stored block");
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.push(1); // final block, stored
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[tokio::test]
async fn a_gzip_answer_is_refused_and_the_next_provider_serves_plain_sse() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    let compressed = gzip_stored(fixture("text_basic.sse").as_bytes());
    primary.push(
        Reply::sse(vec![Step::Send(compressed.clone())]).with_header("content-encoding", "gzip"),
    );
    backup.push(Reply::sse_events(&fixture("text_basic.sse")));
    let gateway = start_gateway(primary_then_backup(&primary.url(), &backup.url())).await;

    let response = client()
        .post(gateway.url("/v1/messages"))
        .header("accept-encoding", "identity")
        .body(messages_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-encoding").is_none());
    assert_eq!(response.headers()["x-gateway-provider"], "backup");
    let id = request_id(&response);
    assert_eq!(response.text().await.unwrap(), fixture("text_basic.sse"));

    let record = record_of(&gateway, &id).await;
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    let refused = attempts[0]["error"].as_str().unwrap();
    assert!(refused.contains("content-encoding `gzip`"), "{refused}");
    assert_eq!(record["outcome"], "complete");
    assert_eq!(
        record["usage"]["input_tokens"], 11,
        "usage read from plain SSE"
    );
    let body = record["response_body"].as_str().unwrap_or_default();
    assert!(!body.as_bytes().starts_with(&[0x1f, 0x8b]));
}

#[tokio::test]
async fn a_gzip_answer_from_the_only_provider_is_a_clean_error() {
    let upstream = MockUpstream::start().await;
    let compressed = gzip_stored(br#"{"type":"message"}"#);
    upstream.push(Reply::Full {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("content-encoding".into(), "gzip".into()),
        ],
        body: compressed,
    });
    let gateway = start_gateway(config_for(&upstream)).await;
    let response = gateway.post_messages(messages_body(false)).await;
    assert_eq!(response.status(), 502);
    assert!(response.headers().get("content-encoding").is_none());
    let message = error_message(response).await;
    assert!(message.contains("gzip"), "{message}");
}

#[tokio::test]
async fn a_gzip_error_answer_reaches_the_client_decodable() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::Full {
        status: 400,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("content-encoding".into(), "gzip".into()),
        ],
        body: gzip_stored(
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#,
        ),
    });
    let gateway = start_gateway(config_for(&upstream)).await;
    let response = gateway.post_messages(messages_body(false)).await;
    assert_eq!(response.status(), 400, "the upstream's status stands");
    assert!(response.headers().get("content-encoding").is_none());
    let message = error_message(response).await;
    assert!(message.contains("gzip"), "{message}");
}

// === Garbage ===

#[tokio::test]
async fn an_html_answer_is_a_failed_attempt_that_falls_back() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    primary.push(Reply::Full {
        status: 200,
        headers: vec![("content-type".into(), "text/html; charset=utf-8".into())],
        body: b"<html><body>Welcome to nginx!</body></html>".to_vec(),
    });
    backup.push(Reply::sse_events(&fixture("text_basic.sse")));
    let gateway = start_gateway(primary_then_backup(&primary.url(), &backup.url())).await;

    let response = gateway.post_messages(messages_body(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-gateway-provider"], "backup");
    let id = request_id(&response);
    assert_eq!(response.text().await.unwrap(), fixture("text_basic.sse"));
    let record = record_of(&gateway, &id).await;
    let refused = record["attempts"][0]["error"].as_str().unwrap();
    assert!(refused.contains("text/html"), "{refused}");
}

#[tokio::test]
async fn garbage_before_the_commit_point_falls_back() {
    let events = mock::split_events(&fixture("text_basic.sse"));
    let garbage: [&[u8]; 3] = [
        b"event: message_start\ndata: {\"type\":\"message_start\",\"mess\n\n",
        b"\xff\xfe\x00 not sse at all\n\n",
        b"<html><body>502 Bad Gateway</body></html>\n\n",
    ];
    for bytes in garbage {
        let primary = MockUpstream::start().await;
        let backup = MockUpstream::start().await;
        // The garbage, then a whole valid stream: content follows, but too late.
        let mut steps = vec![Step::Send(bytes.to_vec())];
        steps.extend(events.iter().map(|e| Step::Send(e.clone().into_bytes())));
        primary.push(Reply::sse(steps));
        backup.push(Reply::sse_events(&fixture("text_basic.sse")));
        let gateway = start_gateway(primary_then_backup(&primary.url(), &backup.url())).await;
        let response = gateway.post_messages(messages_body(true)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-gateway-provider"], "backup");
        assert_eq!(response.text().await.unwrap(), fixture("text_basic.sse"));
    }
}

/// Count the `event: error` frames of an SSE text, and check each is well formed.
fn error_events(sse: &str) -> usize {
    mock::split_events(sse)
        .iter()
        .filter(|frame| frame.starts_with("event: error\n"))
        .map(|frame| {
            let data = frame
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap();
            let event: Value = serde_json::from_str(data).unwrap();
            assert_eq!(event["type"], "error");
            assert!(event["error"]["message"].is_string());
        })
        .count()
}

#[tokio::test]
async fn garbage_after_the_commit_point_ends_the_stream_with_one_error_event() {
    let events = mock::split_events(&fixture("text_basic.sse"));
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "data that is not JSON",
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"ind\n\n"
                .to_vec(),
        ),
        ("random bytes", b"\x8f\x00\xff<html>\x01\x02\n\n".to_vec()),
        ("an end without message_stop", Vec::new()),
    ];
    for (what, bytes) in cases {
        let upstream = MockUpstream::start().await;
        let mut rest = Vec::new();
        if !bytes.is_empty() {
            rest.push(Step::Send(bytes.clone()));
        }
        upstream.push(Reply::sse(through_commit_then(&events, rest)));
        let gateway = start_gateway(config_for(&upstream)).await;
        let response = gateway.post_messages(messages_body(true)).await;
        assert_eq!(response.status(), 200, "{what}");
        let id = request_id(&response);
        let text = response.text().await.unwrap();
        assert_eq!(error_events(&text), 1, "{what}: {text}");
        assert!(text.ends_with("\n\n"), "{what}");
        if !bytes.is_empty() {
            assert!(
                !text.as_bytes().windows(bytes.len()).any(|w| w == bytes),
                "{what}: the garbage never reached the client"
            );
        }
        // Everything before the error is the protocol: a client can parse it.
        let before_error = text.split("event: error\n").next().unwrap();
        let _ = accumulate(before_error);
        let record = record_of(&gateway, &id).await;
        assert_eq!(record["outcome"], "incomplete", "{what}");
    }
}

/// One OpenAI-kind provider at `upstream`.
fn openai_config(upstream: &MockUpstream) -> Config {
    Config::from_toml_str(&format!(
        "[providers.openai]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"gpt-4o\"\n",
        upstream.url()
    ))
    .unwrap()
}

#[tokio::test]
async fn an_openai_kind_stream_with_garbage_ends_the_same_way() {
    let first = serde_json::json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"finish_reason":null}]});
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "a chunk that is not JSON",
            b"data: {\"id\":\"c1\",\"obj\n\n".to_vec(),
        ),
        ("random bytes", b"\x8f\x00\xff<html>\n\n".to_vec()),
        ("an end without finish_reason", Vec::new()),
    ];
    for (what, bytes) in cases {
        let upstream = MockUpstream::start().await;
        let mut steps = vec![Step::Send(format!("data: {first}\n\n").into_bytes())];
        if !bytes.is_empty() {
            steps.push(Step::Send(bytes));
        }
        upstream.push(Reply::sse(steps));
        let gateway = start_gateway(openai_config(&upstream)).await;
        let response = gateway.post_messages(messages_body(true)).await;
        assert_eq!(response.status(), 200, "{what}");
        let id = request_id(&response);
        let text = response.text().await.unwrap();
        assert_eq!(error_events(&text), 1, "{what}: {text}");
        assert!(!text.contains("event: message_stop"), "{what}: {text}");
        let record = record_of(&gateway, &id).await;
        assert_eq!(record["outcome"], "incomplete", "{what}");
    }
}

#[tokio::test]
async fn an_openai_kind_html_answer_is_a_clean_error() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::Full {
        status: 200,
        headers: vec![("content-type".into(), "text/html".into())],
        body: b"<html>login</html>".to_vec(),
    });
    let gateway = start_gateway(openai_config(&upstream)).await;
    let response = gateway.post_messages(messages_body(true)).await;
    assert_eq!(response.status(), 502);
    let message = error_message(response).await;
    assert!(message.contains("text/html"), "{message}");
}

// === Odd statuses and versions ===

#[tokio::test]
async fn an_upstream_204_is_a_failed_attempt_not_a_disconnect() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::Raw(
        b"HTTP/1.1 204 No Content\r\ncontent-type: application/json\r\n\r\n".to_vec(),
    ));
    let gateway = start_gateway(config_for(&upstream)).await;
    let response = gateway.post_messages(messages_body(false)).await;
    assert_eq!(response.status(), 502);
    let id = request_id(&response);
    let message = error_message(response).await;
    assert!(message.contains("204"), "{message}");
    let record = record_of(&gateway, &id).await;
    assert_eq!(record["outcome"], "error");
}

#[tokio::test]
async fn an_http_1_0_upstream_does_not_downgrade_the_client() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::Raw(
        format!(
            "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{}",
            message_json(10, 2)
        )
        .into_bytes(),
    ));
    let gateway = start_gateway(config_for(&upstream)).await;
    let addr = gateway.url.trim_start_matches("http://");
    let body = messages_body(false);
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(
            format!(
                "POST /v1/messages HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(HANG_GUARD, socket.read_to_end(&mut answer))
        .await
        .expect("the gateway answers")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_529_attempt_error_names_overloaded() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ));
    let gateway = start_gateway(config_for(&upstream)).await;
    let response = gateway.post_messages(messages_body(false)).await;
    assert_eq!(response.status(), 529);
    let id = request_id(&response);
    let _ = response.bytes().await.unwrap();
    let record = record_of(&gateway, &id).await;
    assert_eq!(
        record["attempts"][0]["error"],
        "upstream answered 529 overloaded"
    );
}

// === Usage from a broken upstream ===

/// `text_basic.sse` with `input_tokens` in `message_start` replaced by `value`.
fn stream_with_input_tokens(value: &str) -> String {
    fixture("text_basic.sse").replacen(
        "\"input_tokens\":11",
        &format!("\"input_tokens\":{value}"),
        1,
    )
}

#[tokio::test]
async fn usage_that_is_not_a_count_is_counted_and_never_priced() {
    let upstream = MockUpstream::start().await;
    let values = ["18446744073709551615", "-5", "1e30", "2.5", "\"many\""];
    for value in values {
        upstream.push(Reply::sse_events(&stream_with_input_tokens(value)));
    }
    let gateway = start_gateway(config_for(&upstream)).await;
    let mut ids = Vec::new();
    for value in values {
        let response = gateway.post_messages(messages_body(true)).await;
        assert_eq!(response.status(), 200, "{value}");
        ids.push(request_id(&response));
        assert_eq!(
            response.text().await.unwrap(),
            stream_with_input_tokens(value),
            "the answer itself passes unchanged"
        );
    }
    for (id, value) in ids.iter().zip(values) {
        let record = record_of(&gateway, id).await;
        assert_eq!(record["cost_usd"], Value::Null, "{value}: {record}");
        assert_eq!(record["usage"]["input_tokens"], Value::Null, "{value}");
        assert_eq!(
            record["usage"]["output_tokens"], 6,
            "{value}: the rest reads"
        );
        assert_eq!(record["outcome"], "complete", "{value}");
    }
    let summary = gateway.get_json("/gateway/metrics").await;
    assert_eq!(summary["summary"]["total_cost_usd_exact"], "0");
    assert_eq!(summary["summary"]["unpriced_requests"], values.len());
    let metrics = gateway.get_text("/metrics").await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("llm_gateway_usage_parse_failures_total{"))
        .unwrap_or_else(|| panic!("no parse-failure counter in {metrics}"));
    assert!(line.ends_with(&format!(" {}", values.len())), "{line}");
}

#[tokio::test]
async fn openai_kind_usage_that_is_not_a_count_is_never_priced() {
    let upstream = MockUpstream::start().await;
    let answer = |prompt_tokens: Value| {
        openai_stream(&[
            serde_json::json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}),
            serde_json::json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}),
            serde_json::json!({"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":prompt_tokens,"completion_tokens":2}}),
        ])
    };
    upstream.push(Reply::sse_events(&answer(serde_json::json!(12))));
    upstream.push(Reply::sse_events(&answer(serde_json::json!(-5))));
    upstream.push(Reply::sse_events(&answer(serde_json::json!("12"))));
    let gateway = start_gateway(openai_config(&upstream)).await;
    let mut records = Vec::new();
    for _ in 0..3 {
        let response = gateway.post_messages(messages_body(true)).await;
        assert_eq!(response.status(), 200);
        let id = request_id(&response);
        let _ = response.text().await.unwrap();
        records.push(record_of(&gateway, &id).await);
    }
    let reports = gateway.wait_reports(3).await;
    assert_eq!(records[0]["usage"]["input_tokens"], 12, "{}", records[0]);
    assert_eq!(reports[0].parse_failures, 0);
    for (record, report) in records[1..].iter().zip(&reports[1..]) {
        // The translated `message_start` carried only an estimate, which is not read;
        // the real count is refused (counted), so the answer is not priced.
        assert_eq!(record["cost_usd"], Value::Null, "{record}");
        assert_eq!(record["usage"]["output_tokens"], 2);
        assert!(report.parse_failures > 0, "counted: {report:?}");
    }
}

#[tokio::test]
async fn a_translated_stream_shows_the_input_estimate_first_and_is_priced_from_the_real_count() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse_events(&openai_stream(&[
        serde_json::json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}),
        serde_json::json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}),
        serde_json::json!({"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1234,"completion_tokens":2}}),
    ])));
    let gateway = start_gateway(openai_config(&upstream)).await;
    // A long prompt, so the estimate is far from the 1,234 the upstream counts.
    let prompt = "word ".repeat(400);
    let body = format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
    );
    let estimate = client()
        .post(gateway.url("/v1/messages/count_tokens"))
        .header("content-type", "application/json")
        .body(body.replace(r#","stream":true"#, ""))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let estimate: Value = serde_json::from_str(&estimate).unwrap();
    let estimate = estimate["input_tokens"].as_u64().unwrap();
    assert!(
        estimate > 100,
        "the local estimate counts the prompt: {estimate}"
    );

    let response = gateway.post_messages(body).await;
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let events: Vec<Value> = common::mock::split_events(&response.text().await.unwrap())
        .iter()
        .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    let of_type = |kind: &str| {
        events
            .iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {events:?}"))
    };
    let start = of_type("message_start");
    assert_eq!(
        start["message"]["usage"]["input_tokens"], estimate,
        "message_start carries the local estimate for clients that read it"
    );
    let delta = of_type("message_delta");
    assert_eq!(
        delta["usage"]["input_tokens"], 1234,
        "the real figure at the end"
    );
    assert_eq!(delta["usage"]["output_tokens"], 2);

    let record = record_of(&gateway, &id).await;
    assert_eq!(record["usage"]["input_tokens"], 1234, "{record}");
    let report = gateway.wait_reports(1).await.remove(0);
    assert_eq!(
        report.usage.input_tokens,
        Some(1234),
        "priced from the real count"
    );
    assert_eq!(report.parse_failures, 0);
}
