//! Routing and fallback across providers, through the real gateway and two (or more)
//! mock upstreams: which one served, and what the client got.

mod common;

use common::*;
use llm_gateway::Config;
use serde_json::{json, Value};
use std::time::Duration;

/// Two Anthropic-kind providers, `primary` then `backup`.
fn two_anthropic(primary: &str, backup: &str) -> Config {
    Config::from_toml_str(&format!(
        r#"
[routing]
default_provider = "primary"
fallback_chain = ["primary", "backup"]
[providers.primary]
kind = "anthropic"
base_url = "{primary}"
[providers.backup]
kind = "anthropic"
base_url = "{backup}"
"#
    ))
    .unwrap()
}

async fn post(gateway: &TestGateway, body: &str) -> reqwest::Response {
    client()
        .post(gateway.url("/v1/messages"))
        .header("x-api-key", "sk-ant-client")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

fn served_by(response: &reqwest::Response) -> String {
    response.headers()["x-gateway-provider"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn connection_refused_falls_back() {
    let backup = MockUpstream::start().await;
    backup.push(Reply::sse_events(&fixture("text_basic.sse")));
    let refused = RefusedPort::bind();
    let gateway = start_gateway(two_anthropic(&refused.url(), &backup.url())).await;
    let response = post(&gateway, &messages_body(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(served_by(&response), "backup");
    assert_eq!(response.text().await.unwrap(), fixture("text_basic.sse"));
}

#[tokio::test]
async fn retryable_statuses_fall_back_and_the_client_sees_one_clean_answer() {
    for status in [408u16, 409, 429, 500, 502, 503, 504, 529] {
        let primary = MockUpstream::start().await;
        let backup = MockUpstream::start().await;
        primary.push(Reply::json(
            status,
            r#"{"type":"error","error":{"type":"api_error","message":"nope"}}"#,
        ));
        backup.push(Reply::sse_events(&fixture("tool_use.sse")));
        let gateway = start_gateway(two_anthropic(&primary.url(), &backup.url())).await;
        let response = post(&gateway, &messages_body(true)).await;
        assert_eq!(response.status(), 200, "{status}");
        assert_eq!(served_by(&response), "backup", "{status}");
        assert_eq!(
            response.text().await.unwrap(),
            fixture("tool_use.sse"),
            "{status}"
        );
        assert_eq!(primary.requests().len(), 1);
        assert_eq!(backup.requests().len(), 1);
    }
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    for status in [400u16, 401, 403, 404, 413, 422] {
        let primary = MockUpstream::start().await;
        let backup = MockUpstream::start().await;
        let body = format!(
            r#"{{"type":"error","error":{{"type":"invalid_request_error","message":"status {status}"}}}}"#
        );
        primary.push(Reply::json(status, body.clone()));
        let gateway = start_gateway(two_anthropic(&primary.url(), &backup.url())).await;
        let response = post(&gateway, &messages_body(true)).await;
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(served_by(&response), "primary");
        assert_eq!(response.text().await.unwrap(), body, "as it came");
        assert!(backup.requests().is_empty(), "{status} must not be retried");
    }
}

#[tokio::test]
async fn an_overloaded_error_event_before_content_falls_back() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    primary.push(Reply::sse_events(&fixture("error_midstream.sse")));
    backup.push(Reply::sse_events(&fixture("text_basic.sse")));
    let gateway = start_gateway(two_anthropic(&primary.url(), &backup.url())).await;
    let response = post(&gateway, &messages_body(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(served_by(&response), "backup");
    let text = response.text().await.unwrap();
    assert_eq!(
        text,
        fixture("text_basic.sse"),
        "no trace of the failed attempt"
    );
    // Both attempts are accounted: the failed one as an error, the served one complete.
    let reports = gateway.wait_reports(2).await;
    let mut outcomes: Vec<_> = reports
        .iter()
        .map(|r| (r.provider.to_string(), r.outcome))
        .collect();
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        outcomes,
        [
            ("backup".to_owned(), llm_gateway::usage::Outcome::Complete),
            ("primary".to_owned(), llm_gateway::usage::Outcome::Error)
        ]
    );
    let metrics: Value = gateway.get_json("/gateway/metrics").await;
    assert!(metrics["by_provider"]["backup"].as_f64().unwrap() > 0.0);
    let prometheus = gateway.get_text("/metrics").await;
    assert!(
        prometheus.contains(
            r#"llm_gateway_fallbacks_total{from="primary",to="backup",reason="stream_error"} 1"#
        ),
        "{prometheus}"
    );
}

#[tokio::test]
async fn a_primary_silent_past_the_first_byte_limit_falls_back() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    primary.push(Reply::Silent);
    backup.push(Reply::sse_events(&fixture("text_basic.sse")));
    let mut config = two_anthropic(&primary.url(), &backup.url());
    config.timeouts.first_byte_ms = 300;
    let gateway = start_gateway(config).await;
    let response = post(&gateway, &messages_body(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(served_by(&response), "backup");
    assert_eq!(response.text().await.unwrap(), fixture("text_basic.sse"));
}

#[tokio::test]
async fn after_the_first_content_event_nothing_is_retried() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    let mut steps: Vec<Step> = mock::split_events(&fixture("cut_before_delta.sse"))
        .into_iter()
        .map(|e| Step::Send(e.into_bytes()))
        .collect();
    steps.push(Step::Close);
    primary.push(Reply::sse(steps));
    let gateway = start_gateway(two_anthropic(&primary.url(), &backup.url())).await;
    let response = post(&gateway, &messages_body(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(served_by(&response), "primary");
    let text = response.text().await.unwrap();
    assert!(text.starts_with(&fixture("cut_before_delta.sse")));
    let last = mock::split_events(&text).pop().unwrap();
    assert!(last.starts_with("event: error\ndata: "), "{last}");
    assert!(backup.requests().is_empty());
    let reports = gateway.wait_reports(1).await;
    assert_eq!(reports[0].outcome, llm_gateway::usage::Outcome::Incomplete);
}

#[tokio::test]
async fn when_every_attempt_fails_the_client_gets_the_last_error() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    primary.push(Reply::json(
        500,
        r#"{"type":"error","error":{"type":"api_error","message":"first"}}"#,
    ));
    backup.push(Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"last"}}"#,
    ));
    let gateway = start_gateway(two_anthropic(&primary.url(), &backup.url())).await;
    let response = post(&gateway, &messages_body(false)).await;
    assert_eq!(response.status().as_u16(), 529);
    assert!(response.text().await.unwrap().contains("last"));
}

#[tokio::test]
async fn retry_after_and_repeated_failures_take_a_provider_out_for_a_while() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    primary.push(
        Reply::json(
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}"#,
        )
        .with_header("retry-after", "30"),
    );
    for _ in 0..3 {
        backup.push(Reply::json(200, message_json(1, 1)));
    }
    let gateway = start_gateway(two_anthropic(&primary.url(), &backup.url())).await;
    for _ in 0..3 {
        let response = post(&gateway, &messages_body(false)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(served_by(&response), "backup");
    }
    assert_eq!(
        primary.requests().len(),
        1,
        "skipped while its retry-after runs"
    );
    let health: Value = gateway.get_json("/gateway/health").await;
    assert_eq!(health["status"], "degraded");
    assert_eq!(
        health["providers"],
        json!({"primary": false, "backup": true})
    );
    assert_eq!(
        health["routing"]["fallback_chain"],
        json!(["primary", "backup"])
    );
    let prometheus = gateway.get_text("/metrics").await;
    assert!(
        prometheus.contains(r#"llm_gateway_provider_healthy{provider="primary"} 0"#),
        "{prometheus}"
    );
    assert!(prometheus.contains(r#"llm_gateway_provider_healthy{provider="backup"} 1"#));
}

#[tokio::test]
async fn three_failures_in_a_row_start_a_cool_down() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    for _ in 0..3 {
        primary.push(Reply::json(
            503,
            r#"{"type":"error","error":{"type":"api_error","message":"down"}}"#,
        ));
    }
    for _ in 0..4 {
        backup.push(Reply::json(200, message_json(1, 1)));
    }
    let gateway = start_gateway(two_anthropic(&primary.url(), &backup.url())).await;
    for _ in 0..4 {
        let response = post(&gateway, &messages_body(false)).await;
        assert_eq!(served_by(&response), "backup");
    }
    assert_eq!(
        primary.requests().len(),
        3,
        "the fourth request skips the cooling provider"
    );
}

/// Anthropic primary, an OpenAI-kind `deepseek` and an Azure provider behind it.
fn mixed(primary: &str, deepseek: &str, azure: &str) -> Config {
    Config::from_toml_str(&format!(
        r#"
[routing]
default_provider = "anthropic"
fallback_chain = ["anthropic", "deepseek", "azure"]
[routing.agent_types]
"code-reviewer" = {{ provider = "deepseek", model = "deepseek-flash" }}
[providers.anthropic]
kind = "anthropic"
base_url = "{primary}"
[providers.deepseek]
kind = "openai"
base_url = "{deepseek}"
model = "deepseek-v4-pro"
api_key = "sk-deepseek-test"
[providers.azure]
kind = "azure-openai"
base_url = "{azure}"
deployment = "gpt-4o"
api_version = "2024-10-21"
api_key = "azure-key-test"
"#
    ))
    .unwrap()
}

fn text_chunks(text_parts: &[&str]) -> String {
    let mut chunks = vec![
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}),
    ];
    for part in text_parts {
        chunks.push(json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[{"index":0,"delta":{"content":part},"finish_reason":null}]}));
    }
    chunks.push(json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}));
    chunks.push(json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"deepseek-v4-pro","choices":[],"usage":{"prompt_tokens":120,"completion_tokens":7,"total_tokens":127,"prompt_cache_hit_tokens":100,"prompt_cache_miss_tokens":20,"prompt_tokens_details":{"cached_tokens":100}}}));
    openai_stream(&chunks)
}

