//! OpenTelemetry traces: a real OTLP/HTTP receiver on 127.0.0.1:0 decoding the
//! protobuf export, a gateway whose `tracing` subscriber (scoped to the test's thread)
//! carries the OTLP layer, and the mock upstream that sees the trace header.

mod common;

use common::{client, eventually, message_json, MockUpstream, RefusedPort, Reply, Step};
use llm_gateway::config::{Config, TelemetryConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::sync::{Arc, Mutex};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

const CLIENT_KEY: &str = "gk-client-SECRET-7f3a";
const UPSTREAM_KEY: &str = "sk-ant-upstream-SECRET-91bc";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP trace receiver: every span it was sent, and the raw bodies.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    raw: Arc<Mutex<Vec<u8>>>,
}

impl Collector {
    async fn start() -> (Self, String) {
        let collector = Collector::default();
        let sink = collector.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body.as_ref()).unwrap();
                    sink.raw.lock().unwrap().extend_from_slice(&body);
                    let mut spans = sink.spans.lock().unwrap();
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            spans.extend(scope.spans);
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (collector, url)
    }

    /// Wait until the spans named `names` have all arrived; all spans so far.
    async fn wait_for(&self, names: &[&str]) -> Vec<Span> {
        eventually("spans exported", || async {
            let spans = self.spans.lock().unwrap().clone();
            let seen: Vec<String> = spans.iter().map(|s| s.name.clone()).collect();
            let mut left: Vec<&str> = names.to_vec();
            for name in &seen {
                if let Some(i) = left.iter().position(|n| n == name) {
                    left.remove(i);
                }
            }
            if left.is_empty() {
                Ok(spans)
            } else {
                Err(seen)
            }
        })
        .await
    }
}

/// An attribute rendered as text (arrays as `[a,b]`).
fn attr(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|kv| kv.key == key)?;
    Some(render(value.value.as_ref()?.value.as_ref()?))
}

