//! Streaming translation against the fixtures of protocols §2–§4.

use bytes::BytesMut;
use serde_json::{json, Value};

use super::super::{StreamEnd, StreamError, StreamTranslator};
use super::{accumulate, data_lines, drive, usage};

const TEXT: &str = include_str!("../fixtures/openai_text.sse");
const TEXT_GOLDEN: &str = include_str!("../fixtures/openai_text.expected.sse");
const PARALLEL_TOOLS: &str = include_str!("../fixtures/openai_parallel_tools.sse");
const LENGTH: &str = include_str!("../fixtures/openai_length.sse");
const AZURE: &str = include_str!("../fixtures/azure_content_filter.sse");
const DEEPSEEK: &str = include_str!("../fixtures/deepseek_reasoning.sse");
const OLLAMA: &str = include_str!("../fixtures/ollama_tool_call.sse");
const INCOMPLETE: &str = include_str!("../fixtures/openai_incomplete.sse");
const INBAND_ERROR: &str = include_str!("../fixtures/openai_inband_error.sse");
const MALFORMED: &str = include_str!("../fixtures/openai_malformed.sse");

fn message(model: &str, content: Value, stop_reason: &str, usage: Value) -> Value {
    json!({
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage
    })
}

#[test]
fn text_stream_with_cached_usage() {
    let run = drive(TEXT, "gpt-4o");
    assert!(run.errors.is_empty());
    assert_eq!(run.end, StreamEnd::Complete);
    assert_eq!(
        accumulate(&run.frames),
        message(
            "gpt-4o",
            json!([{"type": "text", "text": "Hello, world — \"ok\"\n"}]),
            "end_turn",
            usage(176, 0, 1024, 5)
        )
    );
}

#[test]
fn text_stream_golden_bytes() {
    let mut translator = StreamTranslator::new("msg_01golden".to_owned(), "gpt-4o".to_owned());
    let mut out = BytesMut::new();
    for data in data_lines(TEXT) {
        translator.push_data(data, &mut out).expect("valid chunk");
    }
    // [DONE] already wrote message_stop; finish must add nothing.
    assert!(translator.is_finished());
    let before = out.len();
    assert_eq!(translator.finish(&mut out), StreamEnd::Complete);
    assert_eq!(out.len(), before);
    assert_eq!(std::str::from_utf8(&out).expect("utf-8"), TEXT_GOLDEN);
}