fn openai_reply(text: String) -> Reply {
    Reply::Streamed {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        steps: mock::split_events(&text)
            .into_iter()
            .map(|e| Step::Send(e.into_bytes()))
            .collect(),
    }
}

/// A Claude Code turn with thinking (signed) and cache_control, which an OpenAI-kind
/// provider would refuse if they reached it.
const CROSSING_BODY: &str = r#"{"model":"claude-opus-4-5","max_tokens":1024,"stream":true,
 "system":[{"type":"text","text":"You are helpful.","cache_control":{"type":"ephemeral"}}],
 "messages":[{"role":"user","content":[{"type":"text","text":"Hi","cache_control":{"type":"ephemeral","ttl":"1h"}}]},
  {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"EqQBCgIYAhIM"},{"type":"text","text":"Hello"}]},
  {"role":"user","content":"Tell me more"}],
 "thinking":{"type":"enabled","budget_tokens":2048},"output_config":{"effort":"high"},
 "tools":[{"name":"Read","description":"read","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}],
 "tool_choice":{"type":"any"},"stop_sequences":["END"],"metadata":{"user_id":"u-1"}}"#;

#[tokio::test]
async fn falling_back_to_an_openai_kind_provider_gives_an_anthropic_stream() {
    let primary = MockUpstream::start().await;
    let deepseek = MockUpstream::start().await;
    primary.push(Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ));
    deepseek.push(openai_reply(text_chunks(&["Hel", "lo from ", "DeepSeek"])));
    let gateway = start_gateway(mixed(&primary.url(), &deepseek.url(), "http://127.0.0.1:9")).await;
    let response = post(&gateway, CROSSING_BODY).await;
    assert_eq!(response.status(), 200);
    assert_eq!(served_by(&response), "deepseek");
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let message = accumulate(&response.text().await.unwrap());
    assert_eq!(
        message["content"],
        json!([{"type":"text","text":"Hello from DeepSeek"}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["usage"]["input_tokens"], 20);
    assert_eq!(message["usage"]["cache_read_input_tokens"], 100);
    assert_eq!(message["usage"]["output_tokens"], 7);

    // What DeepSeek received: chat completions, cleaned, with usage requested.
    let request = &deepseek.requests()[0];
    assert_eq!(request.target, "/v1/chat/completions");
    assert_eq!(
        request.header("authorization"),
        Some("Bearer sk-deepseek-test")
    );
    assert_eq!(
        request.header("x-api-key"),
        None,
        "the client's key never crosses providers"
    );
    let sent: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(sent["model"], "deepseek-v4-pro");
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(sent["tool_choice"], "required");
    assert_eq!(sent["stop"], json!(["END"]));
    assert_eq!(sent["user"], "u-1");
    let text = String::from_utf8_lossy(&request.body);
    assert!(
        !text.contains("cache_control")
            && !text.contains("signature")
            && !text.contains("output_config"),
        "{text}"
    );

    // Usage is attributed to the provider that served, priced from its own table entry.
    let reports = gateway.wait_reports(1).await;
    assert_eq!(&*reports[0].provider, "deepseek");
    assert_eq!(reports[0].usage.cache_read_input_tokens, Some(100));
}

#[tokio::test]
async fn agent_type_routes_to_its_provider_and_model_and_never_reaches_upstream() {
    let primary = MockUpstream::start().await;
    let deepseek = MockUpstream::start().await;
    deepseek.push(openai_reply(text_chunks(&["Review done"])));
    let gateway = start_gateway(mixed(&primary.url(), &deepseek.url(), "http://127.0.0.1:9")).await;
    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"agent_type":"code-reviewer","messages":[{"role":"user","content":"Review this"}]}"#;
    let response = post(&gateway, body).await;
    assert_eq!(served_by(&response), "deepseek");
    let message = accumulate(&response.text().await.unwrap());
    assert_eq!(message["content"][0]["text"], "Review done");
    assert!(primary.requests().is_empty());
    let sent: Value = serde_json::from_slice(&deepseek.requests()[0].body).unwrap();
    assert_eq!(sent["model"], "deepseek-flash", "the rule's model");
    assert!(!String::from_utf8_lossy(&deepseek.requests()[0].body).contains("agent_type"));
}

#[tokio::test]
async fn azure_fallback_uses_its_url_and_key_and_skips_annotation_chunks() {
    let primary = MockUpstream::start().await;
    let azure = MockUpstream::start().await;
    primary.push(Reply::json(
        503,
        r#"{"type":"error","error":{"type":"api_error","message":"down"}}"#,
    ));
    let chunks = vec![
        json!({"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}),
        json!({"id":"chatcmpl-az","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-11-20","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null,"content_filter_results":{}}]}),
        json!({"id":"chatcmpl-az","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-11-20","choices":[{"index":0,"delta":{"content":"From Azure"},"finish_reason":null,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}),
        json!({"choices":[],"created":0,"id":"","model":"","object":""}),
        json!({"id":"chatcmpl-az","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-11-20","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}),
        json!({"id":"chatcmpl-az","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-11-20","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":3,"total_tokens":53,"prompt_tokens_details":{"cached_tokens":0}}}),
    ];
    azure.push(openai_reply(openai_stream(&chunks)));
    // The chain is anthropic → deepseek → azure; deepseek refuses connections.
    let refused = RefusedPort::bind();
    let gateway = start_gateway(mixed(&primary.url(), &refused.url(), &azure.url())).await;
    let response = post(&gateway, &messages_body(true)).await;
    assert_eq!(served_by(&response), "azure");
    let message = accumulate(&response.text().await.unwrap());
    assert_eq!(
        message["content"],
        json!([{"type":"text","text":"From Azure"}])
    );
    assert_eq!(message["usage"]["input_tokens"], 50);
    let request = &azure.requests()[0];
    assert_eq!(
        request.target,
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(request.header("api-key"), Some("azure-key-test"));
}

#[tokio::test]
async fn non_streaming_fallback_to_an_openai_kind_provider_answers_a_message() {
    let primary = MockUpstream::start().await;
    let deepseek = MockUpstream::start().await;
    primary.push(Reply::json(
        500,
        r#"{"type":"error","error":{"type":"api_error","message":"x"}}"#,
    ));
    deepseek.push(Reply::json(
        200,
        json!({"id":"chatcmpl-9","object":"chat.completion","created":1,"model":"deepseek-v4-pro","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"Read","arguments":"{\"path\":\"a.rs\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":40,"completion_tokens":9,"total_tokens":49}}).to_string(),
    ));
    let gateway = start_gateway(mixed(&primary.url(), &deepseek.url(), "http://127.0.0.1:9")).await;
    let response = post(&gateway, &messages_body(false)).await;
    assert_eq!(response.status(), 200);
    let message: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["content"][0]["type"], "tool_use");
    assert_eq!(message["content"][0]["input"], json!({"path":"a.rs"}));
    assert_eq!(message["usage"]["input_tokens"], 40);
    let sent: Value = serde_json::from_slice(&deepseek.requests()[0].body).unwrap();
    assert!(sent.get("stream").is_none_or(|s| s == false));
}

#[tokio::test]
async fn openai_errors_come_back_in_anthropic_shape() {
    let deepseek = MockUpstream::start().await;
    deepseek.push(Reply::json(401, r#"{"error":{"message":"Authentication Fails (no such user)","type":"authentication_error","param":null,"code":"invalid_request_error"}}"#));
    let gateway = start_gateway(mixed(
        "http://127.0.0.1:9",
        &deepseek.url(),
        "http://127.0.0.1:9",
    ))
    .await;
    let body = r#"{"model":"m","max_tokens":5,"agent_type":"code-reviewer","messages":[{"role":"user","content":"x"}]}"#;
    let response = post(&gateway, body).await;
    assert_eq!(response.status(), 401);
    let error: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn count_tokens_on_an_openai_route_is_a_local_estimate() {
    let deepseek = MockUpstream::start().await;
    let config = Config::from_toml_str(&format!(
        "[providers.deepseek]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"deepseek-flash\"\n",
        deepseek.url()
    ))
    .unwrap();
    let gateway = start_gateway(config).await;
    let response = client()
        .post(gateway.url("/v1/messages/count_tokens"))
        .body(r#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Hello there, how are you doing today?"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert!(answer["input_tokens"].as_u64().unwrap() > 0);
    assert!(deepseek.requests().is_empty(), "answered locally");
}

#[tokio::test]
async fn a_conversation_falling_back_to_another_anthropic_kind_provider_is_cleaned() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    primary.push(Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"o"}}"#,
    ));
    backup.push(Reply::sse_events(&fixture("text_basic.sse")));
    let mut config = two_anthropic(&primary.url(), &backup.url());
    config.providers.get_mut("backup").unwrap().model = Some("deepseek-v4-pro".into());
    let gateway = start_gateway(config).await;
    let response = post(&gateway, CROSSING_BODY).await;
    assert_eq!(response.status(), 200);
    let _ = response.text().await.unwrap();
    // The primary got the body byte for byte; the backup got it cleaned, with its model.
    assert_eq!(
        String::from_utf8(primary.requests()[0].body.clone()).unwrap(),
        CROSSING_BODY
    );
    let sent: Value = serde_json::from_slice(&backup.requests()[0].body).unwrap();
    assert_eq!(sent["model"], "deepseek-v4-pro");
    let text = String::from_utf8_lossy(&backup.requests()[0].body).into_owned();
    assert!(
        !text.contains("signature") && !text.contains("cache_control"),
        "{text}"
    );
    assert_eq!(
        sent["messages"][1]["content"],
        json!([{"type":"text","text":"Hello"}])
    );
    assert_eq!(
        backup.requests()[0].header("x-api-key"),
        Some("sk-ant-client")
    );
    let _ = Duration::ZERO;
}

/// A `continue` turn of an Anthropic server-side thread: only the tool result, and the
/// id of the message it follows.
const THREAD_CONTINUE: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"thread":{"type":"continue","previous_message_id":"msg_01"},"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"42"}]}]}"#;

#[tokio::test]
async fn a_server_side_thread_stays_at_the_provider_that_holds_it() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    primary.push(Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
    ));
    backup.push(Reply::sse_events(&fixture("text_basic.sse")));
    let gateway = start_gateway(two_anthropic(&primary.url(), &backup.url())).await;
    let response = post(&gateway, THREAD_CONTINUE).await;
    assert_eq!(
        response.status(),
        529,
        "the thread's provider answered; no other provider can continue the thread"
    );
    assert_eq!(primary.requests().len(), 1);
    assert_eq!(primary.requests()[0].body, THREAD_CONTINUE.as_bytes());
    assert!(backup.requests().is_empty(), "never sent to the backup");

    // The same request without a thread falls back as usual.
    primary.push(Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
    ));
    let response = post(
        &gateway,
        &THREAD_CONTINUE.replace(
            r#""thread":{"type":"continue","previous_message_id":"msg_01"},"#,
            "",
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(served_by(&response), "backup");
}

#[tokio::test]
async fn a_server_side_thread_routed_to_an_openai_kind_provider_is_refused_by_name() {
    let upstream = MockUpstream::start().await;
    let config = Config::from_toml_str(&format!(
        "[providers.deepseek]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"deepseek-chat\"\n",
        upstream.url()
    ))
    .unwrap();
    let gateway = start_gateway(config).await;
    let response = post(&gateway, THREAD_CONTINUE).await;
    assert_eq!(response.status(), 400);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("server-side thread") && message.contains("deepseek"),
        "{message}"
    );
    assert!(
        upstream.requests().is_empty(),
        "nothing half-translated went out"
    );
}
