//! Byte-split property tests: every fixture, split anywhere, gives the same events,
//! the same forwarded bytes and the same usage. `eventsource-stream` is the oracle for
//! the SSE decoder.

mod common;

use bytes::Bytes;
use common::fixture;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use llm_gateway::sse::SseDecoder;
use llm_gateway::usage::{UsageLayer, UsageReport, UsageTracker};
use llm_gateway::{Endpoint, RequestMeta, ServedBy};
use proptest::prelude::*;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tower::{Layer, Service, ServiceExt};

const FIXTURES: &[&str] = &[
    "text_basic.sse",
    "tool_use.sse",
    "tool_use_crlf.sse",
    "thinking_cache.sse",
    "cut_before_delta.sse",
    "error_midstream.sse",
];

fn ours(chunks: &[&[u8]]) -> Vec<(String, String)> {
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    for chunk in chunks {
        decoder.feed(
            chunk,
            |_| true,
            |e| {
                events.push((
                    String::from_utf8(e.event.to_vec()).unwrap(),
                    String::from_utf8(e.data.to_vec()).unwrap(),
                ))
            },
        );
    }
    events
}

fn oracle(text: &str) -> Vec<(String, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        futures_util::stream::iter([Ok::<_, Infallible>(Bytes::copy_from_slice(text.as_bytes()))])
            .eventsource()
            .map(|e| {
                let e = e.unwrap();
                (e.event, e.data)
            })
            .collect()
            .await
    })
}

fn usage_of(chunks: &[&[u8]]) -> (llm_gateway::usage::Usage, u32) {
    let mut tracker = UsageTracker::sse();
    for chunk in chunks {
        tracker.feed(chunk);
    }
    (tracker.usage(), tracker.parse_failures())
}

/// Pass `chunks` through a `UsageLayer` alone, as a library user would: returns the
/// bytes the client got and the one report.
fn through_usage_layer(chunks: Vec<Vec<u8>>) -> (Vec<u8>, UsageReport) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let layer = UsageLayer::new(move |r: UsageReport| sink.lock().unwrap().push(r));
    let upstream = tower::service_fn(move |_req: Request<Bytes>| {
        let chunks = chunks.clone();
        async move {
            let frames = futures_util::stream::iter(
                chunks
                    .into_iter()
                    .map(|c| Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(c)))),
            );
            let mut response = Response::new(StreamBody::new(frames));
            response
                .headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            response.extensions_mut().insert(ServedBy {
                provider: "mock".into(),
                model: None,
            });
            Ok::<_, Infallible>(response)
        }
    });
    let mut service = layer.layer(upstream);
    let mut request = Request::new(Bytes::new());
    request.extensions_mut().insert(RequestMeta {
        model: Some("m".into()),
        stream: true,
        ..RequestMeta::new("req", Endpoint::Messages)
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bytes = runtime.block_on(async {
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    });
    let mut reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1, "exactly one report");
    (bytes, reports.pop().unwrap())
}

#[test]
fn every_single_split_matches_the_oracle_and_the_whole() {
    for name in FIXTURES {
        let text = fixture(name);
        let bytes = text.as_bytes();
        let expected = oracle(&text);
        assert!(!expected.is_empty(), "{name}");
        assert_eq!(ours(&[bytes]), expected, "{name} whole");
        let whole_usage = usage_of(&[bytes]);
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(ours(&[a, b]), expected, "{name} split at {cut}");
            assert_eq!(usage_of(&[a, b]), whole_usage, "{name} split at {cut}");
        }
    }
}

#[test]
fn byte_by_byte_through_the_layer_is_identical() {
    for name in FIXTURES {
        let text = fixture(name);
        let whole = through_usage_layer(vec![text.as_bytes().to_vec()]);
        let bytewise = through_usage_layer(text.bytes().map(|b| vec![b]).collect());
        assert_eq!(whole.0, text.as_bytes(), "{name}: forwarded unchanged");
        assert_eq!(bytewise.0, text.as_bytes(), "{name}: forwarded unchanged");
        assert_eq!(whole.1.usage, bytewise.1.usage, "{name}");
        assert_eq!(whole.1.outcome, bytewise.1.outcome, "{name}");
    }
}

#[test]
fn fixture_usage_is_what_the_protocol_says() {
    let (usage, failures) = usage_of(&[fixture("thinking_cache.sse").as_bytes()]);
    assert_eq!(failures, 0);
    assert_eq!(usage.input_tokens, Some(2048));
    assert_eq!(usage.output_tokens, Some(312));
    assert_eq!(usage.cache_creation_input_tokens, Some(3000));
    assert_eq!(usage.cache_write_5m_tokens, Some(1000));
    assert_eq!(usage.cache_write_1h_tokens, Some(2000));
    assert_eq!(usage.cache_read_input_tokens, Some(50000));
    let (usage, _) = usage_of(&[fixture("tool_use_crlf.sse").as_bytes()]);
    assert_eq!(usage.input_tokens, Some(472));
    assert_eq!(usage.output_tokens, Some(89));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_multi_split_gives_the_same_events_and_usage(
        fixture_index in 0..FIXTURES.len(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let text = fixture(FIXTURES[fixture_index]);
        let bytes = text.as_bytes();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for point in points {
            chunks.push(&bytes[start..point]);
            start = point;
        }
        chunks.push(&bytes[start..]);
        prop_assert_eq!(ours(&chunks), oracle(&text));
        prop_assert_eq!(usage_of(&chunks), usage_of(&[bytes]));
        let (forwarded, report) = through_usage_layer(chunks.iter().map(|c| c.to_vec()).collect());
        prop_assert_eq!(forwarded, bytes.to_vec());
        prop_assert_eq!(report.usage, usage_of(&[bytes]).0);
    }
}
