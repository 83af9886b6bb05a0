//! Client keys, the admin token, limits that keep one client from hurting the rest,
//! and secrets that never leak — through the real gateway.

mod common;

use common::*;
use llm_gateway::config::{AuthConfig, ClientKey, Secret, SecretRef};
use llm_gateway::Config;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENT_KEY_CI: &str = "gk-ci-4b2c91aa77";
const CLIENT_KEY_DEV: &str = "gk-dev-0d0e51f3c2";
const ADMIN_TOKEN: &str = "adm-7f3e9c2b55d1";
const PROVIDER_KEY: &str = "sk-ant-provider-e83b41c0";

fn secured(upstream: &MockUpstream) -> Config {
    let mut config = config_for(upstream);
    config.providers.get_mut("anthropic").unwrap().api_key =
        Some(SecretRef::Literal(Secret::new(PROVIDER_KEY)));
    config.auth = Some(AuthConfig::new(vec![
        ClientKey::new("ci", SecretRef::Literal(Secret::new(CLIENT_KEY_CI))),
        ClientKey::new("dev", SecretRef::Literal(Secret::new(CLIENT_KEY_DEV))),
    ]));
    config.admin_token = Some(SecretRef::Literal(Secret::new(ADMIN_TOKEN)));
    config
}

async fn error_type(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    (
        status,
        body["error"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn v1_needs_a_client_key_in_either_header() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(3, 2)));
    upstream.push(Reply::json(200, message_json(3, 2)));
    let gateway = start_gateway(secured(&upstream)).await;
    let client = client();
    let url = gateway.url("/v1/messages");

    let missing = client
        .post(&url)
        .body(messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_type(missing).await,
        (401, "authentication_error".to_owned())
    );
    let wrong = client
        .post(&url)
        .header("x-api-key", "gk-wrong")
        .body(messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_type(wrong).await,
        (401, "authentication_error".to_owned())
    );
    let wrong_bearer = client
        .post(&url)
        .header("authorization", format!("Bearer {CLIENT_KEY_CI}x"))
        .body(messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(error_type(wrong_bearer).await.0, 401);
    let models = client.get(gateway.url("/v1/models")).send().await.unwrap();
    assert_eq!(models.status(), 401, "every /v1 path");
    assert!(upstream.requests().is_empty(), "nothing went upstream");

    let by_header = client
        .post(&url)
        .header("x-api-key", CLIENT_KEY_CI)
        .body(messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);
    let _ = by_header.bytes().await;
    let by_bearer = client
        .post(&url)
        .header("authorization", format!("Bearer {CLIENT_KEY_DEV}"))
        .body(messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(by_bearer.status(), 200);
    let _ = by_bearer.bytes().await;

    // The client's credential never goes upstream; the provider's key does.
    for request in upstream.requests() {
        assert_eq!(request.header("x-api-key"), Some(PROVIDER_KEY));
        assert_eq!(request.header("authorization"), None);
    }
    // The key's name, never its value, in audit and metrics.
    let records = audit_as_admin(&gateway, 2, |r| r["client"].is_string()).await;
    let mut clients: Vec<&str> = records
        .iter()
        .filter_map(|r| r["client"].as_str())
        .collect();
    clients.sort_unstable();
    assert_eq!(clients, ["ci", "dev"]);
    let metrics: Value = serde_json::from_slice(
        &client
            .get(gateway.url("/gateway/metrics"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        metrics["by_client"]["ci"].is_number() && metrics["by_client"]["dev"].is_number(),
        "{metrics}"
    );
}

/// The audit records, once at least `n` of them satisfy `counted` (records are
/// committed in batches, so the ones asked for may come after others).
async fn audit_as_admin(
    gateway: &TestGateway,
    n: usize,
    counted: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    eventually(&format!("{n} matching audit records"), || async {
        let body: Value = serde_json::from_slice(
            &client()
                .get(gateway.url("/gateway/audit?limit=100"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
        )
        .unwrap();
        let records = body["records"].as_array().cloned().unwrap_or_default();
        let matching = records.iter().filter(|r| counted(r)).count();
        if matching >= n {
            Ok(records)
        } else {
            Err(matching)
        }
    })
    .await
}

#[tokio::test]
async fn admin_endpoints_need_the_admin_token_and_health_stays_open() {
    let upstream = MockUpstream::start().await;
    let gateway = start_gateway(secured(&upstream)).await;
    let client = client();
    for path in ["/gateway/metrics", "/gateway/audit", "/metrics"] {
        let none = client.get(gateway.url(path)).send().await.unwrap();
        assert_eq!(
            error_type(none).await,
            (403, "permission_error".to_owned()),
            "{path}"
        );
        let wrong = client
            .get(gateway.url(path))
            .bearer_auth("adm-wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 403, "{path}");
        let client_key = client
            .get(gateway.url(path))
            .bearer_auth(CLIENT_KEY_CI)
            .send()
            .await
            .unwrap();
        assert_eq!(
            client_key.status(),
            403,
            "a client key is not an admin token: {path}"
        );
        let right = client
            .get(gateway.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 200, "{path}");
    }
    let health = client
        .get(gateway.url("/gateway/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let health: Value = serde_json::from_slice(&health.bytes().await.unwrap()).unwrap();
    assert_eq!(health["auth"], true);
    assert_eq!(health["credentials"]["anthropic"], "config");
}

#[tokio::test]
async fn without_auth_the_admin_endpoints_are_open_on_loopback() {
    let upstream = MockUpstream::start().await;
    let gateway = start_gateway(config_for(&upstream)).await;
    let response = client()
        .get(gateway.url("/gateway/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn over_the_concurrency_limit_requests_are_shed_with_529_and_admitted_ones_finish() {
    const LIMIT: usize = 4;
    let upstream = MockUpstream::start().await;
    let events = mock::split_events(&fixture("text_basic.sse"));
    let commit = through_commit(&events);
    let mut releases = Vec::new();
    for _ in 0..LIMIT {
        let (tx, rx) = tokio::sync::oneshot::channel();
        releases.push(tx);
        let mut steps = through_commit_then(&events, vec![Step::Wait(rx)]);
        steps.extend(
            events[commit..]
                .iter()
                .map(|e| Step::Send(e.clone().into_bytes())),
        );
        upstream.push(Reply::sse(steps));
    }
    upstream.push(Reply::sse_events(&fixture("text_basic.sse")));
    let mut config = config_for(&upstream);
    config.limits.max_concurrent_requests = LIMIT;
    let gateway = start_gateway(config).await;
    let client = client();

    let mut open = Vec::new();
    for _ in 0..LIMIT {
        let mut response = client
            .post(gateway.url("/v1/messages"))
            .body(messages_body(true))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut seen = String::new();
        read_events(&mut response, &mut seen, commit).await;
        open.push((response, seen));
    }
    // A flood while all permits are taken: each is refused at once, nothing upstream.
    for _ in 0..20 {
        let shed = client
            .post(gateway.url("/v1/messages"))
            .body(messages_body(true))
            .send()
            .await
            .unwrap();
        assert_eq!(error_type(shed).await, (529, "overloaded_error".to_owned()));
    }
    assert_eq!(upstream.requests().len(), LIMIT);

    for release in releases {
        release.send(()).unwrap();
    }
    for (mut response, mut seen) in open {
        while let Some(chunk) = response.chunk().await.unwrap() {
            seen.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        assert_eq!(
            seen,
            fixture("text_basic.sse"),
            "admitted streams complete whole"
        );
    }
    // Permits came back with the streams' ends.
    let answer = eventually("a permit returned", || async {
        let response = client
            .post(gateway.url("/v1/messages"))
            .body(messages_body(true))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => Ok(response.text().await.unwrap()),
            status => Err(status),
        }
    })
    .await;
    assert_eq!(answer, fixture("text_basic.sse"));
}

#[tokio::test]
async fn a_slow_client_is_cut_off_and_oversized_headers_are_refused() {
    let upstream = MockUpstream::start().await;
    let mut config = config_for(&upstream);
    config.limits.header_read_timeout_ms = 300;
    config.limits.max_header_bytes = 8192;
    let gateway = start_gateway(config).await;
    let address = gateway.url.trim_start_matches("http://").to_owned();

    // Slow loris: half a request head, then silence. The gateway closes the connection.
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    socket
        .write_all(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buffer = Vec::new();
    tokio::time::timeout(HANG_GUARD, socket.read_to_end(&mut buffer))
        .await
        .expect("the gateway closes a connection that never finishes its head")
        .ok();

    // A head over the limit gets 431 (or the connection closed), never a hang.
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut head = b"GET /gateway/health HTTP/1.1\r\nHost: x\r\n".to_vec();
    head.extend_from_slice(format!("x-big: {}\r\n\r\n", "a".repeat(20_000)).as_bytes());
    let _ = socket.write_all(&head).await;
    let mut answer = Vec::new();
    tokio::time::timeout(HANG_GUARD, socket.read_to_end(&mut answer))
        .await
        .unwrap()
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn no_secret_in_the_store_the_logs_the_admin_output_or_config_debug() {
    let logs = CapturedLogs::default();
    let _guard = logs.install();

    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse_events(&fixture("text_basic.sse")));
    upstream.push(Reply::json(
        401,
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
    ));
    let config = secured(&upstream);
    let debug = format!("{config:?}");
    let gateway = start_gateway(config).await;
    let client = client();
    let mut outputs = vec![("Debug of the config".to_owned(), debug.into_bytes())];
    for (key, body) in [
        (CLIENT_KEY_CI, messages_body(true)),
        (CLIENT_KEY_DEV, messages_body(false)),
        ("gk-not-a-key", messages_body(false)),
        (CLIENT_KEY_CI, "{broken".to_owned()),
    ] {
        let response = client
            .post(gateway.url("/v1/messages"))
            .header("x-api-key", key)
            .body(body)
            .send()
            .await
            .unwrap();
        outputs.push((
            "an answer".to_owned(),
            response.bytes().await.unwrap().to_vec(),
        ));
    }
    let records = audit_as_admin(&gateway, 4, |_| true).await;
    outputs.push((
        "/gateway/audit".to_owned(),
        serde_json::to_vec(&records).unwrap(),
    ));
    for path in ["/gateway/metrics", "/metrics", "/gateway/health"] {
        let body = client
            .get(gateway.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        outputs.push((path.to_owned(), body.to_vec()));
    }
    // The records are committed (the audit API returned them); read the store's files,
    // WAL included, while the gateway that owns their directory is alive.
    let store_dir = gateway.audit_path.parent().unwrap().to_path_buf();
    for entry in std::fs::read_dir(store_dir).unwrap() {
        let entry = entry.unwrap();
        outputs.push((
            entry.path().display().to_string(),
            std::fs::read(entry.path()).unwrap(),
        ));
    }
    drop(gateway);
    outputs.push(("the logs".to_owned(), logs.0.lock().unwrap().clone()));
    assert!(outputs
        .iter()
        .any(|(what, b)| what.ends_with("audit.db") && !b.is_empty()));
    assert_no_secret(
        &outputs,
        &[CLIENT_KEY_CI, CLIENT_KEY_DEV, ADMIN_TOKEN, PROVIDER_KEY],
    );
}
