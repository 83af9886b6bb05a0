//! The mock upstream: Anthropic Messages SSE on a loopback port.
//!
//! Every answer is driven by the request's query string, so the same mock serves the
//! direct baseline and the gateway (which forwards query strings) identically:
//! `events=N` text deltas, `interval_us=U` between consecutive events (0 = as fast as
//! the socket takes them), and `hold=1` to stop after the first delta until
//! [`Mock::release`]. The request body is read in full before answering (a real
//! upstream does, and keep-alive needs it), accepted sockets get `TCP_NODELAY`, and each
//! event goes out as its own HTTP chunk:
//! `message_start` (usage), `content_block_start`, `ping`, N × `content_block_delta`,
//! `content_block_stop`, `message_delta` (usage), `message_stop`.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The mock's answers carry this header with the run's nonce, so a preflight can tell
/// that a gateway really points at this mock.
pub const NONCE_HEADER: &str = "x-loadtest-mock";

/// How many frames precede the first content event.
pub const FRAMES_BEFORE_CONTENT: usize = 3;

const MESSAGE_START: &[u8] = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01LoadTest\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5-20250929\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":2048,\"cache_creation_input_tokens\":512,\"cache_read_input_tokens\":24000,\"cache_creation\":{\"ephemeral_5m_input_tokens\":512,\"ephemeral_1h_input_tokens\":0},\"output_tokens\":1,\"service_tier\":\"standard\"}}}\n\n";
const BLOCK_START: &[u8] = b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
const PING: &[u8] = b"event: ping\ndata: {\"type\": \"ping\"}\n\n";
const DELTA: &[u8] = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Some streamed words of an answer, \"}}\n\n";
const BLOCK_STOP: &[u8] =
    b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
const MESSAGE_DELTA: &[u8] = b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":420}}\n\n";
const MESSAGE_STOP: &[u8] = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

/// The frames of one answer with `deltas` text deltas.
pub fn frames(deltas: usize) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(deltas + 6);
    out.push(Bytes::from_static(MESSAGE_START));
    out.push(Bytes::from_static(BLOCK_START));
    out.push(Bytes::from_static(PING));
    out.extend(std::iter::repeat_n(Bytes::from_static(DELTA), deltas));
    out.push(Bytes::from_static(BLOCK_STOP));
    out.push(Bytes::from_static(MESSAGE_DELTA));
    out.push(Bytes::from_static(MESSAGE_STOP));
    out
}

#[derive(serde::Deserialize)]
struct Params {
    #[serde(default = "default_events")]
    events: usize,
    #[serde(default)]
    interval_us: u64,
    #[serde(default)]
    hold: u8,
}

fn default_events() -> usize {
    20
}

struct MockState {
    nonce: String,
    requests: AtomicU64,
    release: watch::Sender<bool>,
}

pub struct Mock {
    pub addr: SocketAddr,
    state: Arc<MockState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mock {
    /// Bind `addr` (loopback only) and serve on the current runtime.
    pub async fn start(addr: SocketAddr, nonce: String) -> std::io::Result<Mock> {
        let listener = listen(addr)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(MockState {
            nonce,
            requests: AtomicU64::new(0),
            release: watch::channel(false).0,
        });
        let app = axum::Router::new()
            .route("/v1/messages", post(messages))
            .with_state(state.clone());
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("mock upstream stopped: {error}");
            }
        });
        Ok(Mock { addr, state, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Let every held stream (and every later one) go on to its end.
    pub fn release(&self) {
        self.state.release.send_replace(true);
    }
}

/// A loopback listener with a deep accept queue (thousands of streams open at once).
pub fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} is not a loopback address"),
        ));
    }
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn messages(
    State(state): State<Arc<MockState>>,
    Query(params): Query<Params>,
    body: Bytes,
) -> Response {
    state.requests.fetch_add(1, Ordering::Relaxed);
    std::hint::black_box(body);
    let frames = frames(params.events);
    let hold_at = (params.hold != 0).then_some(FRAMES_BEFORE_CONTENT + 1);
    let stream = Paced {
        frames,
        next: 0,
        start: Instant::now(),
        interval: Duration::from_micros(params.interval_us),
        hold_at,
        release: state.release.subscribe(),
    }
    .into_stream();
    Response::builder()
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .header("request-id", "req_01LoadTestMock")
        .header(NONCE_HEADER, state.nonce.as_str())
        .body(Body::from_stream(stream))
        .expect("static headers are valid")
}

/// One answer's frames on a schedule: frame `i` at `start + i × interval` (deadlines, so
/// timer lateness does not accumulate), waiting before frame `hold_at` for the release.
struct Paced {
    frames: Vec<Bytes>,
    next: usize,
    start: Instant,
    interval: Duration,
    hold_at: Option<usize>,
    release: watch::Receiver<bool>,
}

impl Paced {
    fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
        futures_util::stream::unfold(self, |mut s| async move {
            let frame = s.frames.get(s.next)?.clone();
            if s.hold_at == Some(s.next) {
                // A dropped sender (mock gone) ends the wait too.
                let _ = s.release.wait_for(|released| *released).await;
            }
            if !s.interval.is_zero() {
                tokio::time::sleep_until(s.start + s.interval * s.next as u32).await;
            }
            s.next += 1;
            Some((Ok(frame), s))
        })
    }
}
