//! The commit-point hold never starves a client: after `[fallback] max_hold_ms` with no
//! content, the client gets the `200` head and `: keepalive` comments while fallback
//! still holds the events; and every attempt, even one the client left, is recorded.

mod common;

use common::*;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use llm_gateway::Config;
use serde_json::Value;
use tokio::sync::oneshot;

const KEEPALIVE: &str = ": keepalive\n\n";

/// The hold every test here sets: short, so the head goes out long before any
/// upstream is released.
const MAX_HOLD_MS: u64 = 200;

/// One Anthropic-kind provider (`primary`), or `primary` then `backup`, with a short hold.
fn held_config(primary: &str, backup: Option<&str>) -> Config {
    let mut text = format!(
        "[fallback]\nmax_hold_ms = {MAX_HOLD_MS}\n[routing]\ndefault_provider = \"primary\"\n"
    );
    if backup.is_some() {
        text.push_str("fallback_chain = [\"primary\", \"backup\"]\n");
    }
    text.push_str(&format!(
        "[providers.primary]\nkind = \"anthropic\"\nbase_url = \"{primary}\"\n"
    ));
    if let Some(backup) = backup {
        text.push_str(&format!(
            "[providers.backup]\nkind = \"anthropic\"\nbase_url = \"{backup}\"\n"
        ));
    }
    Config::from_toml_str(&text).unwrap()
}

/// POST a streaming request; the answer's head must arrive within the hang guard.
async fn post_stream(gateway: &TestGateway) -> reqwest::Response {
    tokio::time::timeout(
        HANG_GUARD,
        client()
            .post(gateway.url("/v1/messages"))
            .header("x-api-key", "sk-ant-client")
            .body(messages_body(true))
            .send(),
    )
    .await
    .expect("the head arrives while the upstream is still held back")
    .unwrap()
}

/// Read until the body holds a whole keepalive comment; returns what was read.
async fn read_keepalive(response: &mut reqwest::Response) -> String {
    read_keepalives(response, 1).await
}

