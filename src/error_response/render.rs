//! Rendering errors as Anthropic-shaped bodies and responses, or OpenAI-shaped ones for
//! OpenAI clients.

use crate::error::Error;
use crate::meta::Ingress;
use crate::provider::openai::translate::{chat_error_from_anthropic, openai_error_body};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response};
use serde::Serialize;

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetail<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// `{"type":"error","error":{"type":…,"message":…},"request_id":…}`.
pub fn error_body(error_type: &str, message: &str, request_id: Option<&str>) -> Bytes {
    let envelope = ErrorEnvelope {
        kind: "error",
        error: ErrorDetail {
            kind: error_type,
            message,
        },
        request_id,
    };
    serde_json::to_vec(&envelope)
        .map(Bytes::from)
        .unwrap_or_else(|_| {
            Bytes::from_static(
                b"{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"error\"}}",
            )
        })
}

/// The header Anthropic's SDKs read a request id from; the gateway's own answers carry
/// its id there too (an upstream's answer keeps the upstream's).
pub const SDK_REQUEST_ID_HEADER: &str = "request-id";

/// The response a client gets for `error`.
///
/// An upstream's own error answer comes back with its status, its headers worth keeping
/// and its body as it came when that body is JSON; a non-JSON upstream body (an HTML
/// page from a proxy) is wrapped in the Anthropic shape.
pub fn error_response(error: &Error, request_id: &str) -> Response<Bytes> {
    error_response_in(error, request_id, Ingress::Anthropic)
}

/// The response a client speaking `ingress` gets for `error`: as [`error_response`], the
/// body then in that dialect (an OpenAI client gets `{"error":{"message","type","param",
/// "code"}}`, an upstream's Anthropic error translated so), statuses and headers alike.
pub fn error_response_in(error: &Error, request_id: &str, ingress: Ingress) -> Response<Bytes> {
    let mut response = anthropic_error_response(error, request_id);
    if ingress == Ingress::OpenAi {
        let body = response.body();
        let translated = chat_error_from_anthropic(body).unwrap_or_else(|| {
            openai_error_body(error.anthropic_type(), &String::from_utf8_lossy(body))
        });
        *response.body_mut() = Bytes::from(translated);
    }
    response
}

fn anthropic_error_response(error: &Error, request_id: &str) -> Response<Bytes> {
    let mut headers = HeaderMap::new();
    let body = match error.upstream() {
        Some(upstream) => {
            for (name, value) in &upstream.headers {
                headers.append(name, value.clone());
            }
            if looks_like_json(&upstream.body) {
                upstream.body.clone()
            } else {
                let text = String::from_utf8_lossy(&upstream.body);
                let message = format!("{}: {}", error.message(), truncate(text.trim(), 512));
                error_body(error.anthropic_type(), &message, Some(request_id))
            }
        }
        None => {
            // The gateway's own answer: the SDKs read their `request_id` from here.
            if let Ok(value) = HeaderValue::from_str(request_id) {
                headers.insert(SDK_REQUEST_ID_HEADER, value);
            }
            if let Some(seconds) = error.retry_after() {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            error_body(error.anthropic_type(), error.message(), Some(request_id))
        }
    };
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.remove(header::CONTENT_LENGTH);
    let mut response = Response::new(body);
    *response.status_mut() = error.status();
    *response.headers_mut() = headers;
    response
}

/// An SSE `event: error` frame for a stream that fails after its headers went out.
pub(crate) fn error_frame(error: &Error, request_id: Option<&str>, ingress: Ingress) -> Bytes {
    if ingress == Ingress::OpenAi {
        // OpenAI servers end a failed stream with a data line holding an `error`.
        let body = openai_error_body(error.anthropic_type(), error.message());
        let mut frame = Vec::with_capacity(body.len() + 8);
        frame.extend_from_slice(b"data: ");
        frame.extend_from_slice(&body);
        frame.extend_from_slice(b"\n\n");
        return Bytes::from(frame);
    }
    let body = error_body(error.anthropic_type(), error.message(), request_id);
    let mut frame = Vec::with_capacity(body.len() + 24);
    frame.extend_from_slice(b"event: error\ndata: ");
    frame.extend_from_slice(&body);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

pub(crate) fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// Streams are not cached, and not buffered by reverse proxies in front of us.
pub(crate) fn add_stream_headers(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.remove(header::CONTENT_LENGTH);
}

fn looks_like_json(body: &[u8]) -> bool {
    let trimmed = body.trim_ascii();
    trimmed.starts_with(b"{") && serde_json::from_slice::<serde::de::IgnoredAny>(trimmed).is_ok()
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
