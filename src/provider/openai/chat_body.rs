//! The body an OpenAI client's request goes upstream with: its own.

use crate::meta::{OpenAiRequest, RequestMeta};
use bytes::Bytes;

/// An OpenAI client's body for this upstream: `model` rewritten when routing chose
/// another, and a stream's `stream_options.include_usage` turned on when the client left it
/// off (the gateway meters every stream; the client still gets no usage chunk it did not
/// ask for). Nothing else changes.
pub(super) fn as_it_came(
    chat: &OpenAiRequest,
    meta: Option<&RequestMeta>,
    model: &str,
    stream: bool,
) -> Bytes {
    let mut body = if meta.and_then(|m| m.model.as_deref()) == Some(model) {
        chat.body.clone()
    } else {
        crate::ingress::rewrite_model(&chat.body, chat.model_span.clone(), model)
    };
    if stream && !chat.include_usage {
        if let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice(&body) {
            let options = object
                .entry("stream_options")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(options) = options.as_object_mut() {
                options.insert("include_usage".into(), serde_json::Value::Bool(true));
            }
            if let Ok(with_usage) = serde_json::to_vec(&object) {
                body = Bytes::from(with_usage);
            }
        }
    }
    body
}
