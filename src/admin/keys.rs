//! The key and team API: `/gateway/keys`, `/gateway/keys/{name}` and `/gateway/teams`
//! (behind the admin token), and `GET /gateway/me` (the calling client key's own view).
//!
//! A key is shown as `{"name","team","source","budget_usd","budget_period","rpm","tpm",
//! "max_concurrent","models","created_at","expires_at","revoked_at","spent_usd",
//! "reserved_usd","remaining_usd","resets_at","requests_last_minute",
//! "tokens_last_minute","open_requests"}`: money as exact decimal strings, times as
//! RFC 3339 in UTC with milliseconds, and never the key's value (only the answer to the
//! `POST` that created it carries `"key"`). `remaining_usd` is the budget less what is
//! settled and reserved in the current window (never below zero), null without a
//! budget.

use super::{gateway_error, AdminState};
use crate::budget::{Limits, Period, Scope, ScopeUsage};
use crate::keys::{
    parse_period, parse_usd, usd_from_f64, FieldError, KeyError, KeyInfo, KeyPatch, LimitFields,
    NewKey, TeamInfo,
};
use crate::pricing::Money;
use crate::request_id::RequestId;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// `POST /gateway/keys`: create a key; 201 with the key object and its `"key"`.
pub(super) async fn create(
    State(state): State<Arc<AdminState>>,
    id: RequestId,
    body: Bytes,
) -> Response {
    let new = match parse_body(&body, true).and_then(Fields::into_new_key) {
        Ok(new) => new,
        Err(error) => return bad_field(&id, &error),
    };
    let created = match state.keys.create_key(new).await {
        Ok(created) => created,
        Err(error) => return key_error(&id, &error),
    };
    let (info, secret) = created;
    let mut body = match key_json(&state, &info).await {
        Ok(body) => body,
        Err(response) => return response(&id),
    };
    body["key"] = Value::String(secret.expose().to_owned());
    (StatusCode::CREATED, Json(body)).into_response()
}

/// `GET /gateway/keys`: `{"keys":[KEY…]}`, config and API keys, revoked ones included.
pub(super) async fn list(State(state): State<Arc<AdminState>>, id: RequestId) -> Response {
    let mut keys = Vec::new();
    for key in state.keys.list() {
        match key_json(&state, &key).await {
            Ok(body) => keys.push(body),
            Err(response) => return response(&id),
        }
    }
    Json(json!({ "keys": keys })).into_response()
}

/// `GET /gateway/keys/{name}`: KEY, or 404.
pub(super) async fn get_one(
    State(state): State<Arc<AdminState>>,
    id: RequestId,
    Path(name): Path<String>,
) -> Response {
    match state.keys.get(&name) {
        Some(key) => answer(&state, &id, &key).await,
        None => key_error(&id, &KeyError::NotFound(name)),
    }
}

/// `PATCH /gateway/keys/{name}`: change an API key's fields (`null` clears one); KEY.
pub(super) async fn patch(
    State(state): State<Arc<AdminState>>,
    id: RequestId,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let patch = match parse_body(&body, false) {
        Ok(fields) => fields.into_patch(),
        Err(error) => return bad_field(&id, &error),
    };
    match state.keys.update_key(name, patch).await {
        Ok(key) => answer(&state, &id, &key).await,
        Err(error) => key_error(&id, &error),
    }
}

/// `DELETE /gateway/keys/{name}`: revoke an API key; 200 KEY with `revoked_at`.
pub(super) async fn revoke(
    State(state): State<Arc<AdminState>>,
    id: RequestId,
    Path(name): Path<String>,
) -> Response {
    match state.keys.revoke_key(name).await {
        Ok(key) => answer(&state, &id, &key).await,
        Err(error) => key_error(&id, &error),
    }
}

/// `GET /gateway/teams`: `{"teams":[{"name", limits, spend, "keys":[names]}]}`, the
/// configured teams and the ones only named by keys.
pub(super) async fn teams(State(state): State<Arc<AdminState>>, id: RequestId) -> Response {
    let mut teams = Vec::new();
    for (team, keys) in state.keys.teams() {
        match team_json(&state, &team).await {
            Ok(mut body) => {
                body["keys"] = json!(keys.iter().map(|k| &**k).collect::<Vec<_>>());
                teams.push(body);
            }
            Err(response) => return response(&id),
        }
    }
    Json(json!({ "teams": teams })).into_response()
}

