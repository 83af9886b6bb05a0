//! Small lenient accessors over `serde_json::Value` shared by the translators.

use serde_json::{Map, Value};

use super::error::TranslateError;

/// Parses `bytes` as a JSON object; `what` names the document in the error message.
pub(super) fn parse_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, TranslateError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| TranslateError::new(format!("{what} is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(TranslateError::new(format!(
            "{what} must be a JSON object, got {}",
            kind(&other)
        ))),
    }
}

/// A human name for the JSON type of `v`, for error messages.
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `v[key]` as a string, if it is one.
pub(super) fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// `v[key]` as a non-empty string.
pub(super) fn non_empty_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    str_of(v, key).filter(|s| !s.is_empty())
}

/// `v[key]` as a token count: a non-negative integer, or a non-negative finite float (floored).
pub(super) fn count_of(v: &Value, key: &str) -> Option<u64> {
    let n = v.get(key)?;
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    let f = n.as_f64()?;
    if f.is_finite() && f >= 0.0 {
        // Saturating float-to-int conversion; token counts never approach u64::MAX.
        Some(f.floor() as u64)
    } else {
        None
    }
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a char boundary.
pub(super) fn truncate_chars(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "h");
        assert_eq!(truncate_chars("héllo", 3), "hé");
        assert_eq!(truncate_chars("abc", 10), "abc");
        assert_eq!(truncate_chars("日本", 1), "");
    }

    #[test]
    fn counts_accept_ints_and_floats_only() {
        let v = json!({"a": 3, "b": 2.9, "c": -1, "d": "7", "e": null});
        assert_eq!(count_of(&v, "a"), Some(3));
        assert_eq!(count_of(&v, "b"), Some(2));
        assert_eq!(count_of(&v, "c"), None);
        assert_eq!(count_of(&v, "d"), None);
        assert_eq!(count_of(&v, "e"), None);
        assert_eq!(count_of(&v, "missing"), None);
    }

    #[test]
    fn parse_object_rejects_non_objects() {
        assert!(parse_object(b"[1]", "body").is_err());
        assert!(parse_object(b"{", "body").is_err());
        assert!(parse_object(b"{}", "body").is_ok());
    }
}
