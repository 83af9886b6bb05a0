//! Non-streaming: OpenAI `chat.completion` → Anthropic `Message`.
//!
//! From `choices[0].message` (the choice with `index` 0, else the first): reasoning
//! (`reasoning_content` / `reasoning`) → a `thinking` block with an empty signature; `content`
//! (string, or an array of text parts) and `refusal` → one `text` block; `tool_calls` → `tool_use`
//! blocks in order. `arguments` that parse as a JSON object become `input`; empty arguments
//! become `{}`; anything else (invalid JSON, or valid JSON that is not an object) is kept
//! verbatim as `{"_raw": "<arguments>"}` so nothing is lost and the client still gets an
//! object. Usage and stop reason follow the `usage` module; `stop_sequence` is always `null`.

use std::hash::{Hash, Hasher};

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::error::TranslateError;
use super::json::{non_empty_str, parse_object, str_of};
use super::usage::{effective_stop_reason, Usage};
use super::Target;

#[derive(Serialize)]
struct Message<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block>,
    stop_reason: &'static str,
    stop_sequence: Option<&'static str>,
    usage: Usage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Thinking {
        thinking: String,
        signature: String,
    },
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

/// Translates an OpenAI `chat.completion` body into an Anthropic `Message` body.
///
/// The message `id` is `msg_` + the upstream `id` (characters outside `[A-Za-z0-9_-]` removed),
/// or `msg_` + a hash of the body when the upstream sent none; use
/// [`translate_response_with_id`] to choose it. `model` is the upstream's served model name if
/// present, else `target.model`.
pub fn translate_response(
    openai_body: &[u8],
    target: &Target<'_>,
) -> Result<Vec<u8>, TranslateError> {
    let body = Value::Object(parse_object(openai_body, "upstream response")?);
    let id = match non_empty_str(&body, "id") {
        Some(upstream) => format!(
            "msg_{}",
            upstream
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                .collect::<String>()
        ),
        None => {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            openai_body.hash(&mut hasher);
            format!("msg_{:016x}", hasher.finish())
        }
    };
    build(&body, target, &id)
}

/// [`translate_response`] with a caller-chosen message id (e.g. the same `msg_…` scheme the
/// streaming path uses).
pub fn translate_response_with_id(
    openai_body: &[u8],
    target: &Target<'_>,
    message_id: &str,
) -> Result<Vec<u8>, TranslateError> {
    let body = Value::Object(parse_object(openai_body, "upstream response")?);
    build(&body, target, message_id)
}

fn build(body: &Value, target: &Target<'_>, id: &str) -> Result<Vec<u8>, TranslateError> {
    if let Some(error) = body.get("error").filter(|e| !e.is_null()) {
        let message = non_empty_str(error, "message")
            .or_else(|| error.as_str())
            .unwrap_or("no message");
        return Err(TranslateError::new(format!(
            "upstream returned an error: {message}"
        )));
    }
    let choices = body
        .get("choices")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::new("upstream response has no choices array"))?;
    let choice = choices
        .iter()
        .find(|c| c.get("index").and_then(Value::as_u64) == Some(0))
        .or_else(|| choices.first())
        .ok_or_else(|| TranslateError::new("upstream response has an empty choices array"))?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| TranslateError::new("upstream choice has no message object"))?;

    let mut content = Vec::new();
    if let Some(thinking) =
        non_empty_str(message, "reasoning_content").or_else(|| non_empty_str(message, "reasoning"))
    {
        content.push(Block::Thinking {
            thinking: thinking.to_owned(),
            signature: String::new(),
        });
    }
    let text = message_text(message);
    if !text.is_empty() {
        content.push(Block::Text { text });
    }
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for (i, call) in calls.iter().enumerate() {
            content.push(tool_use(call, i, id)?);
        }
    }
    let has_tool_use = content.iter().any(|b| matches!(b, Block::ToolUse { .. }));

    let out = Message {
        id,
        kind: "message",
        role: "assistant",
        model: non_empty_str(body, "model").unwrap_or(target.model),
        content,
        stop_reason: effective_stop_reason(str_of(choice, "finish_reason"), has_tool_use),
        stop_sequence: None,
        usage: body
            .get("usage")
            .map(Usage::from_openai)
            .unwrap_or_default(),
    };
    serde_json::to_vec(&out)
        .map_err(|e| TranslateError::new(format!("could not serialize the message: {e}")))
}

/// `content` (string or text parts), or `refusal` when there is no content.
fn message_text(message: &Value) -> String {
    let text = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.as_str().or_else(|| str_of(p, "text")))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    };
    if text.is_empty() {
        non_empty_str(message, "refusal")
            .unwrap_or_default()
            .to_owned()
    } else {
        text
    }
}

fn tool_use(call: &Value, i: usize, message_id: &str) -> Result<Block, TranslateError> {
    let function = call
        .get("function")
        .filter(|f| f.is_object())
        .ok_or_else(|| TranslateError::new(format!("upstream tool_calls.{i} has no function")))?;
    let name = non_empty_str(function, "name").ok_or_else(|| {
        TranslateError::new(format!("upstream tool_calls.{i} has no function name"))
    })?;
    let input = match function.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(map)) => Value::Object(map.clone()),
        Some(Value::String(raw)) if raw.trim().is_empty() => Value::Object(Map::new()),
        Some(Value::String(raw)) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => json!({ "_raw": raw }),
        },
        Some(other) => json!({ "_raw": other.to_string() }),
    };
    let id = non_empty_str(call, "id")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("call_{message_id}_{i}"));
    Ok(Block::ToolUse {
        id,
        name: name.to_owned(),
        input,
    })
}
