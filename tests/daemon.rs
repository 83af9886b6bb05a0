//! The example daemon as a real process: start-up, config errors, SIGTERM drain.

mod common;

use common::*;
use mock::split_events;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use tokio::sync::oneshot;

struct Daemon {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str]) -> Daemon {
    // Each daemon works in its own directory, where its audit store lands.
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = spawn_in(dir.path(), args);
    Daemon {
        child,
        url,
        _dir: dir,
    }
}

/// A config file in `dir` with one Anthropic provider pointing at `upstream`.
fn anthropic_config(dir: &tempfile::TempDir, upstream: &MockUpstream) -> String {
    write_config(
        dir,
        &format!(
            "[providers.anthropic]\nkind = \"anthropic\"\nbase_url = \"{}\"\n",
            upstream.url()
        ),
    )
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    // `try_wait` needs the child mutably; each check borrows it in turn.
    let child = std::sync::Mutex::new(child);
    eventually("the daemon's exit", || async {
        child
            .lock()
            .unwrap()
            .try_wait()
            .unwrap()
            .ok_or("still running")
    })
    .await
}

#[tokio::test]
async fn runs_with_no_config_and_answers_health() {
    let daemon = spawn(&["--listen", "127.0.0.1:0"]);
    assert!(daemon.url.starts_with("http://127.0.0.1:"));
    let body: serde_json::Value = serde_json::from_slice(
        &client()
            .get(format!("{}/gateway/health", daemon.url))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["routing"]["default_provider"], "anthropic");
}

#[tokio::test]
async fn sigterm_drains_open_streams_then_exits_zero() {
    let upstream = MockUpstream::start().await;
    let events = split_events(&fixture("text_basic.sse"));
    let commit = through_commit(&events);
    let (go_tx, go_rx) = oneshot::channel();
    let mut steps = through_commit_then(&events, vec![Step::Wait(go_rx)]);
    steps.extend(
        events[commit..]
            .iter()
            .map(|e| Step::Send(e.clone().into_bytes())),
    );
    upstream.push(Reply::sse(steps));

    let dir = tempfile::tempdir().unwrap();
    let config = anthropic_config(&dir, &upstream);
    let mut daemon = spawn(&["--config", &config, "--listen", "127.0.0.1:0"]);
    let mut response = client()
        .post(format!("{}/v1/messages", daemon.url))
        .body(messages_body(true))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    read_events(&mut response, &mut seen, commit).await;

    sigterm(&daemon.child);
    // The daemon stops accepting: wait until a new connection is refused.
    let address = daemon.url.trim_start_matches("http://").to_owned();
    eventually("new connections refused after SIGTERM", || async {
        match tokio::net::TcpStream::connect(&address).await {
            Ok(_) => Err("still accepting"),
            Err(_) => Ok(()),
        }
    })
    .await;
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "still draining the open stream"
    );

    go_tx.send(()).unwrap();
    while let Some(chunk) = response.chunk().await.unwrap() {
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_eq!(
        seen,
        fixture("text_basic.sse"),
        "the open stream finished whole"
    );
    let status = wait_exit(&mut daemon.child).await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn a_stream_outliving_the_grace_period_does_not_block_exit() {
    let upstream = MockUpstream::start().await;
    let events = split_events(&fixture("text_basic.sse"));
    let commit = through_commit(&events);
    let steps = through_commit_then(&events, vec![Step::Hang]);
    upstream.push(Reply::sse(steps));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        &format!(
            "[timeouts]\nshutdown_grace_ms = 200\n[providers.anthropic]\nkind = \"anthropic\"\nbase_url = \"{}\"\n",
            upstream.url()
        ),
    );
    let mut daemon = spawn(&["--config", &config, "--listen", "127.0.0.1:0"]);
    let mut response = client()
        .post(format!("{}/v1/messages", daemon.url))
        .body(messages_body(true))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    read_events(&mut response, &mut seen, commit).await;
    sigterm(&daemon.child);
    let status = wait_exit(&mut daemon.child).await;
    assert_eq!(status.code(), Some(0));
}

#[test]
fn config_errors_stop_start_up_and_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        ("[timeouts]\nfirst_bite_ms = 5\n", "first_bite_ms"),
        ("[routing]\nfallback_chain = [\"ghost\"]\n", "routing.fallback_chain"),
        (
            "[providers.anthropic]\nkind = \"anthropic\"\nbase_url = \"https://x.test\"\napi_key = \"env:LLM_GATEWAY_SURELY_UNSET_VAR\"\n",
            "providers.anthropic.api_key",
        ),
    ] {
        let config = write_config(&dir, text);
        let mut child = Command::new(gateway_binary())
            .args(["--config", &config, "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert_eq!(status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{needle} not in {stderr}");
    }
}

