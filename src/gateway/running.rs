//! The built [`Gateway`]: its router, its server, and what the host may read.

use super::GatewayBuilder;
use crate::admin::AdminState;
use crate::config::{Config, ConfigError};
use crate::metrics::GatewayMetrics;
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The gateway: the layered stack behind an `axum::Router` another service can mount.
///
/// The router has the tower-http edge ([`edge::wrap`](crate::edge::wrap)) around all of
/// it: request ids, one `request` span per request, credential headers marked
/// sensitive, and panics answered as a 500 `api_error`.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use llm_gateway::{Config, Gateway};
/// let gateway = Gateway::new(Config::default())?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8788").await?;
/// axum::serve(listener, gateway.router()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Gateway {
    pub(super) router: Router,
    pub(super) state: Arc<AdminState>,
}

impl Gateway {
    /// Build the gateway for `config` with default hooks.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        GatewayBuilder::new(config).build()
    }

    /// A builder, to set hooks or the HTTP client.
    pub fn builder(config: Config) -> GatewayBuilder {
        GatewayBuilder::new(config)
    }

    /// The router serving the HTTP API: `/v1/*`, `/gateway/*` and `/metrics`.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The gateway's metrics (what `/gateway/metrics` and `/metrics` show).
    pub fn metrics(&self) -> &GatewayMetrics {
        &self.state.metrics
    }

    /// The configuration the gateway runs with.
    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// Serve on `listener` until `shutdown` resolves, then let open requests finish for
    /// up to `grace`, and flush the audit store. Returns once the server has stopped.
    ///
    /// Each connection gets `TCP_NODELAY` (streams are many small writes: without it
    /// Nagle and the client's delayed ACK hold events for up to 40 ms), a bound on the
    /// request head (`limits.max_header_bytes`, 431 above) and a time limit for sending
    /// it (`limits.header_read_timeout_ms`, the slow-loris guard). At most
    /// `limits.max_connections` are open at once (the rest wait to be accepted), each
    /// HTTP/2 connection may open `limits.max_streams_per_connection` streams, and a
    /// connection with no request in flight for `timeouts.idle_connection_ms` is closed.
    /// A server of your own mounting [`router`](Self::router) gets the request-level
    /// bounds (body size and time, concurrency) but must bound its connections itself.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
        grace: Duration,
    ) -> std::io::Result<()> {
        crate::serve::serve(
            self.router(),
            &self.state.config,
            self.state.metrics.clone(),
            listener,
            shutdown,
            grace,
        )
        .await;
        self.flush_audit().await;
        Ok(())
    }

    /// The audit shipper's progress, when `[audit] postgres_url` is set and records
    /// are spooled in the SQLite file.
    pub fn audit_shipper(&self) -> Option<&crate::ship::ShipperStatus> {
        self.state.audit_shipper.as_ref().map(|s| s.status())
    }

    /// Wait until every audit record handed to the store so far is committed.
    pub async fn flush_audit(&self) {
        if let Some(store) = self.state.audit.clone() {
            let flushed = tokio::task::spawn_blocking(move || store.flush()).await;
            if let Ok(Err(error)) = flushed {
                tracing::error!(%error, "could not flush the audit store");
            }
        }
    }
}
