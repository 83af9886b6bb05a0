//! The gateway's layers around a host's own provider service, without the rest of the
//! gateway: usage read from the answer as it streams, priced exactly, and a
//! streaming-aware time limit.
//!
//! `cargo run --example layers_alone` prints the usage and the cost of one streamed
//! answer, then exits. The "provider" here is a `tower::service_fn` that answers with a
//! fixed Anthropic stream; put your own client (reqwest, hyper) in its place.
//!
//! What each layer needs:
//! - `UsageLayer`: answers that are Anthropic Messages (`text/event-stream` or
//!   `application/json`); a `ServedBy` response extension names the provider (else
//!   `"unknown"`). A `RequestMeta` (from `IngressLayer`) is optional.
//! - `TimeoutLayer`: a service failing with `llm_gateway::Error` and a body whose error
//!   is `llm_gateway::Error`.

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use llm_gateway::pricing::PriceTable;
use llm_gateway::timeout::TimeoutLayer;
use llm_gateway::usage::{CostReport, UsageLayer, UsageReport};
use llm_gateway::{Error, ServedBy};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{ServiceBuilder, ServiceExt};

/// The events of one short answer, as Anthropic streams them.
const EVENTS: [&str; 6] = [
    r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"usage":{"input_tokens":1200,"cache_creation_input_tokens":0,"cache_read_input_tokens":30000,"output_tokens":1}}}"#,
    r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello from the host's provider."}}"#,
    r#"{"type":"content_block_stop","index":0}"#,
    r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":42}}"#,
    r#"{"type":"message_stop"}"#,
];

type Frame = Result<http_body::Frame<Bytes>, Error>;
type AnswerBody = StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Frame>>>;

/// The host's provider: any `Service<http::Request<_>>` answering an Anthropic stream.
async fn provider(_request: http::Request<Bytes>) -> Result<http::Response<AnswerBody>, Error> {
    let frames: Vec<Frame> = EVENTS
        .iter()
        .map(|data| {
            let name = serde_json::from_str::<serde_json::Value>(data).expect("json")["type"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            Ok(http_body::Frame::data(Bytes::from(format!(
                "event: {name}\ndata: {data}\n\n"
            ))))
        })
        .collect();
    let mut response = http::Response::new(StreamBody::new(futures_util::stream::iter(frames)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    response.extensions_mut().insert(ServedBy {
        provider: Arc::from("my-anthropic"),
        model: Some("claude-sonnet-4-5".into()),
    });
    Ok(response)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let costs: Arc<Mutex<Vec<CostReport>>> = Arc::default();
    let seen = costs.clone();
    let stack = ServiceBuilder::new()
        .layer(
            UsageLayer::new(|report: UsageReport| {
                println!("usage: {:?} ({:?})", report.usage, report.outcome);
            })
            .priced(PriceTable::builtin(), move |report: CostReport| {
                seen.lock().expect("not poisoned").push(report);
            }),
        )
        .layer(TimeoutLayer::new(
            Duration::from_secs(60),
            Duration::from_secs(30),
        ))
        .service_fn(provider);

    let request = http::Request::post("/v1/messages").body(Bytes::from_static(
        br#"{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    ))?;
    let response = stack.oneshot(request).await?;
    let streamed = response.into_body().collect().await?.to_bytes();
    println!("streamed {} bytes to the client, unchanged", streamed.len());

    let costs = costs.lock().expect("not poisoned");
    let report = costs.first().ok_or("the usage tap reported nothing")?;
    let cost = report.cost.ok_or("the answer was not priced")?;
    println!(
        "cost: ${cost} as {} (input, cache reads and output priced exactly)",
        report.priced_as.as_deref().unwrap_or("?")
    );
    // 1,200 input at $3/M + 30,000 cache reads at $0.30/M + 42 output at $15/M.
    let expected = "0.01323";
    if cost.to_string() != expected {
        return Err(format!("expected ${expected}, got ${cost}").into());
    }
    Ok(())
}
