//! OpenAI clients through the real gateway: the `async-openai` crate (a client we did not
//! write) driving `/v1/chat/completions` and `/v1/models` against mock Anthropic-kind and
//! OpenAI-kind upstreams.

mod common;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{CreateChatCompletionRequest, FinishReason};
use async_openai::Client;
use common::*;
use futures_util::StreamExt;
use llm_gateway::Config;
use serde_json::{json, Value};

fn openai_client(gateway: &TestGateway, key: &str) -> Client<OpenAIConfig> {
    Client::with_config(
        OpenAIConfig::new()
            .with_api_base(gateway.url("/v1"))
            .with_api_key(key),
    )
}

fn request(value: Value) -> CreateChatCompletionRequest {
    serde_json::from_value(value).expect("a request async-openai accepts")
}

fn hello(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"}
        ]
    })
}

/// One OpenAI-kind provider at `upstream`, the only one.
fn openai_kind(upstream: &MockUpstream) -> Config {
    Config::from_toml_str(&format!(
        r#"
[providers.deepseek]
kind = "openai"
base_url = "{}"
api_key = "sk-deepseek-test"
"#,
        upstream.url()
    ))
    .unwrap()
}

#[tokio::test]
async fn a_whole_answer_from_an_anthropic_upstream_reaches_the_sdk_as_a_chat_completion() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(11, 6)));
    let gateway = start_gateway(config_for(&upstream)).await;

    let answer = openai_client(&gateway, "sk-client")
        .chat()
        .create(request(hello(false)))
        .await
        .expect("async-openai parses the answer");
    let choice = &answer.choices[0];
    assert_eq!(
        choice.message.content.as_deref(),
        Some("Hello! How can I help?")
    );
    assert_eq!(choice.finish_reason, Some(FinishReason::Stop));
    let usage = answer.usage.expect("usage");
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (11, 6));
    assert_eq!(answer.object, "chat.completion");

    let sent = &upstream.requests()[0];
    assert_eq!(sent.target, "/v1/messages");
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "Be brief."}])
    );
    assert_eq!(body["messages"][0]["role"], "user");
    assert!(body["messages"][0]["content"].to_string().contains("Hello"));
    assert_eq!(body["max_tokens"], 4096, "the documented default");

    let records = gateway.wait_audit("limit=1&bodies=true", 1).await;
    assert_eq!(records[0]["ingress"], "openai");
    assert_eq!(records[0]["endpoint"], "messages");
    // 11 in at $3/M and 6 out at $15/M on claude-sonnet-4-5.
    assert_eq!(records[0]["cost_usd"], "0.000123");
    let audited = records[0]["request_body"].as_str().unwrap();
    assert!(
        audited.contains("\"role\":\"system\""),
        "the body the client sent: {audited}"
    );
}

#[tokio::test]
async fn a_stream_with_parallel_tool_calls_and_cache_usage_reaches_the_sdk_whole() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse_events(&fixture("parallel_tools.sse")));
    let gateway = start_gateway(config_for(&upstream)).await;

    let mut ask = hello(true);
    ask["stream_options"] = json!({"include_usage": true});
    ask["parallel_tool_calls"] = json!(true);
    ask["tools"] = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    ]);
    let mut stream = openai_client(&gateway, "sk-client")
        .chat()
        .create_stream(request(ask))
        .await
        .unwrap();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finish = None;
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("every chunk parses");
        if let Some(u) = chunk.usage {
            assert!(chunk.choices.is_empty(), "usage comes on its own chunk");
            usage = Some(u);
        }
        for choice in chunk.choices {
            finish = choice.finish_reason.or(finish);
            for call in choice.delta.tool_calls.unwrap_or_default() {
                let i = call.index as usize;
                if calls.len() <= i {
                    calls.resize(i + 1, Default::default());
                }
                if let Some(id) = call.id {
                    calls[i].0 = id;
                }
                if let Some(function) = call.function {
                    calls[i].1.push_str(&function.name.unwrap_or_default());
                    calls[i].2.push_str(&function.arguments.unwrap_or_default());
                }
            }
        }
    }
    assert_eq!(
        calls,
        vec![
            (
                "toolu_01A".into(),
                "get_weather".into(),
                r#"{"city": "Paris"}"#.into()
            ),
            (
                "toolu_01B".into(),
                "get_time".into(),
                r#"{"zone": "CET"}"#.into()
            ),
        ]
    );
    assert_eq!(finish, Some(FinishReason::ToolCalls));
    let usage = usage.expect("the usage chunk");
    assert_eq!(usage.prompt_tokens, 100 + 800 + 40);
    assert_eq!(usage.completion_tokens, 61);
    assert_eq!(
        usage.prompt_tokens_details.unwrap().cached_tokens,
        Some(800)
    );

    let sent: Value = serde_json::from_slice(&upstream.requests()[0].body).unwrap();
    assert_eq!(sent["tools"][1]["name"], "get_time");
    assert!(sent["tool_choice"].is_null(), "parallel calls stay allowed");
    let reports = gateway.wait_reports(1).await;
    assert_eq!(reports[0].usage.cache_read_input_tokens, Some(800));
    assert_eq!(reports[0].usage.cache_creation_input_tokens, Some(40));
}

