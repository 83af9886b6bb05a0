//! Errors for OpenAI clients: `{"error":{"message","type","param","code"}}`, from the
//! gateway's own errors and from Anthropic-shaped upstream error bodies.

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde_json::Value;

use super::json::str_of;

#[derive(Serialize)]
struct Envelope<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// The OpenAI error `type` for an Anthropic error type: the names both APIs share stay,
/// `billing_error` → `insufficient_quota`, `request_too_large` → `invalid_request_error`,
/// `overloaded_error`, `timeout_error` and `api_error` → `server_error`.
pub fn openai_error_type(anthropic_type: &str) -> &'static str {
    match anthropic_type {
        "invalid_request_error" | "request_too_large" => "invalid_request_error",
        "authentication_error" => "authentication_error",
        "permission_error" => "permission_error",
        "not_found_error" => "not_found_error",
        "rate_limit_error" => "rate_limit_error",
        "billing_error" => "insufficient_quota",
        _ => "server_error",
    }
}

/// An OpenAI error body of the Anthropic error type `anthropic_type` (kept as `code`).
pub fn openai_error_body(anthropic_type: &str, message: &str) -> Vec<u8> {
    let envelope = Envelope {
        error: Detail {
            message,
            kind: openai_error_type(anthropic_type),
            param: None,
            code: Some(anthropic_type),
        },
    };
    serde_json::to_vec(&envelope).unwrap_or_else(|_| {
        br#"{"error":{"message":"error","type":"server_error","param":null,"code":null}}"#.to_vec()
    })
}

/// An Anthropic-shaped error body (`{"type":"error","error":{"type","message"}}`) as an
/// OpenAI error body; `None` when `body` is not one.
pub fn chat_error_from_anthropic(body: &[u8]) -> Option<Vec<u8>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    let kind = str_of(error, "type")?;
    let message = str_of(error, "message").unwrap_or("");
    Some(openai_error_body(kind, message))
}

/// A stream's error as a `data:` line, the way OpenAI servers end a failed stream.
pub(super) fn write_error_line(out: &mut BytesMut, kind: &str, code: &str, message: &str) {
    let envelope = Envelope {
        error: Detail {
            message,
            kind,
            param: None,
            code: Some(code),
        },
    };
    out.put_slice(b"data: ");
    let _ = serde_json::to_writer((&mut *out).writer(), &envelope);
    out.put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_errors_become_openai_errors_with_the_type_as_code() {
        let body = chat_error_from_anthropic(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["message"], "Overloaded");
        assert_eq!(v["error"]["type"], "server_error");
        assert_eq!(v["error"]["code"], "overloaded_error");
        assert!(v["error"]["param"].is_null());
        assert!(chat_error_from_anthropic(b"<html>").is_none());
        assert_eq!(openai_error_type("billing_error"), "insufficient_quota");
        assert_eq!(openai_error_type("rate_limit_error"), "rate_limit_error");
    }
}