fn render(value: &Value) -> String {
    match value {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::ArrayValue(array) => {
            let items: Vec<String> = array
                .values
                .iter()
                .filter_map(|v| v.value.as_ref().map(render))
                .collect();
            format!("[{}]", items.join(","))
        }
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// The gateway's config: `providers` (name, base URL, extra TOML) in fallback order,
/// a client key, the collector.
fn config(providers: &[(&str, &str)], collector: &str, keys_dir: &std::path::Path) -> Config {
    let names: Vec<String> = providers.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let mut toml = format!(
        "[routing]\ndefault_provider = \"{}\"\nfallback_chain = [{}]\n\n[auth]\nstore_path = \"{}\"\n\
         [[auth.client_keys]]\nname = \"ci\"\nkey = \"{CLIENT_KEY}\"\n\n[telemetry]\notlp_endpoint = \"{collector}\"\n",
        providers[0].0,
        names.join(","),
        keys_dir.join("keys.db").display(),
    );
    for (name, url) in providers {
        toml.push_str(&format!(
            "\n[providers.{name}]\nkind = \"anthropic\"\nbase_url = \"{url}\"\napi_key = \"{UPSTREAM_KEY}\"\n"
        ));
    }
    Config::from_toml_str(&toml).expect("test config parses")
}

/// The OTLP layer for `telemetry`, in a subscriber scoped to this test's thread (the
/// tests run on a current-thread runtime, so the gateway's tasks are traced too).
fn traced(telemetry: &TelemetryConfig) -> tracing::subscriber::DefaultGuard {
    let otlp = llm_gateway::telemetry::otlp_layer(telemetry)
        .expect("exporter builds")
        .expect("an endpoint is set");
    // The provider lives as long as the layer's tracer; its batch thread keeps exporting.
    let subscriber = tracing_subscriber::registry().with(
        otlp.layer
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
    );
    tracing::subscriber::set_default(subscriber)
}

async fn post(url: &str, stream: bool, traceparent: Option<&str>) -> reqwest::Response {
    let body = common::messages_body(stream);
    let mut request = client()
        .post(format!("{url}/v1/messages"))
        .header("content-type", "application/json")
        .header("x-api-key", CLIENT_KEY)
        .header("x-gateway-session", "sess-42")
        .body(body);
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_request_is_a_span_with_its_attempt_inside_the_clients_trace() {
    let (collector, collector_url) = Collector::start().await;
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(11, 6)));
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &[("anthropic", &upstream.url())],
        &collector_url,
        dir.path(),
    );
    let _traced = traced(&config.telemetry);
    let gateway = common::start_gateway(config).await;

    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let response = post(&gateway.url, false, Some(&traceparent)).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();

    let spans = collector
        .wait_for(&["request", "chat claude-sonnet-4-5"])
        .await;
    let request = named(&spans, "request")[0];
    let attempt = named(&spans, "chat claude-sonnet-4-5")[0];
    // The client's trace continues: same trace id, the request span under the client's.
    assert_eq!(hex(&request.trace_id), TRACE_ID);
    assert_eq!(hex(&request.parent_span_id), CLIENT_SPAN);
    assert_eq!(hex(&attempt.trace_id), TRACE_ID);
    assert_eq!(attempt.parent_span_id, request.span_id);
    // Server and client kinds (OTLP: 2 = server, 3 = client).
    assert_eq!(request.kind, 2);
    assert_eq!(attempt.kind, 3);

    let expect = [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "anthropic"),
        ("gen_ai.request.model", "claude-sonnet-4-5"),
        ("gen_ai.response.model", "claude-sonnet-4-5-20250929"),
        ("gen_ai.response.id", "msg_01Json"),
        ("gen_ai.response.finish_reasons", "[end_turn]"),
        ("gen_ai.usage.input_tokens", "11"),
        ("gen_ai.usage.output_tokens", "6"),
        ("gen_ai.usage.cache_read.input_tokens", "0"),
        ("gen_ai.usage.cache_creation.input_tokens", "0"),
        ("gen_ai.conversation.id", "sess-42"),
        ("llm_gateway.client", "ci"),
        ("llm_gateway.attempt.committed", "true"),
        ("llm_gateway.outcome", "complete"),
        // 11 input at $3/M + 6 output at $15/M, exactly.
        ("llm_gateway.cost_usd", "0.000123"),
    ];
    for (key, value) in expect {
        assert_eq!(attr(attempt, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(
        attr(attempt, "gen_ai.input.messages"),
        None,
        "content is off by default"
    );
    assert_eq!(attr(request, "status").as_deref(), Some("200"));
    assert_eq!(attr(request, "client").as_deref(), Some("ci"));
    assert_eq!(attr(request, "provider").as_deref(), Some("anthropic"));
    assert_eq!(attr(request, "model").as_deref(), Some("claude-sonnet-4-5"));

    // The upstream request carries the trace on, from the attempt span.
    let sent = &upstream.requests()[0];
    assert_eq!(
        sent.header("traceparent"),
        Some(format!("00-{TRACE_ID}-{}-01", hex(&attempt.span_id)).as_str())
    );

    // No credential in any span: the raw export bytes are searched.
    let raw = collector.raw.lock().unwrap().clone();
    for secret in [CLIENT_KEY, UPSTREAM_KEY] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} leaked into a span"
        );
    }
}

