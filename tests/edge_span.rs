//! The request span, over a real socket. A binary of its own: `tracing` caches which
//! spans are enabled per call site, process-wide, so a test that captures logs on its
//! thread must not share call sites with tests running beside it without a subscriber.

mod common;

use axum::routing::get;
use axum::Router;
use common::*;
use llm_gateway::edge::{self, SpanField};

async fn handler() -> &'static str {
    edge::record(SpanField::Model, "model-from-inside");
    tracing::info!("inside the handler");
    "ok"
}

#[tokio::test]
async fn each_request_runs_in_a_span_with_its_id_status_and_inner_fields() {
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let url = serve_behind_edge(Router::new().route("/probe", get(handler))).await;
    let answer = client()
        .get(format!("{url}/probe"))
        .header("x-api-key", "sk-ant-span-secret")
        .header("authorization", "Bearer sk-ant-span-secret")
        .send()
        .await
        .unwrap();
    let id = answer.headers()["x-gateway-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    answer.bytes().await.unwrap();
    let text = eventually("the answer's log line", || async {
        let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
        if text.contains("answered") {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .await;
    let inside = text
        .lines()
        .find(|line| line.contains("inside the handler"))
        .unwrap_or_else(|| panic!("no handler line in {text}"));
    assert!(inside.contains(&format!("request_id=\"{id}\"")), "{inside}");
    assert!(inside.contains("model=\"model-from-inside\""), "{inside}");
    let answered = text.lines().find(|line| line.contains("answered")).unwrap();
    assert!(answered.contains("status=200"), "{answered}");
    assert!(answered.contains(&id), "{answered}");
    assert_no_secret(
        &[("logs".into(), text.into_bytes())],
        &["sk-ant-span-secret"],
    );
}
