//! What the gateway bounds at its edge — request bodies, connections, HTTP/2 streams,
//! what ingress accepts — and the answers it makes itself, through real sockets.

mod common;

use common::*;
use llm_gateway::config::{AuthConfig, ClientKey, Secret, SecretRef};
use llm_gateway::{Config, Gateway};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The gateway's `host:port`.
fn addr(gateway: &TestGateway) -> String {
    gateway.url.trim_start_matches("http://").to_owned()
}

/// An HTTP/1.1 answer read off a raw socket.
struct RawAnswer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawAnswer {
    fn error_type(&self) -> String {
        let body: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)));
        body["error"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Read one answer with a `Content-Length` body.
async fn read_answer(stream: &mut TcpStream) -> RawAnswer {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await.expect("answer readable");
            assert!(n > 0, "connection closed before the answer's head");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .expect("answer has a content-length");
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await.expect("body readable");
            assert!(n > 0, "connection closed inside the answer's body");
            buf.extend_from_slice(&chunk[..n]);
        }
        RawAnswer {
            status,
            head,
            body: buf[head_end..head_end + length].to_vec(),
        }
    };
    tokio::time::timeout(HANG_GUARD, read)
        .await
        .expect("an answer arrives")
}

/// Whether the peer closes `stream` (EOF or reset) before `guard`, discarding any
/// bytes it sends first.
async fn closed_within(stream: &mut TcpStream, guard: Duration) -> bool {
    let until_closed = async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(guard, until_closed).await.is_ok()
}

/// A POST head for `path` announcing a body of `length` bytes.
fn post_head(path: &str, length: usize, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n{extra}\r\n"
    )
}

/// A connection that sent its head and one byte of a 100-byte body, then stalls.
async fn stalled_upload(gateway: &TestGateway) -> TcpStream {
    let mut stream = TcpStream::connect(addr(gateway)).await.unwrap();
    stream
        .write_all(format!("{}{{", post_head("/v1/messages", 100, "")).as_bytes())
        .await
        .unwrap();
    stream
}

// === request bodies ===

#[tokio::test]
async fn a_stalled_body_gets_408_after_request_body_ms_and_nothing_goes_upstream() {
    let upstream = MockUpstream::start().await;
    let mut config = config_for(&upstream);
    config.timeouts.request_body_ms = 300;
    let gateway = start_gateway(config).await;

    let started = Instant::now();
    let mut stream = stalled_upload(&gateway).await;
    let answer = read_answer(&mut stream).await;
    assert_eq!(answer.status, 408, "{}", answer.head);
    assert_eq!(answer.error_type(), "timeout_error");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "answered before the body time limit ran out"
    );
    assert!(upstream.requests().is_empty(), "nothing goes upstream");
}

#[tokio::test]
async fn stalled_uploads_do_not_take_the_concurrency_slots_of_complete_requests() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(200, message_json(3, 2)));
    let mut config = config_for(&upstream);
    config.limits.max_concurrent_requests = 2;
    let gateway = start_gateway(config).await;

    let mut stalled = vec![
        stalled_upload(&gateway).await,
        stalled_upload(&gateway).await,
    ];
    // Give the gateway time to read both heads (microseconds on loopback), so on a
    // gateway that counts uploads both slots are taken before the complete request.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let response = gateway.post_messages(messages_body(false)).await;
    assert_eq!(response.status(), 200, "a complete request is not shed");
    assert_eq!(upstream.requests().len(), 1);
    // The stalled ones are still waiting for their bodies, not refused.
    for stream in &mut stalled {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut byte)).await;
        assert!(read.is_err(), "a stalled upload was answered early");
    }
}

// === HTTP/2 ===

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADERS: u8 = 0x1;
const FRAME_RST_STREAM: u8 = 0x3;
const FRAME_SETTINGS: u8 = 0x4;
const FLAG_ACK: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const REFUSED_STREAM: u32 = 0x7;

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut frame = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// One HTTP/2 frame: type, flags, stream id, payload.
async fn read_h2_frame(stream: &mut TcpStream) -> (u8, u8, u32, Vec<u8>) {
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await.expect("a frame");
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    stream
        .read_exact(&mut payload)
        .await
        .expect("a frame's payload");
    (head[3], head[4], id, payload)
}

