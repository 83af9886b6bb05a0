//! The OpenAI-client direction: chat requests in, Anthropic answers back as chat answers.

use bytes::BytesMut;
use serde_json::{json, Value};

use super::super::{chat_completion_from_message, messages_from_chat, ChunkWriter};

/// Feed an Anthropic SSE document through a [`ChunkWriter`]; the `data:` payloads written.
fn chunks(sse: &str, include_usage: bool) -> Vec<String> {
    let mut writer = ChunkWriter::new(1_700_000_000, include_usage);
    let mut out = BytesMut::new();
    for event in sse.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let name = event
            .lines()
            .find_map(|l| l.strip_prefix("event: "))
            .unwrap_or("message");
        let data = event
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap_or("");
        writer.push_event(name.as_bytes(), data.as_bytes(), &mut out);
    }
    let text = String::from_utf8(out.to_vec()).unwrap();
    text.split("\n\n")
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.strip_prefix("data: ")
                .expect("data lines only")
                .to_owned()
        })
        .collect()
}

fn parsed(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| *l != "[DONE]")
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn text_streams_as_content_then_stop_then_done() {
    let lines = chunks(&fixture("text_basic.sse"), false);
    assert_eq!(lines.last().unwrap(), "[DONE]");
    let chunks = parsed(&lines);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "no usage unless asked"
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!text.is_empty());
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["choices"][0]["delta"], json!({}));
}

#[test]
fn two_parallel_tool_calls_keep_their_own_index_and_every_fragment() {
    let chunks = parsed(&chunks(&fixture("parallel_tools.sse"), true));
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["delta"].get("tool_calls"))
        .map(|calls| &calls[0])
        .collect();
    // start, fragment, fragment for each call: nothing buffered, nothing merged.
    assert_eq!(calls.len(), 6);
    assert_eq!(calls[0]["index"], 0);
    assert_eq!(calls[0]["id"], "toolu_01A");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["arguments"], "");
    assert_eq!(calls[1]["function"]["arguments"], "{\"city\": \"Par");
    assert!(calls[1].get("id").is_none());
    assert_eq!(calls[3]["index"], 1);
    assert_eq!(calls[3]["id"], "toolu_01B");
    let args = |index: u64| -> String {
        calls
            .iter()
            .filter(|c| c["index"] == index)
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect()
    };
    assert_eq!(args(0), r#"{"city": "Paris"}"#);
    assert_eq!(args(1), r#"{"zone": "CET"}"#);
    let finish = chunks
        .iter()
        .find(|c| !c["choices"][0]["finish_reason"].is_null())
        .unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn usage_counts_cache_reads_and_writes_in_the_prompt_as_a_last_empty_choices_chunk() {
    let lines = chunks(&fixture("parallel_tools.sse"), true);
    assert_eq!(lines.last().unwrap(), "[DONE]");
    let chunks = parsed(&lines);
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 940);
    assert_eq!(usage["usage"]["completion_tokens"], 61);
    assert_eq!(usage["usage"]["total_tokens"], 1001);
    assert_eq!(
        usage["usage"]["prompt_tokens_details"]["cached_tokens"],
        800
    );
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["usage"].is_null()));
}

#[test]
fn thinking_becomes_reasoning_content() {
    let chunks = parsed(&chunks(&fixture("thinking_cache.sse"), true));
    let reasoning: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["delta"]["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, "The user wants a haiku.");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens"], 2048 + 3000 + 50000);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 50000);
}

#[test]
fn max_tokens_is_length_and_an_error_event_ends_the_stream_openai_style() {
    let cut = fixture("text_basic.sse").replace("\"end_turn\"", "\"max_tokens\"");
    let cut_chunks = parsed(&chunks(&cut, false));
    assert!(cut_chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "length"));
    let failed = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"usage\":{\"input_tokens\":1}}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let lines = chunks(failed, true);
    assert_ne!(lines.last().unwrap(), "[DONE]");
    let error: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(error["error"]["message"], "Overloaded");
    assert_eq!(error["error"]["code"], "overloaded_error");
}

#[test]
fn a_whole_message_becomes_a_chat_completion() {
    let message = json!({
        "id": "msg_01X", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 20, "output_tokens": 7}
    });
    let out: Value = serde_json::from_slice(
        &chat_completion_from_message(message.to_string().as_bytes(), 9).unwrap(),
    )
    .unwrap();
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["id"], "chatcmpl-01X");
    assert_eq!(out["created"], 9);
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Checking.");
    assert_eq!(choice["message"]["reasoning_content"], "hmm");
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["function"]["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(calls[1]["id"], "toolu_2");
    assert_eq!(out["usage"]["prompt_tokens"], 35);
    assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 10);
    let long = json!({"content": [{"type": "text", "text": "a"}], "stop_reason": "max_tokens"});
    let out: Value = serde_json::from_slice(
        &chat_completion_from_message(long.to_string().as_bytes(), 0).unwrap(),
    )
    .unwrap();
    assert_eq!(out["choices"][0]["finish_reason"], "length");
}

