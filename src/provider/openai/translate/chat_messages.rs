//! The `messages` of a chat request as Messages `system` blocks and turns: see
//! [`messages_from_chat`](super::messages_from_chat) for what is translated.

use serde_json::{json, Value};

use super::error::TranslateError;
use super::json::{kind, non_empty_str, str_of};

/// The system blocks and the alternating turns of `messages`.
pub(super) fn turns(
    messages: &[Value],
    refuse: &mut impl FnMut(String),
) -> Result<(Vec<Value>, Vec<Value>), TranslateError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = str_of(message, "role")
            .ok_or_else(|| TranslateError::new(format!("{at}.role: field required")))?;
        let content = message.get("content").filter(|c| !c.is_null());
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.extend(text_blocks(content, &at)?);
                continue;
            }
            "user" => ("user", user_blocks(content, &at, refuse)?),
            "assistant" => ("assistant", assistant_blocks(message, content, &at)?),
            "tool" => ("user", vec![tool_result(message, content, &at)?]),
            other => {
                refuse(format!("{at}.role: `{other}` has no Anthropic equivalent"));
                continue;
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, previous)) if *last == role => previous.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, turns))
}

/// Text blocks of a string or an array of text parts.
fn text_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Value>, TranslateError> {
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .filter(|(_, p)| str_of(p, "type") != Some("refusal"))
            .map(
                |(j, part)| match (str_of(part, "type"), str_of(part, "text")) {
                    (Some("text"), Some(text)) => Ok(json!({"type": "text", "text": text})),
                    _ => Err(TranslateError::new(format!(
                        "{at}.content[{j}]: must be a text part"
                    ))),
                },
            )
            .collect(),
        Some(other) => Err(TranslateError::new(format!(
            "{at}.content: must be a string or an array, got {}",
            kind(other)
        ))),
    }
}

fn user_blocks(
    content: Option<&Value>,
    at: &str,
    refuse: &mut impl FnMut(String),
) -> Result<Vec<Value>, TranslateError> {
    let Some(Value::Array(parts)) = content else {
        return text_blocks(content, at);
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        match str_of(part, "type") {
            Some("text") => blocks.extend(text_blocks(Some(&json!([part])), at)?),
            Some("image_url") => blocks.push(image_block(part, &format!("{at}.content[{j}]"))?),
            other => refuse(format!(
                "{at}.content[{j}]: a `{}` part has no Anthropic equivalent",
                other.unwrap_or("?")
            )),
        }
    }
    Ok(blocks)
}

/// An `image_url` part as an image block: a `data:` URL becomes a base64 source.
fn image_block(part: &Value, at: &str) -> Result<Value, TranslateError> {
    let url = part
        .get("image_url")
        .and_then(|i| i.as_str().or_else(|| str_of(i, "url")))
        .ok_or_else(|| TranslateError::new(format!("{at}.image_url.url: field required")))?;
    if let Some(data_url) = url.strip_prefix("data:") {
        let (media_type, data) = data_url
            .split_once(";base64,")
            .filter(|(media_type, _)| !media_type.is_empty())
            .ok_or_else(|| {
                TranslateError::new(format!(
                    "{at}.image_url.url: a data URL must be data:<media type>;base64,<data>"
                ))
            })?;
        return Ok(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(TranslateError::new(format!(
        "{at}.image_url.url: must be a data: or http(s) URL"
    )))
}

fn assistant_blocks(
    message: &Value,
    content: Option<&Value>,
    at: &str,
) -> Result<Vec<Value>, TranslateError> {
    let mut blocks = text_blocks(content, at)?;
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => return Ok(blocks),
        Some(Value::Array(calls)) => calls,
        Some(other) => {
            return Err(TranslateError::new(format!(
                "{at}.tool_calls: must be an array, got {}",
                kind(other)
            )))
        }
    };
    for (j, call) in calls.iter().enumerate() {
        let at = format!("{at}.tool_calls[{j}]");
        let id = non_empty_str(call, "id")
            .ok_or_else(|| TranslateError::new(format!("{at}.id: field required")))?;
        let function = call.get("function").unwrap_or(&Value::Null);
        let name = non_empty_str(function, "name")
            .ok_or_else(|| TranslateError::new(format!("{at}.function.name: field required")))?;
        let arguments = str_of(function, "arguments").unwrap_or("");
        let input: Value = if arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(arguments)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| {
                    TranslateError::new(format!(
                        "{at}.function.arguments: must be a JSON object in a string"
                    ))
                })?
        };
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(blocks)
}

fn tool_result(
    message: &Value,
    content: Option<&Value>,
    at: &str,
) -> Result<Value, TranslateError> {
    let id = non_empty_str(message, "tool_call_id")
        .ok_or_else(|| TranslateError::new(format!("{at}.tool_call_id: field required")))?;
    let content = match content {
        Some(Value::Array(_)) => Value::Array(text_blocks(content, at)?),
        Some(Value::String(s)) => Value::from(s.as_str()),
        None => Value::from(""),
        Some(other) => {
            return Err(TranslateError::new(format!(
                "{at}.content: must be a string or an array, got {}",
                kind(other)
            )))
        }
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}
