//! OpenAI chat-completions request → Anthropic Messages request (the way in for OpenAI
//! clients; [`translate_request`](super::translate_request) is the way out to OpenAI
//! upstreams).
//!
//! Translated: `system`/`developer` messages → `system`; `user` text and `image_url` parts
//! (a `data:` URL → a base64 source, an `http(s)` URL → a url source); `assistant` text and
//! `tool_calls` → `tool_use` blocks; `tool` messages → `tool_result` blocks (consecutive
//! turns of one role are merged, as Messages wants alternating roles); `tools`;
//! `tool_choice` (`none`, `auto`, `required` → `any`, a named function → `tool`);
//! `parallel_tool_calls:false` → `disable_parallel_tool_use`; `stop` → `stop_sequences`;
//! `max_completion_tokens` / `max_tokens` → `max_tokens` ([`DEFAULT_MAX_TOKENS`] when
//! absent); `temperature`; `top_p`; `response_format` `json_schema` →
//! `output_config.format`; `reasoning_effort` → `thinking` with the budget of
//! [`thinking_budget_for_effort`]; `user` → `metadata.user_id`; `stream`.
//!
//! Dropped (no Messages equivalent, harmless): `seed`, `presence_penalty`,
//! `frequency_penalty`, `logit_bias`, `store`, `metadata`, `service_tier`, `prediction`,
//! `stream_options`, `top_logprobs` without `logprobs`, a message's `name`, an assistant
//! message's `reasoning_content`. Refused for Anthropic-kind providers (reported in
//! [`ChatTranslation::untranslatable`], since an OpenAI-kind provider can serve them):
//! `n` above 1, `logprobs:true`, audio output, `response_format` `json_object`, tools that
//! are not functions, content parts other than text and images.

use serde_json::{json, Map, Value};

use super::chat_messages::turns;
use super::error::TranslateError;
use super::json::{count_of, kind, non_empty_str, parse_object, str_of};

/// `max_tokens` sent when the client gives neither `max_completion_tokens` nor `max_tokens`
/// (Messages requires one); a thinking budget is added on top of it.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The smallest thinking budget Messages accepts.
const MIN_THINKING_BUDGET: u64 = 1024;

/// A chat request as a Messages request.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatTranslation {
    /// The Messages body.
    pub body: Vec<u8>,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// The first field an Anthropic-kind provider cannot serve, named for the client.
    pub untranslatable: Option<String>,
}

/// The thinking budget for a `reasoning_effort`: `minimal` 1,024 tokens, `low` 2,048,
/// `medium` 8,192, `high` 16,384, `xhigh` 32,768; `none` (or anything else) turns thinking
/// off. The inverse of the `reasoning_effort` the way out sends for a budget.
pub fn thinking_budget_for_effort(effort: &str) -> Option<u64> {
    match effort {
        "minimal" => Some(1024),
        "low" => Some(2048),
        "medium" => Some(8192),
        "high" => Some(16_384),
        "xhigh" => Some(32_768),
        _ => None,
    }
}

