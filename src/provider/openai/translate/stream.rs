//! Streaming: OpenAI `chat.completion.chunk`s → Anthropic SSE frames.
//!
//! * `message_start` (the input estimate given with [`StreamTranslator::with_input_estimate`],
//!   other usage zeros) is written on the first parsed, non-error chunk.
//! * Chunks with empty `choices` only contribute `usage` (Azure annotation frames are skipped).
//!   Only the choice with `index` 0 is read (the gateway never asks for `n > 1`).
//! * Within a chunk the order is: reasoning, `content`, `refusal`, `tool_calls`, `finish_reason`,
//!   so a chunk carrying content *and* `finish_reason` is split correctly (step 9).
//! * Reasoning (`reasoning_content` from DeepSeek, `reasoning` from Ollama, or `thinking`) → a
//!   `thinking` block of `thinking_delta`s. No signature is known, so no `signature_delta` is
//!   written (the block starts with `signature:""`); none is invented.
//! * `content` and `refusal` text → a `text` block of `text_delta`s.
//! * Tool calls, keyed by OpenAI `index`: see [`StreamTranslator`] for the one-open-block strategy.
//! * `finish_reason` closes the open block and *holds* the `message_delta`; it is written, with
//!   `message_stop`, when a chunk at or after the finish carries `usage`, on `[DONE]`, or in
//!   [`StreamTranslator::finish`] — whichever comes first. Later input is ignored.

use bytes::BytesMut;
use serde_json::Value;

use super::error::StreamError;
use super::error_body::inband_error_json;
use super::json::{kind, non_empty_str};
use super::sse::{
    write_event, write_frame, BlockStart, Delta, EmptyObject, Event, MessageDeltaBody, StartMessage,
};
use super::usage::{effective_stop_reason, Usage};

/// How the upstream stream ended, as reported by [`StreamTranslator::finish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// A `finish_reason` was seen: the upstream finished the message.
    Complete,
    /// No `finish_reason` arrived (cut stream); the frames were closed off with `end_turn`.
    Incomplete,
}

