//! Usage, cost and metrics through the real gateway: exact to the last digit of the
//! price table, the same streamed and not, and totals equal to the sum of their parts.

mod common;

use common::*;
use serde_json::Value;

/// The non-streaming answer carrying exactly the usage a fixture's stream reports.
fn json_answer(model: &str, usage: &str) -> String {
    format!(
        r#"{{"id":"msg_1","type":"message","role":"assistant","model":"{model}","content":[{{"type":"text","text":"Hi"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{usage}}}"#
    )
}

async fn send(gateway: &TestGateway, stream: bool, model: &str) {
    let body = format!(
        r#"{{"model":"{model}","max_tokens":64,"stream":{stream},"messages":[{{"role":"user","content":"Hi"}}],"agent_type":"planner"}}"#
    );
    let response = gateway.post_messages(body).await;
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await.unwrap();
}

/// Wait until `/gateway/metrics` has counted `n` requests (records follow the body's end).
async fn metrics_after(gateway: &TestGateway, n: u64) -> Value {
    eventually(&format!("metrics counting {n} requests"), || async {
        let metrics = gateway.get_json("/gateway/metrics").await;
        if metrics["summary"]["total_requests"].as_u64() >= Some(n) {
            Ok(metrics)
        } else {
            Err(metrics)
        }
    })
    .await
}

struct Case {
    fixture: &'static str,
    model: &'static str,
    json_usage: &'static str,
    /// The cost worked out by hand in pico-dollars (tokens × µ$/Mtok), as exact USD text.
    exact_usd: &'static str,
    input: u64,
    output: u64,
}

const CASES: &[Case] = &[
    // claude-sonnet-4-5 (dated id → family): in 3, out 15 $/Mtok.
    // 11 × 3_000_000 + 6 × 15_000_000 = 123_000_000 p$ = $0.000123
    Case {
        fixture: "text_basic.sse",
        model: "claude-sonnet-4-5-20250929",
        json_usage: r#"{"input_tokens":11,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":6}"#,
        exact_usd: "0.000123",
        input: 11,
        output: 6,
    },
    // 472 × 3_000_000 + 89 × 15_000_000 = 1_416_000_000 + 1_335_000_000 = $0.002751
    Case {
        fixture: "tool_use.sse",
        model: "claude-sonnet-4-5",
        json_usage: r#"{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":89,"service_tier":"standard"}"#,
        exact_usd: "0.002751",
        input: 472,
        output: 89,
    },
    // claude-opus-4-5: in 5, out 25, 5m 6.25, 1h 10, read 0.5 $/Mtok.
    // 2048×5e6 + 1000×6.25e6 + 2000×10e6 + 50000×0.5e6 + 312×25e6
    // = 10_240_000_000 + 6_250_000_000 + 20_000_000_000 + 25_000_000_000 + 7_800_000_000
    // = 69_290_000_000 p$ = $0.06929
    Case {
        fixture: "thinking_cache.sse",
        model: "claude-opus-4-5",
        json_usage: r#"{"input_tokens":2048,"cache_creation_input_tokens":3000,"cache_read_input_tokens":50000,"cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":2000},"output_tokens":312,"output_tokens_details":{"thinking_tokens":200}}"#,
        exact_usd: "0.06929",
        input: 2048,
        output: 312,
    },
];

#[tokio::test]
async fn each_fixture_costs_what_the_hand_says_streamed_or_not() {
    for case in CASES {
        let upstream = MockUpstream::start().await;
        upstream.push(Reply::sse_events(&fixture(case.fixture)));
        upstream.push(Reply::json(200, json_answer(case.model, case.json_usage)));
        let gateway = start_gateway(config_for(&upstream)).await;
        send(&gateway, true, case.model).await;
        let streamed = metrics_after(&gateway, 1).await;
        send(&gateway, false, case.model).await;
        let metrics = metrics_after(&gateway, 2).await;

        let recent = metrics["recent"].as_array().unwrap();
        let (json, stream) = (&recent[0], &recent[1]);
        assert_eq!(stream["stream"], true);
        assert_eq!(json["stream"], false);
        for entry in [stream, json] {
            assert_eq!(entry["input_tokens"], case.input, "{}", case.fixture);
            assert_eq!(entry["output_tokens"], case.output, "{}", case.fixture);
            assert_eq!(
                entry["cost_usd"].as_f64().unwrap().to_string(),
                case.exact_usd,
                "{}",
                case.fixture
            );
        }
        assert_eq!(
            streamed["summary"]["total_cost_usd_exact"], case.exact_usd,
            "{}: the stream alone",
            case.fixture
        );
        // Two identical answers: exactly twice the hand-computed cost.
        let twice = format!("{}", case.exact_usd.parse::<f64>().unwrap() * 2.0);
        assert_eq!(
            metrics["summary"]["total_cost_usd_exact"],
            twice.as_str(),
            "{}",
            case.fixture
        );
        assert_eq!(
            metrics["by_agent_type"]["planner"]
                .as_f64()
                .unwrap()
                .to_string(),
            twice
        );
        assert_eq!(
            metrics["by_provider"]["anthropic"]
                .as_f64()
                .unwrap()
                .to_string(),
            twice
        );
    }
}

