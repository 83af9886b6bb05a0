//! The gateway's own endpoints: `/gateway/health` and `/gateway/me` (open; `me` needs a
//! client key), and behind the admin token `/gateway/metrics`, `/metrics`,
//! `/gateway/audit`, `/gateway/audit/stream`, `/gateway/usage`, `/gateway/keys` and
//! `/gateway/teams`; the dashboard's page and assets under `/gateway/ui` are open (they
//! hold no data: the page asks for the token and sends it to the endpoints above).

mod audit;
mod health;
mod keys;
mod metrics;
mod stream;
mod ui;
mod usage;

use crate::audit::AuditStore;
use crate::auth::bearer_matches;
use crate::budget::Ledger;
use crate::config::{Config, Secret};
use crate::error_response::{error_body, SDK_REQUEST_ID_HEADER};
use crate::fallback::ProviderHealth;
use crate::keys::KeyRegistry;
use crate::metrics::{Exposition, GatewayMetrics};
use crate::request_id::RequestId;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// Where each provider's key comes from: `env`, `credential_store`, `config`,
/// `client_passthrough` or `none`.
pub(crate) type KeySources = Vec<(String, &'static str)>;

/// What the gateway's own endpoints read.
pub(crate) struct AdminState {
    pub(crate) config: Config,
    pub(crate) metrics: GatewayMetrics,
    pub(crate) health: Arc<ProviderHealth>,
    pub(crate) audit: Option<Arc<AuditStore>>,
    /// The audit trail in PostgreSQL: `/gateway/audit` reads it when set.
    pub(crate) audit_pg: Option<Arc<crate::ship::PgAudit>>,
    /// Ships this replica's spool into PostgreSQL while the gateway lives.
    pub(crate) audit_shipper: Option<crate::ship::Shipper>,
    /// Every closed request's record, for `/gateway/audit/stream`.
    pub(crate) audit_stream: crate::record::AuditStream,
    /// Usage per hour from the SQLite store, for `/gateway/usage` without PostgreSQL.
    pub(crate) usage_rollup: Option<Arc<crate::series::UsageRollup>>,
    pub(crate) admin_token: Option<Secret>,
    /// Where each provider's key comes from, for `/gateway/health` (never the key).
    pub(crate) key_sources: KeySources,
    /// Every client key and team.
    pub(crate) keys: Arc<KeyRegistry>,
    /// The prices requests are costed with (for the cache savings of `/gateway/usage`).
    pub(crate) prices: crate::pricing::PriceTable,
    /// Budgets and rate limits: spend for the key and team endpoints.
    pub(crate) ledger: Arc<dyn Ledger>,
}

/// The router of the gateway's own endpoints.
///
/// `/metrics` is routed only when the host gave the gateway a render function for its
/// exporter (`exposition`).
pub(crate) fn router(state: Arc<AdminState>, exposition: Option<Exposition>) -> Router {
    let mut guarded = Router::new()
        .route("/gateway/metrics", get(metrics::summary))
        .route("/gateway/audit", get(audit::records))
        .route("/gateway/audit/stream", get(stream::records))
        .route("/gateway/usage", get(usage::series))
        .route("/gateway/keys", get(keys::list).post(keys::create))
        .route(
            "/gateway/keys/{name}",
            get(keys::get_one).patch(keys::patch).delete(keys::revoke),
        )
        .route("/gateway/teams", get(keys::teams));
    if let Some(exposition) = exposition {
        guarded = guarded.route("/metrics", get(move || async move { exposition.respond() }));
    }
    let guarded = guarded.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        require_admin,
    ));
    Router::new()
        .route("/gateway/health", get(health::status))
        .route("/gateway/me", get(keys::me))
        .merge(ui::router())
        .merge(guarded)
        .with_state(state)
}

/// With an admin token, the admin endpoints need `Authorization: Bearer <token>`.
async fn require_admin(
    State(state): State<Arc<AdminState>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match &state.admin_token {
        Some(token) if !bearer_matches(request.headers(), token) => gateway_error(
            &RequestId::of(request.extensions_mut()),
            http::StatusCode::FORBIDDEN,
            "permission_error",
            "this endpoint needs Authorization: Bearer <admin_token>",
        ),
        _ => next.run(request).await,
    }
}

/// An answer the gateway makes itself: Anthropic-shaped, with the request id in the
/// body and in the SDKs' `request-id` header.
fn gateway_error(
    id: &RequestId,
    status: http::StatusCode,
    kind: &str,
    message: &str,
) -> axum::response::Response {
    let body = error_body(kind, message, Some(&id.0));
    let mut response = (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Some(value) = id.header_value() {
        response.headers_mut().insert(SDK_REQUEST_ID_HEADER, value);
    }
    response
}