/// Read until the body holds `n` whole keepalive comments; returns what was read.
async fn read_keepalives(response: &mut reqwest::Response, n: usize) -> String {
    let mut seen = String::new();
    while seen.matches(KEEPALIVE).count() < n {
        let chunk = tokio::time::timeout(HANG_GUARD, response.chunk())
            .await
            .expect("a keepalive arrives")
            .unwrap()
            .expect("the stream is not over");
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    seen
}

/// The rest of the body, to its end.
async fn read_rest(response: reqwest::Response) -> String {
    tokio::time::timeout(HANG_GUARD, response.text())
        .await
        .expect("the stream ends")
        .unwrap()
}

/// The events of an SSE text as the SDKs' parser (eventsource-stream) sees them.
async fn sdk_events(text: &str) -> Vec<(String, String)> {
    futures_util::stream::iter([Ok::<_, std::convert::Infallible>(bytes::Bytes::from(
        text.to_owned(),
    ))])
    .eventsource()
    .map(|e| {
        let e = e.expect("the SDK parser accepts the stream");
        (e.event, e.data)
    })
    .collect()
    .await
}

/// The steps that send the fixture's events before its first content event, wait for
/// `release`, then send the rest.
fn held_back(fixture_text: &str, release: oneshot::Receiver<()>) -> Vec<Step> {
    let events = mock::split_events(fixture_text);
    let first_content = through_commit(&events) - 1;
    let mut steps: Vec<Step> = events[..first_content]
        .iter()
        .map(|e| Step::Send(e.clone().into_bytes()))
        .collect();
    steps.push(Step::Wait(release));
    steps.extend(
        events[first_content..]
            .iter()
            .map(|e| Step::Send(e.clone().into_bytes())),
    );
    steps
}

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-gateway-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_long_prefill_gets_the_head_and_keepalives_then_the_events() {
    let upstream = MockUpstream::start().await;
    let (release, held) = oneshot::channel();
    upstream.push(Reply::sse(held_back(&fixture("text_basic.sse"), held)));
    let gateway = start_gateway(held_config(&upstream.url(), None)).await;

    let mut response = post_stream(&gateway).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let id = request_id(&response);
    // Keepalives come while the upstream is still held back: only comments so far,
    // not one of the held events.
    let first = read_keepalives(&mut response, 2).await;
    assert!(
        first.split_inclusive("\n\n").all(|part| part == KEEPALIVE),
        "{first:?}"
    );
    release.send(()).unwrap();
    let text = first + &read_rest(response).await;

    let without_comments = text.replace(KEEPALIVE, "");
    assert_eq!(without_comments, fixture("text_basic.sse"));
    assert_eq!(
        sdk_events(&text).await,
        sdk_events(&fixture("text_basic.sse")).await,
        "the SDK parser skips the comments"
    );

    // A keepalive is made by the gateway on the spot: the time it waited for upstream
    // is not overhead the gateway added (two of them came a hold or more after the
    // last upstream chunk).
    let prometheus = gateway.get_text("/metrics").await;
    let overhead: f64 = prometheus
        .lines()
        .find_map(|l| l.strip_prefix("llm_gateway_overhead_seconds_sum "))
        .expect("overhead is measured")
        .trim()
        .parse()
        .unwrap();
    assert!(
        overhead < MAX_HOLD_MS as f64 / 1000.0,
        "overhead {overhead} s counts the keepalives' wait"
    );

    let records = gateway.wait_audit(&format!("request_id={id}"), 1).await;
    let record = &records[0];
    assert_eq!(record["outcome"], "complete");
    assert_eq!(record["status"], 200);
    assert_eq!(record["provider"], "primary");
    assert_eq!(record["usage"]["input_tokens"], 11);
    assert_eq!(record["usage"]["output_tokens"], 6);
    assert!(record["cost_usd"].is_string(), "{record}");
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{record}");
    assert_eq!(attempts[0]["status"], 200);
    assert_eq!(attempts[0]["error"], Value::Null);
}

#[tokio::test]
async fn a_failure_after_the_hold_falls_back_and_the_client_sees_only_the_backup() {
    // Primary sends its first events, then (once the client has its keepalive) fails:
    // with an in-band error, or by cutting the connection.
    for failure in ["error_event", "cut"] {
        let primary = MockUpstream::start().await;
        let backup = MockUpstream::start().await;
        let (release, held) = oneshot::channel();
        let mut steps: Vec<Step> = mock::split_events(&fixture("error_midstream.sse"))
            .into_iter()
            .filter(|e| !e.starts_with("event: error"))
            .map(|e| Step::Send(e.into_bytes()))
            .collect();
        steps.push(Step::Wait(held));
        steps.push(match failure {
            "error_event" => Step::Send(
                b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
                    .to_vec(),
            ),
            _ => Step::Close,
        });
        primary.push(Reply::sse(steps));
        backup.push(Reply::sse_events(&fixture("text_basic.sse")));
        let gateway = start_gateway(held_config(&primary.url(), Some(&backup.url()))).await;

        let mut response = post_stream(&gateway).await;
        assert_eq!(response.status(), 200, "{failure}");
        let id = request_id(&response);
        let first = read_keepalive(&mut response).await;
        assert!(
            backup.requests().is_empty(),
            "{failure}: primary still holds"
        );
        release.send(()).unwrap();
        let text = first + &read_rest(response).await;

        assert_eq!(
            text.replace(KEEPALIVE, ""),
            fixture("text_basic.sse"),
            "{failure}: no trace of the failed attempt"
        );
        let records = gateway.wait_audit(&format!("request_id={id}"), 1).await;
        let record = &records[0];
        assert_eq!(record["outcome"], "complete", "{failure}: {record}");
        assert_eq!(record["provider"], "backup", "{failure}");
        assert_eq!(record["usage"]["input_tokens"], 11, "{failure}");
        let attempts = record["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2, "{failure}: {record}");
        assert_eq!(attempts[0]["provider"], "primary");
        assert!(attempts[0]["error"].is_string(), "{failure}: {record}");
        assert_eq!(attempts[1]["provider"], "backup");
        assert_eq!(attempts[1]["error"], Value::Null);
    }
}

#[tokio::test]
async fn a_provider_silent_past_the_hold_and_its_first_byte_limit_falls_back() {
    // No head at all from the primary: the client still gets one at the hold, and the
    // primary's first-byte timeout moves the request on.
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    primary.push(Reply::Silent);
    backup.push(Reply::sse_events(&fixture("text_basic.sse")));
    let mut config = held_config(&primary.url(), Some(&backup.url()));
    config.timeouts.first_byte_ms = 3 * MAX_HOLD_MS;
    let gateway = start_gateway(config).await;
    let closed = primary.on_close();

    let mut response = post_stream(&gateway).await;
    assert_eq!(response.status(), 200);
    let first = read_keepalive(&mut response).await;
    let text = first + &read_rest(response).await;
    assert_eq!(text.replace(KEEPALIVE, ""), fixture("text_basic.sse"));
    tokio::time::timeout(HANG_GUARD, closed)
        .await
        .expect("the silent attempt was dropped")
        .unwrap();
}

#[tokio::test]
async fn when_every_attempt_fails_after_the_hold_the_stream_ends_with_one_error_event() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    let (release, held) = oneshot::channel();
    let mut steps: Vec<Step> = mock::split_events(&fixture("error_midstream.sse"))
        .into_iter()
        .filter(|e| !e.starts_with("event: error"))
        .map(|e| Step::Send(e.into_bytes()))
        .collect();
    steps.push(Step::Wait(held));
    steps.push(Step::Send(
        b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"first\"}}\n\n".to_vec(),
    ));
    primary.push(Reply::sse(steps));
    backup.push(Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"last"}}"#,
    ));
    let gateway = start_gateway(held_config(&primary.url(), Some(&backup.url()))).await;

    let mut response = post_stream(&gateway).await;
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let first = read_keepalive(&mut response).await;
    release.send(()).unwrap();
    let text = first + &read_rest(response).await;

    let events = mock::split_events(&text.replace(KEEPALIVE, ""));
    assert_eq!(
        events,
        ["event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"last\"}}\n\n"],
        "exactly one error event, the last upstream's, and nothing of the held events"
    );
    let parsed = sdk_events(&text).await;
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].0, "error");
    assert_eq!(backup.requests().len(), 1);

    let records = gateway.wait_audit(&format!("request_id={id}"), 1).await;
    let record = &records[0];
    assert_eq!(record["outcome"], "error", "{record}");
    assert_eq!(record["status"], 200, "as the head said");
    assert!(record["error"].is_string(), "{record}");
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{record}");
    assert_eq!(attempts[0]["provider"], "primary");
    assert_eq!(attempts[1]["provider"], "backup");
    assert_eq!(attempts[1]["status"], 529);
    assert!(attempts.iter().all(|a| a["error"].is_string()), "{record}");
}

