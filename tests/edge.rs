//! The HTTP edge: request ids, sensitive headers and panics, over real sockets (the
//! request span is in `edge_span.rs`, a binary of its own).

mod common;

use axum::routing::get;
use axum::Router;
use common::*;
use llm_gateway::request_id::RequestId;
use serde_json::Value;

/// What an inner handler sees of its request.
async fn probe(request: axum::extract::Request) -> axum::Json<Value> {
    let id = RequestId::get(request.extensions()).map(|id| id.0);
    axum::Json(serde_json::json!({
        "request_id": id,
        "x_api_key_sensitive": request.headers()["x-api-key"].is_sensitive(),
        "authorization_sensitive": request.headers()["authorization"].is_sensitive(),
        "api_key_sensitive": request.headers()["api-key"].is_sensitive(),
    }))
}

#[tokio::test]
async fn a_panicking_service_answers_api_error_and_the_server_keeps_serving() {
    let router = Router::new()
        .route(
            "/panic",
            get(|| async {
                panic!("a bug in a handler");
                #[allow(unreachable_code)]
                "never"
            }),
        )
        .route("/ok", get(|| async { "still here" }));
    let url = serve_behind_edge(router).await;
    let client = client();

    for _ in 0..2 {
        let answer = client.get(format!("{url}/panic")).send().await.unwrap();
        assert_eq!(answer.status(), 500);
        let id = answer.headers()["x-gateway-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(id.starts_with("gw_"), "{id}");
        assert_eq!(answer.headers()["request-id"], id.as_str());
        assert_eq!(answer.headers()["content-type"], "application/json");
        let body: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "api_error");
        assert_eq!(body["request_id"], id.as_str());
        let message = body["error"]["message"].as_str().unwrap();
        assert!(!message.contains("a bug in a handler"), "{message}");
    }
    let answer = client.get(format!("{url}/ok")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "still here");
}

#[tokio::test]
async fn the_request_id_is_the_gateways_own_and_inner_services_see_it() {
    let url = serve_behind_edge(Router::new().route("/probe", get(probe))).await;
    let answer = client()
        .get(format!("{url}/probe"))
        .header("x-gateway-request-id", "client-chosen")
        .header("x-api-key", "sk-ant-client-1")
        .header("authorization", "Bearer sk-ant-client-2")
        .header("api-key", "azure-client-3")
        .send()
        .await
        .unwrap();
    let id = answer.headers()["x-gateway-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("gw_"), "a client's id is not taken: {id}");
    let seen: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(seen["request_id"], id.as_str());
    assert_eq!(seen["x_api_key_sensitive"], true);
    assert_eq!(seen["authorization_sensitive"], true);
    assert_eq!(seen["api_key_sensitive"], true);
}

#[tokio::test]
async fn gateway_answers_carry_the_edge_request_id_everywhere() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(3, 2)));
    let gateway = start_gateway(config_for(&upstream)).await;
    let answer = client()
        .post(gateway.url("/v1/messages"))
        .header("x-gateway-request-id", "gw_spoofed")
        .body(messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let id = answer.headers()["x-gateway-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(id, "gw_spoofed");
    answer.bytes().await.unwrap();
    // The upstream sees the gateway's id, not the client's, and can log it.
    assert_eq!(
        upstream.requests()[0].header("x-gateway-request-id"),
        Some(id.as_str())
    );
    let records = gateway.wait_audit(&format!("request_id={id}"), 1).await;
    assert_eq!(records[0]["request_id"], id.as_str());
    let reports = gateway.wait_reports(1).await;
    assert_eq!(reports[0].request_id, id);

    let missing = client()
        .get(gateway.url("/v2/nothing-here"))
        .send()
        .await
        .unwrap();
    let id = missing.headers()["x-gateway-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(missing.headers()["request-id"], id.as_str());
    let body: Value = serde_json::from_slice(&missing.bytes().await.unwrap()).unwrap();
    assert_eq!(body["request_id"], id.as_str());
}
