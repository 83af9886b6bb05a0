//! Request translation: Anthropic Messages → OpenAI chat completions.

use serde_json::{json, Value};

use super::super::{
    openai_tool_name, translate_request, translate_request_with_options, Dialect, RequestOptions,
    Target,
};

const CLAUDE_CODE: &str = include_str!("../fixtures/claude_code_request.json");
const CLAUDE_CODE_OPENAI: &str = include_str!("../fixtures/claude_code_request.openai.json");

fn translate(body: &Value, model: &str, dialect: Dialect) -> Value {
    let bytes = serde_json::to_vec(body).expect("serialize");
    let out = translate_request(&bytes, &Target { model, dialect }).expect("translates");
    serde_json::from_slice(&out).expect("output is JSON")
}

fn translate_err(body: &[u8]) -> String {
    let target = Target {
        model: "gpt-4o",
        dialect: Dialect::OpenAi,
    };
    translate_request(body, &target)
        .expect_err("must fail")
        .to_string()
}

fn minimal(messages: Value) -> Value {
    json!({"model": "claude-x", "max_tokens": 100, "messages": messages})
}

#[test]
fn claude_code_request_to_openai_exactly() {
    let target = Target {
        model: "gpt-5",
        dialect: Dialect::OpenAi,
    };
    let out = translate_request(CLAUDE_CODE.as_bytes(), &target).expect("translates");
    let got: Value = serde_json::from_slice(&out).expect("json");
    let want: Value = serde_json::from_str(CLAUDE_CODE_OPENAI).expect("fixture json");
    assert_eq!(got, want);
}

#[test]
fn claude_code_request_to_deepseek() {
    let body: Value = serde_json::from_str(CLAUDE_CODE).expect("fixture");
    let got = translate(&body, "deepseek-v4-pro", Dialect::DeepSeek);
    assert_eq!(got["model"], "deepseek-v4-pro");
    assert_eq!(got["max_tokens"], 32000);
    assert!(got.get("max_completion_tokens").is_none());
    assert!(
        got.get("reasoning_effort").is_none(),
        "thinking is dropped for DeepSeek"
    );
    assert_eq!(
        got["messages"][2],
        json!({
            "role": "assistant",
            "content": "A cat. Let me check the weather.",
            "reasoning_content": "The user wants the weather.",
            "tool_calls": [{"id": "toolu_01A", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}"}}]
        })
    );
    // Same request for Ollama: no reasoning_content, max_tokens.
    let got = translate(&body, "qwen3:8b", Dialect::Ollama);
    assert!(got["messages"][2].get("reasoning_content").is_none());
    assert_eq!(got["max_tokens"], 32000);
    assert!(got.get("reasoning_effort").is_none());
}

#[test]
fn azure_uses_max_completion_tokens_and_effort_thresholds() {
    for (budget, effort) in [
        (1024, "low"),
        (4095, "low"),
        (4096, "medium"),
        (16383, "medium"),
        (16384, "high"),
    ] {
        let mut body = minimal(json!([{"role": "user", "content": "hi"}]));
        body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
        let got = translate(&body, "dep", Dialect::Azure);
        assert_eq!(got["reasoning_effort"], effort, "budget {budget}");
        assert_eq!(got["max_completion_tokens"], 100);
    }
    let mut body = minimal(json!([{"role": "user", "content": "hi"}]));
    body["thinking"] = json!({"type": "adaptive"});
    assert!(translate(&body, "dep", Dialect::Azure)
        .get("reasoning_effort")
        .is_none());

    body["thinking"] = json!({"type": "enabled", "budget_tokens": 20000});
    let bytes = serde_json::to_vec(&body).expect("serialize");
    let out = translate_request_with_options(
        &bytes,
        &Target {
            model: "gpt-4o",
            dialect: Dialect::OpenAi,
        },
        &RequestOptions {
            reasoning_effort: false,
        },
    )
    .expect("translates");
    let got: Value = serde_json::from_slice(&out).expect("json");
    assert!(got.get("reasoning_effort").is_none());
}

#[test]
fn simple_request_is_exact() {
    let body = json!({
        "model": "claude-haiku-4-5", "max_tokens": 256, "system": "Be brief.", "top_p": 0.9,
        "messages": [{"role": "user", "content": "Hello"}],
        "tool_choice": {"type": "auto"}
    });
    assert_eq!(
        translate(&body, "gpt-4o-mini", Dialect::OpenAi),
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello"}
            ],
            "max_completion_tokens": 256,
            "top_p": 0.9
        })
    );
}

#[test]
fn tool_results_precede_user_text_and_images_move_to_the_user_message() {
    let body = minimal(json!([
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "shot", "input": {}},
            {"type": "tool_use", "id": "t2", "name": "calc", "input": {"expr": "1+1"}}
        ]},
        {"role": "user", "content": [
            {"type": "text", "text": "see results"},
            {"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "text", "text": "captured"},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
            ]},
            {"type": "tool_result", "tool_use_id": "t2", "is_error": true,
             "content": [{"type": "search_result", "title": "t", "cache_control": {"type": "ephemeral"}}]},
            {"type": "tool_result", "tool_use_id": "t3"}
        ]}
    ]));
    let got = translate(&body, "gpt-4o", Dialect::OpenAi);
    assert_eq!(
        got["messages"],
        json!([
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "shot", "arguments": "{}"}},
                {"id": "t2", "type": "function", "function": {"name": "calc", "arguments": "{\"expr\":\"1+1\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "t1",
             "content": "captured\n[1 image(s) from this tool result are attached to the next user message]"},
            {"role": "tool", "tool_call_id": "t2", "content": "{\"title\":\"t\",\"type\":\"search_result\"}"},
            {"role": "tool", "tool_call_id": "t3", "content": ""},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "text", "text": "see results"}
            ]}
        ])
    );
}

