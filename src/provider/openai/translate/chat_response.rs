//! Anthropic `Message` → OpenAI `chat.completion` (the whole-answer way back to OpenAI
//! clients; [`translate_response`](super::translate_response) is the way in).
//!
//! Text blocks are joined into `content`, thinking blocks into `reasoning_content`,
//! `tool_use` blocks become `tool_calls` (arguments: the input as a JSON string); the
//! `stop_reason` maps as [`finish_reason_from_stop`] says, the usage as
//! [`Usage::to_openai`] says.

use serde_json::{json, Map, Value};

use super::error::TranslateError;
use super::json::{parse_object, str_of};
use super::usage::{finish_reason_from_stop, Usage};

/// Translates a Messages answer into a `chat.completion` created at `created` (unix seconds).
pub fn chat_completion_from_message(body: &[u8], created: u64) -> Result<Vec<u8>, TranslateError> {
    let message = Value::Object(parse_object(body, "the answer")?);
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    let blocks = message.get("content").and_then(Value::as_array);
    for block in blocks.into_iter().flatten() {
        match str_of(block, "type") {
            Some("text") => text.push_str(str_of(block, "text").unwrap_or("")),
            Some("thinking") => reasoning.push_str(str_of(block, "thinking").unwrap_or("")),
            Some("tool_use") => {
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": str_of(block, "id").unwrap_or(""),
                    "type": "function",
                    "function": {"name": str_of(block, "name").unwrap_or(""), "arguments": input.to_string()},
                }));
            }
            _ => {}
        }
    }
    let mut reply = Map::new();
    reply.insert("role".into(), Value::from("assistant"));
    let content = (!text.is_empty() || calls.is_empty()).then_some(text);
    reply.insert("content".into(), content.map_or(Value::Null, Value::from));
    reply.insert("refusal".into(), Value::Null);
    if !reasoning.is_empty() {
        reply.insert("reasoning_content".into(), Value::from(reasoning));
    }
    if !calls.is_empty() {
        reply.insert("tool_calls".into(), Value::Array(calls));
    }
    let mut usage = Usage::default();
    if let Some(u) = message.get("usage") {
        usage.merge_anthropic(u);
    }
    let id = str_of(&message, "id").unwrap_or("gateway");
    let completion = json!({
        "id": format!("chatcmpl-{}", id.trim_start_matches("msg_")),
        "object": "chat.completion",
        "created": created,
        "model": str_of(&message, "model").unwrap_or(""),
        "system_fingerprint": null,
        "choices": [{
            "index": 0,
            "message": reply,
            "logprobs": null,
            "finish_reason": finish_reason_from_stop(str_of(&message, "stop_reason")),
        }],
        "usage": usage.to_openai(),
    });
    serde_json::to_vec(&completion)
        .map_err(|e| TranslateError::new(format!("could not serialize the answer: {e}")))
}
