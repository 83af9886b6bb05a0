//! Ingress for OpenAI clients, and what the audit keeps of uploads.
//!
//! A Chat Completions body is checked as a Messages body is (a JSON object with a string
//! `model` and a `messages` array, a boolean `stream`, the gateway's `agent_type` cut),
//! then translated to Messages once, here: the layers below read the translation (its
//! `max_tokens` and image blocks bound the cost), an Anthropic-kind provider sends it, and
//! the body as it came rides along in an [`OpenAiRequest`] for an OpenAI-kind provider.

use super::{bad_request, check_messages_body};
use crate::error::Error;
use crate::meta::{OpenAiRequest, RequestMeta};
use crate::provider::openai::translate::messages_from_chat;
use bytes::Bytes;
use http::{header, HeaderMap, Uri};

/// The path the translation is served at below ingress.
const MESSAGES_PATH: &str = "/v1/messages";

/// Check and translate a Chat Completions request; the Messages body it becomes.
pub(super) fn chat_request(
    body: Bytes,
    meta: &mut RequestMeta,
    parts: &mut http::request::Parts,
) -> Result<Bytes, Error> {
    let original = check_messages_body(body, meta)?;
    let original_span = meta.model_span.clone().unwrap_or(0..0);
    let chat = messages_from_chat(&original).map_err(|e| bad_request(e.message()))?;
    let mut translated = meta.clone();
    let body = check_messages_body(Bytes::from(chat.body), &mut translated)?;
    meta.model_span = translated.model_span;
    meta.max_tokens = translated.max_tokens;
    meta.media_blocks = translated.media_blocks;
    parts.extensions.insert(OpenAiRequest {
        body: original,
        model_span: original_span,
        include_usage: chat.include_usage,
        untranslatable: chat.untranslatable,
    });
    parts.uri = Uri::from_static(MESSAGES_PATH);
    Ok(body)
}

/// What the audit keeps instead of a multipart body (a file upload): its size.
pub(super) fn upload_note(headers: &HeaderMap, len: usize) -> Option<Bytes> {
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"multipart/"));
    multipart.then(|| Bytes::from(format!("[multipart body of {len} bytes, not stored]")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Endpoint, Ingress};

    fn parts() -> http::request::Parts {
        http::Request::post("/v1/chat/completions")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn a_chat_request_is_translated_and_kept_as_it_came() {
        let raw = r#"{"model":"claude-x","agent_type":"bot","max_completion_tokens":300,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"https://x.test/a.png"}}]}]}"#;
        let mut meta = RequestMeta {
            ingress: Ingress::OpenAi,
            ..RequestMeta::new("t", Endpoint::Messages)
        };
        let mut parts = parts();
        let body = chat_request(Bytes::from(raw), &mut meta, &mut parts).unwrap();
        let messages: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(messages["max_tokens"], 300);
        assert_eq!(&body[meta.model_span.clone().unwrap()], br#""claude-x""#);
        assert_eq!(meta.max_tokens, Some(300));
        assert_eq!(meta.media_blocks, 1);
        assert_eq!(meta.agent_type.as_deref(), Some("bot"));
        assert!(meta.stream);
        assert_eq!(parts.uri.path(), "/v1/messages");
        let kept = parts.extensions.get::<OpenAiRequest>().unwrap();
        assert!(kept.include_usage);
        assert!(!kept.body.windows(10).any(|w| w == b"agent_type"));
        assert_eq!(&kept.body[kept.model_span.clone()], br#""claude-x""#);
    }

    #[test]
    fn bad_chat_requests_are_named() {
        for (raw, needle) in [
            (r#"{"messages":[]}"#, "model"),
            (r#"{"model":"m"}"#, "messages"),
            (r#"{"model":"m","#, "JSON"),
            (
                r#"{"model":"m","messages":[{"content":"x"}]}"#,
                "messages[0].role",
            ),
        ] {
            let mut meta = RequestMeta::new("t", Endpoint::Messages);
            let error = chat_request(Bytes::from(raw), &mut meta, &mut parts()).unwrap_err();
            assert_eq!(error.status(), 400);
            assert!(
                error.message().contains(needle),
                "{needle}: {}",
                error.message()
            );
        }
    }

    #[test]
    fn uploads_are_noted_by_size() {
        let mut headers = HeaderMap::new();
        assert!(upload_note(&headers, 10).is_none());
        headers.insert(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=x".parse().unwrap(),
        );
        assert_eq!(
            upload_note(&headers, 1234).unwrap(),
            "[multipart body of 1234 bytes, not stored]"
        );
    }
}
