//! Tool definitions, `tool_choice`, and the 64-character function-name limit.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use super::error::TranslateError;
use super::json::{kind, non_empty_str, str_of, truncate_chars};

/// Longest function name OpenAI accepts.
pub const MAX_TOOL_NAME_LEN: usize = 64;

/// Bytes of the original name kept when a name must be shortened (`55 + "_" + 8 hex = 64`).
const KEPT_PREFIX: usize = 55;

/// The function name sent upstream for an Anthropic tool name.
///
/// Names of at most 64 bytes pass unchanged. Longer names become the first 55 bytes (cut at a
/// char boundary) + `_` + the 8-hex-digit FNV-1a 32-bit hash of the full name: deterministic across
/// requests and processes, so a tool definition, a `tool_choice` and earlier `tool_use` blocks all
/// agree. The reverse mapping is not applied to responses: a model calling a shortened tool
/// reports the shortened name (callers that need it can rebuild the map with this function).
pub fn openai_tool_name(name: &str) -> Cow<'_, str> {
    if name.len() <= MAX_TOOL_NAME_LEN {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(format!(
            "{}_{:08x}",
            truncate_chars(name, KEPT_PREFIX),
            fnv1a32(name.as_bytes())
        ))
    }
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Translates `tools[]`. Custom tools (with `input_schema`) become `type:"function"` tools;
/// server tools (a `type` and no `input_schema`, e.g. `web_search_20250305`) are dropped.
/// `cache_control`, `strict`, `input_examples` and other Anthropic-only keys are dropped.
pub(super) fn translate_tools(tools: &Value) -> Result<Vec<Value>, TranslateError> {
    let list = tools.as_array().ok_or_else(|| {
        TranslateError::new(format!("tools must be an array, got {}", kind(tools)))
    })?;
    let mut out = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        if !tool.is_object() {
            return Err(TranslateError::new(format!(
                "tools.{i} must be an object, got {}",
                kind(tool)
            )));
        }
        let Some(schema) = tool.get("input_schema") else {
            if tool.get("type").is_some() {
                continue; // server tool: nothing an OpenAI-compatible model can call
            }
            return Err(TranslateError::new(format!(
                "tools.{i} has neither input_schema nor type"
            )));
        };
        if !schema.is_object() {
            return Err(TranslateError::new(format!(
                "tools.{i}.input_schema must be an object, got {}",
                kind(schema)
            )));
        }
        let name = non_empty_str(tool, "name").ok_or_else(|| {
            TranslateError::new(format!("tools.{i}.name must be a non-empty string"))
        })?;
        let mut function = Map::new();
        function.insert(
            "name".into(),
            Value::from(openai_tool_name(name).into_owned()),
        );
        if let Some(description) = non_empty_str(tool, "description") {
            function.insert("description".into(), Value::from(description));
        }
        function.insert("parameters".into(), schema.clone());
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(out)
}

/// Translated `tool_choice` plus whether parallel tool calls were disabled.
pub(super) struct ToolChoice {
    /// OpenAI `tool_choice` value.
    pub choice: Value,
    /// `disable_parallel_tool_use: true` was set.
    pub disable_parallel: bool,
}

/// Translates `tool_choice`: `auto`/`any`/`none`/`tool` → `"auto"`/`"required"`/`"none"`/
/// `{type:"function",function:{name}}`.
pub(super) fn translate_tool_choice(choice: &Value) -> Result<ToolChoice, TranslateError> {
    let kind_name = str_of(choice, "type")
        .ok_or_else(|| TranslateError::new("tool_choice must be an object with a string type"))?;
    let translated = match kind_name {
        "auto" => Value::from("auto"),
        "any" => Value::from("required"),
        "none" => Value::from("none"),
        "tool" => {
            let name = non_empty_str(choice, "name").ok_or_else(|| {
                TranslateError::new("tool_choice of type tool needs a non-empty name")
            })?;
            json!({"type": "function", "function": {"name": openai_tool_name(name)}})
        }
        other => {
            return Err(TranslateError::new(format!(
                "unsupported tool_choice type '{}'",
                truncate_chars(other, 64)
            )))
        }
    };
    Ok(ToolChoice {
        choice: translated,
        disable_parallel: choice
            .get("disable_parallel_tool_use")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_pass_unchanged() {
        let name = "a".repeat(64);
        assert_eq!(openai_tool_name(&name), name.as_str());
    }

    #[test]
    fn long_names_are_shortened_deterministically() {
        let long = format!("mcp__server__{}", "x".repeat(80));
        let a = openai_tool_name(&long);
        assert_eq!(a.len(), 64);
        assert!(a.starts_with(&long[..55]));
        assert_eq!(a, openai_tool_name(&long));
        let other = format!("mcp__server__{}y", "x".repeat(80));
        assert_ne!(a, openai_tool_name(&other));
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    }
}