#[tokio::test]
async fn a_request_that_is_not_a_stream_is_not_held_open() {
    // A silent upstream, past the hold: a non-streaming client gets no early 200 and no
    // comments, but the answer it always got, the first-byte timeout's error.
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::Silent);
    let mut config = held_config(&upstream.url(), None);
    config.timeouts.first_byte_ms = 3 * MAX_HOLD_MS;
    let gateway = start_gateway(config).await;
    let response = tokio::time::timeout(
        HANG_GUARD,
        client()
            .post(gateway.url("/v1/messages"))
            .body(messages_body(false))
            .send(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), 504);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["type"], "timeout_error", "{body}");
}

/// The only audit record of a gateway that served one request.
async fn the_record(gateway: &TestGateway) -> Value {
    gateway.wait_audit("limit=10", 1).await.remove(0)
}

#[tokio::test]
async fn an_attempt_running_when_the_client_leaves_before_any_byte_is_recorded() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::Silent);
    // The default hold (10 s): the client leaves before anything was sent to it.
    let gateway = start_gateway(config_for(&upstream)).await;
    let closed = upstream.on_close();
    let request = tokio::spawn(
        client()
            .post(gateway.url("/v1/messages"))
            .body(messages_body(true))
            .send(),
    );
    eventually("the request upstream", || async {
        match upstream.requests().len() {
            0 => Err(0),
            _ => Ok(()),
        }
    })
    .await;
    request.abort();
    tokio::time::timeout(HANG_GUARD, closed)
        .await
        .expect("the gateway dropped the upstream request")
        .unwrap();

    let record = the_record(&gateway).await;
    assert_eq!(record["outcome"], "client_disconnected", "{record}");
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "the running attempt is listed: {record}");
    assert_eq!(attempts[0]["provider"], "anthropic");
    assert_eq!(attempts[0]["status"], Value::Null);
    assert_eq!(attempts[0]["error"], "client disconnected");
    assert!(attempts[0]["latency_ms"].is_u64());
}

#[tokio::test]
async fn an_attempt_running_when_the_client_leaves_a_held_stream_is_recorded() {
    let upstream = MockUpstream::start().await;
    let events = mock::split_events(&fixture("text_basic.sse"));
    let mut steps: Vec<Step> = events[..2]
        .iter()
        .map(|e| Step::Send(e.clone().into_bytes()))
        .collect();
    steps.push(Step::Hang);
    upstream.push(Reply::sse(steps));
    let gateway = start_gateway(held_config(&upstream.url(), None)).await;
    let closed = upstream.on_close();

    let mut response = post_stream(&gateway).await;
    read_keepalive(&mut response).await;
    drop(response);
    tokio::time::timeout(HANG_GUARD, closed)
        .await
        .expect("the gateway dropped the upstream request")
        .unwrap();

    let record = the_record(&gateway).await;
    assert_eq!(record["outcome"], "client_disconnected", "{record}");
    assert_eq!(record["usage"]["input_tokens"], 11, "usage seen so far");
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{record}");
    assert_eq!(attempts[0]["provider"], "primary");
    assert_eq!(attempts[0]["status"], 200);
    assert_eq!(attempts[0]["error"], "client disconnected");
}
