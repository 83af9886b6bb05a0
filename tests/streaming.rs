//! Streaming through the real gateway: no buffering, disconnects, faults mid-stream.

mod common;

use common::*;
use llm_gateway::usage::Outcome;
use mock::split_events;
use std::time::Duration;
use tokio::sync::oneshot;

#[tokio::test]
async fn events_arrive_one_by_one_no_buffering() {
    let upstream = MockUpstream::start().await;
    let events = split_events(&fixture("text_basic.sse"));
    let commit = through_commit(&events);
    // Before the first content event the gateway holds the stream (the commit point);
    // after it, every event must reach the client before the mock sends the next one:
    // a gateway that buffered anything would deadlock here.
    let mut gates = Vec::new();
    let mut steps = through_commit_then(&events, vec![]);
    for event in &events[commit..] {
        let (tx, rx) = oneshot::channel();
        gates.push(tx);
        steps.push(Step::Wait(rx));
        steps.push(Step::Send(event.clone().into_bytes()));
    }
    upstream.push(Reply::sse(steps));
    let gateway = start_gateway(config_for(&upstream)).await;

    let mut response = client()
        .post(gateway.url("/v1/messages"))
        .header("content-type", "application/json")
        .body(messages_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    assert_eq!(response.headers()["x-gateway-provider"], "anthropic");
    assert!(response.headers()["x-gateway-request-id"]
        .to_str()
        .unwrap()
        .starts_with("gw_"));

    let mut seen = String::new();
    read_events(&mut response, &mut seen, commit).await;
    assert_eq!(
        seen,
        events[..commit].concat(),
        "everything up to the commit point, in order"
    );
    for (i, gate) in gates.into_iter().enumerate() {
        gate.send(()).unwrap();
        read_events(&mut response, &mut seen, commit + i + 1).await;
        assert_eq!(
            seen,
            events[..commit + i + 1].concat(),
            "event {} alone",
            commit + i
        );
    }
    assert!(response.chunk().await.unwrap().is_none());
    assert_eq!(seen, fixture("text_basic.sse"), "byte for byte");

    let reports = gateway.wait_reports(1).await;
    let report = &reports[0];
    assert_eq!(report.outcome, Outcome::Complete);
    assert_eq!(report.usage.input_tokens, Some(11));
    assert_eq!(report.usage.output_tokens, Some(6));
    assert!(report.stream);
    assert!(report.ttft.is_some());
    assert_eq!(&*report.provider, "anthropic");
}

#[tokio::test]
async fn client_hanging_up_closes_the_upstream_connection() {
    let upstream = MockUpstream::start().await;
    let events = split_events(&fixture("text_basic.sse"));
    let commit = through_commit(&events);
    let steps = through_commit_then(&events, vec![Step::Hang]);
    upstream.push(Reply::sse(steps));
    let closed = upstream.on_close();
    let gateway = start_gateway(config_for(&upstream)).await;

    let mut response = gateway.post_messages(messages_body(true)).await;
    let mut seen = String::new();
    read_events(&mut response, &mut seen, commit).await;
    drop(response);

    tokio::time::timeout(HANG_GUARD, closed)
        .await
        .expect("the upstream sees its connection closed")
        .unwrap();
    let reports = gateway.wait_reports(1).await;
    assert_eq!(reports[0].outcome, Outcome::ClientDisconnected);
    assert_eq!(reports[0].usage.input_tokens, Some(11), "usage seen so far");
}

#[tokio::test]
async fn upstream_cut_mid_stream_ends_with_an_error_event() {
    let upstream = MockUpstream::start().await;
    let mut steps: Vec<Step> = split_events(&fixture("cut_before_delta.sse"))
        .into_iter()
        .map(|e| Step::Send(e.into_bytes()))
        .collect();
    steps.push(Step::Close);
    upstream.push(Reply::sse(steps));
    let gateway = start_gateway(config_for(&upstream)).await;

    let text = gateway
        .post_messages(messages_body(true))
        .await
        .text()
        .await
        .expect("the client gets a well-formed end, not a broken connection");
    assert!(text.starts_with(&fixture("cut_before_delta.sse")), "{text}");
    let last = split_events(&text).pop().unwrap();
    assert!(
        last.starts_with("event: error\ndata: {\"type\":\"error\""),
        "{last}"
    );
    let data: serde_json::Value = serde_json::from_str(
        last.trim_end()
            .strip_prefix("event: error\ndata: ")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(data["error"]["type"], "api_error");

    let reports = gateway.wait_reports(1).await;
    assert_eq!(reports[0].outcome, Outcome::Incomplete);
    assert_eq!(reports[0].usage.input_tokens, Some(900));
    assert_eq!(reports[0].usage.cache_read_input_tokens, Some(100));
}

#[tokio::test]
async fn in_band_error_before_content_is_an_error_answer() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse_events(&fixture("error_midstream.sse")));
    let gateway = start_gateway(config_for(&upstream)).await;
    let response = gateway.post_messages(messages_body(true)).await;
    // Nothing was promised before the first content event: the client gets the
    // upstream's error as an HTTP answer, not a stream that starts and then fails.
    assert_eq!(response.status().as_u16(), 529);
    assert_eq!(response.headers()["x-gateway-provider"], "anthropic");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
    );
    let reports = gateway.wait_reports(1).await;
    assert_eq!(reports[0].outcome, Outcome::Error);
    assert_eq!(reports[0].usage.input_tokens, Some(30));
}

