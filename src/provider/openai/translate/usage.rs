//! OpenAI usage ⇄ Anthropic usage, and `finish_reason` ⇄ `stop_reason`.

use serde::Serialize;
use serde_json::{json, Value};

use super::json::count_of;

/// Anthropic-shaped token usage (the four fields every `message_delta` carries).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Prompt tokens that were neither read from nor written to the cache.
    pub input_tokens: u64,
    /// Prompt tokens written to the cache (`prompt_tokens_details.cache_write_tokens`).
    pub cache_creation_input_tokens: u64,
    /// Prompt tokens read from the cache.
    pub cache_read_input_tokens: u64,
    /// Completion tokens (reasoning included, as in both APIs).
    pub output_tokens: u64,
}

impl Usage {
    /// Maps an OpenAI `usage` object.
    ///
    /// * cached = the larger of `prompt_tokens_details.cached_tokens` and DeepSeek's
    ///   `prompt_cache_hit_tokens` (both mean the same; DeepSeek sends both);
    /// * `cache_creation_input_tokens` = `prompt_tokens_details.cache_write_tokens` or 0;
    /// * `input_tokens` = `prompt_tokens` − cached − cache-write, clamped at 0;
    /// * `output_tokens` = `completion_tokens`.
    ///
    /// Missing or null fields count as 0. A field that is present but no count (negative,
    /// a string, an object) is held at `u64::MAX`, like a float too large for a count: the
    /// usage tap refuses such a count as unreadable (counted, never priced) instead of
    /// reading a silent 0.
    pub fn from_openai(usage: &Value) -> Self {
        let prompt = count_or_saturated(usage, "prompt_tokens");
        let details = usage.get("prompt_tokens_details");
        let detail = |key: &str| details.map_or(0, |d| count_or_saturated(d, key));
        let cached =
            detail("cached_tokens").max(count_or_saturated(usage, "prompt_cache_hit_tokens"));
        let written = detail("cache_write_tokens");
        Usage {
            input_tokens: prompt.saturating_sub(cached).saturating_sub(written),
            cache_creation_input_tokens: written,
            cache_read_input_tokens: cached,
            output_tokens: count_or_saturated(usage, "completion_tokens"),
        }
    }
}

impl Usage {
    /// Folds an Anthropic `usage` object into this one, as the SDKs accumulate a stream:
    /// each field present (and a count) replaces the one held; `message_start` then each
    /// `message_delta`.
    pub fn merge_anthropic(&mut self, usage: &Value) {
        for (key, field) in [
            ("input_tokens", &mut self.input_tokens),
            (
                "cache_creation_input_tokens",
                &mut self.cache_creation_input_tokens,
            ),
            ("cache_read_input_tokens", &mut self.cache_read_input_tokens),
            ("output_tokens", &mut self.output_tokens),
        ] {
            if let Some(n) = count_of(usage, key) {
                *field = n;
            }
        }
    }

    /// As an OpenAI `usage` object: `prompt_tokens` = input + cache reads + cache writes,
    /// `prompt_tokens_details.cached_tokens` = cache reads (`cache_write_tokens` = cache
    /// writes), `completion_tokens` = output, `total_tokens` = both.
    pub fn to_openai(&self) -> Value {
        let prompt = self
            .input_tokens
            .saturating_add(self.cache_read_input_tokens)
            .saturating_add(self.cache_creation_input_tokens);
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.output_tokens,
            "total_tokens": prompt.saturating_add(self.output_tokens),
            "prompt_tokens_details": {
                "cached_tokens": self.cache_read_input_tokens,
                "cache_write_tokens": self.cache_creation_input_tokens,
            },
        })
    }
}

