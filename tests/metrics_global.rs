//! A gateway built without a recorder of its own reports to the process's global
//! `metrics` recorder, the host's. Its own test binary: the global recorder is
//! process-wide and can be installed once.

mod common;

use common::*;
use llm_gateway::Gateway;

#[tokio::test]
async fn without_a_recorder_of_its_own_the_gateway_reports_to_the_global_one() {
    let handle = {
        let recorder = prometheus_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).expect("the only global recorder");
        handle
    };
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(10, 3)));
    let mut config = config_for(&upstream);
    config.audit.enabled = false;
    let render = handle.clone();
    let gateway = Gateway::builder(config)
        .serve_metrics(move || render.render())
        .build()
        .unwrap();
    let (url, task) = serve_gateway(gateway).await;
    let response = client()
        .post(format!("{url}/v1/messages"))
        .body(messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await;

    let expected = r#"llm_gateway_tokens_total{provider="anthropic",model="claude-sonnet-4-5-20250929",kind="output"} 3"#;
    eventually("the global recorder counts the request", || async {
        let text = client()
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains(expected) {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
    assert!(handle
        .render()
        .contains("# HELP llm_gateway_requests_total"));
    task.abort();
}
