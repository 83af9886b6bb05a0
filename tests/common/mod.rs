//! The test rig: a scripted mock upstream on 127.0.0.1:0 and the real gateway router
//! in front of it, served on another loopback port.
#![allow(dead_code)]

pub mod mock;
pub mod tcp_proxy;

use llm_gateway::config::{Config, ProviderConfig};
use llm_gateway::usage::UsageReport;
use llm_gateway::Gateway;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[allow(unused_imports)]
pub use mock::{MockUpstream, RefusedPort, Reply, Step};

/// Longest any test waits for a thing that must happen; a guard against hangs, not a
/// timing assertion.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// Read a fixture from `tests/fixtures`.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A running gateway and what its usage hook saw.
pub struct TestGateway {
    pub url: String,
    pub reports: Arc<Mutex<Vec<UsageReport>>>,
    /// The audit store's file (in a directory removed with the gateway).
    pub audit_path: std::path::PathBuf,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Poll `check` every few milliseconds until it returns `Ok`, and return that value.
///
/// Panics after [`HANG_GUARD`] with `what` and the last thing `check` saw (the `Err`
/// side), so a test that waits for a background effect (a record written, a metric
/// counted) fails with a reason instead of hanging. This bounds a hang; it never asserts
/// a duration.
pub async fn eventually<T, Seen, F, Fut>(what: &str, mut check: F) -> T
where
    Seen: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Seen>>,
{
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) => assert!(
                tokio::time::Instant::now() < deadline,
                "waited {HANG_GUARD:?} for {what}; last saw {seen:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl TestGateway {
    /// The usage reports delivered so far.
    pub fn reports(&self) -> Vec<UsageReport> {
        self.reports.lock().unwrap().clone()
    }

    /// Wait until `n` usage reports have arrived (reports follow the body's end).
    pub async fn wait_reports(&self, n: usize) -> Vec<UsageReport> {
        eventually(&format!("{n} usage reports"), || async {
            let reports = self.reports();
            if reports.len() >= n {
                Ok(reports)
            } else {
                Err(reports.len())
            }
        })
        .await
    }

    /// The gateway's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// POST `body` to `/v1/messages`.
    pub async fn post_messages(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        client()
            .post(self.url("/v1/messages"))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// GET `path` and parse the answer as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let bytes = client()
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// GET `path` as text.
    pub async fn get_text(&self, path: &str) -> String {
        client()
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `/gateway/audit?QUERY` once it holds at least `n` records (they are written by a
    /// background writer within a second).
    pub async fn wait_audit(&self, query: &str, n: usize) -> Vec<serde_json::Value> {
        eventually(&format!("{n} audit records for ?{query}"), || async {
            let response = client()
                .get(self.url(&format!("/gateway/audit?{query}")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body: serde_json::Value =
                serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            let records = body["records"].as_array().cloned().unwrap_or_default();
            if records.len() >= n {
                Ok(records)
            } else {
                Err(records.len())
            }
        })
        .await
    }
}

/// Serve a built `gateway` on 127.0.0.1:0: its URL, and the task serving it (abort it
/// to stop).
pub async fn serve_gateway(gateway: Gateway) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        gateway
            .serve(listener, std::future::pending(), Duration::ZERO)
            .await
            .unwrap();
    });
    (url, task)
}

/// Serve `router` inside the gateway's tower-http edge on 127.0.0.1:0; its URL.
pub async fn serve_behind_edge(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, llm_gateway::edge::wrap(router))
            .await
            .unwrap();
    });
    url
}

/// A config with one anthropic provider pointing at `upstream`.
pub fn config_for(upstream: &MockUpstream) -> Config {
    let mut config = Config::default();
    config.providers.insert(
        "anthropic".into(),
        ProviderConfig::anthropic(upstream.url().parse().unwrap()),
    );
    config
}

/// Start the gateway for `config` on 127.0.0.1:0.
pub async fn start_gateway(mut config: Config) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.db");
    config.audit.path = audit_path.clone();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    // Its own recorder: tests run in parallel in one process and must not mix numbers.
    let recorder = prometheus_recorder();
    let handle = recorder.handle();
    let gateway = Gateway::builder(config)
        .on_usage(move |report: UsageReport| sink.lock().unwrap().push(report))
        .metrics_recorder(recorder)
        .serve_metrics(move || handle.render())
        .build()
        .expect("gateway builds");
    let (url, task) = serve_gateway(gateway).await;
    TestGateway {
        url,
        reports,
        audit_path,
        task,
        _dir: dir,
    }
}

/// A Prometheus recorder whose histograms have the gateway's buckets, as a host sets it up.
pub fn prometheus_recorder() -> metrics_exporter_prometheus::PrometheusRecorder {
    let mut builder = metrics_exporter_prometheus::PrometheusBuilder::new();
    for h in llm_gateway::metrics::HISTOGRAM_BUCKETS {
        builder = builder
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(h.metric.into()),
                h.bounds,
            )
            .unwrap();
    }
    builder.build_recorder()
}

