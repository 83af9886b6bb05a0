//! `GET /gateway/usage`: requests, cost and tokens per hour or day, split by one
//! attribute, from PostgreSQL when `[audit] postgres_url` is set (every replica answers
//! the same), else from the SQLite store's hourly rollup.

use super::{gateway_error, AdminState};
use crate::request_id::RequestId;
use crate::series::{GroupBy, UsageAnswer, UsageParams, UsageQuery};
use crate::ship::PgError;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use std::sync::Arc;
use std::time::SystemTime;

/// `GET /gateway/usage?bucket=hour|day&since=…&until=…&group_by=…`:
/// `{"bucket","since","until","series":[{"key","points":[{"start","requests","cost_usd",
/// "unpriced_requests","input_tokens","output_tokens","cache_write_tokens",
/// "cache_read_tokens"}]}]}`, money as exact decimal strings. A bad parameter is a 400
/// naming it.
pub(super) async fn series(
    State(state): State<Arc<AdminState>>,
    id: RequestId,
    params: Result<Query<UsageParams>, QueryRejection>,
) -> Response {
    let query = match params
        .map_err(|rejection| rejection.body_text())
        .and_then(|Query(params)| params.check(SystemTime::now()))
    {
        Ok(query) => query,
        Err(message) => return bad_request(&id, &message),
    };
    match usage(&state, &id, &query).await {
        Ok(mut answer) => {
            if query.group_by == Some(GroupBy::Model) {
                answer.price_cache_savings(&state.prices);
            }
            Json(answer).into_response()
        }
        Err(response) => response,
    }
}

/// The answer to `query` from the store the gateway reads: PostgreSQL when
/// configured, else the SQLite rollup; a failure as the response to give.
pub(super) async fn usage(
    state: &AdminState,
    id: &RequestId,
    query: &UsageQuery,
) -> Result<UsageAnswer, Response> {
    if let Some(pg) = state.audit_pg.clone() {
        return pg.usage(query).await.map_err(|error| match error {
            PgError::Invalid(error) => bad_request(id, &error.to_string()),
            error @ PgError::Unavailable(_) => {
                tracing::warn!(%error, "usage query failed");
                unavailable(id, "the audit database is unavailable")
            }
        });
    }
    let Some(rollup) = state.usage_rollup.clone() else {
        return Err(gateway_error(
            id,
            StatusCode::NOT_FOUND,
            "not_found_error",
            "the audit store is not enabled",
        ));
    };
    let query = *query;
    // SQLite blocks; keep it off the async workers.
    match tokio::task::spawn_blocking(move || rollup.usage(&query)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) => {
            tracing::warn!(%error, "usage query failed");
            Err(unavailable(id, "the usage query failed"))
        }
        Err(_) => Err(unavailable(id, "the usage query failed")),
    }
}

fn bad_request(id: &RequestId, message: &str) -> Response {
    gateway_error(
        id,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message,
    )
}

fn unavailable(id: &RequestId, message: &str) -> Response {
    gateway_error(id, StatusCode::SERVICE_UNAVAILABLE, "api_error", message)
}
