//! `GET /gateway/health`: providers, routing, where keys come from, the audit store.

use super::AdminState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use std::sync::Arc;

/// `GET /gateway/health`. `status` is `healthy` when every provider is available
/// and the audit store writes; `degraded` when some provider is skipped or audit
/// writes are failing (`audit.healthy` is then false and `audit.error` says why:
/// requests are still served, their records are held in memory, bounded, and
/// retried) or the shared budget ledger (`[state] redis_url`) is unreachable
/// (`budgets.healthy`, shown only with a shared ledger, is then false; Redis is pinged
/// every 250 ms, so this follows it while idle too) or the shared key store
/// (PostgreSQL) cannot be read (`keys.healthy`, shown only with shared keys: known
/// keys still work, new ones cannot be made); `unhealthy` when no provider is available.
pub(super) async fn status(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    let config = &state.config;
    let snapshot = state
        .health
        .snapshot(config.providers.keys().map(String::as_str));
    let up = snapshot.iter().filter(|(_, available)| *available).count();
    let audit_stats = state.audit.as_ref().map(|store| store.stats());
    // Failing audit writes degrade the gateway: requests are served, but their
    // records are only held in memory until the store can write again.
    let audit_healthy = audit_stats.is_none_or(|stats| !stats.failing);
    // A shared ledger that cannot answer degrades it too: requests with limits get
    // `[state] on_unavailable`.
    let ledger_healthy = state.ledger.healthy();
    let shared_keys = state.keys.shared();
    let keys_healthy = shared_keys.is_none_or(|keys| keys.healthy());
    let status = if up == snapshot.len() && audit_healthy && ledger_healthy && keys_healthy {
        "healthy"
    } else if up > 0 {
        "degraded"
    } else {
        "unhealthy"
    };
    let audit_error = match (&state.audit, audit_healthy) {
        (Some(store), false) => store.last_error(),
        _ => None,
    };
    let providers: serde_json::Map<String, serde_json::Value> = snapshot
        .into_iter()
        .map(|(name, available)| (name, serde_json::Value::Bool(available)))
        .collect();
    let mut body = json!({
        "status": status,
        "providers": providers,
        "routing": {
            "default_provider": config.default_provider(),
            "fallback_chain": config.routing.fallback_chain,
        },
        "credentials": state
            .key_sources
            .iter()
            .map(|(name, source)| (name.clone(), serde_json::Value::from(*source)))
            .collect::<serde_json::Map<_, _>>(),
        "auth": config.auth.is_some(),
        "audit": {
            "enabled": config.audit.enabled,
            "log_request_bodies": config.audit.log_request_bodies,
            "log_response_bodies": config.audit.log_response_bodies,
            "healthy": audit_healthy,
        },
    });
    if config.state.redis_url.is_some() {
        body["budgets"] = json!({ "shared": true, "healthy": ledger_healthy });
    }
    if let Some(keys) = shared_keys {
        body["keys"] = json!({ "shared": true, "healthy": keys_healthy });
        if let Some(error) = keys.last_error() {
            body["keys"]["error"] = serde_json::Value::String(error);
        }
    }
    if let Some(error) = audit_error {
        body["audit"]["error"] = serde_json::Value::String(error);
    }
    Json(body)
}
