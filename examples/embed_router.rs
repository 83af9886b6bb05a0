//! The whole gateway mounted inside a host's own axum app, beside the host's routes and
//! under the host's middleware.
//!
//! `cargo run --example embed_router` starts a stand-in Anthropic upstream and the host
//! app on loopback ports, sends one streamed request through `/llm/v1/messages`, prints
//! what came back and exits. Point `base_url` at the real API (and set `api_key`) to use
//! it for real; clients then use `http://HOST/llm` as their Anthropic base URL.

use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use llm_gateway::config::{Config, ProviderConfig, Secret, SecretRef};
use llm_gateway::Gateway;

/// A stand-in for api.anthropic.com: one short streamed answer to every request.
async fn upstream_messages() -> impl IntoResponse {
    let events = [
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"usage":{"input_tokens":12,"output_tokens":1}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello through the host app."}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":7}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ];
    let body: String = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    ([(http::header::CONTENT_TYPE, "text/event-stream")], body)
}

/// The host's own middleware: it sees the gateway's requests like its own.
async fn host_header(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert("x-served-by-host", http::HeaderValue::from_static("demo"));
    response
}

async fn serve(router: Router) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let upstream = serve(Router::new().route("/v1/messages", post(upstream_messages))).await?;

    let mut config = Config::default();
    let mut anthropic = ProviderConfig::anthropic(upstream.parse()?);
    anthropic.api_key = Some(SecretRef::Literal(Secret::new("sk-ant-example")));
    config.providers.insert("anthropic".into(), anthropic);
    config.audit.enabled = false; // the host keeps its own records in this example
    let gateway = Gateway::builder(config).build()?;

    let app = Router::new()
        .route("/hello", get(|| async { "the host's own route\n" }))
        .nest("/llm", gateway.router())
        .layer(axum::middleware::from_fn(host_header));
    let host = serve(app).await?;

    let client = reqwest::Client::new();
    let hello = client
        .get(format!("{host}/hello"))
        .send()
        .await?
        .text()
        .await?;
    print!("GET /hello: {hello}");
    let response = client
        .post(format!("{host}/llm/v1/messages"))
        .header("content-type", "application/json")
        .body(r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await?;
    println!(
        "POST /llm/v1/messages: {status}, x-gateway-provider: {:?}, x-served-by-host: {:?}",
        headers.get("x-gateway-provider"),
        headers.get("x-served-by-host")
    );
    println!("{text}");
    let ok = status == 200
        && headers.contains_key("x-gateway-request-id")
        && headers.get("x-served-by-host").is_some()
        && text.contains("Hello through the host app.");
    if !ok {
        return Err("the gateway did not answer through the host app".into());
    }
    let metrics = client
        .get(format!("{host}/llm/gateway/metrics"))
        .send()
        .await?
        .text()
        .await?;
    println!("GET /llm/gateway/metrics: {metrics}");
    Ok(())
}
