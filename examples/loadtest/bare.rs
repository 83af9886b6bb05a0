//! The bare proxy: the least a hyper reverse proxy can do, as the yardstick for the
//! gateway's own cost.
//!
//! A hyper 1 server (hyper-util's `auto` builder, as [`llm_gateway::Gateway::serve`]
//! uses, with `TCP_NODELAY` on every accepted socket) whose only service rewrites the
//! request's URI to the upstream (scheme and authority; path and query kept), drops
//! the hop-by-hop headers, and hands it to a pooled `hyper_util` legacy client
//! (`HttpConnector` with `TCP_NODELAY`). Both bodies stream through frame by frame,
//! never collected. No parsing, no audit, no metrics. It runs on a tokio runtime built
//! exactly like the in-process gateway's ([`crate::server_thread`]): its own OS thread, the
//! same number of worker threads, optionally pinned to one CPU.

use crate::server_thread::{ServerThread, ThreadSpec};
use bytes::Bytes;
use http::header::{HeaderName, HOST};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use std::time::Duration;

/// A bare proxy serving on `127.0.0.1:PORT` until stopped (dropping it stops it).
pub type BareProxy = ServerThread;

/// How to run it.
pub struct Options {
    /// The upstream's base URL, `http://127.0.0.1:PORT`.
    pub upstream: String,
    /// Worker threads of its runtime (`--gateway-threads`, as the gateway's).
    pub worker_threads: usize,
    /// Pin the owner thread (before it builds anything) and every runtime thread here.
    pub cpu: Option<usize>,
}

/// Connection-level headers a proxy must not forward (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
];

type ProxyBody = Either<Incoming, Empty<Bytes>>;

/// Start its thread and runtime, bind `127.0.0.1:0`, and return once it accepts.
pub fn start(options: Options) -> Result<BareProxy, String> {
    let upstream: Uri = options
        .upstream
        .parse()
        .map_err(|e| format!("bare proxy upstream: {e}"))?;
    let authority = upstream
        .authority()
        .cloned()
        .ok_or("bare proxy upstream has no authority")?;
    let host = HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?;
    let spec = ThreadSpec {
        name: "bare-runtime",
        worker_name: "bare-worker",
        worker_threads: options.worker_threads,
        cpu: options.cpu,
        // Open connections are not drained: by the time it is stopped, its phase is over.
        shutdown: Duration::from_secs(1),
    };
    ServerThread::start(spec, move |listener, stop| {
        Ok(serve(listener, upstream, host, stop))
    })
}

/// The accept loop: one task per connection, until `stop`.
async fn serve(
    listener: tokio::net::TcpListener,
    upstream: Uri,
    host: HeaderValue,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector);
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let upstream = Arc::new((upstream, host));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let (client, upstream) = (client.clone(), upstream.clone());
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let (client, upstream) = (client.clone(), upstream.clone());
            async move { Ok::<_, std::convert::Infallible>(forward(&client, &upstream, request).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

/// One request to the upstream and its answer back, bodies streamed.
async fn forward(
    client: &Client<HttpConnector, Incoming>,
    (upstream, host): &(Uri, HeaderValue),
    mut request: Request<Incoming>,
) -> Response<ProxyBody> {
    let mut parts = upstream.clone().into_parts();
    parts.path_and_query = request.uri().path_and_query().cloned();
    let Ok(uri) = Uri::from_parts(parts) else {
        return status(StatusCode::BAD_REQUEST);
    };
    *request.uri_mut() = uri;
    strip_hop_by_hop(request.headers_mut());
    request.headers_mut().insert(HOST, host.clone());
    match client.request(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Either::Left(body))
        }
        Err(_) => status(StatusCode::BAD_GATEWAY),
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(HeaderName::from_static(name));
    }
}

fn status(code: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Empty::new()));
    *response.status_mut() = code;
    response
}
