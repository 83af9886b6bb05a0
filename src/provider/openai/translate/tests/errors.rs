//! Error-body translation.

use serde_json::{json, Value};

use super::super::{anthropic_error_type_for_status, translate_error};

fn run(status: u16, body: &[u8]) -> Value {
    serde_json::from_slice(&translate_error(status, body)).expect("always JSON")
}

#[test]
fn status_table() {
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (408, "invalid_request_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
        (599, "api_error"),
    ] {
        assert_eq!(anthropic_error_type_for_status(status), kind, "{status}");
        assert_eq!(run(status, b"{}")["error"]["type"], kind, "{status}");
    }
}

#[test]
fn openai_error_body() {
    let body = br#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM).","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
    assert_eq!(
        translate_error(429, body),
        br#"{"type":"error","error":{"type":"rate_limit_error","message":"Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM)."}}"#.to_vec()
    );
}

#[test]
fn azure_content_filter_error() {
    let body = json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        "type": null, "param": "prompt", "code": "content_filter", "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {"hate": {"filtered": true, "severity": "high"}}}}});
    let got = run(400, body.to_string().as_bytes());
    assert_eq!(got["error"]["type"], "invalid_request_error");
    assert!(got["error"]["message"]
        .as_str()
        .expect("message")
        .starts_with("The response was filtered"));
}

#[test]
fn keys_in_messages_are_masked() {
    let body = br#"{"error":{"message":"Incorrect API key provided: sk-proj-abc***********************wxyz. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","code":"invalid_api_key"}}"#;
    let got = run(401, body);
    assert_eq!(got["error"]["type"], "authentication_error");
    assert_eq!(
        got["error"]["message"],
        "Incorrect API key provided: sk-***. You can find your API key at https://platform.openai.com/account/api-keys."
    );
}

#[test]
fn other_json_shapes() {
    assert_eq!(
        run(
            404,
            br#"{"error":"model \"llama9\" not found, try pulling it first"}"#
        )["error"]["message"],
        "model \"llama9\" not found, try pulling it first"
    );
    assert_eq!(
        run(422, br#"{"detail":"Field required"}"#)["error"]["message"],
        "Field required"
    );
    assert_eq!(
        run(500, br#"{"message":"boom"}"#)["error"]["message"],
        "boom"
    );
    let anthropic =
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    assert_eq!(
        run(529, anthropic),
        json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})
    );
    // No HTTP error status: classify the upstream's own type.
    assert_eq!(
        run(
            200,
            br#"{"error":{"message":"x","type":"rate_limit_error"}}"#
        )["error"]["type"],
        "rate_limit_error"
    );
    assert_eq!(
        run(200, br#"{"error":{"message":"x"}}"#)["error"]["type"],
        "api_error"
    );
}

#[test]
fn non_json_bodies_are_truncated_at_a_char_boundary() {
    let html = format!("<html>{}</html>", "é".repeat(600));
    let got = run(502, html.as_bytes());
    let message = got["error"]["message"].as_str().expect("message");
    assert!(message.len() <= 512);
    assert!(message.len() >= 510);
    assert!(message.starts_with("<html>éé"));
    assert_eq!(got["error"]["type"], "api_error");

    assert_eq!(
        run(503, b"  upstream connect error  ")["error"]["message"],
        "upstream connect error"
    );
    assert_eq!(
        run(504, b"")["error"]["message"],
        "upstream returned HTTP 504 with an empty body"
    );
    assert_eq!(
        run(500, b"\xff\xfe bad utf8")["error"]["message"],
        "\u{fffd}\u{fffd} bad utf8"
    );
}