#[tokio::test]
async fn a_failed_attempt_is_its_own_span_with_its_reason_before_the_commit_point() {
    let (collector, collector_url) = Collector::start().await;
    let first = MockUpstream::start().await;
    first.push(Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ));
    let second = MockUpstream::start().await;
    second.push(Reply::sse_events(&common::fixture("text_basic.sse")));
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &[("primary", &first.url()), ("backup", &second.url())],
        &collector_url,
        dir.path(),
    );
    let _traced = traced(&config.telemetry);
    let gateway = common::start_gateway(config).await;

    let response = post(&gateway.url, true, None).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();

    let name = "chat claude-sonnet-4-5";
    let spans = collector.wait_for(&["request", name, name]).await;
    let request = named(&spans, "request")[0];
    let attempts = named(&spans, name);
    let by_provider = |p: &str| {
        *attempts
            .iter()
            .find(|s| attr(s, "gen_ai.provider.name").as_deref() == Some(p))
            .unwrap_or_else(|| panic!("an attempt span for {p}"))
    };
    let (failed, served) = (by_provider("primary"), by_provider("backup"));
    for attempt in [failed, served] {
        assert_eq!(attempt.parent_span_id, request.span_id);
        assert_eq!(attempt.trace_id, request.trace_id);
    }
    // A fresh trace (the client sent none): the request span is its root.
    assert!(request.parent_span_id.is_empty());
    assert_eq!(
        attr(failed, "llm_gateway.fallback.reason").as_deref(),
        Some("status_529")
    );
    assert_eq!(
        attr(failed, "llm_gateway.attempt.committed").as_deref(),
        Some("false")
    );
    assert_eq!(attr(failed, "error.type").as_deref(), Some("status_529"));
    // OTLP status code 2 = error.
    assert_eq!(failed.status.as_ref().map(|s| s.code), Some(2));
    assert_eq!(
        attr(served, "llm_gateway.attempt.committed").as_deref(),
        Some("true")
    );
    assert_eq!(
        attr(served, "llm_gateway.outcome").as_deref(),
        Some("complete")
    );
    assert_eq!(attr(served, "llm_gateway.fallback.reason"), None);
    assert!(failed.end_time_unix_nano <= served.start_time_unix_nano);

    // Each upstream saw its own attempt's span as the parent.
    let header = |mock: &MockUpstream| mock.requests()[0].header("traceparent").unwrap().to_owned();
    assert_eq!(
        header(&first),
        format!("00-{}-{}-01", hex(&request.trace_id), hex(&failed.span_id))
    );
    assert_eq!(
        header(&second),
        format!("00-{}-{}-01", hex(&request.trace_id), hex(&served.span_id))
    );
    print_tree(&spans);
}

/// The span tree as text (for the docs): name, then its attributes of interest.
fn print_tree(spans: &[Span]) {
    fn walk(spans: &[Span], parent: &[u8], depth: usize) {
        for span in spans.iter().filter(|s| s.parent_span_id == parent) {
            let ms = (span.end_time_unix_nano - span.start_time_unix_nano) / 1_000_000;
            let mut attrs: Vec<String> = span
                .attributes
                .iter()
                .filter_map(|kv| {
                    Some(format!(
                        "{}={}",
                        kv.key,
                        render(kv.value.as_ref()?.value.as_ref()?)
                    ))
                })
                .collect();
            attrs.sort();
            println!(
                "{}{} ({ms} ms) {}",
                "  ".repeat(depth),
                span.name,
                attrs.join(" ")
            );
            walk(spans, &span.span_id, depth + 1);
        }
    }
    walk(spans, &[], 0);
}

#[tokio::test]
async fn a_stream_the_client_cuts_ends_its_attempt_span() {
    let (collector, collector_url) = Collector::start().await;
    let upstream = MockUpstream::start().await;
    let events = common::mock::split_events(&common::fixture("text_basic.sse"));
    let commit = common::through_commit(&events);
    let mut steps: Vec<Step> = events[..commit]
        .iter()
        .map(|e| Step::Send(e.clone().into_bytes()))
        .collect();
    steps.push(Step::Hang);
    upstream.push(Reply::sse(steps));
    let closed = upstream.on_close();
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &[("anthropic", &upstream.url())],
        &collector_url,
        dir.path(),
    );
    let _traced = traced(&config.telemetry);
    let gateway = common::start_gateway(config).await;

    let mut response = post(&gateway.url, true, None).await;
    assert_eq!(response.status(), 200);
    let mut buffer = String::new();
    common::read_events(&mut response, &mut buffer, commit).await;
    drop(response);
    tokio::time::timeout(common::HANG_GUARD, closed)
        .await
        .unwrap()
        .unwrap();

    let name = "chat claude-sonnet-4-5";
    let spans = collector.wait_for(&["request", name]).await;
    let attempt = named(&spans, name)[0];
    assert_eq!(
        attr(attempt, "llm_gateway.attempt.committed").as_deref(),
        Some("true")
    );
    assert_eq!(
        attr(attempt, "llm_gateway.outcome").as_deref(),
        Some("client_disconnected")
    );
    // What the stream said before the cut is on the span.
    assert!(attr(attempt, "gen_ai.response.id").is_some());
    assert!(attr(attempt, "gen_ai.usage.input_tokens").is_some());
}