/// Translates a chat-completions request body into a Messages request body.
///
/// Errors name the first field that is malformed (a 400 for the client); fields that are
/// well-formed but have no Messages equivalent are reported in
/// [`ChatTranslation::untranslatable`] instead.
pub fn messages_from_chat(chat_body: &[u8]) -> Result<ChatTranslation, TranslateError> {
    let request = Value::Object(parse_object(chat_body, "request body")?);
    let field = |key: &str| request.get(key).filter(|v| !v.is_null());
    let mut refused: Option<String> = None;
    let mut refuse = |why: String| {
        refused.get_or_insert(why);
    };
    let mut out = Map::new();
    if let Some(model) = field("model") {
        out.insert("model".into(), model.clone());
    }
    let messages = field("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::new("messages: must be an array"))?;
    let (system, turns) = turns(messages, &mut refuse)?;
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(turns));

    let asked = match field("max_completion_tokens").or_else(|| field("max_tokens")) {
        Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
            TranslateError::new("max_completion_tokens: must be a positive integer")
        })?),
        None => None,
    };
    let effort = field("reasoning_effort").and_then(Value::as_str);
    let budget = effort.and_then(thinking_budget_for_effort);
    let max_tokens = match (asked, budget) {
        (Some(n), _) => n,
        (None, Some(budget)) => budget + DEFAULT_MAX_TOKENS,
        (None, None) => DEFAULT_MAX_TOKENS,
    };
    out.insert("max_tokens".into(), Value::from(max_tokens));
    if let Some(budget) = budget {
        // Messages wants the budget below max_tokens.
        let budget = budget.min(max_tokens.saturating_sub(1));
        if budget < MIN_THINKING_BUDGET {
            refuse(format!(
                "reasoning_effort: needs max_completion_tokens above {MIN_THINKING_BUDGET}"
            ));
        }
        out.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = field(key) {
            if !v.is_number() {
                return Err(TranslateError::new(format!("{key}: must be a number")));
            }
            out.insert(key.into(), v.clone());
        }
    }
    match field("stop") {
        None => {}
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(stops)) if stops.iter().all(Value::is_string) => {
            out.insert("stop_sequences".into(), Value::Array(stops.clone()));
        }
        Some(other) => {
            return Err(TranslateError::new(format!(
                "stop: must be a string or an array of strings, got {}",
                kind(other)
            )))
        }
    }
    if let Some(user) = field("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(tools) = field("tools") {
        out.insert("tools".into(), Value::Array(tools_of(tools, &mut refuse)?));
    }
    if let Some(choice) = tool_choice(field("tool_choice"), field("parallel_tool_calls"))? {
        out.insert("tool_choice".into(), choice);
    }
    if let Some(format) = field("response_format") {
        match str_of(format, "type") {
            Some("text") => {}
            Some("json_schema") => {
                let schema = format
                    .get("json_schema")
                    .and_then(|s| s.get("schema"))
                    .filter(|s| s.is_object())
                    .ok_or_else(|| {
                        TranslateError::new("response_format.json_schema.schema: must be an object")
                    })?;
                out.insert(
                    "output_config".into(),
                    json!({"format": {"type": "json_schema", "schema": schema}}),
                );
            }
            other => refuse(format!(
                "response_format: type `{}` has no Anthropic equivalent (use json_schema)",
                other.unwrap_or("?")
            )),
        }
    }
    if count_of(&request, "n").is_some_and(|n| n > 1) {
        refuse("n: Anthropic models answer one choice".into());
    }
    if field("logprobs").and_then(Value::as_bool) == Some(true) {
        refuse("logprobs: Anthropic models report no log probabilities".into());
    }
    if field("audio").is_some() {
        refuse("audio: Anthropic models answer in text".into());
    }
    if let Some(stream) = field("stream") {
        out.insert("stream".into(), stream.clone());
    }
    let include_usage = field("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let body = serde_json::to_vec(&Value::Object(out))
        .map_err(|e| TranslateError::new(format!("could not serialize the request: {e}")))?;
    Ok(ChatTranslation {
        body,
        include_usage,
        untranslatable: refused,
    })
}

fn tools_of(tools: &Value, refuse: &mut impl FnMut(String)) -> Result<Vec<Value>, TranslateError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| TranslateError::new("tools: must be an array"))?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if str_of(tool, "type") != Some("function") {
            refuse(format!(
                "tools[{i}]: only function tools have an Anthropic equivalent"
            ));
            continue;
        }
        let function = tool.get("function").unwrap_or(&Value::Null);
        let name = non_empty_str(function, "name").ok_or_else(|| {
            TranslateError::new(format!("tools[{i}].function.name: field required"))
        })?;
        let mut translated = Map::new();
        translated.insert("name".into(), Value::from(name));
        if let Some(description) = str_of(function, "description") {
            translated.insert("description".into(), Value::from(description));
        }
        let schema = function
            .get("parameters")
            .filter(|p| p.is_object())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        translated.insert("input_schema".into(), schema);
        out.push(Value::Object(translated));
    }
    Ok(out)
}

fn tool_choice(
    choice: Option<&Value>,
    parallel: Option<&Value>,
) -> Result<Option<Value>, TranslateError> {
    let mut translated = match choice {
        None => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "none" => json!({"type": "none"}),
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            other => {
                return Err(TranslateError::new(format!(
                    "tool_choice: `{other}` is not none, auto or required"
                )))
            }
        }),
        Some(object) => {
            let name = object
                .get("function")
                .and_then(|f| non_empty_str(f, "name"))
                .ok_or_else(|| TranslateError::new("tool_choice.function.name: field required"))?;
            Some(json!({"type": "tool", "name": name}))
        }
    };
    if parallel.and_then(Value::as_bool) == Some(false) {
        let choice = translated.get_or_insert_with(|| json!({"type": "auto"}));
        if str_of(choice, "type") != Some("none") {
            choice["disable_parallel_tool_use"] = Value::Bool(true);
        }
    }
    Ok(translated)
}
