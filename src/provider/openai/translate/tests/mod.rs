//! Tests for the translators, with shared helpers: an OpenAI SSE fixture driver and an
//! Anthropic SSE accumulator that rebuilds the final `Message` while checking the framing.

mod chat;
mod errors;
mod estimate;
mod fuzz;
mod request;
mod response;
mod stream;

use bytes::BytesMut;
use serde_json::{json, Map, Value};

use super::{StreamEnd, StreamError, StreamTranslator};

/// Result of feeding a whole OpenAI SSE fixture through a [`StreamTranslator`].
pub(super) struct Driven {
    /// Every Anthropic frame written, in order.
    pub frames: String,
    /// `(1-based data-line number, error)` for each rejected chunk.
    pub errors: Vec<(usize, StreamError)>,
    /// What `finish` reported.
    pub end: StreamEnd,
}

/// Iterates the payloads of the `data:` lines of an SSE document (single-line data fields).
pub(super) fn data_lines(sse: &str) -> impl Iterator<Item = &str> {
    sse.lines().filter_map(|line| line.strip_prefix("data:"))
}

/// Feeds every `data:` payload of `sse`, then calls `finish`.
pub(super) fn drive(sse: &str, model: &str) -> Driven {
    let mut translator = StreamTranslator::new("msg_test".to_owned(), model.to_owned());
    let mut out = BytesMut::new();
    let mut errors = Vec::new();
    for (i, data) in data_lines(sse).enumerate() {
        if let Err(e) = translator.push_data(data, &mut out) {
            errors.push((i + 1, e));
        }
    }
    let end = translator.finish(&mut out);
    assert!(translator.is_finished());
    Driven {
        frames: String::from_utf8(out.to_vec()).expect("frames are UTF-8"),
        errors,
        end,
    }
}

/// Parses Anthropic SSE `frames` and rebuilds the final message.
///
/// Checks on the way: every frame is exactly `event: NAME\ndata: JSON`; `data.type == NAME`;
/// the stream starts with `message_start`; block indices are 0,1,2… with one block open at a
/// time and deltas only for the open block; nothing follows `message_stop` or `error`.
/// `tool_use` input is parsed from the concatenated `partial_json` at `content_block_stop`
/// (empty → `{}`, unparseable → the raw string). `message_delta` usage fields replace earlier
/// ones. An `error` frame is stored under `"error"`.
pub(super) fn accumulate(frames: &str) -> Value {
    assert!(
        frames.is_empty() || frames.ends_with("\n\n"),
        "stream must end with a blank line"
    );
    let mut message = Value::Null;
    let mut open: Option<usize> = None;
    let mut partial = String::new();
    let mut ended = false;
    for frame in frames.split("\n\n").filter(|f| !f.is_empty()) {
        assert!(!ended, "frame after message_stop/error: {frame}");
        let mut lines = frame.split('\n');
        let name = lines
            .next()
            .and_then(|l| l.strip_prefix("event: "))
            .unwrap_or_else(|| panic!("frame without event line: {frame:?}"));
        let data = lines
            .next()
            .and_then(|l| l.strip_prefix("data: "))
            .unwrap_or_else(|| panic!("frame without data line: {frame:?}"));
        assert!(lines.next().is_none(), "extra lines in frame {frame:?}");
        let data: Value = serde_json::from_str(data).expect("data is JSON");
        assert_eq!(data["type"], name, "event name must equal data.type");
        if name != "message_start" {
            assert!(message.is_object(), "{name} before message_start");
        }
        match name {
            "message_start" => {
                assert!(message.is_null(), "second message_start");
                message = data["message"].clone();
                assert_eq!(message["content"], json!([]));
                assert_eq!(message["stop_reason"], Value::Null);
            }
            "content_block_start" => {
                assert!(open.is_none(), "block started while another is open");
                let content = message["content"].as_array_mut().expect("content array");
                let index = data["index"].as_u64().expect("index") as usize;
                assert_eq!(index, content.len(), "block indices must be sequential");
                content.push(data["content_block"].clone());
                open = Some(index);
                partial.clear();
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().expect("index") as usize;
                assert_eq!(Some(index), open, "delta for a block that is not open");
                let block = &mut message["content"][index];
                let delta = &data["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => append(block, "text", &delta["text"]),
                    Some("thinking_delta") => append(block, "thinking", &delta["thinking"]),
                    Some("signature_delta") => block["signature"] = delta["signature"].clone(),
                    Some("input_json_delta") => {
                        assert_eq!(block["type"], "tool_use");
                        partial.push_str(delta["partial_json"].as_str().expect("partial_json"));
                    }
                    other => panic!("unknown delta type {other:?}"),
                }
            }
            "content_block_stop" => {
                let index = data["index"].as_u64().expect("index") as usize;
                assert_eq!(Some(index), open, "stop for a block that is not open");
                let block = &mut message["content"][index];
                if block["type"] == "tool_use" {
                    block["input"] = if partial.is_empty() {
                        Value::Object(Map::new())
                    } else {
                        serde_json::from_str(&partial).unwrap_or(Value::String(partial.clone()))
                    };
                }
                open = None;
            }
            "message_delta" => {
                assert!(open.is_none(), "message_delta while a block is open");
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                message["stop_sequence"] = data["delta"]["stop_sequence"].clone();
                if let Some(usage) = data["usage"].as_object() {
                    for (k, v) in usage {
                        if !v.is_null() {
                            message["usage"][k] = v.clone();
                        }
                    }
                }
            }
            "message_stop" => {
                assert!(open.is_none(), "message_stop while a block is open");
                ended = true;
            }
            "error" => {
                message["error"] = data["error"].clone();
                ended = true;
            }
            "ping" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    message
}

fn append(block: &mut Value, key: &str, piece: &Value) {
    let piece = piece.as_str().expect("delta text is a string");
    let mut text = block[key].as_str().expect("block text").to_owned();
    text.push_str(piece);
    block[key] = Value::String(text);
}

/// Anthropic usage object with the four fields this module writes.
pub(super) fn usage(input: u64, cache_write: u64, cache_read: u64, output: u64) -> Value {
    json!({
        "input_tokens": input,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output
    })
}

#[test]
fn accumulate_rejects_mismatched_event_names() {
    let bad = "event: message_start\ndata: {\"type\":\"ping\"}\n\n";
    assert!(std::panic::catch_unwind(|| accumulate(bad)).is_err());
}