/// HPACK for `POST /v1/messages` (literals without indexing, no Huffman), no END_STREAM:
/// the body never comes.
fn post_headers_block() -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    for (index, value) in [(4u8, "/v1/messages"), (1, "gateway")] {
        block.push(index); // literal without indexing, indexed name
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// Connect, send the preface and an empty SETTINGS; return the server's SETTINGS.
async fn h2_handshake(gateway: &TestGateway) -> (TcpStream, Vec<(u16, u32)>) {
    let mut stream = TcpStream::connect(addr(gateway)).await.unwrap();
    stream.write_all(H2_PREFACE).await.unwrap();
    stream
        .write_all(&h2_frame(FRAME_SETTINGS, 0, 0, &[]))
        .await
        .unwrap();
    let settings = tokio::time::timeout(HANG_GUARD, async {
        loop {
            let (kind, flags, _, payload) = read_h2_frame(&mut stream).await;
            if kind == FRAME_SETTINGS && flags & FLAG_ACK == 0 {
                return payload
                    .chunks(6)
                    .map(|p| {
                        (
                            u16::from_be_bytes([p[0], p[1]]),
                            u32::from_be_bytes([p[2], p[3], p[4], p[5]]),
                        )
                    })
                    .collect::<Vec<_>>();
            }
        }
    })
    .await
    .expect("the server's SETTINGS arrive");
    (stream, settings)
}

#[tokio::test]
async fn an_h2_connection_cannot_open_more_streams_than_the_cap() {
    let upstream = MockUpstream::start().await;
    let mut config = config_for(&upstream);
    config.limits.max_streams_per_connection = 3;
    let gateway = start_gateway(config).await;

    let (mut stream, settings) = h2_handshake(&gateway).await;
    assert!(
        settings.contains(&(SETTINGS_MAX_CONCURRENT_STREAMS, 3)),
        "the cap is advertised: {settings:?}"
    );
    stream
        .write_all(&h2_frame(FRAME_SETTINGS, FLAG_ACK, 0, &[]))
        .await
        .unwrap();
    let block = post_headers_block();
    for id in [1u32, 3, 5, 7] {
        stream
            .write_all(&h2_frame(FRAME_HEADERS, FLAG_END_HEADERS, id, &block))
            .await
            .unwrap();
    }
    let refused = tokio::time::timeout(HANG_GUARD, async {
        loop {
            let (kind, _, id, payload) = read_h2_frame(&mut stream).await;
            if kind == FRAME_RST_STREAM {
                let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                return (id, code);
            }
        }
    })
    .await
    .expect("the stream over the cap is reset");
    assert_eq!(refused, (7, REFUSED_STREAM), "the fourth stream is refused");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn an_h2_connection_that_only_sends_its_preface_is_closed_when_idle() {
    let upstream = MockUpstream::start().await;
    let mut config = config_for(&upstream);
    config.timeouts.idle_connection_ms = 300;
    let gateway = start_gateway(config).await;

    let started = Instant::now();
    let (mut stream, _) = h2_handshake(&gateway).await;
    assert!(
        closed_within(&mut stream, HANG_GUARD).await,
        "an idle HTTP/2 connection stays open"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_is_closed() {
    let upstream = MockUpstream::start().await;
    let mut config = config_for(&upstream);
    config.timeouts.idle_connection_ms = 300;
    // Longer than the guard, so only the idle timeout can close the connection.
    config.limits.header_read_timeout_ms = 60_000;
    let gateway = start_gateway(config).await;

    let mut stream = TcpStream::connect(addr(&gateway)).await.unwrap();
    stream
        .write_all(b"GET /gateway/health HTTP/1.1\r\nhost: gateway\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut stream).await.status, 200);
    let answered = Instant::now();
    assert!(
        closed_within(&mut stream, HANG_GUARD).await,
        "an idle keep-alive connection stays open"
    );
    assert!(answered.elapsed() >= Duration::from_millis(300));
}

// === the connection cap ===

/// A keep-alive connection that got one health answer.
async fn held_connection(gateway: &TestGateway) -> TcpStream {
    let mut stream = TcpStream::connect(addr(gateway)).await.unwrap();
    stream
        .write_all(b"GET /gateway/health HTTP/1.1\r\nhost: gateway\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut stream).await.status, 200);
    stream
}

#[tokio::test]
async fn at_max_connections_the_next_connection_waits_until_one_closes() {
    let upstream = MockUpstream::start().await;
    let mut config = config_for(&upstream);
    config.limits.max_connections = 2;
    let gateway = start_gateway(config).await;

    let first = held_connection(&gateway).await;
    let _second = held_connection(&gateway).await;
    // The kernel completes the third handshake, but the gateway does not accept it.
    let mut third = TcpStream::connect(addr(&gateway)).await.unwrap();
    third
        .write_all(b"GET /gateway/health HTTP/1.1\r\nhost: gateway\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut byte)).await;
    assert!(early.is_err(), "the connection over the cap was served");

    drop(first);
    assert_eq!(
        read_answer(&mut third).await.status,
        200,
        "served once a slot frees"
    );
    drop(third);
    let metrics = gateway.get_text("/metrics").await;
    let limited = metrics
        .lines()
        .find_map(|l| l.strip_prefix("llm_gateway_connections_limited_total "))
        .expect("the counter is exported");
    assert!(limited.trim().parse::<u64>().unwrap() >= 1, "{metrics}");
    assert!(
        metrics.contains("llm_gateway_open_connections "),
        "the gauge is exported"
    );
    assert_eq!(
        gateway.get_json("/gateway/health").await["status"],
        "healthy"
    );
}

// === refused uploads ===

/// Send `head` and then a `length`-byte body in 16 KiB pieces with pauses, asserting
/// every write succeeds; then read the answer.
async fn upload_slowly(gateway: &TestGateway, head: String, length: usize) -> RawAnswer {
    let mut stream = TcpStream::connect(addr(gateway)).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let piece = vec![b' '; 16 * 1024];
    let mut sent = 0;
    while sent < length {
        let n = piece.len().min(length - sent);
        stream
            .write_all(&piece[..n])
            .await
            .unwrap_or_else(|e| panic!("upload failed after {sent} bytes: {e}"));
        sent += n;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    read_answer(&mut stream).await
}

#[tokio::test]
async fn a_client_still_uploading_reads_the_404_or_401_instead_of_a_reset() {
    let upstream = MockUpstream::start().await;
    let mut config = config_for(&upstream);
    config.auth = Some(AuthConfig::new(vec![ClientKey::new(
        "ci",
        SecretRef::Literal(Secret::new("gk-ci-edge")),
    )]));
    let gateway = start_gateway(config).await;
    let length = 512 * 1024;

    let unknown = upload_slowly(&gateway, post_head("/v2/nope", length, ""), length).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_type(), "not_found_error");
    let wrong_key = upload_slowly(
        &gateway,
        post_head("/v1/messages", length, "x-api-key: gk-wrong\r\n"),
        length,
    )
    .await;
    assert_eq!(wrong_key.status, 401);
    assert_eq!(wrong_key.error_type(), "authentication_error");
    assert!(upstream.requests().is_empty());
}

// === what ingress accepts ===

#[tokio::test]
async fn invalid_utf8_and_raw_control_characters_in_strings_are_400_and_never_sent() {
    let upstream = MockUpstream::start().await;
    let gateway = start_gateway(config_for(&upstream)).await;
    let good = messages_body(false);
    for (what, bad) in [
        (
            "a raw U+0001",
            good.replace("Hello", "Hel\u{1}lo").into_bytes(),
        ),
        ("a raw NUL", good.replace("Hello", "Hel\0lo").into_bytes()),
        (
            "a raw newline",
            good.replace("Hello", "Hel\nlo").into_bytes(),
        ),
        ("invalid UTF-8", {
            let mut body = good.clone().into_bytes();
            let at = good.find("Hello").unwrap();
            body[at + 1] = 0xff;
            body
        }),
    ] {
        let response = gateway.post_messages(bad).await;
        assert_eq!(response.status(), 400, "{what}");
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error", "{what}");
    }
    assert!(upstream.requests().is_empty(), "nothing goes upstream");
}

fn with_client_key(key: &str) -> Config {
    Config {
        auth: Some(AuthConfig::new(vec![ClientKey::new(
            "blank",
            SecretRef::Literal(Secret::new(key)),
        )])),
        ..Config::default()
    }
}

#[test]
fn an_empty_client_key_or_admin_token_is_refused_at_start() {
    let error = Gateway::new(with_client_key(""))
        .err()
        .expect("an empty client key is refused");
    assert!(
        error.to_string().contains("auth.client_keys[0].key"),
        "{error}"
    );
    let error = Config::from_toml_str("[auth]\nclient_keys = [{ name = \"x\", key = \"\" }]\n")
        .expect_err("an empty key in the file is refused");
    assert!(
        error.to_string().contains("auth.client_keys[0].key"),
        "{error}"
    );
    let config = Config {
        admin_token: Some(SecretRef::Literal(Secret::new(""))),
        ..Config::default()
    };
    let error = Gateway::new(config)
        .err()
        .expect("an empty admin token is refused");
    assert!(error.to_string().contains("admin_token"), "{error}");
}

// === the gateway's own answers ===

#[tokio::test]
async fn the_gateways_own_errors_carry_request_id_and_upstream_answers_keep_theirs() {
    let upstream = MockUpstream::start().await;
    upstream.push(
        Reply::json(
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        )
        .with_header("request-id", "req_upstream_42"),
    );
    let mut config = config_for(&upstream);
    config.audit.enabled = false;
    let gateway = start_gateway(config).await;
    let client = client();

    for (what, response) in [
        (
            "an unknown path",
            client.get(gateway.url("/v2/nope")).send().await.unwrap(),
        ),
        (
            "a malformed body",
            client
                .post(gateway.url("/v1/messages"))
                .body("{")
                .send()
                .await
                .unwrap(),
        ),
        (
            "an admin endpoint's own error",
            client
                .get(gateway.url("/gateway/audit"))
                .send()
                .await
                .unwrap(),
        ),
    ] {
        assert!(response.status().is_client_error(), "{what}");
        let ours = response.headers()["x-gateway-request-id"].clone();
        assert_eq!(
            response.headers().get("request-id"),
            Some(&ours),
            "{what}: request-id is the gateway's id"
        );
    }

    let proxied = gateway.post_messages(messages_body(false)).await;
    assert_eq!(proxied.status(), 429);
    assert_eq!(proxied.headers()["request-id"], "req_upstream_42");
}

// === out of file descriptors ===

/// Set in the child process that runs [`accept_failures_child`].
const EMFILE_CHILD: &str = "EDGE_LIMITS_EMFILE_CHILD";

/// Lowering the fd limit would break every other test in this process, so the check
/// runs in a child process of its own.
#[test]
fn out_of_file_descriptors_the_gateway_logs_once_and_keeps_serving() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "accept_failures_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EMFILE_CHILD, "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 passed"),
        "the child test ran"
    );
}

/// The highest file descriptor this process has open.
fn highest_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap()
}

#[tokio::test]
async fn accept_failures_child() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    if std::env::var_os(EMFILE_CHILD).is_none() {
        return; // only meaningful in the child process
    }
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let upstream = MockUpstream::start().await;
    let mut config = config_for(&upstream);
    config.audit.enabled = false;
    let gateway = start_gateway(config).await;
    assert_eq!(
        gateway.get_json("/gateway/health").await["status"],
        "healthy"
    );

    let original = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(highest_fd() + 32),
            maximum: original.maximum,
        },
    )
    .unwrap();
    // Take every descriptor left, then free one at a time for a client socket: each
    // connection is pending in the listen backlog and the gateway's accept has no
    // descriptor for it.
    let mut holders = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        holders.push(file);
        assert!(holders.len() < 100_000, "the lowered limit did not apply");
    }
    let mut clients = Vec::new();
    for _ in 0..5 {
        holders.pop();
        clients.push(std::net::TcpStream::connect(addr(&gateway)).unwrap());
        // Time for the gateway to try (and fail) to accept it.
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    drop(holders);
    setrlimit(Resource::Nofile, original).unwrap();
    drop(clients);

    assert_eq!(
        gateway.get_json("/gateway/health").await["status"],
        "healthy"
    );
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert_eq!(
        text.matches("accept failed").count(),
        1,
        "one line per episode:\n{text}"
    );
    let metrics = gateway.get_text("/metrics").await;
    let failures = metrics
        .lines()
        .find_map(|l| l.strip_prefix("llm_gateway_accept_failures_total "))
        .expect("the counter is exported");
    assert!(
        failures.trim().parse::<u64>().unwrap() > 1,
        "accept failed repeatedly: {metrics}"
    );
}
