//! Anthropic SSE events → OpenAI `chat.completion.chunk` lines, one event at a time (the
//! way back to OpenAI clients; [`StreamTranslator`](super::StreamTranslator) is the way in
//! from OpenAI upstreams).
//!
//! Each event is written as soon as it arrives, never held: the first `message_start`
//! gives the role chunk; text deltas → `delta.content`; thinking deltas →
//! `delta.reasoning_content`; a `tool_use` block start → a tool call with its own `index`
//! (0, 1, … in block order), `id`, `type` and `function.name` with empty arguments; each
//! `input_json_delta` → that index's `function.arguments` fragment as it came;
//! `message_delta` → an empty delta with the `finish_reason`; `message_stop` → the usage
//! chunk with empty `choices` (when the client asked for it), then `data: [DONE]`. An
//! in-band `error` event becomes a data line with an OpenAI `error` object, and ends the
//! stream (no `[DONE]`: the OpenAI SDKs raise it).

use bytes::{BufMut, BytesMut};
use serde_json::{json, Value};

use super::chat_error::{openai_error_type, write_error_line};
use super::json::str_of;
use super::usage::{finish_reason_from_stop, Usage};

/// Turns one Anthropic event stream into chat-completion chunks.
#[derive(Debug)]
pub struct ChunkWriter {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    usage: Usage,
    /// OpenAI tool-call index of each `tool_use` block, by Anthropic block index.
    tool_calls: Vec<(u64, u32)>,
    done: bool,
}

impl ChunkWriter {
    /// A writer for a stream created at `created` (unix seconds), writing the usage chunk
    /// when `include_usage`.
    pub fn new(created: u64, include_usage: bool) -> Self {
        Self {
            id: "chatcmpl-gateway".into(),
            model: String::new(),
            created,
            include_usage,
            usage: Usage::default(),
            tool_calls: Vec::new(),
            done: false,
        }
    }

    /// Whether the stream has ended (`[DONE]` or an error line written).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Translate one event (its `event:` name and its data) into `out`. Unknown events,
    /// `ping` and data that is not JSON are skipped (the provider checks the stream).
    pub fn push_event(&mut self, name: &[u8], data: &[u8], out: &mut BytesMut) {
        if self.done {
            return;
        }
        let Ok(event) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        let name = match std::str::from_utf8(name) {
            Ok("message") | Err(_) => str_of(&event, "type").unwrap_or(""),
            Ok(name) => name,
        };
        match name {
            "message_start" => {
                let message = event.get("message").unwrap_or(&Value::Null);
                if let Some(id) = str_of(message, "id") {
                    self.id = format!("chatcmpl-{}", id.trim_start_matches("msg_"));
                }
                if let Some(model) = str_of(message, "model") {
                    self.model = model.to_owned();
                }
                if let Some(usage) = message.get("usage") {
                    self.usage.merge_anthropic(usage);
                }
                self.chunk(json!({"role": "assistant", "content": ""}), None, out);
            }
            "content_block_start" => {
                let block = event.get("content_block").unwrap_or(&Value::Null);
                if str_of(block, "type") == Some("tool_use") {
                    let Some(index) = event.get("index").and_then(Value::as_u64) else {
                        return;
                    };
                    let call = u32::try_from(self.tool_calls.len()).unwrap_or(u32::MAX);
                    self.tool_calls.push((index, call));
                    let tool_call = json!({
                        "index": call,
                        "id": str_of(block, "id").unwrap_or(""),
                        "type": "function",
                        "function": {"name": str_of(block, "name").unwrap_or(""), "arguments": ""},
                    });
                    self.chunk(json!({"tool_calls": [tool_call]}), None, out);
                }
            }
            "content_block_delta" => self.delta(&event, out),
            "message_delta" => {
                if let Some(usage) = event.get("usage") {
                    self.usage.merge_anthropic(usage);
                }
                let stop = event.get("delta").and_then(|d| str_of(d, "stop_reason"));
                self.chunk(json!({}), Some(finish_reason_from_stop(stop)), out);
            }
            "message_stop" => {
                if self.include_usage {
                    let usage = json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "choices": [], "usage": self.usage.to_openai(),
                    });
                    write_data(out, &usage);
                }
                out.put_slice(b"data: [DONE]\n\n");
                self.done = true;
            }
            "error" => {
                let error = event.get("error").unwrap_or(&Value::Null);
                let kind = str_of(error, "type").unwrap_or("api_error");
                let message = str_of(error, "message").unwrap_or("the upstream failed");
                self.fail(kind, message, out);
            }
            _ => {}
        }
    }

    /// End the stream with an error line (the Anthropic error type `kind`).
    pub fn fail(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        if self.done {
            return;
        }
        write_error_line(out, openai_error_type(kind), kind, message);
        self.done = true;
    }

    fn delta(&mut self, event: &Value, out: &mut BytesMut) {
        let delta = event.get("delta").unwrap_or(&Value::Null);
        match str_of(delta, "type") {
            Some("text_delta") => {
                if let Some(text) = str_of(delta, "text").filter(|t| !t.is_empty()) {
                    self.chunk(json!({"content": text}), None, out);
                }
            }
            Some("thinking_delta") => {
                if let Some(text) = str_of(delta, "thinking").filter(|t| !t.is_empty()) {
                    self.chunk(json!({"reasoning_content": text}), None, out);
                }
            }
            Some("input_json_delta") => {
                let index = event.get("index").and_then(Value::as_u64);
                let call = self
                    .tool_calls
                    .iter()
                    .find(|(block, _)| Some(*block) == index)
                    .map(|(_, call)| *call);
                let fragment = str_of(delta, "partial_json").unwrap_or("");
                if let (Some(call), false) = (call, fragment.is_empty()) {
                    let tool_call = json!({"index": call, "function": {"arguments": fragment}});
                    self.chunk(json!({"tool_calls": [tool_call]}), None, out);
                }
            }
            _ => {}
        }
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>, out: &mut BytesMut) {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        write_data(out, &chunk);
    }
}

/// `data: <json>` and the blank line.
fn write_data(out: &mut BytesMut, value: &Value) {
    out.put_slice(b"data: ");
    // Writing a `Value` into memory cannot fail.
    let _ = serde_json::to_writer((&mut *out).writer(), value);
    out.put_slice(b"\n\n");
}
