//! A scripted mock upstream speaking HTTP/1.1 by hand over a raw socket, so a test can
//! control every byte and see the moment the gateway closes the connection.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};

/// One step of a scripted answer.
pub enum Step {
    /// Write these bytes (as one HTTP chunk for streamed answers).
    Send(Vec<u8>),
    /// Wait until the test fires this.
    Wait(oneshot::Receiver<()>),
    /// Drop the connection abruptly, mid-answer.
    Close,
    /// Send nothing more; wait until the gateway closes the connection.
    Hang,
}

/// A scripted answer to one request.
pub enum Reply {
    /// A whole answer with a Content-Length.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// A chunked answer written step by step.
    Streamed {
        status: u16,
        headers: Vec<(String, String)>,
        steps: Vec<Step>,
    },
    /// Never answer; wait until the gateway closes the connection.
    Silent,
    /// Write exactly these bytes (status line, headers, body: anything), then close.
    Raw(Vec<u8>),
    /// One of two answers, chosen by whether the request asked for a stream (its body
    /// holds `"stream":true`), for tests whose concurrent requests arrive in any order.
    ByStream {
        stream: Box<Reply>,
        whole: Box<Reply>,
    },
}

impl Reply {
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Reply::Full {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        match &mut self {
            Reply::Full { headers, .. } | Reply::Streamed { headers, .. } => {
                headers.push((name.into(), value.into()))
            }
            Reply::Silent | Reply::Raw(_) | Reply::ByStream { .. } => {}
        }
        self
    }

    /// `stream` for a request that asked for a stream, `whole` for one that did not.
    pub fn by_stream(stream: Reply, whole: Reply) -> Self {
        Reply::ByStream {
            stream: Box::new(stream),
            whole: Box::new(whole),
        }
    }

    /// An HTTP/1.1 answer of exactly `head` (status line and headers, without the blank
    /// line) and `body`, with its Content-Length, written as given.
    pub fn raw(head: &str, body: &[u8]) -> Self {
        let mut bytes = format!(
            "{}\r\ncontent-length: {}\r\n\r\n",
            head.trim_end(),
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        Reply::Raw(bytes)
    }

    /// An SSE answer: each step as scripted.
    pub fn sse(steps: Vec<Step>) -> Self {
        Reply::Streamed {
            status: 200,
            headers: vec![(
                "content-type".into(),
                "text/event-stream; charset=utf-8".into(),
            )],
            steps,
        }
    }

    /// An SSE answer sending `text` one event per chunk, then ending.
    pub fn sse_events(text: &str) -> Self {
        Reply::sse(
            split_events(text)
                .into_iter()
                .map(|e| Step::Send(e.into_bytes()))
                .collect(),
        )
    }
}

/// Split SSE text into its events, each with its terminating blank line.
pub fn split_events(text: &str) -> Vec<String> {
    let sep = if text.contains("\r\n") {
        "\r\n\r\n"
    } else {
        "\n\n"
    };
    text.split_inclusive(sep).map(str::to_owned).collect()
}

/// What the mock received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    replies: VecDeque<Reply>,
    requests: Vec<Recorded>,
    closed_waiters: Vec<oneshot::Sender<()>>,
}

/// The mock server.
#[derive(Clone)]
pub struct MockUpstream {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<State>>,
    closed: Arc<Notify>,
}