#[tokio::test]
async fn a_cut_stream_is_priced_with_what_was_seen_and_flagged() {
    let upstream = MockUpstream::start().await;
    let mut steps: Vec<Step> = mock::split_events(&fixture("cut_before_delta.sse"))
        .into_iter()
        .map(|e| Step::Send(e.into_bytes()))
        .collect();
    steps.push(Step::Close);
    upstream.push(Reply::sse(steps));
    let gateway = start_gateway(config_for(&upstream)).await;
    send(&gateway, true, "claude-haiku-4-5").await;
    let metrics = metrics_after(&gateway, 1).await;
    // claude-haiku-4-5: in 1, out 5, read 0.1 $/Mtok; only message_start was seen:
    // 900 × 1e6 + 100 × 0.1e6 + 1 × 5e6 = 915_000_000 p$ = $0.000915
    assert_eq!(metrics["summary"]["total_cost_usd_exact"], "0.000915");
    let prometheus = gateway.get_text("/metrics").await;
    assert!(
        prometheus.contains(
            r#"llm_gateway_answer_outcomes_total{provider="anthropic",outcome="incomplete"} 1"#
        ),
        "{prometheus}"
    );
}

#[tokio::test]
async fn the_long_context_tier_switches_every_rate() {
    let upstream = MockUpstream::start().await;
    // prompt = 150_000 + 60_000 = 210_000 > 200_000: in 6, out 22.5, read 0.6 $/Mtok.
    // 150_000×6e6 + 60_000×0.6e6 + 1_000×22.5e6 = 900e9 + 36e9 + 22.5e9 = $0.9585
    upstream.push(Reply::json(
        200,
        json_answer(
            "claude-sonnet-4-5",
            r#"{"input_tokens":150000,"cache_creation_input_tokens":0,"cache_read_input_tokens":60000,"output_tokens":1000}"#,
        ),
    ));
    let gateway = start_gateway(config_for(&upstream)).await;
    send(&gateway, false, "claude-sonnet-4-5").await;
    let metrics = metrics_after(&gateway, 1).await;
    assert_eq!(metrics["summary"]["total_cost_usd_exact"], "0.9585");
}

#[tokio::test]
async fn config_prices_override_the_table() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(
        200,
        json_answer(
            "claude-sonnet-4-5-20250929",
            r#"{"input_tokens":1000000,"output_tokens":1000000}"#,
        ),
    ));
    let mut config = config_for(&upstream);
    let overrides = llm_gateway::Config::from_toml_str(
        "[pricing.\"claude-sonnet-4-5-20250929\"]\ninput = 1.25\noutput = 2.5\n",
    )
    .unwrap()
    .pricing;
    config.pricing = overrides;
    let gateway = start_gateway(config).await;
    send(&gateway, false, "claude-sonnet-4-5-20250929").await;
    let metrics = metrics_after(&gateway, 1).await;
    assert_eq!(metrics["summary"]["total_cost_usd_exact"], "3.75");
}

#[tokio::test]
async fn an_unpriced_model_is_null_and_counted_never_zero() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(
        200,
        json_answer(
            "mystery-model-9",
            r#"{"input_tokens":10,"output_tokens":5}"#,
        ),
    ));
    let gateway = start_gateway(config_for(&upstream)).await;
    send(&gateway, false, "mystery-model-9").await;
    let metrics = metrics_after(&gateway, 1).await;
    assert_eq!(metrics["recent"][0]["cost_usd"], Value::Null);
    assert_eq!(metrics["summary"]["unpriced_requests"], 1);
    assert_eq!(metrics["summary"]["total_input_tokens"], 10);
    let prometheus = gateway.get_text("/metrics").await;
    assert!(
        prometheus.contains(r#"llm_gateway_unpriced_requests_total{provider="anthropic"} 1"#),
        "{prometheus}"
    );
    assert!(
        !prometheus.contains("mystery-model-9"),
        "unknown model names never become labels"
    );
    assert!(prometheus.contains(r#"model="other""#));
}

#[tokio::test]
async fn errors_are_counted_with_their_status() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ));
    let gateway = start_gateway(config_for(&upstream)).await;
    let response = gateway.post_messages(messages_body(true)).await;
    assert_eq!(response.status(), 529);
    let _ = response.bytes().await;
    let response = gateway.post_messages("{").await;
    assert_eq!(response.status(), 400);
    let _ = response.bytes().await;
    let metrics = metrics_after(&gateway, 2).await;
    let statuses: Vec<u64> = metrics["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [400, 529]);
    let prometheus = gateway.get_text("/metrics").await;
    assert!(
        prometheus.contains(
            r#"llm_gateway_requests_total{provider="anthropic",model="other",status="529"} 1"#
        ),
        "{prometheus}"
    );
    assert!(
        prometheus.contains(
            r#"llm_gateway_requests_total{provider="none",model="other",status="400"} 1"#
        ),
        "{prometheus}"
    );
}

