//! `/metrics` through the `metrics` facade: the classic text format whatever the
//! `Accept`, read by a real Prometheus text parser, and series that go to the recorder
//! each gateway was given.

mod common;

use common::*;
use llm_gateway::metrics::{HISTOGRAM_BUCKETS, REQUEST_DURATION};
use llm_gateway::Gateway;
use prometheus_parse::{Scrape, Value};

/// The tool_use fixture, priced by hand: claude-sonnet-4-5, 472 input tokens.
const SONNET_INPUT: f64 = 472.0;
const SONNET_PICOS: u64 = 2_751_000_000;

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the exposition parses")
}

/// The one sample of `name` whose labels include `labels`.
fn scalar(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(matching.len(), 1, "one {name}{labels:?}: {matching:?}");
    match matching[0].value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{name} is not a scalar: {other:?}"),
    }
}

/// Wait until `/gateway/metrics` has counted `n` requests (records follow the body's end).
async fn counted(gateway: &TestGateway, n: u64) {
    eventually(&format!("{n} requests counted"), || async {
        let seen = gateway.get_json("/gateway/metrics").await["summary"]["total_requests"]
            .as_u64()
            .unwrap_or(0);
        if seen >= n {
            Ok(())
        } else {
            Err(seen)
        }
    })
    .await;
}

#[tokio::test]
async fn metrics_are_classic_text_whatever_the_accept_and_parse_after_real_requests() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse_events(&fixture("tool_use.sse")));
    upstream.push(Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
    ));
    let gateway = start_gateway(config_for(&upstream)).await;
    let response = gateway.post_messages(messages_body(true)).await;
    assert_eq!(response.status(), 200);
    let _ = response.text().await.unwrap();
    let response = gateway.post_messages(messages_body(false)).await;
    assert_eq!(response.status(), 529);
    let _ = response.bytes().await;
    counted(&gateway, 2).await;

    // Asked for OpenMetrics, as Prometheus does: the answer is still the classic format.
    let response = client()
        .get(gateway.url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    assert!(!text.contains("# EOF"), "no OpenMetrics trailer: {text}");
    let scrape = parse(&text);

    let sonnet = [("provider", "anthropic"), ("model", "claude-sonnet-4-5")];
    assert_eq!(
        scalar(
            &scrape,
            "llm_gateway_requests_total",
            &[sonnet[0], sonnet[1], ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        scalar(
            &scrape,
            "llm_gateway_requests_total",
            &[
                ("provider", "anthropic"),
                ("model", "other"),
                ("status", "529")
            ]
        ),
        1.0
    );
    assert_eq!(
        scalar(
            &scrape,
            "llm_gateway_tokens_total",
            &[sonnet[0], sonnet[1], ("kind", "input")]
        ),
        SONNET_INPUT
    );
    assert_eq!(
        scalar(&scrape, "llm_gateway_cost_usd_total", &sonnet),
        SONNET_PICOS as f64 / 1e12,
        "the exact total, as USD"
    );
    assert_eq!(
        scalar(
            &scrape,
            "llm_gateway_answer_outcomes_total",
            &[("provider", "anthropic"), ("outcome", "complete")]
        ),
        1.0
    );
    assert_eq!(scalar(&scrape, "llm_gateway_active_streams", &[]), 0.0);
    assert_eq!(
        scalar(
            &scrape,
            "llm_gateway_provider_healthy",
            &[("provider", "anthropic")]
        ),
        1.0
    );
    assert!(scalar(&scrape, "llm_gateway_audit_queue_depth", &[]) <= 2.0);
    // Pulled from the audit store at each scrape: the writer catches up.
    eventually("both audit records written, as /metrics tells", || async {
        let scrape = parse(&gateway.get_text("/metrics").await);
        let written = scalar(&scrape, "llm_gateway_audit_records_written_total", &[]);
        let depth = scalar(&scrape, "llm_gateway_audit_queue_depth", &[]);
        if written == 2.0 && depth == 0.0 {
            Ok(())
        } else {
            Err((written, depth))
        }
    })
    .await;

    // Histograms, not summaries, with the exported bucket bounds.
    for h in HISTOGRAM_BUCKETS {
        assert!(
            text.contains(&format!("# TYPE {} histogram", h.metric)),
            "{} is a histogram: {text}",
            h.metric
        );
    }
    let duration = scrape
        .samples
        .iter()
        .find(|s| s.metric == REQUEST_DURATION.metric)
        .expect("the duration histogram");
    let Value::Histogram(buckets) = &duration.value else {
        panic!("not a histogram: {duration:?}");
    };
    let bounds: Vec<f64> = buckets.iter().map(|b| b.less_than).collect();
    let mut expected = REQUEST_DURATION.bounds.to_vec();
    expected.push(f64::INFINITY);
    assert_eq!(bounds, expected);
    assert_eq!(buckets.last().unwrap().count, 2.0, "both requests observed");
}

#[tokio::test]
async fn a_hosts_recorder_gets_the_series_and_no_render_means_no_metrics_route() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse_events(&fixture("tool_use.sse")));
    let mut config = config_for(&upstream);
    config.audit.enabled = false;
    let recorder = prometheus_recorder();
    let handle = recorder.handle();
    let gateway = Gateway::builder(config)
        .metrics_recorder(recorder)
        .build()
        .unwrap();
    let metrics = gateway.metrics().clone();
    let (url, task) = serve_gateway(gateway).await;
    let response = client()
        .post(format!("{url}/v1/messages"))
        .body(messages_body(true))
        .send()
        .await
        .unwrap();
    let _ = response.text().await.unwrap();

    let text = eventually("the host's recorder counts the request", || async {
        let text = handle.render();
        if text.contains("llm_gateway_requests_total{") {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .await;
    let scrape = parse(&text);
    assert_eq!(
        scalar(
            &scrape,
            "llm_gateway_tokens_total",
            &[("model", "claude-sonnet-4-5"), ("kind", "input")]
        ),
        SONNET_INPUT
    );
    // Pulled series appear when the host refreshes before its own render.
    assert!(!text.contains("llm_gateway_provider_healthy{"), "{text}");
    metrics.refresh();
    assert!(handle
        .render()
        .contains(r#"llm_gateway_provider_healthy{provider="anthropic"} 1"#));

    let response = client().get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 404, "the host serves its metrics itself");
    task.abort();
}

#[tokio::test]
async fn two_gateways_in_one_process_keep_their_numbers_apart() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(10, 3)));
    let busy = start_gateway(config_for(&upstream)).await;
    let idle = start_gateway(config_for(&upstream)).await;
    let response = busy.post_messages(messages_body(false)).await;
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await;
    counted(&busy, 1).await;

    let scrape = parse(&busy.get_text("/metrics").await);
    assert_eq!(
        scalar(&scrape, "llm_gateway_requests_total", &[("status", "200")]),
        1.0
    );
    let text = idle.get_text("/metrics").await;
    assert!(!text.contains("llm_gateway_requests_total"), "{text}");
    assert_eq!(
        scalar(&parse(&text), "llm_gateway_open_connections", &[]),
        1.0
    );
}