#[tokio::test]
async fn silent_upstream_hits_the_first_byte_timeout() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::Silent);
    let closed = upstream.on_close();
    let mut config = config_for(&upstream);
    config.timeouts.first_byte_ms = 200;
    let gateway = start_gateway(config).await;
    let response = gateway.post_messages(messages_body(true)).await;
    assert_eq!(response.status(), 504);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "timeout_error");
    tokio::time::timeout(HANG_GUARD, closed)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn headers_then_silence_hits_the_first_byte_timeout_too() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse(vec![Step::Hang]));
    let mut config = config_for(&upstream);
    config.timeouts.first_byte_ms = 200;
    let gateway = start_gateway(config).await;
    let response = gateway.post_messages(messages_body(true)).await;
    assert_eq!(response.status(), 504);
    let text = response.text().await.unwrap();
    assert!(text.contains("timeout_error"), "{text}");
}

#[tokio::test]
async fn a_stream_gone_silent_hits_the_idle_timeout() {
    let upstream = MockUpstream::start().await;
    let events = split_events(&fixture("text_basic.sse"));
    let commit = through_commit(&events);
    let steps = through_commit_then(&events, vec![Step::Hang]);
    upstream.push(Reply::sse(steps));
    let closed = upstream.on_close();
    let mut config = config_for(&upstream);
    config.timeouts.idle_ms = 200;
    let gateway = start_gateway(config).await;
    let text = tokio::time::timeout(HANG_GUARD, async {
        gateway
            .post_messages(messages_body(true))
            .await
            .text()
            .await
            .unwrap()
    })
    .await
    .unwrap();
    assert!(text.starts_with(&events[..commit].concat()));
    assert!(
        text.ends_with("\n\n") && text.contains("event: error\ndata: "),
        "{text}"
    );
    assert!(text.contains("timeout_error"));
    tokio::time::timeout(HANG_GUARD, closed)
        .await
        .unwrap()
        .unwrap();
    let reports = gateway.wait_reports(1).await;
    assert_eq!(reports[0].outcome, Outcome::Incomplete);
}

#[tokio::test]
async fn malformed_sse_never_panics_and_the_gateway_keeps_serving() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse(vec![
        Step::Send(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\"\n\n".to_vec()),
        Step::Send(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n".to_vec()),
        Step::Send(b"\xff\xfe garbage \x00 line\n\n".to_vec()),
        Step::Send(b"event: message_delta\ndata: [1,2\n\n".to_vec()),
    ]));
    upstream.push(Reply::json(200, "{\"truncated\": ").with_header("x-extra", "1"));
    upstream.push(Reply::json(200, "not json at all"));
    upstream.push(Reply::sse_events(&fixture("text_basic.sse")));
    let gateway = start_gateway(config_for(&upstream)).await;

    // Garbage before the commit point is a failed attempt: a clean error, not the bytes.
    let response = gateway.post_messages(messages_body(true)).await;
    assert_eq!(response.status(), 502);
    let error: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(error["type"], "error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("data is not JSON"),
        "{error}"
    );

    for _ in 0..2 {
        let response = gateway.post_messages(messages_body(false)).await;
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.unwrap();
    }
    let reports = gateway.wait_reports(3).await;
    assert_eq!(reports[0].usage.input_tokens, None, "never silently zero");
    assert_eq!(reports[1].parse_failures, 1);
    assert_eq!(reports[2].parse_failures, 1);

    let text = gateway
        .post_messages(messages_body(true))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(text, fixture("text_basic.sse"), "still serving");
}

#[tokio::test]
async fn many_concurrent_streams_each_get_their_own_answer() {
    let upstream = MockUpstream::start().await;
    for _ in 0..50 {
        upstream.push(Reply::sse_events(&fixture("tool_use.sse")));
    }
    let gateway = start_gateway(config_for(&upstream)).await;
    let client = client();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let client = client.clone();
        let url = gateway.url("/v1/messages");
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .body(messages_body(true))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), fixture("tool_use.sse"));
    }
    let reports = gateway.wait_reports(50).await;
    assert!(reports
        .iter()
        .all(|r| r.usage.output_tokens == Some(89) && r.outcome == Outcome::Complete));
    let _ = Duration::ZERO;
}