/// Parse the exposition with a real Prometheus text parser and sum a metric's samples
/// matching `labels`.
fn prometheus_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    // prometheus-parse reads the classic text format; OpenMetrics' `# EOF` and `# UNIT`
    // lines are comments to it.
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the exposition parses");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a scalar"),
        })
        .sum()
}

#[tokio::test]
async fn five_hundred_concurrent_streams_add_up_exactly() {
    const N: usize = 500;
    let upstream = MockUpstream::start().await;
    for i in 0..N {
        // Alternate two priced answers so the total is a real sum of different parts.
        let name = if i % 2 == 0 {
            "thinking_cache.sse"
        } else {
            "tool_use.sse"
        };
        upstream.push(Reply::sse_events(&fixture(name)));
    }
    let gateway = start_gateway(config_for(&upstream)).await;
    let client = client();
    let mut tasks = Vec::new();
    for _ in 0..N {
        let client = client.clone();
        let url = gateway.url("/v1/messages");
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .body(messages_body(true))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        }));
    }
    let (mut opus, mut sonnet) = (0u128, 0u128);
    for task in tasks {
        // What each response reported, priced by hand from the fixture facts above.
        if task.await.unwrap().contains("msg_01Think") {
            opus += 1;
        } else {
            sonnet += 1;
        }
    }
    let (opus_picos, sonnet_picos) = (opus * 69_290_000_000, sonnet * 2_751_000_000);
    let expected_picos = opus_picos + sonnet_picos;
    let expected_input = (opus * 2048 + sonnet * 472) as u64;
    let metrics = metrics_after(&gateway, N as u64).await;
    let exact = format!("{}", expected_picos as f64 / 1e12);
    assert_eq!(metrics["summary"]["total_requests"], N as u64);
    assert_eq!(metrics["summary"]["total_cost_usd_exact"], exact.as_str());
    assert_eq!(metrics["summary"]["total_input_tokens"], expected_input);
    assert_eq!(
        metrics["recent"].as_array().unwrap().len(),
        100,
        "the last 100 only"
    );

    let prometheus = gateway.get_text("/metrics").await;
    for (model, picos) in [
        ("claude-opus-4-5", opus_picos),
        ("claude-sonnet-4-5", sonnet_picos),
    ] {
        let cost = prometheus_sum(
            &prometheus,
            "llm_gateway_cost_usd_total",
            &[("provider", "anthropic"), ("model", model)],
        );
        assert_eq!(
            cost.to_string(),
            format!("{}", picos as f64 / 1e12),
            "{model}: sum of parts"
        );
    }
    let input = prometheus_sum(
        &prometheus,
        "llm_gateway_tokens_total",
        &[("kind", "input")],
    );
    assert_eq!(input as u64, expected_input);
    let requests = prometheus_sum(
        &prometheus,
        "llm_gateway_requests_total",
        &[("status", "200")],
    );
    assert_eq!(requests as usize, N);
    let active = prometheus_sum(&prometheus, "llm_gateway_active_streams", &[]);
    assert_eq!(active, 0.0, "every stream closed");
    let count = prometheus_sum(
        &prometheus,
        "llm_gateway_request_duration_seconds_count",
        &[],
    );
    assert_eq!(count as usize, N);
    let overhead = prometheus_sum(&prometheus, "llm_gateway_overhead_seconds_count", &[]);
    assert_eq!(
        overhead as usize, N,
        "overhead measured for every proxied request"
    );
}

#[tokio::test]
async fn the_usage_layer_prices_alone_in_a_users_stack() {
    use bytes::Bytes;
    use llm_gateway::pricing::{Money, PriceTable};
    use llm_gateway::usage::{CostReport, UsageLayer};
    use llm_gateway::{Endpoint, RequestMeta, ServedBy};
    use std::sync::{Arc, Mutex};
    use tower::{Service, ServiceBuilder, ServiceExt};

    let reports = Arc::new(Mutex::new(Vec::<CostReport>::new()));
    let sink = reports.clone();
    let provider = tower::service_fn(|_req: http::Request<Bytes>| async {
        let mut response = http::Response::new(http_body_util::Full::new(Bytes::from(fixture(
            "thinking_cache.sse",
        ))));
        response
            .headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        response.extensions_mut().insert(ServedBy {
            provider: "mine".into(),
            model: None,
        });
        Ok::<_, std::convert::Infallible>(response)
    });
    let mut stack = ServiceBuilder::new()
        .layer(
            UsageLayer::new(()).priced(PriceTable::builtin(), move |r: CostReport| {
                sink.lock().unwrap().push(r)
            }),
        )
        .service(provider);
    let mut request = http::Request::new(Bytes::new());
    request.extensions_mut().insert(RequestMeta {
        model: Some("claude-opus-4-5".into()),
        stream: true,
        ..RequestMeta::new("r1", Endpoint::Messages)
    });
    let response = stack.ready().await.unwrap().call(request).await.unwrap();
    let _ = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap();
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].cost, Some(Money::from_picos(69_290_000_000)));
    assert_eq!(reports[0].priced_as.as_deref(), Some("claude-opus-4-5"));
    assert_eq!(
        &*reports[0].price_table_version,
        "litellm@00035b69+2026-11-25"
    );
}
