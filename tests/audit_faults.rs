//! Audit and credential faults through the real gateway: failing writes are seen in
//! health, metrics and the log rather than lost in silence; a deleted store is
//! recreated; the files are private; listings are bounded by bytes and paged by a
//! cursor; concurrent credential writers all keep their names.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-gateway-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// Send one JSON request through the gateway; its request id.
async fn one_request(gateway: &TestGateway, upstream: &MockUpstream) -> String {
    upstream.push(Reply::json(200, message_json(3, 2)));
    let response = gateway.post_messages(messages_body(false)).await;
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let _ = response.bytes().await.unwrap();
    id
}

/// Poll `/gateway/health` until `done` accepts it.
async fn wait_health(gateway: &TestGateway, done: impl Fn(&Value) -> bool) -> Value {
    eventually("the health answer", || async {
        let health = gateway.get_json("/gateway/health").await;
        if done(&health) {
            Ok(health)
        } else {
            Err(health)
        }
    })
    .await
}

/// The value of a Prometheus sample line `name value`.
fn sample(prometheus: &str, name: &str) -> Option<u64> {
    prometheus.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

/// Another connection holding SQLite's write lock makes every commit of the gateway's
/// writer fail ("database is locked") exactly as a full or stuck disk does: the commit
/// returns an error and nothing is written. (As root, a read-only mode would not stop
/// the writes, and a small filesystem needs a mount this test cannot make.)
fn hold_write_lock(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

#[tokio::test]
async fn failing_audit_writes_degrade_health_and_count_until_they_recover() {
    let upstream = MockUpstream::start().await;
    // The writer is a thread of its own: capture what it logs through the global
    // subscriber (only this test sets one; lines are told apart by the store's path).
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let _ = tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );
    let gateway = start_gateway(config_for(&upstream)).await;
    let first = one_request(&gateway, &upstream).await;
    gateway.wait_audit(&format!("request_id={first}"), 1).await;
    let health = gateway.get_json("/gateway/health").await;
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["audit"]["healthy"], true, "{health}");

    let lock = hold_write_lock(&gateway.audit_path);
    let during = one_request(&gateway, &upstream).await;
    let health = wait_health(&gateway, |h| h["audit"]["healthy"] == false).await;
    assert_eq!(health["status"], "degraded", "{health}");
    let error = health["audit"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("locked"), "{health}");
    let prometheus = gateway.get_text("/metrics").await;
    let errors = sample(&prometheus, "llm_gateway_audit_write_errors_total");
    assert!(errors.is_some_and(|n| n >= 1), "{prometheus}");
    assert_eq!(
        sample(&prometheus, "llm_gateway_audit_records_dropped_total"),
        Some(0),
        "a failed batch is kept, not dropped: {prometheus}"
    );

    // The disk comes back: the kept record is written and health recovers.
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let health = wait_health(&gateway, |h| h["audit"]["healthy"] == true).await;
    assert_eq!(health["status"], "healthy", "{health}");
    assert!(health["audit"].get("error").is_none(), "{health}");
    gateway.wait_audit(&format!("request_id={during}"), 1).await;

    // Logged once when the failures began and once when they ended, not per retry.
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    let path = gateway.audit_path.display().to_string();
    let ours: Vec<&str> = text.lines().filter(|l| l.contains(&path)).collect();
    let count = |what: &str| ours.iter().filter(|l| l.contains(what)).count();
    assert_eq!(count("writes are failing"), 1, "{text}");
    assert_eq!(count("writes recovered"), 1, "{text}");
}

#[tokio::test]
async fn a_deleted_audit_file_is_recreated_and_later_records_land_in_it() {
    let upstream = MockUpstream::start().await;
    let gateway = start_gateway(config_for(&upstream)).await;
    let before = one_request(&gateway, &upstream).await;
    gateway.wait_audit(&format!("request_id={before}"), 1).await;

    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", gateway.audit_path.display()));
    }
    let after = one_request(&gateway, &upstream).await;
    // A fresh reader on the path, as after a restart, finds the later record.
    let reader = llm_gateway::audit::AuditReader::new(&gateway.audit_path);
    let query = llm_gateway::audit::AuditQuery {
        request_id: Some(after.clone()),
        ..Default::default()
    };
    eventually(&format!("{after} in the file at the path"), || async {
        match reader.query(&query) {
            Ok(found) if found.len() == 1 => Ok(()),
            other => Err(other.map(|found| found.len())),
        }
    })
    .await;
    let prometheus = gateway.get_text("/metrics").await;
    assert_eq!(
        sample(&prometheus, "llm_gateway_audit_file_reopened_total"),
        Some(1),
        "{prometheus}"
    );
    assert_eq!(
        gateway.get_json("/gateway/health").await["audit"]["healthy"],
        true
    );
}

#[cfg(unix)]
#[tokio::test]
async fn audit_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let upstream = MockUpstream::start().await;
    let gateway = start_gateway(config_for(&upstream)).await;
    let id = one_request(&gateway, &upstream).await;
    gateway.wait_audit(&format!("request_id={id}"), 1).await;
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", gateway.audit_path.display());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{path}");
    }
}

