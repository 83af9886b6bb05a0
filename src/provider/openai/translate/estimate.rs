//! Local `count_tokens` estimate for routes whose provider cannot count (OpenAI kinds).
//!
//! Heuristic (deterministic, errs on the high side):
//!
//! * Text is weighed per character: ASCII = 1, non-ASCII = 3 (CJK and other scripts take far more
//!   tokens per character than English); tokens = ⌈total weight / 4⌉ (≈ 4 English chars/token).
//! * Counted text: `system` (string or text blocks); message `text`; `thinking` text and
//!   `redacted_thinking` data; `tool_use` name + compact JSON of `input`; `tool_result` content
//!   (text blocks, other blocks as compact JSON); text documents; tool definitions' name,
//!   description and compact JSON of `input_schema` (server tools: their compact JSON); any
//!   unknown block as compact JSON.
//! * Fixed costs: 3 per request, 4 per message, 4 for a system prompt, 8 per tool definition,
//!   300 once when tools are defined (Anthropic's tool-use preamble), 1,600 per image and per
//!   non-text document (the cost of a ~1.15 MP image).

use serde_json::Value;

use super::error::TranslateError;
use super::json::{kind, parse_object, str_of};

const PER_REQUEST: u64 = 3;
const PER_MESSAGE: u64 = 4;
const PER_SYSTEM: u64 = 4;
const PER_TOOL: u64 = 8;
const TOOLS_PREAMBLE: u64 = 300;
const PER_IMAGE: u64 = 1_600;

/// Running totals: text weight (in quarter-tokens) and fixed token costs.
#[derive(Default)]
struct Tally {
    weight: u64,
    fixed: u64,
}

impl Tally {
    fn text(&mut self, s: &str) {
        let weight: u64 = s.chars().map(|c| if c.is_ascii() { 1 } else { 3 }).sum();
        self.weight = self.weight.saturating_add(weight);
    }

    fn json(&mut self, v: &Value) {
        self.text(&v.to_string());
    }

    fn total(&self) -> u64 {
        self.weight.div_ceil(4).saturating_add(self.fixed)
    }
}

/// Estimates the input tokens of an Anthropic Messages (or count_tokens) request body.
/// See the module docs for the heuristic. Fails only if the body is not a JSON object or
/// `messages` is missing or not an array of objects.
pub fn estimate_input_tokens(anthropic_body: &[u8]) -> Result<u64, TranslateError> {
    let body = parse_object(anthropic_body, "request body")?;
    let mut tally = Tally {
        fixed: PER_REQUEST,
        ..Tally::default()
    };

    match body.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            tally.fixed += PER_SYSTEM;
            tally.text(s);
        }
        Some(Value::Array(blocks)) => {
            tally.fixed += PER_SYSTEM;
            blocks.iter().for_each(|b| block(b, &mut tally));
        }
        Some(other) => tally.json(other),
    }

    let messages = body
        .get("messages")
        .ok_or_else(|| TranslateError::new("messages is required"))?
        .as_array()
        .ok_or_else(|| TranslateError::new("messages must be an array"))?;
    for (i, message) in messages.iter().enumerate() {
        if !message.is_object() {
            return Err(TranslateError::new(format!(
                "messages.{i} must be an object, got {}",
                kind(message)
            )));
        }
        tally.fixed += PER_MESSAGE;
        match message.get("content") {
            Some(Value::String(s)) => tally.text(s),
            Some(Value::Array(blocks)) => blocks.iter().for_each(|b| block(b, &mut tally)),
            Some(Value::Null) | None => {}
            Some(other) => tally.json(other),
        }
    }

    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        if !tools.is_empty() {
            tally.fixed += TOOLS_PREAMBLE;
        }
        for tool in tools {
            tally.fixed += PER_TOOL;
            match tool.get("input_schema") {
                Some(schema) => {
                    tally.text(str_of(tool, "name").unwrap_or(""));
                    tally.text(str_of(tool, "description").unwrap_or(""));
                    tally.json(schema);
                }
                None => tally.json(tool),
            }
        }
    }
    Ok(tally.total())
}

/// [`estimate_input_tokens`] rendered as the count_tokens response body `{"input_tokens":N}`.
pub fn estimate_count_tokens_body(anthropic_body: &[u8]) -> Result<Vec<u8>, TranslateError> {
    let n = estimate_input_tokens(anthropic_body)?;
    Ok(format!("{{\"input_tokens\":{n}}}").into_bytes())
}

fn block(b: &Value, tally: &mut Tally) {
    match str_of(b, "type") {
        Some("text") => tally.text(str_of(b, "text").unwrap_or("")),
        Some("image") => tally.fixed += PER_IMAGE,
        Some("thinking") => tally.text(str_of(b, "thinking").unwrap_or("")),
        Some("redacted_thinking") => tally.text(str_of(b, "data").unwrap_or("")),
        Some("tool_use") => {
            tally.text(str_of(b, "name").unwrap_or(""));
            if let Some(input) = b.get("input") {
                tally.json(input);
            }
        }
        Some("tool_result") => match b.get("content") {
            Some(Value::String(s)) => tally.text(s),
            Some(Value::Array(items)) => items.iter().for_each(|i| block(i, tally)),
            Some(Value::Null) | None => {}
            Some(other) => tally.json(other),
        },
        Some("document") => {
            let source = b.get("source");
            match source.and_then(|s| str_of(s, "type")) {
                Some("text") => tally.text(source.and_then(|s| str_of(s, "data")).unwrap_or("")),
                Some("content") => match source.and_then(|s| s.get("content")) {
                    Some(Value::String(s)) => tally.text(s),
                    Some(Value::Array(items)) => items.iter().for_each(|i| block(i, tally)),
                    _ => {}
                },
                _ => tally.fixed += PER_IMAGE,
            }
        }
        _ => tally.json(b),
    }
}