/// OpenAI `finish_reason` for an Anthropic `stop_reason`: `end_turn`, `stop_sequence` and
/// `pause_turn` → `stop`, `max_tokens` and `model_context_window_exceeded` → `length`,
/// `tool_use` → `tool_calls`, `refusal` → `content_filter`; anything else → `stop`.
pub fn finish_reason_from_stop(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// `v[key]` as a count: 0 when absent or null, `u64::MAX` when present but no count.
fn count_or_saturated(v: &Value, key: &str) -> u64 {
    match v.get(key) {
        None | Some(Value::Null) => 0,
        Some(_) => count_of(v, key).unwrap_or(u64::MAX),
    }
}

/// Anthropic `stop_reason` for an OpenAI `finish_reason`.
///
/// `stop` → `end_turn`, `length` → `max_tokens`, `tool_calls` → `tool_use`,
/// `content_filter` → `refusal`, anything else or none → `end_turn`.
pub fn stop_reason_from_finish(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// The stop reason to report: like [`stop_reason_from_finish`], but a turn that produced
/// `tool_use` blocks and would otherwise say `end_turn` says `tool_use` (some OpenAI-compatible
/// servers report `stop` for tool calls, and Anthropic clients only run tools on `tool_use`).
pub(super) fn effective_stop_reason(
    finish_reason: Option<&str>,
    has_tool_use: bool,
) -> &'static str {
    match stop_reason_from_finish(finish_reason) {
        "end_turn" if has_tool_use => "tool_use",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_openai_cached_and_written_tokens() {
        let u = Usage::from_openai(&json!({
            "prompt_tokens": 100, "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 30}
        }));
        assert_eq!(
            u,
            Usage {
                input_tokens: 10,
                cache_creation_input_tokens: 30,
                cache_read_input_tokens: 60,
                output_tokens: 7
            }
        );
    }

    #[test]
    fn clamps_and_reads_deepseek_hits() {
        let u = Usage::from_openai(&json!({
            "prompt_tokens": 5, "completion_tokens": 1, "prompt_cache_hit_tokens": 9
        }));
        assert_eq!(u.input_tokens, 0);
        assert_eq!(u.cache_read_input_tokens, 9);
        assert_eq!(Usage::from_openai(&json!(null)), Usage::default());
    }

    #[test]
    fn a_value_that_is_no_count_is_held_at_the_maximum_not_read_as_zero() {
        let u = Usage::from_openai(&json!({
            "prompt_tokens": -5, "completion_tokens": "many",
            "prompt_tokens_details": {"cached_tokens": null}
        }));
        assert_eq!(u.input_tokens, u64::MAX);
        assert_eq!(u.output_tokens, u64::MAX);
        assert_eq!(u.cache_read_input_tokens, 0, "null says nothing");
        let cached = Usage::from_openai(&json!({
            "prompt_tokens": 10, "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": [1]}
        }));
        assert_eq!(cached.cache_read_input_tokens, u64::MAX);
    }

    #[test]
    fn anthropic_usage_folds_and_reports_cache_in_the_prompt() {
        let mut u = Usage::default();
        u.merge_anthropic(&json!({"input_tokens": 10, "cache_read_input_tokens": 200,
            "cache_creation_input_tokens": 30, "output_tokens": 1}));
        u.merge_anthropic(&json!({"output_tokens": 42}));
        let chat = u.to_openai();
        assert_eq!(chat["prompt_tokens"], 240);
        assert_eq!(chat["completion_tokens"], 42);
        assert_eq!(chat["total_tokens"], 282);
        assert_eq!(chat["prompt_tokens_details"]["cached_tokens"], 200);
        assert_eq!(chat["prompt_tokens_details"]["cache_write_tokens"], 30);
    }

    #[test]
    fn finish_reasons() {
        for (stop, finish) in [
            (Some("end_turn"), "stop"),
            (Some("stop_sequence"), "stop"),
            (Some("max_tokens"), "length"),
            (Some("tool_use"), "tool_calls"),
            (Some("refusal"), "content_filter"),
            (None, "stop"),
        ] {
            assert_eq!(finish_reason_from_stop(stop), finish, "{stop:?}");
        }
    }

    #[test]
    fn stop_reasons() {
        assert_eq!(stop_reason_from_finish(Some("stop")), "end_turn");
        assert_eq!(stop_reason_from_finish(Some("length")), "max_tokens");
        assert_eq!(stop_reason_from_finish(Some("tool_calls")), "tool_use");
        assert_eq!(stop_reason_from_finish(Some("content_filter")), "refusal");
        assert_eq!(stop_reason_from_finish(Some("function_call")), "end_turn");
        assert_eq!(stop_reason_from_finish(None), "end_turn");
        assert_eq!(effective_stop_reason(Some("stop"), true), "tool_use");
        assert_eq!(effective_stop_reason(Some("length"), true), "max_tokens");
    }
}