impl MockUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mock = MockUpstream {
            addr,
            state: Arc::default(),
            closed: Arc::new(Notify::new()),
        };
        let server = mock.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let conn = server.clone();
                tokio::spawn(async move { conn.serve(socket).await });
            }
        });
        mock
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queue the answer to the next request.
    pub fn push(&self, reply: Reply) {
        self.state.lock().unwrap().replies.push_back(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Resolves when a connection that was hanging (Step::Hang / Reply::Silent) sees the
    /// gateway close it.
    pub fn on_close(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.state.lock().unwrap().closed_waiters.push(tx);
        rx
    }

    async fn serve(&self, mut socket: TcpStream) {
        let mut buffer = Vec::new();
        loop {
            let Some(request) = read_request(&mut socket, &mut buffer).await else {
                return;
            };
            let asked_stream = request
                .body
                .windows(b"\"stream\":true".len())
                .any(|w| w == b"\"stream\":true");
            let reply = {
                let mut state = self.state.lock().unwrap();
                state.requests.push(request);
                state.replies.pop_front()
            };
            let reply = match reply {
                Some(Reply::ByStream { stream, whole }) => {
                    Some(if asked_stream { *stream } else { *whole })
                }
                other => other,
            };
            let reply = reply.unwrap_or_else(|| {
                Reply::json(500, r#"{"type":"error","error":{"type":"api_error","message":"mock has no scripted reply"}}"#)
            });
            if !self.write_reply(&mut socket, reply).await {
                return;
            }
        }
    }

    /// Write one reply; false when the connection is finished.
    async fn write_reply(&self, socket: &mut TcpStream, reply: Reply) -> bool {
        match reply {
            Reply::Full {
                status,
                headers,
                body,
            } => {
                let mut head = status_line(status);
                for (n, v) in &headers {
                    head.push_str(&format!("{n}: {v}\r\n"));
                }
                head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
                socket.write_all(head.as_bytes()).await.is_ok()
                    && socket.write_all(&body).await.is_ok()
            }
            Reply::Silent => {
                self.wait_for_close(socket).await;
                false
            }
            Reply::Raw(bytes) => {
                let _ = socket.write_all(&bytes).await;
                let _ = socket.shutdown().await;
                false
            }
            Reply::ByStream { .. } => unreachable!("resolved when the request arrived"),
            Reply::Streamed {
                status,
                headers,
                steps,
            } => {
                let mut head = status_line(status);
                for (n, v) in &headers {
                    head.push_str(&format!("{n}: {v}\r\n"));
                }
                head.push_str("transfer-encoding: chunked\r\n\r\n");
                if socket.write_all(head.as_bytes()).await.is_err() {
                    self.notify_closed();
                    return false;
                }
                for step in steps {
                    match step {
                        Step::Send(bytes) => {
                            let mut chunk = format!("{:x}\r\n", bytes.len()).into_bytes();
                            chunk.extend_from_slice(&bytes);
                            chunk.extend_from_slice(b"\r\n");
                            if socket.write_all(&chunk).await.is_err() {
                                self.notify_closed();
                                return false;
                            }
                        }
                        Step::Wait(rx) => {
                            let _ = rx.await;
                        }
                        Step::Close => return false,
                        Step::Hang => {
                            self.wait_for_close(socket).await;
                            return false;
                        }
                    }
                }
                socket.write_all(b"0\r\n\r\n").await.is_ok()
            }
        }
    }

    async fn wait_for_close(&self, socket: &mut TcpStream) {
        let mut sink = [0u8; 1024];
        loop {
            match socket.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        self.notify_closed();
    }

    fn notify_closed(&self) {
        let waiters = std::mem::take(&mut self.state.lock().unwrap().closed_waiters);
        for waiter in waiters {
            let _ = waiter.send(());
        }
        self.closed.notify_waiters();
    }
}

fn status_line(status: u16) -> String {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        529 => "Overloaded",
        _ => "Status",
    };
    format!("HTTP/1.1 {status} {reason}\r\n")
}

/// Read one request (head + Content-Length body); None when the peer closed.
async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Recorded> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head_len)) = parsed.parse(buffer) {
            let method = parsed.method.unwrap_or("").to_owned();
            let target = parsed.path.unwrap_or("").to_owned();
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let length = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(0);
            while buffer.len() < head_len + length {
                let mut chunk = [0u8; 65536];
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
            }
            let body = buffer[head_len..head_len + length].to_vec();
            buffer.drain(..head_len + length);
            return Some(Recorded {
                method,
                target,
                headers,
                body,
            });
        }
        let mut chunk = [0u8; 65536];
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A loopback port that refuses connections for as long as this value lives.
///
/// The socket is bound but never listens: the kernel answers a SYN with a reset, and
/// the port stays reserved, so a mock started by a concurrent test cannot be handed
/// the same port and answer in its place (binding, reading the port and closing the
/// listener left exactly that race).
pub struct RefusedPort {
    _socket: tokio::net::TcpSocket,
    addr: std::net::SocketAddr,
}

impl RefusedPort {
    pub fn bind() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        RefusedPort {
            _socket: socket,
            addr,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
