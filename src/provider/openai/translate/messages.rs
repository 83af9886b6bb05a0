//! Anthropic `system` + `messages[]` → OpenAI `messages[]`.
//!
//! Rules:
//! * `system` (string or text blocks) → the first `{role:"system"}` message; several blocks are
//!   joined with a blank line. `role:"system"` entries inside `messages` stay where they are, as
//!   system messages.
//! * user `text` → text; several text-only blocks are joined with `\n` into one string; as soon
//!   as an image is present the content is an array of `text`/`image_url` parts.
//!   `image` base64 → `data:<media_type>;base64,<data>` URL, url source → the URL; other image
//!   sources (Files API ids) are rejected. `document` with a text source → text; other documents
//!   are rejected.
//! * user `tool_result` → one `{role:"tool", tool_call_id, content}` message each, placed before
//!   the rest of that user turn. String content is kept; block content: text blocks joined with
//!   `\n`, images moved into the user message that follows (OpenAI tool messages cannot carry
//!   images; the tool text says so), any other block JSON-stringified. `is_error` has no
//!   OpenAI equivalent and is dropped.
//! * assistant `text` blocks joined with `\n` into `content`; `tool_use` → `tool_calls` with
//!   `arguments` = compact JSON of `input`. `thinking`/`redacted_thinking` are dropped, except
//!   that for DeepSeek the assistant's thinking text is sent back as `reasoning_content`
//!   (DeepSeek's thinking mode wants it during tool-call loops and ignores it otherwise).
//! * empty text blocks are dropped; a message left with no content (and, for the assistant,
//!   no tool calls) is dropped, since OpenAI rejects empty assistant messages.
//! * `cache_control` and unknown block types (server-tool blocks, …) are dropped.

use serde_json::{json, Map, Value};

use super::error::TranslateError;
use super::json::{kind, non_empty_str, str_of, truncate_chars};
use super::tools::openai_tool_name;
use super::Dialect;

/// Builds the system message from the top-level `system` field.
pub(super) fn system_message(system: &Value) -> Result<Option<Value>, TranslateError> {
    let text = match system {
        Value::Null => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Array(blocks) => join_text_blocks(blocks, "system", "\n\n")?,
        other => {
            return Err(TranslateError::new(format!(
                "system must be a string or an array of text blocks, got {}",
                kind(other)
            )))
        }
    };
    Ok((!text.is_empty()).then(|| json!({"role": "system", "content": text})))
}

/// Translates the `messages` array.
pub(super) fn translate_messages(
    messages: &Value,
    dialect: Dialect,
) -> Result<Vec<Value>, TranslateError> {
    let list = messages.as_array().ok_or_else(|| {
        TranslateError::new(format!("messages must be an array, got {}", kind(messages)))
    })?;
    let mut out = Vec::with_capacity(list.len() + 2);
    for (i, message) in list.iter().enumerate() {
        let at = format!("messages.{i}");
        let role = str_of(message, "role")
            .ok_or_else(|| TranslateError::new(format!("{at}.role must be a string")))?;
        let content = message
            .get("content")
            .ok_or_else(|| TranslateError::new(format!("{at}.content is missing")))?;
        let blocks = content_blocks(content, &at)?;
        match role {
            "system" => {
                let text = join_text_blocks(&blocks, &format!("{at}.content"), "\n\n")?;
                if !text.is_empty() {
                    out.push(json!({"role": "system", "content": text}));
                }
            }
            "user" => user_turn(&blocks, &at, &mut out)?,
            "assistant" => out.extend(assistant_turn(&blocks, &at, dialect)?),
            other => {
                return Err(TranslateError::new(format!(
                    "{at}.role '{}' is not supported (expected user, assistant or system)",
                    truncate_chars(other, 32)
                )))
            }
        }
    }
    Ok(out)
}

/// `content` as a list of blocks: a string is one text block.
fn content_blocks(content: &Value, at: &str) -> Result<Vec<Value>, TranslateError> {
    match content {
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(blocks) => {
            for (j, block) in blocks.iter().enumerate() {
                if str_of(block, "type").is_none() {
                    return Err(TranslateError::new(format!(
                        "{at}.content.{j} must be an object with a string type"
                    )));
                }
            }
            Ok(blocks.clone())
        }
        other => Err(TranslateError::new(format!(
            "{at}.content must be a string or an array of blocks, got {}",
            kind(other)
        ))),
    }
}