#[test]
fn message_delta_is_held_until_the_usage_chunk() {
    let mut translator = StreamTranslator::new("msg_h".to_owned(), "m".to_owned());
    let mut out = BytesMut::new();
    let lines: Vec<&str> = data_lines(TEXT).collect();
    for data in &lines[..5] {
        translator.push_data(data, &mut out).expect("valid chunk");
    }
    let so_far = std::str::from_utf8(&out).expect("utf-8");
    assert!(so_far.ends_with(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    ));
    assert!(!so_far.contains("message_delta"));
    assert!(!translator.is_finished());
    translator
        .push_data(lines[5], &mut out)
        .expect("usage chunk");
    assert!(translator.is_finished());
    assert!(std::str::from_utf8(&out)
        .expect("utf-8")
        .ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    assert_eq!(translator.finish_reason(), Some("stop"));
    assert_eq!(
        translator.raw_usage().and_then(|u| u.get("total_tokens")),
        Some(&json!(1205))
    );
}

#[test]
fn parallel_tool_calls_become_sequential_tool_use_blocks() {
    let run = drive(PARALLEL_TOOLS, "gpt-4o");
    assert!(run.errors.is_empty());
    assert_eq!(run.end, StreamEnd::Complete);
    assert_eq!(
        accumulate(&run.frames),
        message(
            "gpt-4o",
            json!([
                {"type": "tool_use", "id": "call_w1", "name": "get_weather",
                 "input": {"city": "San Francisco", "unit": "c"}},
                {"type": "tool_use", "id": "call_t2", "name": "get_time",
                 "input": {"timezone": "America/Los_Angeles"}}
            ]),
            "tool_use",
            usage(80, 0, 0, 40)
        )
    );
    // The first call streams live (one delta per non-empty fragment); the held second call is
    // written whole after the first block stops.
    assert_eq!(run.frames.matches("input_json_delta").count(), 5);
    let first_stop = run
        .frames
        .find("\"content_block_stop\",\"index\":0")
        .expect("stop 0");
    let second_start = run
        .frames
        .find("\"content_block_start\",\"index\":1")
        .expect("start 1");
    assert!(first_stop < second_start);
}

#[test]
fn interleaved_parallel_fragments_are_held_not_mixed() {
    let chunks = [
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\":"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","type":"function","function":{"name":"g","arguments":"{\"y\""}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}},{"index":1,"function":{"arguments":":2}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        "[DONE]",
    ];
    let mut translator = StreamTranslator::new("msg_i".to_owned(), "m".to_owned());
    let mut out = BytesMut::new();
    for chunk in chunks {
        translator.push_data(chunk, &mut out).expect("valid chunk");
    }
    let msg = accumulate(std::str::from_utf8(&out).expect("utf-8"));
    assert_eq!(
        msg["content"],
        json!([
            {"type": "tool_use", "id": "a", "name": "f", "input": {"x": 1}},
            {"type": "tool_use", "id": "b", "name": "g", "input": {"y": 2}}
        ])
    );
    assert_eq!(msg["stop_reason"], "tool_use");
    assert_eq!(msg["usage"], usage(0, 0, 0, 0));
}

#[test]
fn length_then_usage_only_chunk() {
    let run = drive(LENGTH, "gpt-4o-mini");
    assert!(run.errors.is_empty());
    assert_eq!(run.end, StreamEnd::Complete);
    assert_eq!(
        accumulate(&run.frames),
        message(
            "gpt-4o-mini",
            json!([{"type": "text", "text": "Once upon a time"}]),
            "max_tokens",
            usage(17, 0, 0, 3)
        )
    );
}

#[test]
fn azure_annotations_are_skipped_and_content_filter_is_a_refusal() {
    let run = drive(AZURE, "my-gpt4o-deployment");
    assert!(run.errors.is_empty());
    assert_eq!(run.end, StreamEnd::Complete);
    assert_eq!(
        accumulate(&run.frames),
        message(
            "my-gpt4o-deployment",
            json!([{"type": "text", "text": "Here is the first part of a longer answer, and then"}]),
            "refusal",
            usage(31, 0, 0, 12)
        )
    );
    // Nothing but message_start may come out of the leading annotation frame.
    let mut translator = StreamTranslator::new("msg_a".to_owned(), "m".to_owned());
    let mut out = BytesMut::new();
    let first = data_lines(AZURE).next().expect("first line");
    translator
        .push_data(first, &mut out)
        .expect("annotation frame");
    let text = std::str::from_utf8(&out).expect("utf-8");
    assert_eq!(text.matches("event: ").count(), 1);
    assert!(text.starts_with("event: message_start\n"));
}

#[test]
fn deepseek_reasoning_becomes_a_thinking_block() {
    let run = drive(DEEPSEEK, "deepseek-v4-flash");
    assert!(run.errors.is_empty());
    assert_eq!(run.end, StreamEnd::Complete);
    assert_eq!(
        accumulate(&run.frames),
        message(
            "deepseek-v4-flash",
            json!([
                {"type": "thinking",
                 "thinking": "The user asks 9.11 vs 9.9. Compare decimals: 0.90 > 0.11.",
                 "signature": ""},
                {"type": "text", "text": "9.9 is larger."}
            ]),
            "end_turn",
            usage(36, 0, 64, 50)
        )
    );
    assert!(!run.frames.contains("signature_delta"));
}

#[test]
fn ollama_whole_tool_call_in_one_chunk() {
    let run = drive(OLLAMA, "qwen3:8b");
    assert!(run.errors.is_empty());
    assert_eq!(run.end, StreamEnd::Complete);
    assert_eq!(
        accumulate(&run.frames),
        message(
            "qwen3:8b",
            json!([
                {"type": "thinking", "thinking": "Need the weather tool.", "signature": ""},
                {"type": "tool_use", "id": "call_k3x9", "name": "get_weather",
                 "input": {"city": "Paris", "days": 2}}
            ]),
            "tool_use",
            usage(20, 0, 0, 10)
        )
    );
}

#[test]
fn stream_without_finish_reason_is_incomplete() {
    let run = drive(INCOMPLETE, "gpt-4o");
    assert!(run.errors.is_empty());
    assert_eq!(run.end, StreamEnd::Incomplete);
    assert_eq!(
        accumulate(&run.frames),
        message(
            "gpt-4o",
            json!([{"type": "text", "text": "The answer is"}]),
            "end_turn",
            usage(0, 0, 0, 0)
        )
    );
}

#[test]
fn done_without_finish_reason_is_still_incomplete() {
    let mut translator = StreamTranslator::new("msg_d".to_owned(), "m".to_owned());
    let mut out = BytesMut::new();
    translator
        .push_data(
            r#"{"choices":[{"index":0,"delta":{"content":"x"}}]}"#,
            &mut out,
        )
        .expect("chunk");
    translator.push_data(" [DONE] ", &mut out).expect("done");
    assert!(translator.is_finished());
    assert_eq!(translator.finish(&mut out), StreamEnd::Incomplete);
    assert_eq!(
        accumulate(std::str::from_utf8(&out).expect("utf-8"))["stop_reason"],
        "end_turn"
    );
}

#[test]
fn in_band_error_is_returned_and_can_be_written_as_an_error_frame() {
    let mut translator = StreamTranslator::new("msg_test".to_owned(), "gpt-4o".to_owned());
    let mut out = BytesMut::new();
    let lines: Vec<&str> = data_lines(INBAND_ERROR).collect();
    for data in &lines[..2] {
        translator.push_data(data, &mut out).expect("valid chunk");
    }
    assert!(translator.has_started());
    let before = out.len();
    let err = translator
        .push_data(lines[2], &mut out)
        .expect_err("in-band error");
    assert_eq!(out.len(), before, "an error chunk writes nothing");
    let StreamError::Upstream { error_json } = &err else {
        panic!("expected Upstream, got {err:?}");
    };
    let body: Value = serde_json::from_slice(error_json).expect("json");
    assert_eq!(
        body,
        json!({"type": "error", "error": {"type": "api_error",
            "message": "The server had an error while processing your request. Sorry about that!"}})
    );
    assert!(err.to_string().contains("Sorry about that!"));

    translator.write_error(error_json, &mut out);
    assert!(translator.is_finished());
    assert_eq!(translator.finish(&mut out), StreamEnd::Incomplete);
    let msg = accumulate(std::str::from_utf8(&out).expect("utf-8"));
    assert_eq!(msg["content"], json!([{"type": "text", "text": "Partial"}]));
    assert_eq!(msg["error"]["type"], "api_error");
    assert_eq!(msg["stop_reason"], Value::Null);
}

#[test]
fn in_band_error_types_follow_the_upstream_code() {
    let mut translator = StreamTranslator::new("msg_e".to_owned(), "m".to_owned());
    let mut out = BytesMut::new();
    let cases = [
        (
            r#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
            "rate_limit_error",
        ),
        (
            r#"{"error":{"message":"busy","code":503}}"#,
            "overloaded_error",
        ),
        (
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            "overloaded_error",
        ),
        (r#"{"error":"model not loaded"}"#, "api_error"),
    ];
    for (chunk, expected) in cases {
        match translator.push_data(chunk, &mut out) {
            Err(StreamError::Upstream { error_json }) => {
                let body: Value = serde_json::from_slice(&error_json).expect("json");
                assert_eq!(body["error"]["type"], expected, "{chunk}");
                assert!(body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()));
            }
            other => panic!("{chunk}: {other:?}"),
        }
    }
    assert!(out.is_empty(), "error chunks must not start the message");
}

#[test]
fn malformed_chunk_is_rejected_without_output_and_the_stream_continues() {
    let run = drive(MALFORMED, "gpt-4o");
    assert_eq!(run.errors.len(), 1);
    let (line, err) = &run.errors[0];
    assert_eq!(*line, 3);
    assert!(matches!(err, StreamError::Malformed(_)), "{err:?}");
    assert!(
        !err.to_string().contains("trunc"),
        "payload must not be echoed"
    );
    assert_eq!(run.end, StreamEnd::Complete);
    assert_eq!(
        accumulate(&run.frames),
        message(
            "gpt-4o",
            json!([{"type": "text", "text": "Fine end."}]),
            "end_turn",
            usage(0, 0, 0, 0)
        )
    );
}

#[test]
fn non_object_json_is_malformed() {
    let mut translator = StreamTranslator::new("msg_n".to_owned(), "m".to_owned());
    let mut out = BytesMut::new();
    for bad in ["[1,2]", "42", "\"DONE\"", "null", r#"{"choices":7}"#] {
        assert!(
            matches!(
                translator.push_data(bad, &mut out),
                Err(StreamError::Malformed(_))
            ),
            "{bad}"
        );
    }
    assert!(out.is_empty());
}

#[test]
fn content_and_finish_reason_in_one_chunk() {
    let mut translator = StreamTranslator::new("msg_c".to_owned(), "m".to_owned());
    let mut out = BytesMut::new();
    translator
        .push_data(
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"All at once."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3}}"#,
            &mut out,
        )
        .expect("chunk");
    assert!(
        translator.is_finished(),
        "usage with finish ends the message"
    );
    let msg = accumulate(std::str::from_utf8(&out).expect("utf-8"));
    assert_eq!(
        msg["content"],
        json!([{"type": "text", "text": "All at once."}])
    );
    assert_eq!(msg["stop_reason"], "end_turn");
    assert_eq!(msg["usage"], usage(9, 0, 0, 3));
    assert_eq!(translator.finish(&mut out), StreamEnd::Complete);
}

