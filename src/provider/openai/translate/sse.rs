//! Anthropic streaming events and their SSE framing (`event: NAME\ndata: JSON\n\n`).

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use super::usage::Usage;

/// `{}` — the initial `input` of a `tool_use` block.
#[derive(Serialize)]
pub(super) struct EmptyObject {}

/// The message skeleton carried by `message_start`.
#[derive(Serialize)]
pub(super) struct StartMessage<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: &'a str,
    pub content: [EmptyObject; 0],
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<&'static str>,
    pub usage: Usage,
}

/// `content_block_start.content_block`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum BlockStart<'a> {
    Text {
        text: &'static str,
    },
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: EmptyObject,
    },
}

/// `content_block_delta.delta`.
#[derive(Serialize)]
#[serde(tag = "type")]
pub(super) enum Delta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

/// `message_delta.delta`.
#[derive(Serialize)]
pub(super) struct MessageDeltaBody {
    pub stop_reason: &'static str,
    pub stop_sequence: Option<&'static str>,
}

/// One Anthropic stream event; the serde tag is also the SSE event name.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Event<'a> {
    MessageStart {
        message: StartMessage<'a>,
    },
    ContentBlockStart {
        index: usize,
        content_block: BlockStart<'a>,
    },
    ContentBlockDelta {
        index: usize,
        delta: Delta<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        usage: Usage,
    },
    MessageStop,
}

impl Event<'_> {
    /// The SSE `event:` name (equal to the JSON `type`).
    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
        }
    }
}

/// Appends `event: NAME\ndata: JSON\n\n` (compact JSON) to `out`.
pub(super) fn write_event(out: &mut BytesMut, event: &Event<'_>) {
    // Serializing these plain structs cannot fail; if it ever did, no partial frame is written.
    if let Ok(json) = serde_json::to_string(event) {
        write_frame(out, event.name(), &json);
    }
}

/// Appends one raw frame; `data` must be single-line JSON.
pub(super) fn write_frame(out: &mut BytesMut, name: &str, data: &str) {
    out.reserve(name.len() + data.len() + 16);
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
    out.put_slice(data.as_bytes());
    out.put_slice(b"\n\n");
}