/// Joins the non-empty `text` blocks; other block types are ignored.
fn join_text_blocks(blocks: &[Value], at: &str, sep: &str) -> Result<String, TranslateError> {
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        match str_of(block, "type") {
            Some("text") => {
                let text = str_of(block, "text").ok_or_else(|| {
                    TranslateError::new(format!("{at}.{j}.text must be a string"))
                })?;
                if !text.is_empty() {
                    parts.push(text);
                }
            }
            Some(_) => {}
            None => {
                return Err(TranslateError::new(format!(
                    "{at}.{j} must be an object with a string type"
                )))
            }
        }
    }
    Ok(parts.join(sep))
}

/// One piece of user content, before deciding between string and parts-array form.
enum Part {
    Text(String),
    Image(Value),
}

fn user_turn(blocks: &[Value], at: &str, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let mut tool_images = Vec::new();
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.content.{j}");
        match str_of(block, "type") {
            Some("text") => {
                let text = str_of(block, "text")
                    .ok_or_else(|| TranslateError::new(format!("{at}.text must be a string")))?;
                if !text.is_empty() {
                    parts.push(Part::Text(text.to_owned()));
                }
            }
            Some("image") => parts.push(Part::Image(image_part(block, &at)?)),
            Some("document") => {
                let text = document_text(block, &at)?;
                if !text.is_empty() {
                    parts.push(Part::Text(text));
                }
            }
            Some("tool_result") => out.push(tool_message(block, &at, &mut tool_images)?),
            _ => {} // thinking, server-tool blocks, unknown types: nothing to send
        }
    }
    tool_images.extend(parts);
    let parts = tool_images;
    if parts.is_empty() {
        return Ok(());
    }
    let content = if parts.iter().all(|p| matches!(p, Part::Text(_))) {
        let texts: Vec<&str> = parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                Part::Image(_) => None,
            })
            .collect();
        Value::from(texts.join("\n"))
    } else {
        Value::Array(
            parts
                .into_iter()
                .map(|p| match p {
                    Part::Text(text) => json!({"type": "text", "text": text}),
                    Part::Image(image) => image,
                })
                .collect(),
        )
    };
    out.push(json!({"role": "user", "content": content}));
    Ok(())
}