/// `GET /gateway/me`: the calling client key's name, team, limits, spend and what is
/// left, and the same for its team (`team_usage`, null without a team). Authenticated
/// with the client key itself; shows nothing of other keys.
pub(super) async fn me(
    State(state): State<Arc<AdminState>>,
    id: RequestId,
    headers: http::HeaderMap,
) -> Response {
    if !state.keys.is_enabled() {
        return key_error(&id, &KeyError::Disabled);
    }
    let auth = match state.keys.authenticate(&headers) {
        Ok(auth) => auth,
        Err(failure) => {
            return gateway_error(
                &id,
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                &failure.to_string(),
            )
        }
    };
    let key = &auth.key;
    let usage = match usage_of(&state, key.scope(), &key.limits).await {
        Ok(usage) => usage,
        Err(response) => return response(&id),
    };
    let mut body = json!({
        "name": &*key.name,
        "team": key.team.as_deref(),
        "limits": Value::Object(limit_fields(&key.limits, key.models.as_deref())),
        "expires_at": key.expires_at.map(rfc3339),
    });
    extend(&mut body, usage_fields(&key.limits, &usage));
    body["team_usage"] = match &auth.team {
        Some(team) => match usage_of(&state, team.scope(), &team.limits).await {
            Ok(usage) => {
                let mut team_body = json!({
                    "name": &*team.name,
                    "limits": Value::Object(limit_fields(&team.limits, team.models.as_deref())),
                });
                extend(&mut team_body, usage_fields(&team.limits, &usage));
                team_body
            }
            Err(response) => return response(&id),
        },
        None => Value::Null,
    };
    Json(body).into_response()
}

// === rendering ===

/// An answer that still needs the request id.
type Deferred = fn(&RequestId) -> Response;

async fn answer(state: &AdminState, id: &RequestId, key: &KeyInfo) -> Response {
    match key_json(state, key).await {
        Ok(body) => Json(body).into_response(),
        Err(response) => response(id),
    }
}

async fn usage_of(
    state: &AdminState,
    scope: Scope,
    limits: &Limits,
) -> Result<ScopeUsage, Deferred> {
    state.ledger.usage(&scope, limits).await.map_err(|error| {
        tracing::warn!(%error, "the ledger could not report usage");
        ledger_down as Deferred
    })
}

fn ledger_down(id: &RequestId) -> Response {
    gateway_error(
        id,
        StatusCode::SERVICE_UNAVAILABLE,
        "api_error",
        "the budget ledger is unavailable; spend cannot be shown",
    )
}

async fn key_json(state: &AdminState, key: &KeyInfo) -> Result<Value, Deferred> {
    let usage = usage_of(state, key.scope(), &key.limits).await?;
    let mut body = json!({
        "name": &*key.name,
        "team": key.team.as_deref(),
        "source": key.source.as_str(),
    });
    extend(&mut body, limit_fields(&key.limits, key.models.as_deref()));
    extend(
        &mut body,
        Map::from_iter([
            ("created_at".to_owned(), json!(rfc3339(key.created_at))),
            ("expires_at".to_owned(), json!(key.expires_at.map(rfc3339))),
            ("revoked_at".to_owned(), json!(key.revoked_at.map(rfc3339))),
        ]),
    );
    extend(&mut body, usage_fields(&key.limits, &usage));
    Ok(body)
}

async fn team_json(state: &AdminState, team: &TeamInfo) -> Result<Value, Deferred> {
    let usage = usage_of(state, team.scope(), &team.limits).await?;
    let mut body = json!({ "name": &*team.name });
    extend(
        &mut body,
        limit_fields(&team.limits, team.models.as_deref()),
    );
    extend(&mut body, usage_fields(&team.limits, &usage));
    Ok(body)
}

fn extend(body: &mut Value, fields: Map<String, Value>) {
    if let Value::Object(map) = body {
        map.extend(fields);
    }
}

fn limit_fields(limits: &Limits, models: Option<&[String]>) -> Map<String, Value> {
    Map::from_iter([
        (
            "budget_usd".to_owned(),
            json!(limits.budget.map(|b| b.limit.to_string())),
        ),
        (
            "budget_period".to_owned(),
            json!(limits.budget.map(|b| b.period.as_str())),
        ),
        ("rpm".to_owned(), json!(limits.rpm)),
        ("tpm".to_owned(), json!(limits.tpm)),
        ("max_concurrent".to_owned(), json!(limits.max_concurrent)),
        ("models".to_owned(), json!(models)),
    ])
}

fn usage_fields(limits: &Limits, usage: &ScopeUsage) -> Map<String, Value> {
    let remaining = limits.budget.map(|budget| {
        let used = usage.spent.picos().saturating_add(usage.reserved.picos());
        Money::from_picos(budget.limit.picos().saturating_sub(used)).to_string()
    });
    Map::from_iter([
        ("spent_usd".to_owned(), json!(usage.spent.to_string())),
        ("reserved_usd".to_owned(), json!(usage.reserved.to_string())),
        ("remaining_usd".to_owned(), json!(remaining)),
        (
            "resets_at".to_owned(),
            json!(usage.window.and_then(|w| w.resets_at()).map(rfc3339)),
        ),
        (
            "requests_last_minute".to_owned(),
            json!(usage.requests_last_minute),
        ),
        (
            "tokens_last_minute".to_owned(),
            json!(usage.tokens_last_minute),
        ),
        ("open_requests".to_owned(), json!(usage.open)),
    ])
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at.max(UNIX_EPOCH)).to_string()
}

// === errors ===

fn bad_field(id: &RequestId, error: &FieldError) -> Response {
    gateway_error(
        id,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        &format!("`{}`: {}", error.field, error.message),
    )
}