/// A plain HTTP client (no pooling surprises between tests).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A minimal Messages request body.
pub fn messages_body(stream: bool) -> String {
    format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":64,"stream":{stream},"messages":[{{"role":"user","content":"Hello"}}]}}"#
    )
}

/// Read SSE from a response until `events` complete events (blank-line ended) arrived.
pub async fn read_events(response: &mut reqwest::Response, buffer: &mut String, events: usize) {
    while buffer.matches("\n\n").count() < events {
        let chunk = tokio::time::timeout(HANG_GUARD, response.chunk())
            .await
            .expect("event arrives")
            .expect("body readable")
            .expect("stream not over");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

/// How many events of `events` go out before the gateway commits: up to and including
/// the first content event; the ones before it are held until then.
pub fn through_commit(events: &[String]) -> usize {
    events
        .iter()
        .position(|e| {
            e.starts_with("event: content_block_delta") || e.starts_with("event: message_stop")
        })
        .map_or(events.len(), |i| i + 1)
}

/// A non-streaming Messages answer.
pub fn message_json(input: u64, output: u64) -> String {
    format!(
        r#"{{"id":"msg_01Json","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{{"type":"text","text":"Hello! How can I help?"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":{input},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{output}}}}}"#
    )
}

/// Rebuild the Anthropic message a client would assemble from an SSE answer, checking
/// that each frame's `event:` names its data's `type`.
pub fn accumulate(sse: &str) -> serde_json::Value {
    use serde_json::{json, Value};
    let mut message = json!({});
    let mut blocks: Vec<Value> = Vec::new();
    let mut partial_json: Vec<String> = Vec::new();
    for frame in mock::split_events(sse) {
        let mut name = "";
        let mut data = String::new();
        for line in frame.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                name = v;
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
        if data.is_empty() {
            continue;
        }
        let event: Value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
        assert_eq!(event["type"], name, "event name matches data type");
        match name {
            "message_start" => message = event["message"].clone(),
            "content_block_start" => {
                blocks.push(event["content_block"].clone());
                partial_json.push(String::new());
            }
            "content_block_delta" => {
                let i = event["index"].as_u64().unwrap() as usize;
                let delta = &event["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        let text = blocks[i]["text"].as_str().unwrap_or("").to_owned()
                            + delta["text"].as_str().unwrap();
                        blocks[i]["text"] = json!(text);
                    }
                    "thinking_delta" => {
                        let text = blocks[i]["thinking"].as_str().unwrap_or("").to_owned()
                            + delta["thinking"].as_str().unwrap();
                        blocks[i]["thinking"] = json!(text);
                    }
                    "input_json_delta" => {
                        partial_json[i].push_str(delta["partial_json"].as_str().unwrap())
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let i = event["index"].as_u64().unwrap() as usize;
                if blocks[i]["type"] == "tool_use" && !partial_json[i].is_empty() {
                    blocks[i]["input"] = serde_json::from_str(&partial_json[i]).unwrap();
                }
            }
            "message_delta" => {
                message["stop_reason"] = event["delta"]["stop_reason"].clone();
                if let Some(usage) = event["usage"].as_object() {
                    for (k, v) in usage {
                        message["usage"][k] = v.clone();
                    }
                }
            }
            _ => {}
        }
    }
    message["content"] = Value::Array(blocks);
    message
}

/// An OpenAI chat-completions stream: each chunk as a `data:` line, then `[DONE]`.
pub fn openai_stream(chunks: &[serde_json::Value]) -> String {
    let mut text: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    text.push_str("data: [DONE]\n\n");
    text
}

/// The steps that send `events` up to the commit point, then `rest`.
pub fn through_commit_then(events: &[String], rest: Vec<Step>) -> Vec<Step> {
    let commit = through_commit(events);
    let mut steps: Vec<Step> = events[..commit]
        .iter()
        .map(|e| Step::Send(e.clone().into_bytes()))
        .collect();
    steps.extend(rest);
    steps
}

/// Log lines captured from a `tracing` subscriber, to search for secrets.
#[derive(Clone, Default)]
pub struct CapturedLogs(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Capture every log line at TRACE on this thread (tests run single-threaded
    /// runtimes, so the gateway's tasks log here too) until the guard drops.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

/// Panic if any of `secrets` appears in any of `outputs` (name, bytes).
pub fn assert_no_secret(outputs: &[(String, Vec<u8>)], secrets: &[&str]) {
    for (what, bytes) in outputs {
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} leaked into {what}"
            );
        }
    }
}

/// Build (if needed) and locate the example binary next to this test's target dir.
pub fn gateway_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap().to_path_buf();
    let status = std::process::Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .args(["build", "--quiet", "--example", "gateway", "--target-dir"])
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the example builds");
    profile_dir.join("examples").join("gateway")
}
