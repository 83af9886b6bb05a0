//! The synthetic request: shaped like Claude Code's `/v1/messages` calls.
//!
//! 24 tools with long descriptions and JSON schemas, a two-block system prompt (the
//! long one with `cache_control`), a conversation with a thinking block (and its
//! signature), a tool use and a long tool result, `cache_control` on the last user
//! block, `thinking`, `metadata.user_id` and `output_config` — about 100 KB, built the
//! same way every run.

use serde_json::{json, Value};

pub fn claude_code_body(model: &str) -> String {
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
    let body = json!({
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
    });
    serde_json::to_string(&body).expect("a JSON value serializes")
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