#[tokio::test]
async fn a_listing_of_large_records_is_bounded_by_bytes_and_paged_by_cursor() {
    const N: usize = 14;
    const BODY: usize = 1024 * 1024;
    let upstream = MockUpstream::start().await;
    let gateway = start_gateway(config_for(&upstream)).await;
    let mut ids = Vec::new();
    for i in 0..N {
        upstream.push(Reply::json(200, message_json(3, 2)));
        // ~1 MiB of prompt each, different per request.
        let text: String = (0..BODY / 16)
            .map(|j| format!("{:015x} ", i * 1_000_003 + j))
            .collect();
        let body = serde_json::json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": text}],
        })
        .to_string();
        let response = gateway.post_messages(body).await;
        assert_eq!(response.status(), 200);
        ids.push(request_id(&response));
        let _ = response.bytes().await.unwrap();
    }
    let last = ids.last().unwrap().clone();
    gateway.wait_audit(&format!("request_id={last}"), 1).await;

    // The default listing is metadata: small, every record, no bodies.
    let response = client()
        .get(gateway.url("/gateway/audit?limit=1000"))
        .send()
        .await
        .unwrap();
    let bytes = response.bytes().await.unwrap();
    assert!(bytes.len() < 64 * 1024, "{} bytes", bytes.len());
    let page: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(page["records"].as_array().unwrap().len(), N);
    assert_eq!(page["bodies"], false);
    assert!(page["records"][0]["request_body"].is_null());

    // Asking for bodies: each page stays within 8 MiB of records, and the cursor
    // walks every record exactly once, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..N {
        let url = match &cursor {
            Some(c) => format!("/gateway/audit?limit=1000&bodies=true&cursor={c}"),
            None => "/gateway/audit?limit=1000&bodies=true".to_owned(),
        };
        let bytes = client()
            .get(gateway.url(&url))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(
            bytes.len() <= llm_gateway::audit::MAX_PAGE_BYTES + 64 * 1024,
            "{} bytes",
            bytes.len()
        );
        let page: Value = serde_json::from_slice(&bytes).unwrap();
        let records = page["records"].as_array().unwrap();
        assert!(!records.is_empty());
        for record in records {
            assert!(record["request_body"].as_str().unwrap().len() > BODY);
            seen.push(record["request_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    assert!(cursor.is_some(), "14 MiB of records did not fit one page");

    // One record by id carries its bodies.
    let one = gateway
        .wait_audit(&format!("request_id={}", ids[3]), 1)
        .await;
    assert!(one[0]["request_body"].as_str().unwrap().len() > BODY);
    let response = client()
        .get(gateway.url("/gateway/audit?cursor=nonsense"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

/// Build (if needed) and locate the example binary next to this test's target dir.
fn gateway_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap().to_path_buf();
    let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .args(["build", "--quiet", "--example", "gateway", "--target-dir"])
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the example builds");
    profile_dir.join("examples").join("gateway")
}

#[test]
fn twenty_concurrent_credential_stores_keep_every_name() {
    const N: usize = 20;
    let binary = gateway_binary();
    let home = tempfile::tempdir().unwrap();
    // All started before any is waited for, so they run at once.
    let children: Vec<_> = (0..N)
        .map(|i| {
            Command::new(&binary)
                .args([
                    "credentials",
                    "store",
                    &format!("NAME_{i:02}"),
                    &format!("v{i}"),
                ])
                .current_dir(home.path())
                .env("LLM_GATEWAY_HOME", home.path())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    let store = llm_gateway::credentials::CredentialStore::at(home.path().join("credentials.json"));
    let want: Vec<String> = (0..N).map(|i| format!("NAME_{i:02}")).collect();
    assert_eq!(store.names().unwrap(), want);
}

#[tokio::test]
async fn sigterm_while_audit_writes_fail_logs_the_records_it_could_not_write() {
    use std::io::{BufRead, BufReader, Read};
    const N: usize = 20;
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[audit]\npath = \"audit.db\"\n[providers.anthropic]\nkind = \"anthropic\"\nbase_url = \"{}\"\n",
            upstream.url()
        ),
    )
    .unwrap();
    let mut child = Command::new(gateway_binary())
        .args([
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .env_remove("LLM_GATEWAY_CONFIG")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
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
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let lock = hold_write_lock(&dir.path().join("audit.db"));
    for _ in 0..N {
        upstream.push(Reply::json(200, message_json(1, 1)));
        let response = client()
            .post(format!("{url}/v1/messages"))
            .body(messages_body(false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.unwrap();
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let child = std::sync::Mutex::new(child);
    eventually("the daemon to exit", || async {
        child.lock().unwrap().try_wait().unwrap().ok_or("running")
    })
    .await;
    let text = stderr.join().unwrap();
    lock.execute_batch("ROLLBACK").unwrap();
    assert!(text.contains("could not flush the audit store"), "{text}");
    assert!(
        text.contains(&format!(
            "{N} audit records could not be written at shutdown"
        )),
        "{text}"
    );
}
