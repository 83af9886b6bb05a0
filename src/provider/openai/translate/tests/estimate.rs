//! The local count_tokens estimate.

use serde_json::json;

use super::super::{estimate_count_tokens_body, estimate_input_tokens};

fn estimate(body: &serde_json::Value) -> u64 {
    estimate_input_tokens(body.to_string().as_bytes()).expect("estimates")
}

#[test]
fn exact_values_for_small_bodies() {
    // 3 (request) + 4 (message) + ceil(8/4) = 9
    assert_eq!(
        estimate(&json!({"messages": [{"role": "user", "content": "abcdefgh"}]})),
        9
    );
    // + 4 (system) + ceil((8 + 4) / 4) -> 3 + 4 + 4 + 3 = 14
    assert_eq!(
        estimate(&json!({"system": "abcd", "messages": [{"role": "user", "content": "abcdefgh"}]})),
        14
    );
    // non-ASCII weighs 3: "日本" = 6 -> ceil(6/4) = 2 -> 3 + 4 + 2 = 9
    assert_eq!(
        estimate(&json!({"messages": [{"role": "user", "content": "日本"}]})),
        9
    );
    // image: 3 + 4 + 1600
    assert_eq!(
        estimate(&json!({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
        ]}]})),
        1607
    );
    // tool: 3 + 300 + 8 + ceil(("f" + "" + "{}") / 4) = 312, plus a message with no content: +4
    assert_eq!(
        estimate(&json!({"messages": [{"role": "user", "content": []}],
                         "tools": [{"name": "f", "input_schema": {}}]})),
        316
    );
}

#[test]
fn counts_tool_use_and_tool_result_content() {
    let base = estimate(&json!({"messages": [{"role": "user", "content": "x"}]}));
    let with_tools = estimate(&json!({"messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "read", "input": {"path": "/a/b/c.txt"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "file contents here"}]}]}
    ]}));
    // 2 more messages (8) + "read" (4) + {"path":"/a/b/c.txt"} (21) + 18 chars, from 1 char:
    // ceil((1 + 4 + 21 + 18) / 4) = 11 vs ceil(1/4) = 1
    assert_eq!(with_tools, base + 8 + 10);
    assert_eq!(
        estimate_count_tokens_body(br#"{"messages":[{"role":"user","content":"abcdefgh"}]}"#)
            .expect("ok"),
        br#"{"input_tokens":9}"#.to_vec()
    );
}

#[test]
fn bad_bodies_are_errors() {
    for body in [
        &b"nope"[..],
        b"3",
        b"{}",
        br#"{"messages":"x"}"#,
        br#"{"messages":[1]}"#,
    ] {
        assert!(
            estimate_input_tokens(body).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}
