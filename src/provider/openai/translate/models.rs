//! One `/v1/models` answer both SDKs parse: Anthropic's list (`data`, `type`, `id`,
//! `display_name`, `created_at`, `has_more`, `first_id`, `last_id`) with OpenAI's fields
//! added (`object: "list"`, and per model `object: "model"`, `created` in unix seconds,
//! `owned_by`).

use serde_json::{Map, Value};

/// `body` (an Anthropic models list or one model) with the fields of both APIs; `None`
/// when it is neither. Models are `owned_by` `owner` (the provider that answered).
pub fn models_for_both_sdks(body: &[u8], owner: &str) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object_mut()?;
    if let Some(Value::Array(models)) = object.get_mut("data") {
        for model in models.iter_mut().filter_map(Value::as_object_mut) {
            complete_model(model, owner);
        }
        let ids: Vec<Value> = models.iter().filter_map(|m| m.get("id").cloned()).collect();
        object.insert("object".into(), Value::from("list"));
        object.entry("has_more").or_insert(Value::Bool(false));
        let first = ids.first().cloned().unwrap_or(Value::Null);
        let last = ids.last().cloned().unwrap_or(Value::Null);
        object.entry("first_id").or_insert(first);
        object.entry("last_id").or_insert(last);
    } else if object.get("id").is_some_and(Value::is_string) {
        complete_model(object, owner);
    } else {
        return None;
    }
    serde_json::to_vec(&value).ok()
}

fn complete_model(model: &mut Map<String, Value>, owner: &str) {
    let id = model.get("id").cloned().unwrap_or(Value::Null);
    model.entry("type").or_insert(Value::from("model"));
    model.insert("object".into(), Value::from("model"));
    model.entry("display_name").or_insert(id);
    let created = model
        .get("created_at")
        .and_then(Value::as_str)
        .and_then(|at| humantime::parse_rfc3339_weak(at).ok())
        .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    model
        .entry("created_at")
        .or_insert(Value::from("1970-01-01T00:00:00Z"));
    model.entry("created").or_insert(Value::from(created));
    model.entry("owned_by").or_insert(Value::from(owner));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_gets_both_sdks_fields() {
        let body = br#"{"data":[{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"}],"has_more":false,"first_id":"claude-sonnet-4-5","last_id":"claude-sonnet-4-5"}"#;
        let out: Value =
            serde_json::from_slice(&models_for_both_sdks(body, "anthropic").unwrap()).unwrap();
        assert_eq!(out["object"], "list");
        let model = &out["data"][0];
        assert_eq!(model["object"], "model");
        assert_eq!(model["type"], "model");
        assert_eq!(model["created"], 1_759_104_000);
        assert_eq!(model["owned_by"], "anthropic");
        assert_eq!(model["display_name"], "Claude Sonnet 4.5");
        let one: Value =
            serde_json::from_slice(&models_for_both_sdks(br#"{"id":"m"}"#, "x").unwrap()).unwrap();
        assert_eq!(one["object"], "model");
        assert_eq!(one["display_name"], "m");
        assert!(models_for_both_sdks(b"[]", "x").is_none());
    }
}