#[tokio::test]
async fn chunks_arrive_one_by_one_tool_argument_fragments_included() {
    let upstream = MockUpstream::start().await;
    let events = mock::split_events(&fixture("parallel_tools.sse"));
    let commit = through_commit(&events);
    // Chunk lines each Anthropic event turns into (usage chunk and [DONE] at the end).
    let lines = |event: &str| match event.lines().next().unwrap_or("") {
        "event: content_block_stop" | "event: ping" => 0,
        "event: message_stop" => 2,
        _ => 1,
    };
    let mut gates = Vec::new();
    let mut steps = through_commit_then(&events, vec![]);
    for event in &events[commit..] {
        let (tx, rx) = tokio::sync::oneshot::channel();
        gates.push(tx);
        steps.push(Step::Wait(rx));
        steps.push(Step::Send(event.clone().into_bytes()));
    }
    upstream.push(Reply::sse(steps));
    let gateway = start_gateway(config_for(&upstream)).await;
    let mut ask = hello(true);
    ask["stream_options"] = json!({"include_usage": true});
    let mut response = client()
        .post(gateway.url("/v1/chat/completions"))
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut seen = String::new();
    let mut expected: usize = events[..commit].iter().map(|e| lines(e)).sum();
    read_events(&mut response, &mut seen, expected).await;
    // The mock sends each further event only once the client read the last one's chunk:
    // a gateway that held anything (an argument fragment until its call ends) would hang.
    for (gate, event) in gates.into_iter().zip(&events[commit..]) {
        gate.send(()).unwrap();
        expected += lines(event);
        read_events(&mut response, &mut seen, expected).await;
    }
    assert!(response.chunk().await.unwrap().is_none());
    assert!(
        seen.contains(r#""arguments":"is\"}""#),
        "the second fragment as it came"
    );
    assert!(seen.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn an_openai_kind_upstream_gets_the_request_as_it_came_and_the_sdk_its_answer() {
    let upstream = MockUpstream::start().await;
    let chunk = |delta: Value, finish: Value| {
        json!({"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"deepseek-flash",
               "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
    };
    let stream = openai_stream(&[
        chunk(json!({"role":"assistant","content":""}), Value::Null),
        chunk(
            json!({"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls":[{"index":0,"function":{"arguments":"\"Oslo\"}"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"deepseek-flash","choices":[],
               "usage":{"prompt_tokens":50,"completion_tokens":9,"total_tokens":59,"prompt_tokens_details":{"cached_tokens":20}}}),
    ]);
    upstream.push(Reply::sse_events(&stream));
    upstream.push(Reply::json(
        200,
        json!({"id":"chatcmpl-8","object":"chat.completion","created":1,"model":"deepseek-flash",
               "choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"finish_reason":"stop"}],
               "usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}})
        .to_string(),
    ));
    let gateway = start_gateway(openai_kind(&upstream)).await;
    let client = openai_client(&gateway, "sk-client");

    let raw = r#"{"model":"deepseek-flash","stream":true,"stream_options":{"include_usage":true},"seed":7,"messages":[{"role":"user","content":"Weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}"#;
    let mut stream = client
        .chat()
        .create_stream(request(serde_json::from_str(raw).unwrap()))
        .await
        .unwrap();
    let mut args = [String::new(), String::new()];
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("every chunk parses");
        usage = chunk.usage.or(usage);
        for choice in chunk.choices {
            for call in choice.delta.tool_calls.unwrap_or_default() {
                if let Some(f) = call.function {
                    args[call.index as usize].push_str(&f.arguments.unwrap_or_default());
                }
            }
        }
    }
    assert_eq!(args, [r#"{"city":"Oslo"}"#.to_owned(), "{}".to_owned()]);
    let usage = usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (50, 9));
    assert_eq!(usage.prompt_tokens_details.unwrap().cached_tokens, Some(20));

    let sent = &upstream.requests()[0];
    assert_eq!(sent.target, "/v1/chat/completions");
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer sk-deepseek-test")
    );
    let sent: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(
        sent["seed"], 7,
        "fields with no Messages equivalent still reach it"
    );
    assert_eq!(
        sent,
        serde_json::to_value(request(serde_json::from_str(raw).unwrap())).unwrap()
    );

    let whole = client
        .chat()
        .create(request(
            json!({"model":"deepseek-flash","messages":[{"role":"user","content":"Hi"}],"n":1}),
        ))
        .await
        .unwrap();
    assert_eq!(
        whole.choices[0].message.content.as_deref(),
        Some("Hi there")
    );
    let sent: Value = serde_json::from_slice(&upstream.requests()[1].body).unwrap();
    assert_eq!(sent["n"], 1);
    assert!(sent.get("max_tokens").is_none(), "no Messages field added");
}

#[tokio::test]
async fn a_chat_stream_that_fails_before_content_moves_to_the_next_provider_invisibly() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    primary.push(Reply::sse_events(concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_p\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    )));
    backup.push(Reply::sse_events(&fixture("text_basic.sse")));
    let config = Config::from_toml_str(&format!(
        r#"
[routing]
default_provider = "primary"
fallback_chain = ["primary", "backup"]
[providers.primary]
kind = "anthropic"
base_url = "{}"
[providers.backup]
kind = "anthropic"
base_url = "{}"
"#,
        primary.url(),
        backup.url()
    ))
    .unwrap();
    let gateway = start_gateway(config).await;
    let mut stream = openai_client(&gateway, "sk-client")
        .chat()
        .create_stream(request(hello(true)))
        .await
        .unwrap();
    let mut text = String::new();
    let mut roles = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("no error reaches the client");
        for choice in chunk.choices {
            roles += usize::from(choice.delta.role.is_some());
            text.push_str(&choice.delta.content.unwrap_or_default());
        }
    }
    assert_eq!(roles, 1, "one answer, the backup's");
    assert!(!text.is_empty());
    assert_eq!(primary.requests().len(), 1);
    assert_eq!(backup.requests().len(), 1);
    let records = gateway.wait_audit("limit=1", 1).await;
    assert_eq!(records[0]["provider"], "backup");
    assert_eq!(records[0]["ingress"], "openai");
    assert_eq!(records[0]["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(records[0]["outcome"], "complete");
    // Both attempts' tokens: the primary's 5 in, 1 out, and the backup's 11 in, 6 out.
    assert_eq!(records[0]["cost_usd"], "0.000153");
}

fn api_error(error: OpenAIError) -> (u16, async_openai::error::ApiError) {
    match error {
        OpenAIError::ApiError(e) => (e.status_code.as_u16(), e.api_error),
        other => panic!("an API error, got {other:?}"),
    }
}

/// POST `body` to `/v1/chat/completions`; the status, `retry-after` and error object.
async fn chat_error(gateway: &TestGateway, key: &str, body: &str) -> (u16, Option<String>, Value) {
    let response = client()
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(key)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    (status, retry_after, body["error"].clone())
}

#[tokio::test]
async fn errors_are_openai_shaped_for_the_gateway_and_the_upstream_alike() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(
        400,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long"}}"#,
    ));
    upstream.push(
        Reply::json(
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        )
        .with_header("retry-after", "7"),
    );
    let gateway = start_gateway(config_for(&upstream)).await;
    // async-openai retries 429s and 5xx by itself, so the upstream 400 goes through it.
    let (status, error) = api_error(
        openai_client(&gateway, "sk-client")
            .chat()
            .create(request(hello(false)))
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 400);
    assert_eq!(error.message, "prompt is too long");
    assert_eq!(error.r#type.as_deref(), Some("invalid_request_error"));
    let (status, retry_after, error) =
        chat_error(&gateway, "sk-client", &hello(false).to_string()).await;
    assert_eq!((status, retry_after.as_deref()), (429, Some("7")));
    assert_eq!(error["type"], "rate_limit_error");
    assert_eq!(error["message"], "slow down");

    for (body, needle) in [
        ("{\"model\":", "JSON"),
        (r#"{"messages":[]}"#, "model"),
        (r#"{"model":"claude-sonnet-4-5"}"#, "messages"),
        (
            r#"{"model":"claude-sonnet-4-5","n":3,"messages":[{"role":"user","content":"x"}]}"#,
            "n:",
        ),
    ] {
        let response = client()
            .post(gateway.url("/v1/chat/completions"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
        assert!(error["error"].get("param").is_some());
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{needle}: {message}");
    }
    assert_eq!(upstream.requests().len(), 2, "refused requests go nowhere");
}

#[tokio::test]
async fn a_budgeted_key_is_refused_in_openai_shape() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = |limits: &str| {
        Config::from_toml_str(&format!(
            r#"
[auth]
store_path = "{store}"
[[auth.client_keys]]
name = "ci"
key = "gk-openai-ingress-key-0123456789"
{limits}
[providers.anthropic]
kind = "anthropic"
base_url = "{url}"
"#,
            store = dir.path().join(format!("{}.db", limits.len())).display(),
            url = upstream.url()
        ))
        .unwrap()
    };
    let broke = start_gateway(config("budget_usd = 0.0001")).await;
    let mut big = hello(false);
    big["max_completion_tokens"] = json!(64000);
    let (status, error) = api_error(
        openai_client(&broke, "gk-openai-ingress-key-0123456789")
            .chat()
            .create(request(big))
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 402);
    assert_eq!(error.r#type.as_deref(), Some("insufficient_quota"));
    assert_eq!(error.code.as_deref(), Some("billing_error"));

    let limited = start_gateway(config("rpm = 1")).await;
    upstream.push(Reply::json(200, message_json(1, 1)));
    let client = openai_client(&limited, "gk-openai-ingress-key-0123456789");
    client.chat().create(request(hello(false))).await.unwrap();
    let key = "gk-openai-ingress-key-0123456789";
    let (status, retry_after, error) = chat_error(&limited, key, &hello(false).to_string()).await;
    assert_eq!(status, 429);
    assert!(retry_after.is_some());
    assert_eq!(error["type"], "rate_limit_error");
    let wrong = openai_client(&limited, "gk-wrong");
    let (status, error) = api_error(
        wrong
            .chat()
            .create(request(hello(false)))
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 401);
    assert_eq!(error.r#type.as_deref(), Some("authentication_error"));
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn models_are_listed_for_both_sdks() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(
        200,
        r#"{"data":[{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"},{"type":"model","id":"claude-haiku-4-5","display_name":"Claude Haiku 4.5","created_at":"2025-10-15T00:00:00Z"}],"has_more":false,"first_id":"claude-sonnet-4-5","last_id":"claude-haiku-4-5"}"#,
    ));
    let gateway = start_gateway(config_for(&upstream)).await;
    let list = openai_client(&gateway, "sk-client")
        .models()
        .list()
        .await
        .expect("async-openai parses the list");
    assert_eq!(list.object, "list");
    assert_eq!(list.data.len(), 2);
    assert_eq!(list.data[0].id, "claude-sonnet-4-5");
    assert_eq!(list.data[0].created, 1_759_104_000);
    assert_eq!(list.data[0].owned_by, "anthropic");
    assert_eq!(list.data[1].object, "model");

    // The Anthropic shape is all there too.
    upstream.push(Reply::json(200, r#"{"data":[{"type":"model","id":"m","display_name":"M","created_at":"2025-01-01T00:00:00Z"}],"has_more":false,"first_id":"m","last_id":"m"}"#));
    let body = gateway.get_json("/v1/models").await;
    for key in ["has_more", "first_id", "last_id", "object"] {
        assert!(body.get(key).is_some(), "{key}");
    }
    for key in [
        "type",
        "id",
        "display_name",
        "created_at",
        "created",
        "owned_by",
        "object",
    ] {
        assert!(body["data"][0].get(key).is_some(), "{key}");
    }
}

#[tokio::test]
async fn a_stream_that_fails_before_content_is_an_openai_error_status_and_after_it_an_error_line() {
    let upstream = MockUpstream::start().await;
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_e\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n";
    let overloaded = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    upstream.push(Reply::sse_events(&format!("{start}{overloaded}")));
    let text = concat!(
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n",
    );
    upstream.push(Reply::sse_events(&format!("{start}{text}{overloaded}")));
    let gateway = start_gateway(config_for(&upstream)).await;

    let (status, _, error) = chat_error(&gateway, "sk-client", &hello(true).to_string()).await;
    assert_eq!(status, 529);
    assert_eq!(error["type"], "server_error");
    assert_eq!(error["code"], "overloaded_error");

    let response = client()
        .post(gateway.url("/v1/chat/completions"))
        .json(&hello(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let lines: Vec<&str> = body.split("\n\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[1].contains(r#""content":"Hel""#), "{body}");
    let last: Value =
        serde_json::from_str(lines.last().unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(last["error"]["message"], "Overloaded", "{body}");
    assert!(
        !body.contains("[DONE]"),
        "a failed stream does not say it is done"
    );
    assert!(
        !body.contains("event:"),
        "no Anthropic frames reach an OpenAI client"
    );
}
