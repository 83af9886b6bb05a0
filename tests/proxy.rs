//! Proxy fidelity through the real gateway: bodies, headers, paths, errors.

mod common;

use common::*;
use llm_gateway::config::{Secret, SecretRef};

/// A Claude-Code-shaped body with everything a proxy tends to break.
const CLAUDE_CODE_BODY: &str = r#"{"model":"claude-sonnet-4-5-20250929",  "max_tokens":32000,
 "agent_type":"code-reviewer",
 "messages":[{"role":"user","content":[{"type":"text","text":"Fix the bug \u00e9\n\"quoted\"","cache_control":{"type":"ephemeral"}}]},
  {"role":"system","content":"<system-reminder>x</system-reminder>"},
  {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"EqQBCgIYAhIM1gbcDa9GJwZA"},{"type":"tool_use","id":"toolu_1","name":"Read","input":{"path":"a.rs"}}]},
  {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"fn main() {}"}]}],
 "system":[{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral","ttl":"1h"}}],
 "tools":[{"name":"Read","description":"Read a file","input_schema":{"type":"object","properties":{"path":{"type":"string"}}}}],
 "thinking":{"type":"adaptive"},"output_config":{"effort":"high"},
 "context_management":{"edits":[{"type":"clear_tool_uses_20250919"}]},
 "metadata":{"user_id":"user_abc"},"future_field":[1,2.5e3,null,true],"stream":true}"#;

#[tokio::test]
async fn body_goes_upstream_byte_for_byte_without_agent_type() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse_events(&fixture("text_basic.sse")));
    let gateway = start_gateway(config_for(&upstream)).await;
    let response = client()
        .post(gateway.url("/v1/messages?beta=true"))
        .header("content-type", "application/json")
        .body(CLAUDE_CODE_BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.text().await.unwrap();

    let received = &upstream.requests()[0];
    assert_eq!(received.method, "POST");
    assert_eq!(received.target, "/v1/messages?beta=true");
    let expected = CLAUDE_CODE_BODY.replace("\n \"agent_type\":\"code-reviewer\",", "");
    assert_ne!(expected, CLAUDE_CODE_BODY);
    assert_eq!(String::from_utf8(received.body.clone()).unwrap(), expected);
    assert_eq!(
        received.header("content-length").unwrap(),
        expected.len().to_string()
    );
}

#[tokio::test]
async fn api_headers_pass_hop_by_hop_do_not_and_upstream_asked_for_identity() {
    let upstream = MockUpstream::start().await;
    upstream.push(
        Reply::json(200, message_json(10, 5))
            .with_header("request-id", "req_018EeWyXxfu5pfWkrYcMdjWG")
            .with_header("anthropic-ratelimit-tokens-remaining", "39000")
            .with_header("retry-after", "7")
            .with_header("x-custom-upstream", "yes"),
    );
    let gateway = start_gateway(config_for(&upstream)).await;
    let response = client()
        .post(gateway.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .header(
            "anthropic-beta",
            "interleaved-thinking-2025-05-14,context-1m-2025-08-07",
        )
        .header("x-stainless-lang", "python")
        .header("x-stainless-retry-count", "0")
        .header("user-agent", "claude-cli/2.0.1 (external, cli)")
        .header("x-app", "cli")
        .header("accept-encoding", "gzip, br, zstd")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "1")
        .header("te", "trailers")
        .header("x-api-key", "sk-ant-client")
        .body(messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["request-id"],
        "req_018EeWyXxfu5pfWkrYcMdjWG"
    );
    assert_eq!(
        response.headers()["anthropic-ratelimit-tokens-remaining"],
        "39000"
    );
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(response.headers()["x-custom-upstream"], "yes");
    assert!(response.headers().get("content-encoding").is_none());
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["content"][0]["text"], "Hello! How can I help?");

    let received = &upstream.requests()[0];
    assert_eq!(received.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        received.header("anthropic-beta"),
        Some("interleaved-thinking-2025-05-14,context-1m-2025-08-07")
    );
    assert_eq!(received.header("x-stainless-lang"), Some("python"));
    assert_eq!(received.header("x-stainless-retry-count"), Some("0"));
    assert_eq!(
        received.header("user-agent"),
        Some("claude-cli/2.0.1 (external, cli)")
    );
    assert_eq!(received.header("x-app"), Some("cli"));
    assert_eq!(received.header("accept-encoding"), Some("identity"));
    assert_eq!(received.header("x-hop"), None);
    assert_eq!(received.header("te"), None);
    assert_ne!(received.header("connection"), Some("keep-alive, x-hop"));
    // No key configured: the client's own key is passed through.
    assert_eq!(received.header("x-api-key"), Some("sk-ant-client"));
}

