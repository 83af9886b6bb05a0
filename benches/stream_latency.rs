#![allow(missing_docs)] // criterion_group! generates undocumented items
//! Run with `cargo bench --bench stream_latency`.
//!
//! 1. `frames/*`: one 20-event stream through ErrorResponse, Ingress, Usage and Timeout over an
//!    in-memory body (request handling included) vs draining the bare body.
//! 2. `first_event/*`: time to first event on loopback, through the whole gateway (audit with
//!    bodies, metrics, cost, route, fallback) vs direct to the mock.
//! 3. `ingress/*`: ingress on a synthetic 100 KB Claude-Code-shaped body vs a full `serde_json::Value` parse.
//!
//! Benches measure; nothing here asserts a time.

use axum::routing::post;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use llm_gateway::error_response::ErrorResponseLayer;
use llm_gateway::ingress::IngressLayer;
use llm_gateway::timeout::TimeoutLayer;
use llm_gateway::usage::{UsageLayer, UsageReport};
use llm_gateway::{Body, Config, Error, Gateway, ServedBy};
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};

/// The load tool's synthetic ~100 KB Claude Code request, shared rather than written twice.
#[allow(dead_code)] // the bench uses only the Claude Code body, not the minimal one
#[path = "../examples/loadtest/body.rs"]
mod synthetic;

const EVENTS: usize = 20;

/// A realistic 20-event stream: message_start, 16 text deltas, stops, message_delta.
fn stream_events() -> Vec<Bytes> {
    let mut events = vec![Bytes::from_static(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":2000,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":30000,\"output_tokens\":1}}}\n\n")];
    events.push(Bytes::from_static(b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"));
    for _ in 0..(EVENTS - 4) {
        events.push(Bytes::from_static(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Some streamed words of an answer \"}}\n\n"));
    }
    events.push(Bytes::from_static(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":320}}\n\n"));
    events.push(Bytes::from_static(
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ));
    events
}

fn in_memory_body(
    events: &[Bytes],
) -> StreamBody<impl futures_util::Stream<Item = Result<http_body::Frame<Bytes>, Error>>> {
    let frames: Vec<_> = events
        .iter()
        .cloned()
        .map(|b| Ok(http_body::Frame::data(b)))
        .collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

fn frames(c: &mut Criterion) {
    let events = stream_events();
    let bytes: usize = events.iter().map(Bytes::len).sum();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("frames");
    group.throughput(Throughput::Elements(EVENTS as u64));

    group.bench_function("bare_body", |b| {
        b.to_async(&runtime).iter_batched(
            || in_memory_body(&events),
            |body| async move {
                let collected = body.collect().await.unwrap().to_bytes();
                assert_eq!(collected.len(), bytes);
            },
            BatchSize::SmallInput,
        )
    });

    let events_for_stack = events.clone();
    let provider = tower::service_fn(move |_req: Request<Bytes>| {
        let body = Body::new(in_memory_body(&events_for_stack));
        async move {
            let mut response = Response::new(body);
            response
                .headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            response.extensions_mut().insert(ServedBy {
                provider: "bench".into(),
                model: None,
            });
            Ok::<_, Error>(response)
        }
    });
    let stack = ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .layer(IngressLayer::new(32 << 20))
        .layer(UsageLayer::new(|r: UsageReport| {
            std::hint::black_box(r);
        }))
        .layer(TimeoutLayer::new(
            Duration::from_secs(120),
            Duration::from_secs(300),
        ))
        .service(provider);
    let small_request = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    group.bench_function("layers", |b| {
        b.to_async(&runtime).iter_batched(
            || {
                let request = Request::post("/v1/messages")
                    .body(Full::new(Bytes::from_static(small_request.as_bytes())))
                    .unwrap();
                (stack.clone(), request)
            },
            |(mut stack, request): (_, Request<Full<Bytes>>)| async move {
                let ready = ServiceExt::<Request<Full<Bytes>>>::ready(&mut stack)
                    .await
                    .unwrap();
                let response = ready.call(request).await.unwrap();
                let collected = response.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(collected.len(), bytes);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn ingress(c: &mut Criterion) {
    let body = Bytes::from(synthetic::claude_code_body("claude-sonnet-4-5-20250929"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("ingress");
    group.throughput(Throughput::Bytes(body.len() as u64));
    let inner = tower::service_fn(|req: Request<Bytes>| async move {
        std::hint::black_box(&req);
        Ok::<_, Error>(Response::new(Body::empty()))
    });
    let service = IngressLayer::new(32 << 20).layer(inner);
    use tower::Layer;
    group.bench_function(format!("peek_{}kb", body.len() / 1024), |b| {
        b.to_async(&runtime).iter_batched(
            || {
                (
                    service.clone(),
                    Request::post("/v1/messages")
                        .body(Full::new(body.clone()))
                        .unwrap(),
                )
            },
            |(mut service, request): (_, Request<Full<Bytes>>)| async move {
                let ready = ServiceExt::<Request<Full<Bytes>>>::ready(&mut service)
                    .await
                    .unwrap();
                ready.call(request).await.unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function(
        format!("serde_value_{}kb_reference", body.len() / 1024),
        |b| b.iter(|| serde_json::from_slice::<serde_json::Value>(&body).unwrap()),
    );
    group.finish();
}

fn first_event(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let events = stream_events();
    let (mock_url, gateway_url) = runtime.block_on(async move {
        let mock = axum::Router::new().route(
            "/v1/messages",
            post(move |request: Bytes| {
                // Read the request like a real upstream, so the connection can be reused.
                std::hint::black_box(request);
                let body = Body::new(in_memory_body(&events));
                async move {
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(body)
                        .unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mock_url = format!("http://{}", listener.local_addr().unwrap());
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, mock).await.unwrap() });

        let mut config = Config::default();
        config.providers.get_mut("anthropic").unwrap().base_url = mock_url.parse().unwrap();
        // A real recorder, as the daemon has: the series cost is part of what is measured.
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let gateway = Gateway::builder(config)
            .on_usage(())
            .metrics_recorder(recorder)
            .build()
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            gateway
                .serve(listener, std::future::pending(), Duration::ZERO)
                .await
                .unwrap()
        });
        (mock_url, gateway_url)
    });
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = synthetic::claude_code_body("claude-sonnet-4-5-20250929");
    let mut group = c.benchmark_group("first_event");
    for (name, base) in [("direct", mock_url), ("via_gateway", gateway_url)] {
        let url = format!("{base}/v1/messages");
        group.bench_function(name, |b| {
            // Time the first event only; draining the rest (so the connection returns to
            // the pool, as a real client's does) stays outside the measurement.
            b.to_async(&runtime).iter_custom(|iterations| {
                let client = client.clone();
                let url = url.clone();
                let body = body.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let started = std::time::Instant::now();
                        let mut response = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await
                            .unwrap();
                        let first = response.chunk().await.unwrap().unwrap();
                        total += started.elapsed();
                        std::hint::black_box(first);
                        while response.chunk().await.unwrap().is_some() {}
                    }
                    total
                }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = frames, ingress, first_event
}
criterion_main!(benches);
