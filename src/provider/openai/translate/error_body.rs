//! The OpenAI → Anthropic error-body mapping: upstream error answers and in-band
//! stream errors become Anthropic-shaped error bodies.

use serde::Serialize;
use serde_json::Value;

use super::json::{non_empty_str, truncate_chars};

/// Longest upstream text (in bytes) copied into an error message when the body is not JSON.
const MAX_RAW_MESSAGE: usize = 512;

/// The Anthropic `error.type` for an upstream HTTP status.
///
/// 400 `invalid_request_error`, 401 `authentication_error`, 402 `billing_error`,
/// 403 `permission_error`, 404 `not_found_error`, 413 `request_too_large`, 429 `rate_limit_error`,
/// 500 `api_error`, 503/529 `overloaded_error`, 504 `timeout_error`; other 4xx
/// `invalid_request_error`; anything else `api_error`.
pub fn anthropic_error_type_for_status(status: u16) -> &'static str {
    // One table for the whole gateway: the same status gets the same type everywhere.
    http::StatusCode::from_u16(status).map_or("api_error", crate::error::anthropic_type_for_status)
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// Serializes `{"type":"error","error":{"type":error_type,"message":message}}` (compact).
pub fn anthropic_error_body(error_type: &str, message: &str) -> Vec<u8> {
    let body = ErrorBody {
        kind: "error",
        error: ErrorDetail {
            kind: error_type,
            message,
        },
    };
    // Serializing two string fields cannot fail; the fallback only keeps this panic-free.
    serde_json::to_vec(&body).unwrap_or_else(|_| {
        br#"{"type":"error","error":{"type":"api_error","message":"upstream error"}}"#.to_vec()
    })
}

/// Translates an OpenAI/Azure (or any OpenAI-compatible) error body into an Anthropic error body.
///
/// `error.type` comes from `status` (see [`anthropic_error_type_for_status`]); for a status outside
/// 4xx/5xx the upstream's own `error.type`/`error.code` is classified instead. The message is
/// `error.message` (or `error` when it is a string, or a top-level `message`/`detail`); a body
/// that is not JSON contributes its text, truncated to 512 bytes at a char boundary. Anything that
/// looks like an OpenAI key (`sk-…`) is masked.
pub fn translate_error(status: u16, body: &[u8]) -> Vec<u8> {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let message = parsed
        .as_ref()
        .and_then(message_from_json)
        .unwrap_or_else(|| raw_text_message(body, status));
    let error_type = if (400..=599).contains(&status) {
        anthropic_error_type_for_status(status)
    } else {
        parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(classify_error_object)
            .unwrap_or("api_error")
    };
    anthropic_error_body(error_type, &redact_secrets(&message))
}

/// Builds the Anthropic error body for an in-band stream error object (`chunk["error"]`).
pub(super) fn inband_error_json(error: &Value) -> Vec<u8> {
    let error_type = classify_error_object(error).unwrap_or("api_error");
    let message = error_message(error).unwrap_or_else(|| "upstream stream error".to_owned());
    anthropic_error_body(error_type, &redact_secrets(&message))
}

fn raw_text_message(body: &[u8], status: u16) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("upstream returned HTTP {status} with an empty body")
    } else {
        truncate_chars(text, MAX_RAW_MESSAGE).to_owned()
    }
}

/// The message of an error document: `error.message`, `error` (string), `message`, `detail`.
fn message_from_json(v: &Value) -> Option<String> {
    if let Some(error) = v.get("error").filter(|e| !e.is_null()) {
        return error_message(error);
    }
    non_empty_str(v, "message")
        .or_else(|| non_empty_str(v, "detail"))
        .map(str::to_owned)
}

/// The message of an `error` member, which may be an object or a bare string.
fn error_message(error: &Value) -> Option<String> {
    match error {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(_) => non_empty_str(error, "message")
            .map(str::to_owned)
            .or_else(|| Some(truncate_chars(&error.to_string(), MAX_RAW_MESSAGE).to_owned())),
        Value::Null => None,
        other => Some(truncate_chars(&other.to_string(), MAX_RAW_MESSAGE).to_owned()),
    }
}

/// Anthropic error type for an OpenAI-style error object without an HTTP status:
/// a numeric `code`/`status` in 400..=599 uses the status table; otherwise `type` and `code`
/// strings are classified by keyword.
fn classify_error_object(error: &Value) -> Option<&'static str> {
    for key in ["code", "status"] {
        if let Some(status) = error.get(key).and_then(Value::as_u64) {
            if (400..=599).contains(&status) {
                return u16::try_from(status)
                    .ok()
                    .map(anthropic_error_type_for_status);
            }
        }
    }
    ["type", "code"]
        .iter()
        .filter_map(|k| non_empty_str(error, k))
        .find_map(classify_error_name)
}

fn classify_error_name(name: &str) -> Option<&'static str> {
    if let Some((same, _)) = crate::error::ANTHROPIC_ERROR_TYPES
        .iter()
        .find(|(kind, _)| *kind == name)
    {
        return Some(same);
    }
    let n = name.to_ascii_lowercase();
    let table: [(&[&str], &'static str); 8] = [
        (&["insufficient_quota", "billing"], "billing_error"),
        (&["rate_limit", "ratelimit"], "rate_limit_error"),
        (&["overloaded", "unavailable"], "overloaded_error"),
        (&["timeout", "timed_out"], "timeout_error"),
        (
            &["authentication", "invalid_api_key", "unauthorized"],
            "authentication_error",
        ),
        (&["permission", "forbidden"], "permission_error"),
        (&["not_found", "model_not_found"], "not_found_error"),
        (
            &[
                "invalid_request",
                "context_length",
                "content_filter",
                "invalid",
            ],
            "invalid_request_error",
        ),
    ];
    table
        .iter()
        .find(|(needles, _)| needles.iter().any(|needle| n.contains(needle)))
        .map(|(_, t)| *t)
}

/// Masks OpenAI-style secret keys (`sk-…` words) so a provider key never reaches a client.
fn redact_secrets(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    let mut prev_is_word = false;
    while let Some(c) = rest.chars().next() {
        if !prev_is_word && rest.starts_with("sk-") {
            out.push_str("sk-***");
            let tail = rest.get(3..).unwrap_or("");
            let skip = tail
                .char_indices()
                .find(|(_, ch)| !(ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '*')))
                .map_or(tail.len(), |(i, _)| i);
            rest = tail.get(skip..).unwrap_or("");
            prev_is_word = true;
            continue;
        }
        out.push(c);
        prev_is_word = c.is_alphanumeric() || c == '_' || c == '-';
        rest = rest.get(c.len_utf8()..).unwrap_or("");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_openai_keys_only_at_word_start() {
        assert_eq!(
            redact_secrets("Incorrect API key provided: sk-proj-****abcd. See docs."),
            "Incorrect API key provided: sk-***. See docs."
        );
        assert_eq!(redact_secrets("task-sk-1 ok"), "task-sk-1 ok");
        assert_eq!(redact_secrets("ünïcode sk-x"), "ünïcode sk-***");
    }

    #[test]
    fn classifies_openai_error_names() {
        assert_eq!(classify_error_name("server_error"), None);
        assert_eq!(
            classify_error_name("rate_limit_exceeded"),
            Some("rate_limit_error")
        );
        assert_eq!(
            classify_error_name("context_length_exceeded"),
            Some("invalid_request_error")
        );
        assert_eq!(
            classify_error_name("overloaded_error"),
            Some("overloaded_error")
        );
    }
}
