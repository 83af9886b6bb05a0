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

/// Assert each `(key, value)` attribute of `span`.
fn assert_attrs(span: &Span, expect: &[(&str, &str)]) {
    for (key, value) in expect {
        assert_eq!(attr(span, key).as_deref(), Some(*value), "{key}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// The gateway's config: `providers` (name, base URL) in fallback order, a client key,
/// the collector.
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

/// A gateway in front of `providers`, traced to its own collector.
struct Rig {
    collector: Collector,
    gateway: common::TestGateway,
    _traced: Option<tracing::subscriber::DefaultGuard>,
    _dir: tempfile::TempDir,
}

/// The rig for `providers` (name, mock), its config changed by `edit` first. The OTLP
/// layer sits in a subscriber scoped to this test's thread (the tests run on a
/// current-thread runtime, so the gateway's tasks are traced too); with no
/// `otlp_endpoint` left after `edit`, there is none.
async fn rig(providers: &[(&str, &MockUpstream)], edit: impl FnOnce(&mut Config)) -> Rig {
    let (collector, collector_url) = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let urls: Vec<(&str, String)> = providers.iter().map(|(n, m)| (*n, m.url())).collect();
    let urls: Vec<(&str, &str)> = urls.iter().map(|(n, u)| (*n, u.as_str())).collect();
    let mut config = config(&urls, &collector_url, dir.path());
    edit(&mut config);
    let traced = llm_gateway::telemetry::otlp_layer(&config.telemetry)
        .expect("exporter builds")
        .map(|otlp| {
            // The provider lives as long as the layer's tracer; its thread keeps exporting.
            let layer = otlp
                .layer
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
            tracing::subscriber::set_default(tracing_subscriber::registry().with(layer))
        });
    let gateway = common::start_gateway(config).await;
    Rig {
        collector,
        gateway,
        _traced: traced,
        _dir: dir,
    }
}

/// A stream that sends `text_basic.sse` through its commit point, then `then`.
fn stream_then(then: Step) -> Reply {
    let events = common::mock::split_events(&common::fixture("text_basic.sse"));
    Reply::sse(common::through_commit_then(&events, vec![then]))
}

/// Events of `text_basic.sse` the client gets up to the commit point.
fn commit_events() -> usize {
    common::through_commit(&common::mock::split_events(&common::fixture(
        "text_basic.sse",
    )))
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

const CHAT: &str = "chat claude-sonnet-4-5";

#[tokio::test]
async fn a_request_is_a_span_with_its_attempt_inside_the_clients_trace() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(11, 6)));
    let rig = rig(&[("anthropic", &upstream)], |_| {}).await;

    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let response = post(&rig.gateway.url, false, Some(&traceparent)).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();

    let spans = rig.collector.wait_for(&["request", CHAT]).await;
    let request = named(&spans, "request")[0];
    let attempt = named(&spans, CHAT)[0];
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
    assert_attrs(attempt, &expect);
    assert_eq!(
        attr(attempt, "gen_ai.input.messages"),
        None,
        "content is off by default"
    );
    let on_request = [
        ("status", "200"),
        ("client", "ci"),
        ("provider", "anthropic"),
        ("model", "claude-sonnet-4-5"),
    ];
    assert_attrs(request, &on_request);

    // The upstream request carries the trace on, from the attempt span.
    let sent = &upstream.requests()[0];
    assert_eq!(
        sent.header("traceparent"),
        Some(format!("00-{TRACE_ID}-{}-01", hex(&attempt.span_id)).as_str())
    );

    // No credential in any span: the raw export bytes are searched.
    let raw = rig.collector.raw.lock().unwrap().clone();
    for secret in [CLIENT_KEY, UPSTREAM_KEY] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} leaked into a span"
        );
    }
}

