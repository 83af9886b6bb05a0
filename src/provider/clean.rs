//! Cleaning a conversation for an Anthropic-kind provider it did not come from.

use bytes::Bytes;
use serde_json::Value;

/// The body without what another provider rejects: thinking and redacted-thinking
/// blocks (their signatures only verify where they were made) and `cache_control`
/// markers; `model` set to `model` when given.
///
/// This parses the body into a tree, which ingress never does: it runs only for a
/// request that crosses providers, not on the common path.
pub(crate) fn clean_for_other_provider(body: &[u8], model: Option<&str>) -> Option<Bytes> {
    let mut request: Value = serde_json::from_slice(body).ok()?;
    let object = request.as_object_mut()?;
    if let Some(model) = model {
        object.insert("model".into(), Value::String(model.to_owned()));
    }
    if let Some(Value::Array(system)) = object.get_mut("system") {
        system.iter_mut().for_each(strip_cache_control);
    }
    if let Some(Value::Array(tools)) = object.get_mut("tools") {
        tools.iter_mut().for_each(strip_cache_control);
    }
    object.remove("cache_control");
    if let Some(Value::Array(messages)) = object.get_mut("messages") {
        for message in messages.iter_mut() {
            if let Some(Value::Array(content)) = message.get_mut("content") {
                content.retain(|block| {
                    !matches!(
                        block.get("type").and_then(Value::as_str),
                        Some("thinking" | "redacted_thinking")
                    )
                });
                content.iter_mut().for_each(strip_cache_control);
            }
        }
        // An assistant turn that held only thinking is now empty, which is refused.
        messages.retain(|message| {
            !message
                .get("content")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
        });
    }
    serde_json::to_vec(&request).ok().map(Bytes::from)
}

fn strip_cache_control(block: &mut Value) {
    if let Some(object) = block.as_object_mut() {
        object.remove("cache_control");
        if let Some(Value::Array(inner)) = object.get_mut("content") {
            inner.iter_mut().for_each(strip_cache_control);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinking_and_cache_control_go_the_rest_stays() {
        let body = br#"{"model":"claude-opus-4-5","max_tokens":5,"cache_control":{"type":"ephemeral"},
            "system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],
            "messages":[{"role":"user","content":[{"type":"text","text":"q","cache_control":{"type":"ephemeral","ttl":"1h"}}]},
              {"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"sig"},{"type":"text","text":"a"}]},
              {"role":"assistant","content":[{"type":"redacted_thinking","data":"x"}]}],
            "output_config":{"effort":"high"}}"#;
        let cleaned: Value = serde_json::from_slice(
            &clean_for_other_provider(body, Some("deepseek-v4-pro")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            cleaned,
            serde_json::json!({"model":"deepseek-v4-pro","max_tokens":5,
                "system":[{"type":"text","text":"s"}],
                "messages":[{"role":"user","content":[{"type":"text","text":"q"}]},
                  {"role":"assistant","content":[{"type":"text","text":"a"}]}],
                "output_config":{"effort":"high"}})
        );
    }
}