#[test]
fn empty_messages_and_blocks_are_dropped() {
    let body = minimal(json!([
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "x", "signature": "s"}]},
        {"role": "assistant", "content": ""},
        {"role": "system", "content": [{"type": "text", "text": ""}]},
        {"role": "user", "content": ""}
    ]));
    assert_eq!(
        translate(&body, "m", Dialect::Ollama)["messages"],
        json!([{"role": "user", "content": "a\nb"}])
    );
}

#[test]
fn long_tool_names_are_shortened_consistently() {
    let long = format!("mcp__very_long_server_name__{}", "do_something_".repeat(5));
    assert!(long.len() > 64);
    let short = openai_tool_name(&long).into_owned();
    let body = json!({
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": long, "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}
        ],
        "tools": [{"name": long, "input_schema": {"type": "object"}}, {"name": "short", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": long}
    });
    let got = translate(&body, "m", Dialect::OpenAi);
    assert_eq!(short.len(), 64);
    assert_eq!(got["tools"][0]["function"]["name"], short.as_str());
    assert_eq!(got["tools"][1]["function"]["name"], "short");
    assert_eq!(
        got["tool_choice"],
        json!({"type": "function", "function": {"name": short}})
    );
    assert_eq!(
        got["messages"][1]["tool_calls"][0]["function"]["name"],
        short.as_str()
    );
    assert!(got.get("parallel_tool_calls").is_none());
}

#[test]
fn tool_choice_without_usable_tools_is_omitted() {
    let body = json!({
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "search"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
    });
    let got = translate(&body, "m", Dialect::OpenAi);
    assert!(got.get("tools").is_none());
    assert!(got.get("tool_choice").is_none());
    assert!(got.get("parallel_tool_calls").is_none());
}

#[test]
fn tool_choice_variants() {
    for (choice, want) in [
        (json!({"type": "auto"}), json!("auto")),
        (json!({"type": "any"}), json!("required")),
        (json!({"type": "none"}), json!("none")),
        (
            json!({"type": "tool", "name": "f"}),
            json!({"type": "function", "function": {"name": "f"}}),
        ),
    ] {
        let body = json!({
            "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": choice
        });
        assert_eq!(translate(&body, "m", Dialect::OpenAi)["tool_choice"], want);
    }
}

#[test]
fn non_streaming_request_has_no_stream_fields() {
    let mut body = minimal(json!([{"role": "user", "content": "x"}]));
    body["stream"] = json!(false);
    let got = translate(&body, "m", Dialect::DeepSeek);
    assert!(got.get("stream").is_none());
    assert!(got.get("stream_options").is_none());
}

#[test]
fn malformed_requests_are_errors() {
    assert!(translate_err(b"not json").contains("not valid JSON"));
    assert!(translate_err(b"[1,2]").contains("must be a JSON object"));
    assert!(translate_err(b"{}").contains("messages is required"));
    assert!(translate_err(br#"{"messages":{}}"#).contains("messages must be an array"));
    assert!(translate_err(br#"{"messages":[1]}"#).contains("messages.0.role"));
    assert!(
        translate_err(br#"{"messages":[{"role":"tool","content":"x"}]}"#).contains("not supported")
    );
    assert!(translate_err(br#"{"messages":[{"role":"user"}]}"#).contains("content is missing"));
    assert!(
        translate_err(br#"{"messages":[{"role":"user","content":5}]}"#)
            .contains("messages.0.content")
    );
    assert!(
        translate_err(br#"{"messages":[{"role":"user","content":[{"text":"x"}]}]}"#)
            .contains("messages.0.content.0")
    );
    assert!(translate_err(
        br#"{"messages":[{"role":"user","content":[{"type":"text","text":7}]}]}"#
    )
    .contains("text must be a string"));
    assert!(translate_err(br#"{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}"#)
        .contains("image source type 'file'"));
    assert!(
        translate_err(br#"{"messages":[{"role":"user","content":[{"type":"tool_result"}]}]}"#)
            .contains("tool_use_id")
    );
    assert!(translate_err(
        br#"{"messages":[{"role":"assistant","content":[{"type":"tool_use","name":"f"}]}]}"#
    )
    .contains("id"));
    assert!(translate_err(br#"{"messages":[],"max_tokens":-1}"#).contains("max_tokens"));
    assert!(translate_err(br#"{"messages":[],"temperature":"hot"}"#).contains("temperature"));
    assert!(translate_err(br#"{"messages":[],"stop_sequences":"x"}"#).contains("stop_sequences"));
    assert!(translate_err(br#"{"messages":[],"system":5}"#).contains("system"));
    assert!(translate_err(br#"{"messages":[],"tools":[{"name":"f"}]}"#).contains("tools.0"));
    assert!(translate_err(br#"{"messages":[],"tools":[{"name":"f","input_schema":{}}],"tool_choice":{"type":"maybe"}}"#)
        .contains("tool_choice"));
    assert!(translate_err(br#"{"messages":[],"stream":"yes"}"#).contains("stream"));
}