#[tokio::test]
async fn content_goes_into_the_spans_only_when_asked_cut_as_the_audit_cuts() {
    let (collector, collector_url) = Collector::start().await;
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(11, 6)));
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(
        &[("anthropic", &upstream.url())],
        &collector_url,
        dir.path(),
    );
    config.telemetry.capture_content = true;
    config.audit.max_body_bytes = 24;
    let _traced = traced(&config.telemetry);
    let gateway = common::start_gateway(config).await;

    let response = post(&gateway.url, false, None).await;
    assert_eq!(response.status(), 200);
    let spans = collector.wait_for(&["chat claude-sonnet-4-5"]).await;
    let messages = attr(
        named(&spans, "chat claude-sonnet-4-5")[0],
        "gen_ai.input.messages",
    )
    .expect("messages captured");
    // The messages as JSON, cut at the audit's bound with the audit's marker.
    let (kept, marker) = messages.split_once('\n').expect("a cut marker");
    assert_eq!(kept.len(), 24);
    assert!(kept.starts_with(r#"[{""#), "{messages}");
    assert_eq!(marker, "[llm-gateway: body cut at 24 of 35 bytes]");
}

#[tokio::test]
async fn requests_answer_while_the_collector_is_down() {
    let refused = RefusedPort::bind();
    let upstream = MockUpstream::start().await;
    for _ in 0..3 {
        upstream.push(Reply::json(200, message_json(11, 6)));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &[("anthropic", &upstream.url())],
        &refused.url(),
        dir.path(),
    );
    let _traced = traced(&config.telemetry);
    let gateway = common::start_gateway(config).await;
    for _ in 0..3 {
        let response = post(&gateway.url, false, None).await;
        assert_eq!(response.status(), 200);
        response.text().await.unwrap();
    }
    assert_eq!(upstream.requests().len(), 3);
}

#[tokio::test]
async fn an_attempt_that_breaks_after_the_commit_point_says_so() {
    let (collector, collector_url) = Collector::start().await;
    let upstream = MockUpstream::start().await;
    let events = common::mock::split_events(&common::fixture("text_basic.sse"));
    let commit = common::through_commit(&events);
    let mut steps: Vec<Step> = events[..commit]
        .iter()
        .map(|e| Step::Send(e.clone().into_bytes()))
        .collect();
    steps.push(Step::Close);
    upstream.push(Reply::sse(steps));
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &[("anthropic", &upstream.url())],
        &collector_url,
        dir.path(),
    );
    let _traced = traced(&config.telemetry);
    let gateway = common::start_gateway(config).await;

    let response = post(&gateway.url, true, None).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap_or_default();
    assert!(text.contains("event: error"), "{text}");

    let name = "chat claude-sonnet-4-5";
    let spans = collector.wait_for(&["request", name]).await;
    let attempt = named(&spans, name)[0];
    assert_eq!(
        attr(attempt, "llm_gateway.attempt.committed").as_deref(),
        Some("true")
    );
    assert_eq!(
        attr(attempt, "llm_gateway.outcome").as_deref(),
        Some("incomplete")
    );
    assert_eq!(attr(attempt, "error.type").as_deref(), Some("incomplete"));
    assert_eq!(attempt.status.as_ref().map(|s| s.code), Some(2));
}

#[tokio::test]
async fn without_telemetry_the_clients_traceparent_passes_unchanged_and_none_is_invented() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(11, 6)));
    upstream.push(Reply::json(200, message_json(11, 6)));
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(
        &[("anthropic", &upstream.url())],
        "http://127.0.0.1:1",
        dir.path(),
    );
    config.telemetry = TelemetryConfig::default();
    let gateway = common::start_gateway(config).await;

    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    post(&gateway.url, false, Some(&traceparent))
        .await
        .text()
        .await
        .unwrap();
    post(&gateway.url, false, None).await.text().await.unwrap();
    let sent = upstream.requests();
    assert_eq!(sent[0].header("traceparent"), Some(traceparent.as_str()));
    assert_eq!(sent[1].header("traceparent"), None);
}