/// `image` block → `{type:"image_url", image_url:{url}}`.
fn image_part(block: &Value, at: &str) -> Result<Value, TranslateError> {
    let source = block
        .get("source")
        .filter(|s| s.is_object())
        .ok_or_else(|| TranslateError::new(format!("{at}.source must be an object")))?;
    let url = match str_of(source, "type") {
        Some("base64") => {
            let media_type = non_empty_str(source, "media_type").ok_or_else(|| {
                TranslateError::new(format!("{at}.source.media_type must be a string"))
            })?;
            let data = str_of(source, "data")
                .ok_or_else(|| TranslateError::new(format!("{at}.source.data must be a string")))?;
            format!("data:{media_type};base64,{data}")
        }
        Some("url") => non_empty_str(source, "url")
            .ok_or_else(|| TranslateError::new(format!("{at}.source.url must be a string")))?
            .to_owned(),
        other => {
            return Err(TranslateError::new(format!(
                "{at}: image source type '{}' is not supported by OpenAI-compatible providers",
                truncate_chars(other.unwrap_or("(missing)"), 32)
            )))
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// `document` block with a plain-text source → its text.
fn document_text(block: &Value, at: &str) -> Result<String, TranslateError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    match str_of(source, "type") {
        Some("text") => str_of(source, "data")
            .map(str::to_owned)
            .ok_or_else(|| TranslateError::new(format!("{at}.source.data must be a string"))),
        Some("content") => match source.get("content") {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Array(blocks)) => {
                join_text_blocks(blocks, &format!("{at}.source.content"), "\n")
            }
            _ => Err(TranslateError::new(format!(
                "{at}.source.content must be a string or blocks"
            ))),
        },
        other => Err(TranslateError::new(format!(
            "{at}: document source type '{}' is not supported by OpenAI-compatible providers",
            truncate_chars(other.unwrap_or("(missing)"), 32)
        ))),
    }
}

/// `tool_result` block → `{role:"tool"}` message; images go to `images` for the next user message.
fn tool_message(block: &Value, at: &str, images: &mut Vec<Part>) -> Result<Value, TranslateError> {
    let id = non_empty_str(block, "tool_use_id").ok_or_else(|| {
        TranslateError::new(format!("{at}.tool_use_id must be a non-empty string"))
    })?;
    let content = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            let mut texts = Vec::new();
            let mut moved = 0usize;
            for (k, item) in items.iter().enumerate() {
                let item_at = format!("{at}.content.{k}");
                match str_of(item, "type") {
                    Some("text") => {
                        let text = str_of(item, "text").ok_or_else(|| {
                            TranslateError::new(format!("{item_at}.text must be a string"))
                        })?;
                        if !text.is_empty() {
                            texts.push(text.to_owned());
                        }
                    }
                    Some("image") => {
                        images.push(Part::Image(image_part(item, &item_at)?));
                        moved += 1;
                    }
                    Some(_) => texts.push(stringify_block(item)),
                    None => {
                        return Err(TranslateError::new(format!(
                            "{item_at} must be an object with a string type"
                        )))
                    }
                }
            }
            if moved > 0 {
                texts.push(format!(
                    "[{moved} image(s) from this tool result are attached to the next user message]"
                ));
            }
            texts.join("\n")
        }
        Some(other) => {
            return Err(TranslateError::new(format!(
                "{at}.content must be a string or an array of blocks, got {}",
                kind(other)
            )))
        }
    };
    Ok(json!({"role": "tool", "tool_call_id": id, "content": content}))
}

/// Compact JSON of a block without its `cache_control`.
fn stringify_block(block: &Value) -> String {
    match block {
        Value::Object(map) => {
            let trimmed: Map<String, Value> = map
                .iter()
                .filter(|(k, _)| k.as_str() != "cache_control")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Value::Object(trimmed).to_string()
        }
        other => other.to_string(),
    }
}

fn assistant_turn(
    blocks: &[Value],
    at: &str,
    dialect: Dialect,
) -> Result<Option<Value>, TranslateError> {
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    let mut reasoning = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.content.{j}");
        match str_of(block, "type") {
            Some("text") => {
                let text = str_of(block, "text")
                    .ok_or_else(|| TranslateError::new(format!("{at}.text must be a string")))?;
                if !text.is_empty() {
                    texts.push(text);
                }
            }
            Some("tool_use") => tool_calls.push(tool_call(block, &at)?),
            Some("thinking") if dialect == Dialect::DeepSeek => {
                if let Some(thinking) = non_empty_str(block, "thinking") {
                    reasoning.push(thinking);
                }
            }
            _ => {} // thinking elsewhere, redacted_thinking, server-tool blocks
        }
    }
    if texts.is_empty() && tool_calls.is_empty() {
        return Ok(None);
    }
    let mut message = Map::new();
    message.insert("role".into(), Value::from("assistant"));
    message.insert(
        "content".into(),
        if texts.is_empty() {
            Value::Null
        } else {
            Value::from(texts.join("\n"))
        },
    );
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    if !reasoning.is_empty() {
        message.insert(
            "reasoning_content".into(),
            Value::from(reasoning.join("\n")),
        );
    }
    Ok(Some(Value::Object(message)))
}

/// `tool_use` block → OpenAI `tool_calls[]` entry.
fn tool_call(block: &Value, at: &str) -> Result<Value, TranslateError> {
    let id = non_empty_str(block, "id")
        .ok_or_else(|| TranslateError::new(format!("{at}.id must be a non-empty string")))?;
    let name = non_empty_str(block, "name")
        .ok_or_else(|| TranslateError::new(format!("{at}.name must be a non-empty string")))?;
    let arguments = match block.get("input") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(input) => input.to_string(),
    };
    Ok(json!({
        "id": id,
        "type": "function",
        "function": {"name": openai_tool_name(name), "arguments": arguments}
    }))
}