fn key_error(id: &RequestId, error: &KeyError) -> Response {
    let (status, kind) = match error {
        KeyError::Invalid(field) => return bad_field(id, field),
        KeyError::NameTaken(_) | KeyError::ReadOnly(_) => {
            (StatusCode::CONFLICT, "invalid_request_error")
        }
        KeyError::NotFound(_) | KeyError::Disabled => (StatusCode::NOT_FOUND, "not_found_error"),
        KeyError::Store(store) => {
            tracing::error!(error = %store, "the key store failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "api_error")
        }
        KeyError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "api_error"),
    };
    gateway_error(id, status, kind, &error.to_string())
}

// === the request body ===

/// The fields of a create or patch body: `None` absent, `Some(None)` null.
#[derive(Default)]
struct Fields {
    name: Option<String>,
    team: Option<Option<String>>,
    budget_usd: Option<Option<Money>>,
    budget_period: Option<Option<Period>>,
    rpm: Option<Option<u64>>,
    tpm: Option<Option<u64>>,
    max_concurrent: Option<Option<u64>>,
    models: Option<Option<Vec<String>>>,
    expires_at: Option<Option<SystemTime>>,
}

fn parse_body(body: &[u8], with_name: bool) -> Result<Fields, FieldError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| FieldError::new("body", format!("is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(FieldError::new("body", "must be a JSON object"));
    };
    let mut fields = Fields::default();
    for (field, value) in map {
        let bad = |message: &str| FieldError::new(field.as_str(), message);
        match field.as_str() {
            "name" if with_name => {
                fields.name = Some(
                    value
                        .as_str()
                        .ok_or_else(|| bad("must be a string"))?
                        .to_owned(),
                );
            }
            "name" => return Err(bad("cannot be changed")),
            "team" => {
                fields.team = Some(nullable(&value, |v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad("must be a string or null"))
                })?);
            }
            "budget_usd" => {
                fields.budget_usd = Some(nullable(&value, |v| {
                    let parsed =
                        match v {
                            Value::Number(n) => match n.as_u64() {
                                Some(whole) => parse_usd(&whole.to_string()),
                                None => usd_from_f64(n.as_f64().unwrap_or(f64::NAN)),
                            },
                            Value::String(text) => parse_usd(text),
                            _ => Err("must be an amount of USD (a number or a decimal string)"
                                .to_owned()),
                        };
                    parsed.map_err(|message| bad(&message))
                })?);
            }
            "budget_period" => {
                fields.budget_period = Some(nullable(&value, |v| {
                    parse_period(v.as_str().ok_or_else(|| bad("must be a string or null"))?)
                })?);
            }
            "rpm" | "tpm" | "max_concurrent" => {
                let count = nullable(&value, |v| match v {
                    // A negative count is as wrong as zero: both are refused as not positive.
                    Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.as_u64().unwrap_or(0)),
                    _ => Err(bad("must be a positive integer or null")),
                })?;
                match field.as_str() {
                    "rpm" => fields.rpm = Some(count),
                    "tpm" => fields.tpm = Some(count),
                    _ => fields.max_concurrent = Some(count),
                }
            }
            "models" => {
                fields.models = Some(nullable(&value, |v| {
                    let items = v
                        .as_array()
                        .ok_or_else(|| bad("must be a list of globs or null"))?;
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            item.as_str().map(str::to_owned).ok_or_else(|| {
                                FieldError::new(format!("models[{i}]"), "must be a string")
                            })
                        })
                        .collect()
                })?);
            }
            "expires_at" => {
                fields.expires_at = Some(nullable(&value, |v| {
                    let text = v
                        .as_str()
                        .ok_or_else(|| bad("must be an RFC 3339 time or null"))?;
                    humantime::parse_rfc3339_weak(text).map_err(|e| {
                        bad(&format!(
                            "must be an RFC 3339 time in UTC such as 2027-01-31T00:00:00Z: {e}"
                        ))
                    })
                })?);
            }
            _ => return Err(bad("is not a field of a key")),
        }
    }
    Ok(fields)
}

fn nullable<T>(
    value: &Value,
    parse: impl FnOnce(&Value) -> Result<T, FieldError>,
) -> Result<Option<T>, FieldError> {
    if value.is_null() {
        Ok(None)
    } else {
        parse(value).map(Some)
    }
}

impl Fields {
    fn into_new_key(self) -> Result<NewKey, FieldError> {
        let name = self
            .name
            .ok_or_else(|| FieldError::new("name", "is required"))?;
        Ok(NewKey {
            name,
            team: self.team.flatten(),
            limits: LimitFields {
                budget_usd: self.budget_usd.flatten(),
                budget_period: self.budget_period.flatten(),
                rpm: self.rpm.flatten(),
                tpm: self.tpm.flatten(),
                max_concurrent: self.max_concurrent.flatten(),
            },
            models: self.models.flatten(),
            expires_at: self.expires_at.flatten(),
        })
    }

    fn into_patch(self) -> KeyPatch {
        KeyPatch {
            team: self.team,
            budget_usd: self.budget_usd,
            budget_period: self.budget_period,
            rpm: self.rpm,
            tpm: self.tpm,
            max_concurrent: self.max_concurrent,
            models: self.models,
            expires_at: self.expires_at,
        }
    }
}
