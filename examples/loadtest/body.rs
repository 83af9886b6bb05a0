//! The synthetic request: shaped like Claude Code's `/v1/messages` calls.
//!
//! 24 tools with long descriptions and JSON schemas, a two-block system prompt (the
//! long one with `cache_control`), a conversation with a thinking block (and its
//! signature), a tool use and a long tool result, `cache_control` on the last user
//! block, `thinking`, `metadata.user_id` and `output_config` — about 100 KB, built the
//! same way every run.
//!
//! Real Claude Code traffic resends the same tools, system prompt and growing
//! conversation, each request differing in its tail: [`RequestBody::varying`] is that
//! body plus one more exchange whose final user message is unique to each request
//! ("request N of worker W in phase P" and 1–2 KB of varied words), built from the
//! shared prefix and suffix (serialized once) and a small tail, one copy a request.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};

/// Where the per-request text goes in the varying body's template.
const TAIL_MARKER: &str = "@@LOADTEST-UNIQUE-TAIL@@";

/// The body each stream sends.
pub enum RequestBody {
    /// The same bytes every time.
    Same(Bytes),
    /// Shared prefix, a text unique to the request, shared suffix.
    Varying { prefix: Bytes, suffix: Bytes },
}

impl RequestBody {
    /// The Claude Code body with a final user message unique to each request.
    pub fn varying(model: &str) -> RequestBody {
        let mut body = claude_code_value(model);
        if let Some(messages) = body["messages"].as_array_mut() {
            messages.push(json!({"role": "assistant", "content": [
                {"type": "text", "text": "The test passes now. Anything else?"}
            ]}));
            messages.push(json!({"role": "user", "content": [
                {"type": "text", "text": TAIL_MARKER, "cache_control": {"type": "ephemeral"}}
            ]}));
        }
        let text = serde_json::to_string(&body).expect("a JSON value serializes");
        let at = text
            .find(TAIL_MARKER)
            .expect("the marker is in the template");
        RequestBody::Varying {
            prefix: Bytes::copy_from_slice(&text.as_bytes()[..at]),
            suffix: Bytes::copy_from_slice(&text.as_bytes()[at + TAIL_MARKER.len()..]),
        }
    }

    /// The body of request `n` of a phase (`phase` tells phases apart, so a warm-up's
    /// bodies are not the measured ones'), sent by worker `worker`.
    pub fn get(&self, phase: u64, worker: usize, n: u64) -> Bytes {
        match self {
            RequestBody::Same(body) => body.clone(),
            RequestBody::Varying { prefix, suffix } => {
                let tail = unique_text(phase, worker, n);
                let mut out = BytesMut::with_capacity(prefix.len() + tail.len() + suffix.len());
                out.put_slice(prefix);
                out.put_slice(tail.as_bytes());
                out.put_slice(suffix);
                out.freeze()
            }
        }
    }

    /// The size of a typical body (of request 0; varying ones differ by up to 1 KB).
    pub fn typical_len(&self) -> usize {
        self.get(0, 0, 0).len()
    }

    /// The shared part of a varying body, in bytes (`None` when every body is the same).
    pub fn shared_len(&self) -> Option<usize> {
        match self {
            RequestBody::Same(_) => None,
            RequestBody::Varying { prefix, suffix } => Some(prefix.len() + suffix.len()),
        }
    }
}

/// "request N of worker W in phase P: " and 1–2 KB of words picked by a hash of the
/// three, JSON-safe as it is (no quotes, no backslashes, no control characters).
fn unique_text(phase: u64, worker: usize, n: u64) -> String {
    const WORDS: [&str; 32] = [
        "the",
        "test",
        "fails",
        "because",
        "parser",
        "returns",
        "an",
        "error",
        "when",
        "input",
        "is",
        "empty",
        "please",
        "check",
        "src/lib.rs",
        "and",
        "fix",
        "it",
        "without",
        "breaking",
        "other",
        "callers",
        "also",
        "update",
        "docs",
        "run",
        "cargo",
        "clippy",
        "afterwards",
        "then",
        "commit",
        "changes",
    ];
    let mut state = phase
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((worker as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(n.wrapping_mul(0x94D0_49BB_1331_11EB))
        | 1;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let target = 1024 + (next() % 1024) as usize;
    let mut text = format!("request {n} of worker {worker} in phase {phase}: ");
    while text.len() < target {
        text.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
        text.push(' ');
    }
    text
}

/// The old, identical Claude Code body.
pub fn claude_code_body(model: &str) -> String {
    serde_json::to_string(&claude_code_value(model)).expect("a JSON value serializes")
}

fn claude_code_value(model: &str) -> Value {
    let guidance = "You are an interactive CLI tool that helps users with software engineering \
        tasks. Use the instructions below and the tools available to you to assist the user. ";
    let long = guidance.repeat(19); // ~3.3 KB
    let tools: Vec<Value> = (0..24)
        .map(|i| {
            json!({
                "name": format!("Tool{i}"),
                "description": format!(
                    "{long}\nTool number {i}: reads, writes and searches files with \"care\".\n\
                     Usage:\n- The path parameter must be an absolute path\n- Use limit for long files"
                ),
                "input_schema": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "path": {"type": "string", "description": "The absolute path to the file"},
                        "limit": {"type": "integer", "description": "The number of lines to read"},
                        "offset": {"type": "integer", "description": "The line to start at"},
                        "flags": {"type": "array", "items": {"type": "string"}}
                    },
                    "required": ["path"]
                }
            })
        })
        .collect();
    json!({
        "model": model,
        "max_tokens": 32000,
        "stream": true,
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
            {"type": "text", "text": long.repeat(2), "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": format!("<system-reminder>{}</system-reminder>", long)},
                {"type": "text", "text": "Fix the failing test in src/lib.rs"}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Let me look at the test first.", "signature": "EqQBCgIYAhIMabcdefghijklmnopqrstuvwx"},
                {"type": "tool_use", "id": "toolu_01A", "name": "Tool1", "input": {"path": "/work/src/lib.rs"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": long},
                {"type": "text", "text": "Go on.", "cache_control": {"type": "ephemeral"}}
            ]}
        ],
        "tools": tools,
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "metadata": {"user_id": "user_0123456789abcdef_account__session_6f1e0c2a"},
        "output_config": {"effort": "high"}
    })
}

/// The smallest streaming request: one short user message.
pub fn minimal_body(model: &str) -> String {
    json!({
        "model": model,
        "max_tokens": 1024,
        "stream": true,
        "messages": [{"role": "user", "content": "Hello"}]
    })
    .to_string()
}
