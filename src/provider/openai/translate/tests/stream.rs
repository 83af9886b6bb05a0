//! Streaming translation: one table of streams and the messages a client rebuilds from
//! them, then the cases that look at the translator between chunks.

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

/// Where a case's OpenAI chunks come from.
enum Input {
    /// An SSE fixture file's text.
    Fixture(&'static str),
    /// The `data:` payloads, in order.
    Chunks(&'static [&'static str]),
}

/// One stream and the Anthropic message a client rebuilds from its translation.
struct Case {
    name: &'static str,
    input: Input,
    model: &'static str,
    content: Value,
    stop_reason: &'static str,
    usage: Value,
    end: StreamEnd,
    /// 1-based data lines the translator must reject (and skip).
    rejected: &'static [usize],
    /// Text that must not appear in the frames.
    absent: &'static [&'static str],
}

impl Case {
    fn run(&self) -> super::Driven {
        match self.input {
            Input::Fixture(sse) => drive(sse, self.model),
            Input::Chunks(chunks) => {
                let sse: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
                drive(&sse, self.model)
            }
        }
    }
}

fn cases() -> Vec<Case> {
    let case = |name, input, model, content, stop_reason, usage, end| Case {
        name,
        input,
        model,
        content,
        stop_reason,
        usage,
        end,
        rejected: &[],
        absent: &[],
    };
    vec![
        case(
            "text stream with cached usage",
            Input::Fixture(TEXT),
            "gpt-4o",
            json!([{"type": "text", "text": "Hello, world — \"ok\"\n"}]),
            "end_turn",
            usage(176, 0, 1024, 5),
            StreamEnd::Complete,
        ),
        case(
            "parallel tool calls become sequential tool_use blocks",
            Input::Fixture(PARALLEL_TOOLS),
            "gpt-4o",
            json!([
                {"type": "tool_use", "id": "call_w1", "name": "get_weather",
                 "input": {"city": "San Francisco", "unit": "c"}},
                {"type": "tool_use", "id": "call_t2", "name": "get_time",
                 "input": {"timezone": "America/Los_Angeles"}}
            ]),
            "tool_use",
            usage(80, 0, 0, 40),
            StreamEnd::Complete,
        ),
        case(
            "interleaved parallel fragments are held, not mixed",
            Input::Chunks(&[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\":"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","type":"function","function":{"name":"g","arguments":"{\"y\""}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}},{"index":1,"function":{"arguments":":2}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
                "[DONE]",
            ]),
            "m",
            json!([
                {"type": "tool_use", "id": "a", "name": "f", "input": {"x": 1}},
                {"type": "tool_use", "id": "b", "name": "g", "input": {"y": 2}}
            ]),
            "tool_use",
            usage(0, 0, 0, 0),
            StreamEnd::Complete,
        ),
        case(
            "length, then a usage-only chunk",
            Input::Fixture(LENGTH),
            "gpt-4o-mini",
            json!([{"type": "text", "text": "Once upon a time"}]),
            "max_tokens",
            usage(17, 0, 0, 3),
            StreamEnd::Complete,
        ),
        case(
            "Azure annotations are skipped and content_filter is a refusal",
            Input::Fixture(AZURE),
            "my-gpt4o-deployment",
            json!([{"type": "text", "text": "Here is the first part of a longer answer, and then"}]),
            "refusal",
            usage(31, 0, 0, 12),
            StreamEnd::Complete,
        ),
        Case {
            absent: &["signature_delta"],
            ..case(
                "DeepSeek reasoning becomes a thinking block",
                Input::Fixture(DEEPSEEK),
                "deepseek-v4-flash",
                json!([
                    {"type": "thinking",
                     "thinking": "The user asks 9.11 vs 9.9. Compare decimals: 0.90 > 0.11.",
                     "signature": ""},
                    {"type": "text", "text": "9.9 is larger."}
                ]),
                "end_turn",
                usage(36, 0, 64, 50),
                StreamEnd::Complete,
            )
        },
        case(
            "Ollama sends a whole tool call in one chunk",
            Input::Fixture(OLLAMA),
            "qwen3:8b",
            json!([
                {"type": "thinking", "thinking": "Need the weather tool.", "signature": ""},
                {"type": "tool_use", "id": "call_k3x9", "name": "get_weather",
                 "input": {"city": "Paris", "days": 2}}
            ]),
            "tool_use",
            usage(20, 0, 0, 10),
            StreamEnd::Complete,
        ),
        case(
            "a stream without finish_reason is incomplete",
            Input::Fixture(INCOMPLETE),
            "gpt-4o",
            json!([{"type": "text", "text": "The answer is"}]),
            "end_turn",
            usage(0, 0, 0, 0),
            StreamEnd::Incomplete,
        ),
        Case {
            rejected: &[3],
            ..case(
                "a malformed chunk is skipped and the stream continues",
                Input::Fixture(MALFORMED),
                "gpt-4o",
                json!([{"type": "text", "text": "Fine end."}]),
                "end_turn",
                usage(0, 0, 0, 0),
                StreamEnd::Complete,
            )
        },
        case(
            "content and finish_reason in one chunk",
            Input::Chunks(&[
                r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"All at once."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3}}"#,
            ]),
            "m",
            json!([{"type": "text", "text": "All at once."}]),
            "end_turn",
            usage(9, 0, 0, 3),
            StreamEnd::Complete,
        ),
        case(
            "a tool call and finish in one chunk, usage with cache writes",
            Input::Chunks(&[
                r#"{"choices":[{"index":0,"delta":{"content":"Checking.","tool_calls":[{"index":0,"id":"c1","function":{"name":"look","arguments":"{\"q\":\"a\"}"}}]},"finish_reason":"tool_calls"}]}"#,
                r#"{"choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":600,"cache_write_tokens":300}}}"#,
            ]),
            "m",
            json!([
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "c1", "name": "look", "input": {"q": "a"}}
            ]),
            "tool_use",
            usage(100, 300, 600, 20),
            StreamEnd::Complete,
        ),
        case(
            "missing ids and names get placeholders",
            Input::Chunks(&[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"run","arguments":"{}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":3,"function":{"arguments":"{\"a\":1}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"finish_reason":"tool_calls"}]}"#,
            ]),
            "m",
            json!([
                {"type": "tool_use", "id": "call_msg_test_0", "name": "run", "input": {}},
                {"type": "tool_use", "id": "call_msg_test_3", "name": "tool_3", "input": {"a": 1}}
            ]),
            "tool_use",
            usage(0, 0, 0, 0),
            StreamEnd::Complete,
        ),
        case(
            "Ollama calls without an index, or reusing one, stay separate (stop → tool_use)",
            Input::Chunks(&[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"x1","function":{"name":"a","arguments":"{\"n\":1}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"x2","function":{"name":"b","arguments":"{\"n\":2}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"x3","function":{"name":"c","arguments":"{\"n\":3}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"finish_reason":"stop"}]}"#,
                "[DONE]",
            ]),
            "m",
            json!([
                {"type": "tool_use", "id": "x1", "name": "a", "input": {"n": 1}},
                {"type": "tool_use", "id": "x2", "name": "b", "input": {"n": 2}},
                {"type": "tool_use", "id": "x3", "name": "c", "input": {"n": 3}}
            ]),
            "tool_use",
            usage(0, 0, 0, 0),
            StreamEnd::Complete,
        ),
        case(
            "text after a tool call closes it and flushes the held calls",
            Input::Chunks(&[
                r#"{"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{\"k\":"}},{"index":1,"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"true}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"content":"done"}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"LATE"}}]}}]}"#,
                r#"{"choices":[{"index":0,"finish_reason":"tool_calls"}]}"#,
            ]),
            "m",
            json!([
                {"type": "thinking", "thinking": "hmm", "signature": ""},
                {"type": "tool_use", "id": "a", "name": "f", "input": {"k": true}},
                {"type": "tool_use", "id": "b", "name": "g", "input": {}},
                {"type": "text", "text": "done"}
            ]),
            "tool_use",
            usage(0, 0, 0, 0),
            StreamEnd::Complete,
        ),
        case(
            "only choice 0 is translated",
            Input::Chunks(&[
                r#"{"choices":[{"index":1,"delta":{"content":"other"}},{"index":0,"delta":{"content":"mine"},"finish_reason":"stop"}]}"#,
            ]),
            "m",
            json!([{"type": "text", "text": "mine"}]),
            "end_turn",
            usage(0, 0, 0, 0),
            StreamEnd::Complete,
        ),
    ]
}

#[test]
fn each_stream_translates_to_the_message_a_client_rebuilds() {
    for case in cases() {
        let run = case.run();
        let rejected: Vec<usize> = run.errors.iter().map(|(line, _)| *line).collect();
        assert_eq!(rejected, case.rejected, "{}: rejected lines", case.name);
        assert_eq!(run.end, case.end, "{}: end", case.name);
        assert_eq!(
            accumulate(&run.frames),
            message(case.model, case.content, case.stop_reason, case.usage),
            "{}",
            case.name
        );
        for text in case.absent {
            assert!(!run.frames.contains(text), "{}: {text} written", case.name);
        }
    }
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
fn the_held_parallel_call_is_written_whole_after_the_first_stops() {
    let run = drive(PARALLEL_TOOLS, "gpt-4o");
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
fn azure_annotation_frame_writes_only_message_start() {
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
