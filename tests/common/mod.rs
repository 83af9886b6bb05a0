//! The test rig: a scripted mock upstream on 127.0.0.1:0 and the real gateway router
//! in front of it, served on another loopback port.
#![allow(dead_code)]

pub mod mock;

use llm_gateway::config::{Config, ProviderConfig};
use llm_gateway::usage::UsageReport;
use llm_gateway::Gateway;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[allow(unused_imports)]
pub use mock::{MockUpstream, Reply, Step};

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
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestGateway {
    /// The usage reports delivered so far.
    pub fn reports(&self) -> Vec<UsageReport> {
        self.reports.lock().unwrap().clone()
    }

    /// Wait until `n` usage reports have arrived (reports follow the body's end).
    pub async fn wait_reports(&self, n: usize) -> Vec<UsageReport> {
        let deadline = tokio::time::Instant::now() + HANG_GUARD;
        loop {
            let reports = self.reports();
            if reports.len() >= n {
                return reports;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited for {n} usage reports, have {}",
                reports.len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
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
pub async fn start_gateway(config: Config) -> TestGateway {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let gateway = Gateway::builder(config)
        .on_usage(move |report: UsageReport| sink.lock().unwrap().push(report))
        .build()
        .expect("gateway builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = gateway.router();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    TestGateway { url, reports, task }
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
/// the first content event (SPEC §4); the ones before it are held until then.
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