#[test]
fn tool_call_and_finish_in_one_chunk_with_cache_write_usage() {
    let mut translator = StreamTranslator::new("msg_t".to_owned(), "m".to_owned());
    let mut out = BytesMut::new();
    translator
        .push_data(
            r#"{"choices":[{"index":0,"delta":{"content":"Checking.","tool_calls":[{"index":0,"id":"c1","function":{"name":"look","arguments":"{\"q\":\"a\"}"}}]},"finish_reason":"tool_calls"}]}"#,
            &mut out,
        )
        .expect("chunk");
    translator
        .push_data(
            r#"{"choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":600,"cache_write_tokens":300}}}"#,
            &mut out,
        )
        .expect("usage");
    let msg = accumulate(std::str::from_utf8(&out).expect("utf-8"));
    assert_eq!(
        msg["content"],
        json!([
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "c1", "name": "look", "input": {"q": "a"}}
        ])
    );
    assert_eq!(msg["stop_reason"], "tool_use");
    assert_eq!(msg["usage"], usage(100, 300, 600, 20));
}

#[test]
fn missing_ids_and_names_get_placeholders() {
    let mut translator = StreamTranslator::new("msg_p".to_owned(), "m".to_owned());
    let mut out = BytesMut::new();
    for chunk in [
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"run","arguments":"{}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":3,"function":{"arguments":"{\"a\":1}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"finish_reason":"tool_calls"}]}"#,
    ] {
        translator.push_data(chunk, &mut out).expect("chunk");
    }
    translator.finish(&mut out);
    let msg = accumulate(std::str::from_utf8(&out).expect("utf-8"));
    assert_eq!(
        msg["content"],
        json!([
            {"type": "tool_use", "id": "call_msg_p_0", "name": "run", "input": {}},
            {"type": "tool_use", "id": "call_msg_p_3", "name": "tool_3", "input": {"a": 1}}
        ])
    );
}

#[test]
fn ollama_calls_without_index_reusing_ids_or_indices_stay_separate() {
    let mut translator = StreamTranslator::new("msg_o".to_owned(), "m".to_owned());
    let mut out = BytesMut::new();
    for chunk in [
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"x1","function":{"name":"a","arguments":"{\"n\":1}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"x2","function":{"name":"b","arguments":"{\"n\":2}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"x3","function":{"name":"c","arguments":"{\"n\":3}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"finish_reason":"stop"}]}"#,
        "[DONE]",
    ] {
        translator.push_data(chunk, &mut out).expect("chunk");
    }
    let msg = accumulate(std::str::from_utf8(&out).expect("utf-8"));
    let names: Vec<&str> = msg["content"]
        .as_array()
        .expect("content")
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(msg["content"][2]["input"], json!({"n": 3}));
    // finish_reason "stop" with tool_use blocks is reported as tool_use.
    assert_eq!(msg["stop_reason"], "tool_use");
}

#[test]
fn text_after_a_tool_call_closes_it_and_flushes_held_calls() {
    let mut translator = StreamTranslator::new("msg_x".to_owned(), "m".to_owned());
    let mut out = BytesMut::new();
    for chunk in [
        r#"{"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{\"k\":"}},{"index":1,"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"true}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"done"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"LATE"}}]}}]}"#,
        r#"{"choices":[{"index":0,"finish_reason":"tool_calls"}]}"#,
    ] {
        translator.push_data(chunk, &mut out).expect("chunk");
    }
    assert_eq!(translator.finish(&mut out), StreamEnd::Complete);
    let msg = accumulate(std::str::from_utf8(&out).expect("utf-8"));
    assert_eq!(
        msg["content"],
        json!([
            {"type": "thinking", "thinking": "hmm", "signature": ""},
            {"type": "tool_use", "id": "a", "name": "f", "input": {"k": true}},
            {"type": "tool_use", "id": "b", "name": "g", "input": {}},
            {"type": "text", "text": "done"}
        ])
    );
}

#[test]
fn input_after_message_stop_is_ignored() {
    let run = drive(TEXT, "gpt-4o");
    let mut translator = StreamTranslator::new("msg_test".to_owned(), "gpt-4o".to_owned());
    let mut out = BytesMut::new();
    for data in data_lines(TEXT) {
        translator.push_data(data, &mut out).expect("chunk");
    }
    let len = out.len();
    translator
        .push_data(
            r#"{"choices":[{"index":0,"delta":{"content":"more"}}]}"#,
            &mut out,
        )
        .expect("ignored");
    translator
        .push_data(r#"{"error":{"message":"late"}}"#, &mut out)
        .expect("ignored too");
    translator
        .push_data("garbage", &mut out)
        .expect("ignored as well");
    assert_eq!(out.len(), len);
    assert_eq!(std::str::from_utf8(&out).expect("utf-8"), run.frames);
}

#[test]
fn empty_stream_still_yields_a_well_formed_message() {
    let mut translator = StreamTranslator::new("msg_0".to_owned(), "m".to_owned());
    let mut out = BytesMut::new();
    translator.push_data("   ", &mut out).expect("blank");
    assert!(!translator.has_started());
    assert_eq!(translator.finish(&mut out), StreamEnd::Incomplete);
    let msg = accumulate(std::str::from_utf8(&out).expect("utf-8"));
    assert_eq!(msg["content"], json!([]));
    assert_eq!(msg["stop_reason"], "end_turn");
    assert_eq!(translator.usage(), None);
}

#[test]
fn only_choice_zero_is_translated() {
    let mut translator = StreamTranslator::new("msg_z".to_owned(), "m".to_owned());
    let mut out = BytesMut::new();
    translator
        .push_data(
            r#"{"choices":[{"index":1,"delta":{"content":"other"}},{"index":0,"delta":{"content":"mine"},"finish_reason":"stop"}]}"#,
            &mut out,
        )
        .expect("chunk");
    translator.finish(&mut out);
    let msg = accumulate(std::str::from_utf8(&out).expect("utf-8"));
    assert_eq!(msg["content"], json!([{"type": "text", "text": "mine"}]));
}

#[test]
fn usage_before_finish_reason_does_not_end_the_message() {
    let mut translator = StreamTranslator::new("msg_u".to_owned(), "m".to_owned());
    let mut out = BytesMut::new();
    for chunk in [
        r#"{"choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":5,"completion_tokens":1}}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"b"}}],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
    ] {
        translator.push_data(chunk, &mut out).expect("chunk");
        assert!(!translator.is_finished());
    }
    translator.push_data("[DONE]", &mut out).expect("done");
    assert!(translator.is_finished());
    let msg = accumulate(std::str::from_utf8(&out).expect("utf-8"));
    assert_eq!(msg["content"], json!([{"type": "text", "text": "ab"}]));
    assert_eq!(msg["usage"], usage(5, 0, 0, 2));
    assert_eq!(translator.finish(&mut out), StreamEnd::Complete);
}
