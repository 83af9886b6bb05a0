//! `GET /gateway/audit`: pages of audit records, from PostgreSQL when
//! `[audit] postgres_url` is set (every replica answers the same), else from the
//! SQLite store.

use super::{gateway_error, AdminState};
use crate::audit::AuditQuery;
use crate::request_id::RequestId;
use crate::ship::PgError;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use std::sync::Arc;

/// `GET /gateway/audit`: one page of audit records, newest first, as
/// `{"records":[…],"bodies":bool,"next_cursor":"…"|null}`.
///
/// Query parameters (all optional, ANDed):
/// - `request_id`: only that record; the answer then carries its bodies;
/// - `model` (requested or served), `provider`, `since` (unix ms or RFC 3339);
/// - `client` (the key's name), `team`, `session`: whose requests they were;
/// - `limit`: records per page, default 50, at most 1000;
/// - `cursor` (or `before`): the `next_cursor` of the previous page, to continue
///   the listing; pages stay disjoint while new records are written;
/// - `bodies=true`: include bodies in a listing too.
///
/// A listing carries metadata only (bodies null) unless it is for one record or
/// asks for bodies, and every page ends early once its records reach 8 MiB of
/// JSON; `next_cursor` is then set, as it is when `limit` cut the page.
pub(super) async fn records(
    State(state): State<Arc<AdminState>>,
    id: RequestId,
    query: Result<axum::extract::Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> axum::response::Response {
    if let Some(pg) = state.audit_pg.clone() {
        return match query {
            Ok(axum::extract::Query(query)) => match pg.page(&query).await {
                Ok(page) => Json(page).into_response(),
                Err(PgError::Invalid(error)) => gateway_error(
                    &id,
                    http::StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    &error.to_string(),
                ),
                Err(error @ PgError::Unavailable(_)) => {
                    tracing::warn!(%error, "audit query failed");
                    gateway_error(
                        &id,
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        "api_error",
                        "the audit database is unavailable",
                    )
                }
            },
            Err(rejection) => gateway_error(
                &id,
                http::StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &rejection.body_text(),
            ),
        };
    }
    let Some(store) = state.audit.clone() else {
        return gateway_error(
            &id,
            http::StatusCode::NOT_FOUND,
            "not_found_error",
            "the audit store is not enabled",
        );
    };
    let query = match query {
        Ok(axum::extract::Query(query)) => query,
        Err(rejection) => {
            return gateway_error(
                &id,
                http::StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &rejection.body_text(),
            )
        }
    };
    // SQLite reads block; keep them off the async workers.
    match tokio::task::spawn_blocking(move || store.reader().page(&query)).await {
        Ok(Ok(page)) => Json(page).into_response(),
        Ok(Err(error)) => gateway_error(
            &id,
            http::StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &error.to_string(),
        ),
        Err(_) => gateway_error(
            &id,
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "the audit query failed",
        ),
    }
}
