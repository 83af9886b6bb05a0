//! `GET /gateway/metrics` (the JSON summary) and `GET /metrics` (Prometheus text).

use super::AdminState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use std::sync::Arc;

/// `GET /gateway/metrics`.
pub(super) async fn summary(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    Json(state.metrics.summary_json())
}

/// `GET /metrics`.
pub(super) async fn prometheus(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render_prometheus(),
    )
}