fn translate(request: Value) -> (Value, Option<String>) {
    let t = messages_from_chat(request.to_string().as_bytes()).unwrap();
    (serde_json::from_slice(&t.body).unwrap(), t.untranslatable)
}

#[test]
fn a_chat_request_becomes_messages_field_by_field() {
    let (m, refused) = translate(json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
            {"role": "user", "content": "Thanks"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "stop": "END",
        "max_completion_tokens": 20000,
        "temperature": 0.5,
        "top_p": 0.9,
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
        "reasoning_effort": "high",
        "user": "u-42",
        "seed": 7,
        "stream": true
    }));
    assert_eq!(refused, None);
    assert_eq!(
        m["system"],
        json!([{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}])
    );
    let turns = m["messages"].as_array().unwrap();
    assert_eq!(
        turns.len(),
        3,
        "the tool results and the next user text share one turn"
    );
    assert_eq!(
        turns[0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBOR"})
    );
    assert_eq!(
        turns[0]["content"][2]["source"],
        json!({"type": "url", "url": "https://x.test/a.jpg"})
    );
    assert_eq!(turns[1]["role"], "assistant");
    assert_eq!(
        turns[1]["content"][0],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}})
    );
    assert_eq!(turns[1]["content"][1]["input"], json!({}));
    assert_eq!(
        turns[2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"})
    );
    assert_eq!(
        turns[2]["content"][1]["content"],
        json!([{"type": "text", "text": "noon"}])
    );
    assert_eq!(
        turns[2]["content"][2],
        json!({"type": "text", "text": "Thanks"})
    );
    assert_eq!(
        m["tools"][0]["input_schema"]["properties"]["city"]["type"],
        "string"
    );
    assert_eq!(
        m["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    assert_eq!(m["stop_sequences"], json!(["END"]));
    assert_eq!(m["max_tokens"], 20000);
    assert_eq!(
        m["thinking"],
        json!({"type": "enabled", "budget_tokens": 16384})
    );
    assert_eq!(m["temperature"], 0.5);
    assert_eq!(m["top_p"], 0.9);
    assert_eq!(
        m["output_config"],
        json!({"format": {"type": "json_schema", "schema": {"type": "object"}}})
    );
    assert_eq!(m["metadata"], json!({"user_id": "u-42"}));
    assert_eq!(m["stream"], true);
    assert!(m.get("seed").is_none());
}

#[test]
fn defaults_and_refusals() {
    let (m, refused) =
        translate(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(m["max_tokens"], 4096);
    assert_eq!(refused, None);
    let (m, _) = translate(json!({"model": "m", "reasoning_effort": "low", "messages": []}));
    assert_eq!(m["max_tokens"], 2048 + 4096);
    let (m, _) = translate(
        json!({"model": "m", "tool_choice": {"type": "function", "function": {"name": "f"}}, "messages": []}),
    );
    assert_eq!(m["tool_choice"], json!({"type": "tool", "name": "f"}));
    let (m, _) = translate(
        json!({"model": "m", "tool_choice": "none", "parallel_tool_calls": false, "messages": []}),
    );
    assert_eq!(m["tool_choice"], json!({"type": "none"}));
    for (request, needle) in [
        (json!({"model": "m", "n": 2, "messages": []}), "n:"),
        (
            json!({"model": "m", "logprobs": true, "messages": []}),
            "logprobs",
        ),
        (
            json!({"model": "m", "response_format": {"type": "json_object"}, "messages": []}),
            "json_object",
        ),
        (
            json!({"model": "m", "reasoning_effort": "high", "max_tokens": 500, "messages": []}),
            "reasoning_effort",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "input_audio",
        ),
    ] {
        let (_, refused) = translate(request);
        assert!(
            refused.as_deref().is_some_and(|r| r.contains(needle)),
            "{needle}: {refused:?}"
        );
    }
    for (request, needle) in [
        (
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}]}),
            "arguments",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
            "image_url",
        ),
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            "tool_call_id",
        ),
        (json!({"model": "m", "stop": 3, "messages": []}), "stop"),
        (
            json!({"model": "m", "max_tokens": -1, "messages": []}),
            "max_completion_tokens",
        ),
    ] {
        let error = messages_from_chat(request.to_string().as_bytes()).unwrap_err();
        assert!(error.message().contains(needle), "{needle}: {error}");
    }
}