#[tokio::test]
async fn a_failed_attempt_is_its_own_span_with_its_reason_before_the_commit_point() {
    let first = MockUpstream::start().await;
    first.push(Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ));
    let second = MockUpstream::start().await;
    second.push(Reply::sse_events(&common::fixture("text_basic.sse")));
    let rig = rig(&[("primary", &first), ("backup", &second)], |_| {}).await;

    let response = post(&rig.gateway.url, true, None).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();

    let spans = rig.collector.wait_for(&["request", CHAT, CHAT]).await;
    let request = named(&spans, "request")[0];
    let attempts = named(&spans, CHAT);
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
    assert_attrs(
        failed,
        &[
            ("llm_gateway.fallback.reason", "status_529"),
            ("llm_gateway.attempt.committed", "false"),
            ("error.type", "status_529"),
        ],
    );
    // OTLP status code 2 = error.
    assert_eq!(failed.status.as_ref().map(|s| s.code), Some(2));
    assert_attrs(
        served,
        &[
            ("llm_gateway.attempt.committed", "true"),
            ("llm_gateway.outcome", "complete"),
        ],
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
    let upstream = MockUpstream::start().await;
    upstream.push(stream_then(Step::Hang));
    let closed = upstream.on_close();
    let rig = rig(&[("anthropic", &upstream)], |_| {}).await;

    let mut response = post(&rig.gateway.url, true, None).await;
    assert_eq!(response.status(), 200);
    let mut buffer = String::new();
    common::read_events(&mut response, &mut buffer, commit_events()).await;
    drop(response);
    tokio::time::timeout(common::HANG_GUARD, closed)
        .await
        .unwrap()
        .unwrap();

    let spans = rig.collector.wait_for(&["request", CHAT]).await;
    let attempt = named(&spans, CHAT)[0];
    // What the stream said before the cut is on the span.
    assert_attrs(
        attempt,
        &[
            ("llm_gateway.attempt.committed", "true"),
            ("llm_gateway.outcome", "client_disconnected"),
            ("gen_ai.response.id", "msg_01Text"),
            ("gen_ai.usage.input_tokens", "11"),
        ],
    );
}

#[tokio::test]
async fn an_attempt_that_breaks_after_the_commit_point_says_so() {
    let upstream = MockUpstream::start().await;
    upstream.push(stream_then(Step::Close));
    let rig = rig(&[("anthropic", &upstream)], |_| {}).await;

    let response = post(&rig.gateway.url, true, None).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap_or_default();
    assert!(text.contains("event: error"), "{text}");

    let spans = rig.collector.wait_for(&["request", CHAT]).await;
    let attempt = named(&spans, CHAT)[0];
    assert_attrs(
        attempt,
        &[
            ("llm_gateway.attempt.committed", "true"),
            ("llm_gateway.outcome", "incomplete"),
            ("error.type", "incomplete"),
        ],
    );
    assert_eq!(attempt.status.as_ref().map(|s| s.code), Some(2));
}

#[tokio::test]
async fn content_goes_into_the_spans_only_when_asked_cut_as_the_audit_cuts() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(11, 6)));
    let rig = rig(&[("anthropic", &upstream)], |config| {
        config.telemetry.capture_content = true;
        config.audit.max_body_bytes = 24;
    })
    .await;

    let response = post(&rig.gateway.url, false, None).await;
    assert_eq!(response.status(), 200);
    let spans = rig.collector.wait_for(&[CHAT]).await;
    let messages =
        attr(named(&spans, CHAT)[0], "gen_ai.input.messages").expect("messages captured");
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
    let rig = rig(&[("anthropic", &upstream)], |config| {
        config.telemetry.otlp_endpoint = Some(refused.url().parse().unwrap());
    })
    .await;
    for _ in 0..3 {
        let response = post(&rig.gateway.url, false, None).await;
        assert_eq!(response.status(), 200);
        response.text().await.unwrap();
    }
    assert_eq!(upstream.requests().len(), 3);
}

#[tokio::test]
async fn without_telemetry_the_clients_traceparent_passes_unchanged_and_none_is_invented() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(11, 6)));
    upstream.push(Reply::json(200, message_json(11, 6)));
    let rig = rig(&[("anthropic", &upstream)], |config| {
        config.telemetry = TelemetryConfig::default();
    })
    .await;

    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let url = &rig.gateway.url;
    post(url, false, Some(&traceparent))
        .await
        .text()
        .await
        .unwrap();
    post(url, false, None).await.text().await.unwrap();
    let sent = upstream.requests();
    assert_eq!(sent[0].header("traceparent"), Some(traceparent.as_str()));
    assert_eq!(sent[1].header("traceparent"), None);
}