fn spawn_in(dir: &std::path::Path, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(gateway_binary())
        .args(args)
        .current_dir(dir)
        .env_remove("LLM_GATEWAY_CONFIG")
        .env_remove("ANTHROPIC_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the daemon starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    (child, url)
}

#[tokio::test]
async fn kill_dash_nine_a_second_after_a_burst_loses_no_record() {
    const N: usize = 25;
    let upstream = MockUpstream::start().await;
    for _ in 0..N {
        upstream.push(Reply::json(200, message_json(10, 3)));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        &format!(
            "[audit]\npath = \"audit.db\"\n[providers.anthropic]\nkind = \"anthropic\"\nbase_url = \"{}\"\n",
            upstream.url()
        ),
    );
    let (mut child, url) = spawn_in(
        dir.path(),
        &["--config", &config, "--listen", "127.0.0.1:0"],
    );
    let mut ids = Vec::new();
    for _ in 0..N {
        let response = client()
            .post(format!("{url}/v1/messages"))
            .body(messages_body(false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        ids.push(
            response.headers()["x-gateway-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        let _ = response.bytes().await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    child.kill().unwrap(); // SIGKILL: no flush, no shutdown
    child.wait().unwrap();

    // Start it again on the same store and ask it.
    let (mut child, url) = spawn_in(
        dir.path(),
        &["--config", &config, "--listen", "127.0.0.1:0"],
    );
    let body: serde_json::Value = serde_json::from_slice(
        &client()
            .get(format!("{url}/gateway/audit?limit=100"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let stored: Vec<&str> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    for id in &ids {
        assert!(stored.contains(&id.as_str()), "{id} lost");
    }
    assert_eq!(stored.len(), N);

    // And the logs command reads the same store.
    let output = Command::new(gateway_binary())
        .args(["--config", &config, "logs", "--limit", "5"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(
        text.lines().last().unwrap().contains(ids.last().unwrap()),
        "newest last: {text}"
    );
    assert!(
        text.contains("complete") && text.contains("in=10 out=3"),
        "{text}"
    );
}

#[tokio::test]
async fn sigterm_flushes_the_audit_store() {
    const N: usize = 10;
    let upstream = MockUpstream::start().await;
    for _ in 0..N {
        upstream.push(Reply::json(200, message_json(1, 1)));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        &format!(
            "[audit]\npath = \"audit.db\"\n[providers.anthropic]\nkind = \"anthropic\"\nbase_url = \"{}\"\n",
            upstream.url()
        ),
    );
    let (mut child, url) = spawn_in(
        dir.path(),
        &["--config", &config, "--listen", "127.0.0.1:0"],
    );
    for _ in 0..N {
        let response = client()
            .post(format!("{url}/v1/messages"))
            .body(messages_body(false))
            .send()
            .await
            .unwrap();
        let _ = response.bytes().await.unwrap();
    }
    sigterm(&child);
    let status = wait_exit(&mut child).await;
    assert_eq!(status.code(), Some(0));
    let stats = llm_gateway::audit::AuditReader::new(dir.path().join("audit.db"))
        .stats()
        .unwrap();
    assert_eq!(stats.records as usize, N);
}

fn run(home: &std::path::Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(gateway_binary())
        .args(args)
        .current_dir(home)
        .env("LLM_GATEWAY_HOME", home)
        .env_remove("LLM_GATEWAY_CONFIG")
        .env_remove("ANTHROPIC_API_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn credentials_round_trip_in_an_owner_only_file_and_feed_a_provider() {
    let home = tempfile::tempdir().unwrap();
    let out = run(
        home.path(),
        &["credentials", "store", "ANTHROPIC_API_KEY"],
        Some("sk-ant-stored-91c2\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sk-ant-stored-91c2"));
    let out = run(
        home.path(),
        &["credentials", "store", "OTHER", "v-arg"],
        None,
    );
    assert!(out.status.success());
    let file = home.path().join("credentials.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let out = run(home.path(), &["credentials", "list"], None);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ANTHROPIC_API_KEY\nOTHER\n",
        "names only"
    );
    let out = run(
        home.path(),
        &["credentials", "retrieve", "ANTHROPIC_API_KEY"],
        None,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "sk-ant-stored-91c2\n");
    let out = run(home.path(), &["credentials", "delete", "OTHER"], None);
    assert!(out.status.success());
    let out = run(home.path(), &["credentials", "retrieve", "OTHER"], None);
    assert!(!out.status.success());

    // With no config, the stored key is the one the default provider uses.
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(1, 1)));
    let config_dir = tempfile::tempdir_in(home.path()).unwrap();
    let config = write_config(
        &config_dir,
        &format!(
            "[providers.anthropic]\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key = \"credential:ANTHROPIC_API_KEY\"\n",
            upstream.url()
        ),
    );
    let mut child = Command::new(gateway_binary())
        .args(["--config", &config, "--listen", "127.0.0.1:0"])
        .current_dir(home.path())
        .env("LLM_GATEWAY_HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let response = client()
        .post(format!("{url}/v1/messages"))
        .header("x-api-key", "sk-client")
        .body(messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let health: serde_json::Value = serde_json::from_slice(
        &client()
            .get(format!("{url}/gateway/health"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        upstream.requests()[0].header("x-api-key"),
        Some("sk-ant-stored-91c2")
    );
    assert_eq!(health["credentials"]["anthropic"], "credential_store");
}

#[test]
fn a_missing_credential_stops_start_up_with_a_clear_message() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("gateway.toml");
    std::fs::write(
        &config,
        "[providers.anthropic]\nkind = \"anthropic\"\nbase_url = \"https://x.test\"\napi_key = \"credential:NOPE\"\n",
    )
    .unwrap();
    let out = run(
        home.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("providers.anthropic.api_key") && stderr.contains("credentials store NOPE"),
        "{stderr}"
    );
}

#[test]
fn refuses_a_non_loopback_address_without_an_admin_token() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["--listen", "0.0.0.0:0"], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("admin_token") && stderr.contains("127.0.0.1"),
        "{stderr}"
    );
}

#[tokio::test]
async fn start_status_stop_as_real_processes() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["status"], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not running"));

    let out = run(home.path(), &["--listen", "127.0.0.1:0", "start"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        started.starts_with("started llm-gateway (pid "),
        "{started}"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.path().join("gateway.state.json")).unwrap())
            .unwrap();
    let pid = state["pid"].as_u64().unwrap();
    let address = state["address"].as_str().unwrap().to_owned();

    let out = run(home.path(), &["--listen", "127.0.0.1:0", "start"], None);
    assert!(!out.status.success(), "a second start is refused");

    let out = run(home.path(), &["status"], None);
    assert!(out.status.success());
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(status.contains(&format!("pid:      {pid}")), "{status}");
    assert!(status.contains(&address), "{status}");
    assert!(status.contains("uptime:"), "{status}");
    assert!(
        status.contains("\"status\":\"healthy\""),
        "the health answer: {status}"
    );

    let out = run(home.path(), &["stop"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("stopped llm-gateway (pid {pid})"))
    );
    // Exited: gone, or a zombie waiting for its new parent to reap it.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
    assert!(
        stat.is_empty() || state.starts_with('Z'),
        "still running: {stat}"
    );
    assert!(!home.path().join("gateway.state.json").exists());
    let out = run(home.path(), &["status"], None);
    assert_eq!(out.status.code(), Some(3));
    let out = run(home.path(), &["stop"], None);
    assert_eq!(out.status.code(), Some(3));
}

#[tokio::test]
async fn the_daemon_exports_prometheus_text_with_histograms() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse_events(&fixture("text_basic.sse")));
    let dir = tempfile::tempdir().unwrap();
    let config = anthropic_config(&dir, &upstream);
    let daemon = spawn(&["--config", &config, "--listen", "127.0.0.1:0"]);
    let response = client()
        .post(format!("{}/v1/messages", daemon.url))
        .body(messages_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.text().await.unwrap();

    let (content_type, text) = eventually("the daemon counts the request", || async {
        let response = client()
            .get(format!("{}/metrics", daemon.url))
            .header("accept", "application/openmetrics-text;version=1.0.0")
            .send()
            .await
            .unwrap();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let text = response.text().await.unwrap();
        if text.contains("llm_gateway_requests_total{") {
            Ok((content_type, text))
        } else {
            Err(text)
        }
    })
    .await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the exposition parses");
    let requests: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "llm_gateway_requests_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => v,
            ref other => panic!("not a counter: {other:?}"),
        })
        .sum();
    assert_eq!(requests, 1.0);
    for h in llm_gateway::metrics::HISTOGRAM_BUCKETS {
        assert!(
            text.contains(&format!("# TYPE {} histogram", h.metric)),
            "{text}"
        );
    }
}

#[tokio::test]
async fn the_background_daemon_keeps_its_files_in_its_home_and_logs_finds_them() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("gateway.toml"),
        "[audit]\npath = \"audit.db\"\n[providers.anthropic]\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let in_dir = |dir: &std::path::Path, args: &[&str]| {
        Command::new(gateway_binary())
            .args(args)
            .current_dir(dir)
            .env("LLM_GATEWAY_HOME", home.path())
            .env_remove("LLM_GATEWAY_CONFIG")
            .env_remove("ANTHROPIC_API_KEY")
            .output()
            .unwrap()
    };
    // Started with a config path relative to the working directory...
    let out = in_dir(
        work.path(),
        &[
            "--config",
            "gateway.toml",
            "--listen",
            "127.0.0.1:0",
            "start",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...its relative audit path lands in the home, not here.
    assert!(home.path().join("audit.db").exists());
    assert!(!work.path().join("audit.db").exists());
    // `logs` run from the working directory finds it there.
    let out = in_dir(work.path(), &["--config", "gateway.toml", "logs"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(home.path().join("gateway.log")).unwrap();
    assert!(
        log.contains("started") && !log.contains('\u{1b}'),
        "plain text: {log}"
    );
    let out = in_dir(work.path(), &["stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
