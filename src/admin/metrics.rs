//! `GET /gateway/metrics`: the JSON summary, the metrics sink's own exact totals.
//! (`GET /metrics` is the host exporter's text, served by
//! [`Exposition`](crate::metrics::Exposition).)

use super::AdminState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use std::sync::Arc;

/// `GET /gateway/metrics`.
pub(super) async fn summary(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    Json(state.metrics.summary_json())
}
