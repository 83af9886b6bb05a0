//! Non-streaming response translation: OpenAI `chat.completion` → Anthropic `Message`.

use serde_json::{json, Value};

use super::super::{translate_response, translate_response_with_id, Dialect, Target};

const TEXT: &str = include_str!("../fixtures/openai_completion_text.json");
const TOOLS: &str = include_str!("../fixtures/openai_completion_tools.json");
const DEEPSEEK: &str = include_str!("../fixtures/deepseek_completion_reasoning.json");

const OPENAI: Target<'static> = Target {
    model: "gpt-4o",
    dialect: Dialect::OpenAi,
};

fn run(body: &str, target: &Target<'_>) -> Value {
    let out = translate_response(body.as_bytes(), target).expect("translates");
    serde_json::from_slice(&out).expect("json")
}

#[test]
fn text_completion_exactly() {
    assert_eq!(
        run(TEXT, &OPENAI),
        json!({
            "id": "msg_chatcmpl-Nt1",
            "type": "message",
            "role": "assistant",
            "model": "gpt-4o-2024-08-06",
            "content": [{"type": "text", "text": "Hello there."}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 128, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 1920, "output_tokens": 4}
        })
    );
}

#[test]
fn tool_calls_with_valid_invalid_and_empty_arguments() {
    let got = run(TOOLS, &OPENAI);
    assert_eq!(
        got["content"],
        json!([
            {"type": "tool_use", "id": "call_a1", "name": "get_weather", "input": {"city": "Oslo", "unit": "c"}},
            {"type": "tool_use", "id": "call_b2", "name": "get_time",
             "input": {"_raw": "{\"timezone\": \"Europe/Os"}},
            {"type": "tool_use", "id": "call_c3", "name": "ping", "input": {}}
        ])
    );
    assert_eq!(got["stop_reason"], "tool_use");
    assert_eq!(
        got["usage"],
        json!({"input_tokens": 300, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": 0, "output_tokens": 60})
    );
}

#[test]
fn deepseek_reasoning_content_becomes_thinking() {
    let target = Target {
        model: "deepseek-v4-flash",
        dialect: Dialect::DeepSeek,
    };
    let out = translate_response_with_id(DEEPSEEK.as_bytes(), &target, "msg_fixed").expect("ok");
    let got: Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(
        got,
        json!({
            "id": "msg_fixed",
            "type": "message",
            "role": "assistant",
            "model": "deepseek-v4-flash",
            "content": [
                {"type": "thinking", "thinking": "Compare 9.11 and 9.9: 0.90 > 0.11.", "signature": ""},
                {"type": "text", "text": "9.9 is larger."}
            ],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 36, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 64, "output_tokens": 50}
        })
    );
}

#[test]
fn missing_model_usage_and_ids_fall_back() {
    let body = r#"{"choices":[{"message":{"role":"assistant","content":null,"refusal":"I can't help with that.",
        "tool_calls":[{"type":"function","function":{"name":"f","arguments":"[1,2]"}}]},"finish_reason":"content_filter"}]}"#;
    let got = run(body, &OPENAI);
    assert_eq!(got["model"], "gpt-4o");
    assert!(got["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("msg_") && id.len() == 20));
    assert_eq!(
        got["id"],
        run(body, &OPENAI)["id"],
        "fallback id is deterministic"
    );
    let id = got["id"].as_str().expect("id").to_owned();
    assert_eq!(
        got["content"],
        json!([
            {"type": "text", "text": "I can't help with that."},
            {"type": "tool_use", "id": format!("call_{id}_0"), "name": "f", "input": {"_raw": "[1,2]"}}
        ])
    );
    assert_eq!(got["stop_reason"], "refusal");
    assert_eq!(
        got["usage"],
        json!({"input_tokens": 0, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": 0, "output_tokens": 0})
    );
}

#[test]
fn ollama_reasoning_field_and_length() {
    let body = r#"{"id":"chatcmpl-9","model":"qwen3:8b","choices":[{"index":0,"message":{"role":"assistant",
        "content":"Partial","reasoning":"thinking..."},"finish_reason":"length"}],
        "usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}}"#;
    let got = run(
        body,
        &Target {
            model: "qwen3",
            dialect: Dialect::Ollama,
        },
    );
    assert_eq!(
        got["content"],
        json!([
            {"type": "thinking", "thinking": "thinking...", "signature": ""},
            {"type": "text", "text": "Partial"}
        ])
    );
    assert_eq!(got["stop_reason"], "max_tokens");
    assert_eq!(got["usage"]["input_tokens"], 12);
    assert_eq!(got["usage"]["output_tokens"], 34);
}

#[test]
fn bad_responses_are_errors_not_panics() {
    for body in [
        &b"not json"[..],
        b"[]",
        b"{}",
        br#"{"choices":[]}"#,
        br#"{"choices":[{"message":"x"}]}"#,
        br#"{"choices":[{"message":{"tool_calls":[{"function":{"arguments":"{}"}}]}}]}"#,
        br#"{"error":{"message":"bad key"}}"#,
    ] {
        assert!(
            translate_response(body, &OPENAI).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let err = translate_response(br#"{"error":{"message":"quota exceeded"}}"#, &OPENAI)
        .expect_err("error");
    assert!(err.to_string().contains("quota exceeded"));
}