#[tokio::test]
async fn a_configured_key_replaces_the_clients() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(1, 1)));
    let mut config = config_for(&upstream);
    config.providers.get_mut("anthropic").unwrap().api_key =
        Some(SecretRef::Literal(Secret::new("sk-ant-gateway-key")));
    let gateway = start_gateway(config).await;
    let response = client()
        .post(gateway.url("/v1/messages"))
        .header("x-api-key", "sk-ant-client")
        .header("authorization", "Bearer client-token")
        .body(messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = &upstream.requests()[0];
    assert_eq!(received.header("x-api-key"), Some("sk-ant-gateway-key"));
    assert_eq!(received.header("authorization"), None);
}

#[tokio::test]
async fn non_streaming_answer_and_its_usage() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(11, 6)));
    let gateway = start_gateway(config_for(&upstream)).await;
    let response = gateway.post_messages(messages_body(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), message_json(11, 6));
    let reports = gateway.wait_reports(1).await;
    assert_eq!(reports[0].usage.input_tokens, Some(11));
    assert_eq!(reports[0].usage.output_tokens, Some(6));
    assert!(!reports[0].stream);
    assert_eq!(
        reports[0].model.as_deref(),
        Some("claude-sonnet-4-5-20250929")
    );
}

#[tokio::test]
async fn count_tokens_and_models_pass_through() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, r#"{"input_tokens":2095}"#));
    upstream.push(Reply::json(
        200,
        r#"{"data":[{"type":"model","id":"claude-sonnet-4-5-20250929","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"}],"first_id":"claude-sonnet-4-5-20250929","last_id":"claude-sonnet-4-5-20250929","has_more":false}"#,
    ));
    upstream.push(Reply::json(
        200,
        r#"{"type":"model","id":"claude-haiku-4-5"}"#,
    ));
    let gateway = start_gateway(config_for(&upstream)).await;
    let client = client();

    let response = client
        .post(gateway.url("/v1/messages/count_tokens?beta=true"))
        .body(r#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"input_tokens":2095}"#);

    let response = client
        .get(gateway.url("/v1/models?limit=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let models: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(models["data"][0]["id"], "claude-sonnet-4-5-20250929");

    let response = client
        .get(gateway.url("/v1/models/claude-haiku-4-5"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let requests = upstream.requests();
    assert_eq!(requests[0].target, "/v1/messages/count_tokens?beta=true");
    assert_eq!(requests[1].method, "GET");
    assert_eq!(requests[1].target, "/v1/models?limit=2");
    assert_eq!(requests[2].target, "/v1/models/claude-haiku-4-5");
    assert!(
        gateway.reports().is_empty(),
        "only Messages answers carry usage"
    );
}

#[tokio::test]
async fn health_answers_in_the_spec_shape() {
    let upstream = MockUpstream::start().await;
    let gateway = start_gateway(config_for(&upstream)).await;
    let response = client()
        .get(gateway.url("/gateway/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-gateway-request-id"));
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "status": "healthy",
            "providers": {"anthropic": true},
            "routing": {"default_provider": "anthropic", "fallback_chain": []},
            "credentials": {"anthropic": "client_passthrough"},
            "auth": false,
            "audit": {"enabled": true, "log_request_bodies": true, "log_response_bodies": true, "healthy": true}
        })
    );
}

async fn expect_error(
    response: reqwest::Response,
    status: u16,
    error_type: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status);
    let id = response.headers()["x-gateway-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], error_type, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(body["request_id"], id.as_str());
    body
}

#[tokio::test]
async fn bad_input_is_refused_with_nothing_sent_upstream() {
    let upstream = MockUpstream::start().await;
    let gateway = start_gateway(config_for(&upstream)).await;
    let client = client();
    for body in [
        "{\"model\":\"claude-sonnet-4-5\",\"messages\":[",
        "not json",
        "[1,2,3]",
        "\"a string\"",
        "{\"messages\":[]}",
        "{\"model\":\"claude-sonnet-4-5\"}",
        "{\"model\":42,\"messages\":[]}",
        "",
    ] {
        let response = client
            .post(gateway.url("/v1/messages"))
            .body(body)
            .send()
            .await
            .unwrap();
        let error = expect_error(response, 400, "invalid_request_error").await;
        assert!(!error["error"]["message"].as_str().unwrap().contains("sk-"));
    }
    let response = client.get(gateway.url("/v2/nope")).send().await.unwrap();
    expect_error(response, 404, "not_found_error").await;
    let response = client.get(gateway.url("/")).send().await.unwrap();
    expect_error(response, 404, "not_found_error").await;
    let response = client
        .get(gateway.url("/v1/messages"))
        .send()
        .await
        .unwrap();
    expect_error(response, 405, "not_found_error").await;
    assert!(upstream.requests().is_empty(), "nothing went upstream");
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let upstream = MockUpstream::start().await;
    let mut config = config_for(&upstream);
    config.limits.max_request_bytes = 1024;
    let gateway = start_gateway(config).await;
    let big = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(2000)
    );
    let response = gateway.post_messages(big.clone()).await;
    expect_error(response, 413, "request_too_large").await;
    // Without a Content-Length (chunked), the cap holds while reading.
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(big.into_bytes())]);
    let response = gateway
        .post_messages(reqwest::Body::wrap_stream(stream))
        .await;
    expect_error(response, 413, "request_too_large").await;
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn upstream_errors_come_back_with_their_status_and_body() {
    let upstream = MockUpstream::start().await;
    let cases = [
        (
            401,
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_1"}"#,
        ),
        (
            404,
            r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-nope"},"request_id":"req_2"}"#,
        ),
        (
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_3"}"#,
        ),
        (
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        ),
    ];
    for (status, body) in cases {
        upstream.push(
            Reply::json(status, body)
                .with_header("request-id", "req_up")
                .with_header("retry-after", "3"),
        );
    }
    upstream.push(Reply::Full {
        status: 502,
        headers: vec![("content-type".into(), "text/html".into())],
        body: b"<html>Bad Gateway</html>".to_vec(),
    });
    let gateway = start_gateway(config_for(&upstream)).await;
    for (status, body) in cases {
        let response = gateway.post_messages(messages_body(true)).await;
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()["request-id"], "req_up");
        assert_eq!(response.headers()["retry-after"], "3");
        assert_eq!(response.headers()["x-gateway-provider"], "anthropic");
        assert!(response.headers().contains_key("x-gateway-request-id"));
        assert_eq!(response.text().await.unwrap(), body);
    }
    let response = gateway.post_messages(messages_body(true)).await;
    let error = expect_error(response, 502, "api_error").await;
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Bad Gateway"));
}

#[tokio::test]
async fn a_refused_connection_is_a_clean_502() {
    let refused = RefusedPort::bind();
    let mut config = llm_gateway::Config::default();
    config.providers.get_mut("anthropic").unwrap().base_url = refused.url().parse().unwrap();
    let gateway = start_gateway(config).await;
    let response = gateway.post_messages(messages_body(true)).await;
    let error = expect_error(response, 502, "api_error").await;
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic"));
}
