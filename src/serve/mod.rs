//! The accept loop and the per-connection task behind
//! [`Gateway::serve`](crate::Gateway::serve).
//!
//! What each connection is bounded by:
//! - at most `limits.max_connections` are open; at the cap the loop stops accepting
//!   (new connections wait in the kernel's listen backlog) until one closes;
//! - a connection with no request in flight for `timeouts.idle_connection_ms` is shut
//!   down gracefully (HTTP/2 gets a GOAWAY), and dropped if it has not closed after as
//!   long again (a peer that never answers the GOAWAY's ping);
//! - an HTTP/2 connection may open `limits.max_streams_per_connection` streams at once
//!   and is pinged while open, so a dead peer is dropped;
//! - HTTP/1 request heads are bounded in size and time.
//!
//! A failing `accept` (out of file descriptors) is retried after a pause, never in a
//! busy loop; it and the connection cap are logged once per episode and counted.

mod activity;
mod episode;

use crate::config::Config;
use crate::metrics::GatewayMetrics;
use activity::{Activity, Tracked};
use episode::Episode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// How long the loop waits after a failed `accept` (out of file descriptors and the
/// like) before it tries again.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Serve `router` on `listener` until `shutdown`, then give open connections `grace`.
pub(crate) async fn serve(
    router: axum::Router,
    config: &Config,
    metrics: GatewayMetrics,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    let limits = &config.limits;
    let idle = Duration::from_millis(config.timeouts.idle_connection_ms);
    let builder = connection_builder(config);
    let max_connections = limits.max_connections;
    let slots = Arc::new(Semaphore::new(max_connections as usize));
    let (stop, stopped) = watch::channel(false);
    let mut at_cap = Episode::default();
    let mut accept_failing = Episode::default();
    tokio::pin!(shutdown);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                if let Some(times) = at_cap.cleared() {
                    tracing::info!(max_connections, times, "below the connection limit again");
                }
                slot
            }
            Err(_) => {
                metrics.connection_limited();
                if at_cap.occurred() {
                    tracing::warn!(
                        max_connections,
                        "at the connection limit: new connections wait until one closes"
                    );
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break, // never closed
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: keep serving what is open,
                    // retry shortly, and say so once per episode, not once per attempt.
                    metrics.accept_failed();
                    if accept_failing.occurred() {
                        tracing::warn!(%error, "accept failed; retrying until it succeeds");
                    }
                    drop(slot);
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_RETRY) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        if let Some(failures) = accept_failing.cleared() {
            tracing::info!(failures, "accepting connections again");
        }
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let activity = Arc::new(Activity::default());
        let service = TowerToHyperService::new(Tracked::new(router.clone(), activity.clone()));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let open = OpenConnection::new(metrics.clone(), slot);
        // One task per connection, as every hyper server; streams within it are not
        // spawned.
        let stopped = stopped.clone();
        tokio::spawn(async move {
            let _open = open;
            drive(connection, &activity, idle, stopped, peer).await;
        });
    }
    drop(listener);
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: draining open requests"
    );
    let _ = stop.send(true);
    // Every connection holds a slot until it ends: all slots back = all connections done.
    if tokio::time::timeout(grace, slots.acquire_many(max_connections))
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing the remaining streams");
    }
}

/// The HTTP/1 and HTTP/2 settings every connection gets.
fn connection_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let limits = &config.limits;
    let idle = Duration::from_millis(config.timeouts.idle_connection_ms);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.max_streams_per_connection)
        .keep_alive_interval(idle);
    builder
}

/// Run `connection` to its end: shut it down when it has been idle for `idle` or the
/// server stops, and drop it if a graceful shutdown does not finish within `idle`.
async fn drive<C, E>(
    connection: C,
    activity: &Activity,
    idle: Duration,
    mut stopped: watch::Receiver<bool>,
    peer: std::net::SocketAddr,
) where
    C: Future<Output = Result<(), E>> + GracefulShutdown,
    E: std::fmt::Display,
{
    tokio::pin!(connection);
    let mut closing_since_idle = false;
    let mut stopping = false;
    let give_up = tokio::time::sleep(Duration::MAX);
    tokio::pin!(give_up);
    // Each turn ends the loop or sets one of the flags that disable its branch: at most
    // three turns.
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            () = activity.idle_for(idle), if !closing_since_idle && !stopping => {
                tracing::debug!(%peer, "closing an idle connection");
                closing_since_idle = true;
                connection.as_mut().shut_down();
                give_up.as_mut().reset(tokio::time::Instant::now() + idle);
            }
            () = &mut give_up, if closing_since_idle => {
                tracing::debug!(%peer, "dropping an idle connection that did not close");
                return;
            }
            _ = stopped.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                closing_since_idle = false;
                connection.as_mut().shut_down();
            }
        }
    }
}

/// A connection hyper can close gracefully.
trait GracefulShutdown {
    /// Stop taking requests; finish the open ones, then end.
    fn shut_down(self: std::pin::Pin<&mut Self>);
}

impl<I, S, E, B> GracefulShutdown for auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: auto::HttpServerConnExec<S::Future, B>,
{
    fn shut_down(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// A connection's slot under `limits.max_connections`, and its place in the gauge.
struct OpenConnection {
    metrics: GatewayMetrics,
    _slot: OwnedSemaphorePermit,
}

impl OpenConnection {
    fn new(metrics: GatewayMetrics, slot: OwnedSemaphorePermit) -> Self {
        metrics.connection_opened();
        Self {
            metrics,
            _slot: slot,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}