/// Which kind of block is open, and its Anthropic index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Text(usize),
    Thinking(usize),
    /// A streaming `tool_use` block and the position of its call in `calls`.
    Tool {
        block: usize,
        call: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallState {
    /// Fragments are buffered in `pending` (another tool block is open, or no name yet).
    Held,
    /// Its block is the open block; fragments are written as they arrive.
    Live,
    /// Its block is closed; late fragments are dropped.
    Done,
}

#[derive(Debug)]
struct ToolCall {
    openai_index: u64,
    id: Option<String>,
    name: Option<String>,
    pending: String,
    state: CallState,
}

/// State machine translating one OpenAI chat-completions stream into Anthropic SSE frames.
///
/// **Tool calls.** Anthropic allows one open block at a time, OpenAI interleaves parallel calls
/// freely. The first call that has a name becomes the *live* block and its `arguments` fragments
/// are streamed as `input_json_delta`s. Fragments of any other call are *held* (buffered, keyed
/// by OpenAI `index`) until the live block ends — at `finish_reason`, end of stream, or when text
/// or reasoning starts — and each held call is then written whole: `content_block_start`, one
/// `input_json_delta` with all its arguments, `content_block_stop`. This is correct for any
/// interleaving; block order is the order in which calls became writable. A fragment arriving for
/// a call whose block was already closed (only possible if text interrupts a call) is dropped.
/// Ollama's whole-call chunks simply become a live block with one delta. A call with no `id`
/// gets `call_<message id>_<openai index>`; a call that never received a name is written as
/// `tool_<openai index>`. Calls without an `index` attach to the call with the same `id`, or
/// to the most recent call when they carry no `id`. A first fragment that reuses an `index`
/// with a different `id` after that call was complete starts a new call.
#[derive(Debug)]
pub struct StreamTranslator {
    message_id: String,
    model: String,
    started: bool,
    finished: bool,
    next_block: usize,
    open: Option<Open>,
    calls: Vec<ToolCall>,
    /// OpenAI index → position in `calls` of the latest call with that index.
    by_index: Vec<(u64, usize)>,
    wrote_tool_use: bool,
    finish_reason: Option<String>,
    saw_finish: bool,
    usage: Option<Usage>,
    raw_usage: Option<Value>,
    /// Input tokens reported in `message_start` (a local estimate; 0 when none).
    input_estimate: u64,
}

impl StreamTranslator {
    /// `message_id` like `"msg_…"` supplied by the caller; `model` = model name to report.
    pub fn new(message_id: String, model: String) -> Self {
        Self {
            message_id,
            model,
            started: false,
            finished: false,
            next_block: 0,
            open: None,
            calls: Vec::new(),
            by_index: Vec::new(),
            wrote_tool_use: false,
            finish_reason: None,
            saw_finish: false,
            usage: None,
            raw_usage: None,
            input_estimate: 0,
        }
    }

    /// Report `tokens` as the input in `message_start`: OpenAI-kind upstreams count usage
    /// only at the end, and clients that show the context size read `message_start`. The
    /// real figures follow in the final `message_delta` usage, input included.
    pub fn with_input_estimate(mut self, tokens: u64) -> Self {
        self.input_estimate = tokens;
        self
    }

    /// Feeds the payload of one SSE `data:` field (without the `data:` prefix; surrounding
    /// whitespace is ignored): a `chat.completion.chunk` object or `[DONE]`. Complete frames are
    /// appended to `out`.
    ///
    /// An object with a non-null `error` member is an in-band upstream error:
    /// [`StreamError::Upstream`] carries the Anthropic-shaped error body and nothing is written
    /// (the caller decides between fallback and an `event: error` frame, see
    /// [`write_error`](Self::write_error)). Non-JSON or non-object data →
    /// [`StreamError::Malformed`], also without output; the translator stays usable.
    /// Empty data and anything after `message_stop` are ignored.
    pub fn push_data(&mut self, data: &str, out: &mut BytesMut) -> Result<(), StreamError> {
        if self.finished {
            return Ok(());
        }
        let data = data.trim();
        if data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            self.write_end(out);
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| {
            StreamError::Malformed(format!(
                "chunk of {} bytes is not valid JSON: {e}",
                data.len()
            ))
        })?;
        if !chunk.is_object() {
            return Err(StreamError::Malformed(format!(
                "chunk must be a JSON object, got {}",
                kind(&chunk)
            )));
        }
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            return Err(StreamError::Upstream {
                error_json: inband_error_json(error),
            });
        }
        let choices = match chunk.get("choices") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(list)) => list.as_slice(),
            Some(other) => {
                return Err(StreamError::Malformed(format!(
                    "chunk choices must be an array, got {}",
                    kind(other)
                )))
            }
        };

        self.start(out);
        let usage = chunk.get("usage").filter(|u| u.is_object());
        if let Some(usage) = usage {
            self.usage = Some(Usage::from_openai(usage));
            self.raw_usage = Some(usage.clone());
        }
        let choice = choices
            .iter()
            .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0);
        if let Some(choice) = choice {
            self.apply_choice(choice, out);
        }
        if usage.is_some() && self.saw_finish {
            self.write_end(out);
        }
        Ok(())
    }

    /// The upstream ended (EOF, or after `[DONE]`). Writes whatever is still owed — closes the
    /// open block, writes held tool calls, the `message_delta` (with usage if it arrived, zeros
    /// otherwise; `end_turn` if no `finish_reason` came) and `message_stop` — unless
    /// `message_stop` was already written. Returns [`StreamEnd::Complete`] iff a `finish_reason`
    /// was seen.
    pub fn finish(&mut self, out: &mut BytesMut) -> StreamEnd {
        self.write_end(out);
        if self.saw_finish {
            StreamEnd::Complete
        } else {
            StreamEnd::Incomplete
        }
    }

    /// True once `message_stop` (or an `error` frame via [`write_error`](Self::write_error)) has
    /// been written; further input is ignored.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// True once `message_start` has been written (from then on, falling back to another
    /// provider would duplicate output for the client).
    pub fn has_started(&self) -> bool {
        self.started
    }

    /// Writes `event: error` with `error_json` (e.g. from [`StreamError::Upstream`]) and ends
    /// the translator: no `message_delta`/`message_stop` follows.
    /// `error_json` must be compact, single-line JSON (what this module produces).
    pub fn write_error(&mut self, error_json: &[u8], out: &mut BytesMut) {
        if self.finished {
            return;
        }
        write_frame(out, "error", &String::from_utf8_lossy(error_json));
        self.finished = true;
    }

    /// Usage mapped from the latest upstream `usage` object, if any arrived.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The latest raw upstream `usage` object (for audit logs that keep provider fields).
    pub fn raw_usage(&self) -> Option<&Value> {
        self.raw_usage.as_ref()
    }

    /// The upstream `finish_reason`, once seen.
    pub fn finish_reason(&self) -> Option<&str> {
        self.finish_reason.as_deref()
    }

    fn start(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let message = StartMessage {
            id: &self.message_id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage: Usage {
                input_tokens: self.input_estimate,
                ..Usage::default()
            },
        };
        write_event(out, &Event::MessageStart { message });
    }

    fn apply_choice(&mut self, choice: &Value, out: &mut BytesMut) {
        if let Some(delta) = choice.get("delta").filter(|d| d.is_object()) {
            let reasoning = ["reasoning_content", "reasoning", "thinking"]
                .iter()
                .find_map(|k| non_empty_str(delta, k));
            if let Some(text) = reasoning {
                self.thinking_delta(text, out);
            }
            for key in ["content", "refusal"] {
                if let Some(text) = non_empty_str(delta, key) {
                    self.text_delta(text, out);
                }
            }
            if let Some(Value::Array(calls)) = delta.get("tool_calls") {
                for call in calls {
                    self.tool_fragment(call, out);
                }
            }
        }
        if let Some(reason) = non_empty_str(choice, "finish_reason") {
            self.close_all(out);
            self.saw_finish = true;
            self.finish_reason = Some(reason.to_owned());
        }
    }

    fn thinking_delta(&mut self, text: &str, out: &mut BytesMut) {
        let index = match self.open {
            Some(Open::Thinking(index)) => index,
            _ => {
                self.close_all(out);
                let index = self.open_block(
                    BlockStart::Thinking {
                        thinking: "",
                        signature: "",
                    },
                    out,
                );
                self.open = Some(Open::Thinking(index));
                index
            }
        };
        let delta = Delta::Thinking { thinking: text };
        write_event(out, &Event::ContentBlockDelta { index, delta });
    }

    fn text_delta(&mut self, text: &str, out: &mut BytesMut) {
        let index = match self.open {
            Some(Open::Text(index)) => index,
            _ => {
                self.close_all(out);
                let index = self.open_block(BlockStart::Text { text: "" }, out);
                self.open = Some(Open::Text(index));
                index
            }
        };
        write_event(
            out,
            &Event::ContentBlockDelta {
                index,
                delta: Delta::Text { text },
            },
        );
    }

    /// Handles one `delta.tool_calls[]` entry.
    fn tool_fragment(&mut self, fragment: &Value, out: &mut BytesMut) {
        let id = non_empty_str(fragment, "id");
        let function = fragment.get("function");
        let name = function.and_then(|f| non_empty_str(f, "name"));
        let arguments = match function.and_then(|f| f.get("arguments")) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(), // some servers send the object itself
        };
        let Some(pos) = self.resolve_call(fragment.get("index").and_then(Value::as_u64), id) else {
            return;
        };
        let Some(call) = self.calls.get_mut(pos) else {
            return;
        };
        match call.state {
            CallState::Done => {}
            CallState::Live => {
                if let Some(Open::Tool { block, .. }) = self.open {
                    if !arguments.is_empty() {
                        write_event(
                            out,
                            &Event::ContentBlockDelta {
                                index: block,
                                delta: Delta::InputJson {
                                    partial_json: &arguments,
                                },
                            },
                        );
                    }
                }
            }
            CallState::Held => {
                if call.id.is_none() {
                    call.id = id.map(str::to_owned);
                }
                if call.name.is_none() {
                    call.name = name.map(str::to_owned);
                }
                call.pending.push_str(&arguments);
                let startable = call.name.is_some();
                if startable && !matches!(self.open, Some(Open::Tool { .. })) {
                    self.close_open(out);
                    self.write_call(pos, out, true);
                }
            }
        }
    }

    /// Finds (or creates) the call a fragment belongs to.
    fn resolve_call(&mut self, index: Option<u64>, id: Option<&str>) -> Option<usize> {
        let existing = match index {
            Some(i) => self
                .by_index
                .iter()
                .rev()
                .find(|(k, _)| *k == i)
                .map(|(_, p)| *p),
            None => match id {
                Some(id) => self.calls.iter().rposition(|c| c.id.as_deref() == Some(id)),
                None => self.calls.len().checked_sub(1),
            },
        };
        if let (Some(pos), Some(new_id)) = (existing, id) {
            let reused = self.calls.get(pos).is_some_and(|c| {
                c.id.as_deref().is_some_and(|old| old != new_id)
                    && c.name.is_some()
                    && (c.state != CallState::Held || !c.pending.is_empty())
            });
            if !reused {
                return Some(pos);
            }
        } else if existing.is_some() {
            return existing;
        }
        let openai_index = index.unwrap_or_else(|| {
            self.calls
                .iter()
                .map(|c| c.openai_index + 1)
                .max()
                .unwrap_or(0)
        });
        self.calls.push(ToolCall {
            openai_index,
            id: None,
            name: None,
            pending: String::new(),
            state: CallState::Held,
        });
        let pos = self.calls.len() - 1;
        self.by_index.push((openai_index, pos));
        Some(pos)
    }

    /// Starts the block of held call `pos` and writes its buffered arguments; leaves it open
    /// (live) when `keep_open`, otherwise closes it.
    fn write_call(&mut self, pos: usize, out: &mut BytesMut, keep_open: bool) {
        let Some(call) = self.calls.get(pos) else {
            return;
        };
        let id = call
            .id
            .clone()
            .unwrap_or_else(|| format!("call_{}_{}", self.message_id, call.openai_index));
        let name = call
            .name
            .clone()
            .unwrap_or_else(|| format!("tool_{}", call.openai_index));
        let pending = std::mem::take(&mut self.calls[pos].pending);
        let block = self.open_block(
            BlockStart::ToolUse {
                id: &id,
                name: &name,
                input: EmptyObject {},
            },
            out,
        );
        self.wrote_tool_use = true;
        if !pending.is_empty() {
            write_event(
                out,
                &Event::ContentBlockDelta {
                    index: block,
                    delta: Delta::InputJson {
                        partial_json: &pending,
                    },
                },
            );
        }
        if keep_open {
            self.calls[pos].state = CallState::Live;
            self.open = Some(Open::Tool { block, call: pos });
        } else {
            self.calls[pos].state = CallState::Done;
            write_event(out, &Event::ContentBlockStop { index: block });
        }
    }

    fn open_block(&mut self, content_block: BlockStart<'_>, out: &mut BytesMut) -> usize {
        let index = self.next_block;
        self.next_block += 1;
        write_event(
            out,
            &Event::ContentBlockStart {
                index,
                content_block,
            },
        );
        index
    }

    /// Closes the open block, if any.
    fn close_open(&mut self, out: &mut BytesMut) {
        let Some(open) = self.open.take() else {
            return;
        };
        let index = match open {
            Open::Text(i) | Open::Thinking(i) => i,
            Open::Tool { block, call } => {
                if let Some(c) = self.calls.get_mut(call) {
                    c.state = CallState::Done;
                }
                block
            }
        };
        write_event(out, &Event::ContentBlockStop { index });
    }

    /// Closes the open block and writes every held tool call whole.
    fn close_all(&mut self, out: &mut BytesMut) {
        self.close_open(out);
        for pos in 0..self.calls.len() {
            if self.calls[pos].state == CallState::Held {
                self.write_call(pos, out, false);
            }
        }
    }

    /// Writes the (held) `message_delta` and `message_stop`, once.
    fn write_end(&mut self, out: &mut BytesMut) {
        if self.finished {
            return;
        }
        self.start(out);
        self.close_all(out);
        let stop_reason = if self.saw_finish {
            effective_stop_reason(self.finish_reason.as_deref(), self.wrote_tool_use)
        } else {
            "end_turn"
        };
        write_event(
            out,
            &Event::MessageDelta {
                delta: MessageDeltaBody {
                    stop_reason,
                    stop_sequence: None,
                },
                usage: self.usage.unwrap_or_default(),
            },
        );
        write_event(out, &Event::MessageStop);
        self.finished = true;
    }
}
