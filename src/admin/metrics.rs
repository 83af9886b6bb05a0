//! `GET /gateway/metrics`: the JSON summary, the metrics sink's own exact totals; with
//! `[audit] postgres_url` the totals and the `by_*` spend come from the shared audit
//! table instead (the usage aggregation of `/gateway/usage`, over all time), so every
//! replica answers the same. (`GET /metrics` is the host exporter's text, served by
//! [`Exposition`](crate::metrics::Exposition).)

use super::usage::usage;
use super::AdminState;
use crate::request_id::RequestId;
use crate::series::{GroupBy, UsageQuery};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::SystemTime;

/// The `by_*` maps of the summary and the attribute each is split by.
const BY: [(&str, GroupBy); 5] = [
    ("by_provider", GroupBy::Provider),
    ("by_model", GroupBy::Model),
    ("by_agent_type", GroupBy::AgentType),
    ("by_client", GroupBy::Client),
    ("by_team", GroupBy::Team),
];

/// `GET /gateway/metrics`.
pub(super) async fn summary(State(state): State<Arc<AdminState>>, id: RequestId) -> Response {
    let mut body = state.metrics.summary_json();
    if state.audit_pg.is_some() {
        if let Err(response) = shared_totals(&state, &id, &mut body).await {
            return response;
        }
    }
    Json(body).into_response()
}

/// Replace the totals and `by_*` maps of `body` with the audit table's, all time.
async fn shared_totals(
    state: &AdminState,
    id: &RequestId,
    body: &mut Value,
) -> Result<(), Response> {
    let now = SystemTime::now();
    let all_time = |group_by| UsageQuery::all_time(group_by, now);
    let total = usage(state, id, &all_time(None)).await?.total();
    let summary = &mut body["summary"];
    summary["total_requests"] = json!(total.requests);
    summary["total_cost_usd"] = json!(total.cost.to_usd_f64());
    summary["total_cost_usd_exact"] = json!(total.cost.to_string());
    summary["total_input_tokens"] = json!(total.input_tokens);
    summary["total_output_tokens"] = json!(total.output_tokens);
    summary["total_cache_write_tokens"] = json!(total.cache_write_tokens);
    summary["total_cache_read_tokens"] = json!(total.cache_read_tokens);
    summary["unpriced_requests"] = json!(total.unpriced);
    for (field, group) in BY {
        let answer = usage(state, id, &all_time(Some(group))).await?;
        let map: Map<String, Value> = answer
            .series
            .iter()
            .filter_map(|series| {
                let key = series.key.clone()?;
                Some((key, json!(series.total().cost.to_usd_f64())))
            })
            .collect();
        body[field] = Value::Object(map);
    }
    body["source"] = json!("postgres");
    Ok(())
}
