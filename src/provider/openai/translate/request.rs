//! Anthropic Messages request → OpenAI chat-completions request.
//!
//! Kept (translated): `system`, `messages` (see the `messages` module), `max_tokens`
//! (`max_completion_tokens` for OpenAI/Azure, `max_tokens` for DeepSeek/Ollama), `temperature`,
//! `top_p`, `stop_sequences` → `stop`, `metadata.user_id` → `user`, `tools`, `tool_choice`,
//! `disable_parallel_tool_use` → `parallel_tool_calls:false` (only with tools), `thinking` →
//! `reasoning_effort` (OpenAI/Azure only), `stream:true` → `stream:true` +
//! `stream_options:{include_usage:true}`. `model` is always the target's model.
//!
//! Dropped: `top_k`, `cache_control` (everywhere), `output_config`, `context_management`,
//! `service_tier`, `container`, `inference_geo`, `mcp_servers` and every other field this
//! module does not name — the output is built from an allow-list, never by copying the input.

use serde_json::{json, Map, Value};

use super::error::TranslateError;
use super::json::{kind, non_empty_str, parse_object, str_of};
use super::messages::{system_message, translate_messages};
use super::tools::{translate_tool_choice, translate_tools};
use super::{Dialect, Target};

/// Knobs for [`translate_request_with_options`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestOptions {
    /// Translate Anthropic `thinking` into `reasoning_effort` (OpenAI/Azure only). Turn this off
    /// for non-reasoning deployments (e.g. gpt-4o), which reject the parameter. Default: on.
    pub reasoning_effort: bool,
}

impl Default for RequestOptions {
    fn default() -> Self {
        Self {
            reasoning_effort: true,
        }
    }
}

/// Translates an Anthropic Messages request body into an OpenAI chat-completions request body.
///
/// The body may contain unknown fields, thinking blocks with signatures, `cache_control`, and
/// `role:"system"` messages. Errors describe the first field that could not be understood.
pub fn translate_request(
    anthropic_body: &[u8],
    target: &Target<'_>,
) -> Result<Vec<u8>, TranslateError> {
    translate_request_with_options(anthropic_body, target, &RequestOptions::default())
}

/// [`translate_request`] with explicit [`RequestOptions`].
pub fn translate_request_with_options(
    anthropic_body: &[u8],
    target: &Target<'_>,
    options: &RequestOptions,
) -> Result<Vec<u8>, TranslateError> {
    let request = Value::Object(parse_object(anthropic_body, "request body")?);
    let field = |key: &str| request.get(key).filter(|v| !v.is_null());
    let mut out = Map::new();
    out.insert("model".into(), Value::from(target.model));

    let mut messages = Vec::new();
    if let Some(system) = field("system") {
        messages.extend(system_message(system)?);
    }
    let anthropic_messages =
        field("messages").ok_or_else(|| TranslateError::new("messages is required"))?;
    messages.extend(translate_messages(anthropic_messages, target.dialect)?);
    out.insert("messages".into(), Value::Array(messages));

    if let Some(max_tokens) = field("max_tokens") {
        let n = max_tokens
            .as_u64()
            .ok_or_else(|| TranslateError::new("max_tokens must be a non-negative integer"))?;
        let key = match target.dialect {
            Dialect::OpenAi | Dialect::Azure => "max_completion_tokens",
            Dialect::DeepSeek | Dialect::Ollama => "max_tokens",
        };
        out.insert(key.into(), Value::from(n));
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = field(key) {
            if !v.is_number() {
                return Err(TranslateError::new(format!(
                    "{key} must be a number, got {}",
                    kind(v)
                )));
            }
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stop) = field("stop_sequences") {
        let list = stop
            .as_array()
            .filter(|l| l.iter().all(Value::is_string))
            .ok_or_else(|| TranslateError::new("stop_sequences must be an array of strings"))?;
        if !list.is_empty() {
            out.insert("stop".into(), Value::Array(list.clone()));
        }
    }
    if let Some(user) = field("metadata").and_then(|m| non_empty_str(m, "user_id")) {
        out.insert("user".into(), Value::from(user));
    }

    let tools = match field("tools") {
        Some(tools) => translate_tools(tools)?,
        None => Vec::new(),
    };
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = field("tool_choice") {
            let choice = translate_tool_choice(choice)?;
            out.insert("tool_choice".into(), choice.choice);
            if choice.disable_parallel {
                out.insert("parallel_tool_calls".into(), Value::Bool(false));
            }
        }
    }

    if options.reasoning_effort && matches!(target.dialect, Dialect::OpenAi | Dialect::Azure) {
        if let Some(thinking) = field("thinking") {
            if str_of(thinking, "type") == Some("enabled") {
                let budget = thinking.get("budget_tokens").and_then(Value::as_u64);
                out.insert(
                    "reasoning_effort".into(),
                    Value::from(reasoning_effort_for_budget(budget)),
                );
            }
        }
    }

    match field("stream") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            out.insert("stream".into(), Value::Bool(true));
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Some(other) => {
            return Err(TranslateError::new(format!(
                "stream must be a boolean, got {}",
                kind(other)
            )))
        }
    }

    serde_json::to_vec(&Value::Object(out))
        .map_err(|e| TranslateError::new(format!("could not serialize the upstream request: {e}")))
}

/// `reasoning_effort` for an Anthropic thinking budget: below 4,096 tokens `low`, below 16,384
/// `medium`, otherwise `high`; no budget given → `medium`. `thinking:{type:"adaptive"}` and
/// `disabled` send nothing (the model's default applies).
pub(super) fn reasoning_effort_for_budget(budget_tokens: Option<u64>) -> &'static str {
    match budget_tokens {
        None => "medium",
        Some(b) if b < 4_096 => "low",
        Some(b) if b < 16_384 => "medium",
        Some(_) => "high",
    }
}
