//! [`Gateway`]: the whole stack built from a [`Config`], as an `axum::Router`.

use crate::audit::{AuditQuery, AuditSink, AuditStore, AuditStoreConfig};
use crate::auth::{bearer_matches, AuthLayer};
use crate::config::{Config, ConfigError, ProviderKind, Secret, SecretRef};
use crate::error_response::{
    ErrorResponseLayer, RequestId, REQUEST_ID_HEADER, SDK_REQUEST_ID_HEADER,
};
use crate::fallback::{DefaultFallbackPolicy, FallbackLayer, ProviderHealth};
use crate::ingress::IngressLayer;
use crate::limit::ConcurrencyShedLayer;
use crate::metrics::GatewayMetrics;
use crate::pricing::PriceTable;
use crate::provider::{self, AnthropicProvider, OpenAiProvider, ProviderService, ProviderSet};
use crate::record::{AuditOptions, AuditRecordSink, MetricsRecordSink, RecordLayer};
use crate::route::{ConfigRoutePolicy, RouteLayer};
use crate::timeout::TimeoutLayer;
use crate::usage::{OnCost, OnUsage, UsageLayer, UsageReport};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use http::HeaderValue;
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tower::util::BoxCloneSyncService;
use tower::ServiceBuilder;

/// Builds a [`Gateway`]; the one place the layer order is fixed (the order and why
/// each layer sits where it does are in the [crate docs](crate#the-layers-outermost-first)).
pub struct GatewayBuilder {
    config: Config,
    audit_sink: Option<Arc<dyn AuditSink>>,
    on_usage: Arc<dyn OnUsage>,
    on_cost: Arc<dyn OnCost>,
    http_client: Option<reqwest::Client>,
}

impl GatewayBuilder {
    /// A builder for `config`.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            audit_sink: None,
            on_usage: Arc::new(()),
            on_cost: Arc::new(log_cost),
            http_client: None,
        }
    }

    /// Receive every priced attempt's [`CostReport`](crate::usage::CostReport) (the default
    /// logs it at debug level).
    pub fn on_cost(mut self, hook: impl OnCost) -> Self {
        self.on_cost = Arc::new(hook);
        self
    }

    /// Receive every attempt's [`UsageReport`] as the tap delivers it, before pricing.
    pub fn on_usage(mut self, hook: impl OnUsage) -> Self {
        self.on_usage = Arc::new(hook);
        self
    }

    /// Send audit records to `sink` instead of the SQLite store at `[audit] path`.
    pub fn audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit_sink = Some(sink);
        self
    }

    /// Use this HTTP client for upstream requests instead of one built from the config.
    ///
    /// Build it with `redirect(reqwest::redirect::Policy::none())` and without automatic
    /// decompression, as [`provider::http_client`](crate::provider::http_client) does: a
    /// client that follows redirects resends the body and the provider key to wherever an
    /// upstream's `Location` points. A 3xx that does reach a provider is a failed attempt.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Check the configuration, resolve its secrets and build the stack.
    pub fn build(self) -> Result<Gateway, ConfigError> {
        let config = self.config;
        config.validate()?;
        let client = match self.http_client {
            Some(client) => client,
            None => provider::http_client(&config.timeouts).map_err(|e| {
                ConfigError::at("timeouts", format!("cannot build the HTTP client: {e}"))
            })?,
        };
        let (providers, key_sources) = build_providers(&config, &client)?;
        let auth = match &config.auth {
            Some(auth) => AuthLayer::new(
                auth.client_keys
                    .iter()
                    .enumerate()
                    .map(|(i, key)| {
                        let secret = key.key.resolve(&format!("auth.client_keys[{i}].key"))?;
                        Ok((key.name.clone(), secret))
                    })
                    .collect::<Result<_, ConfigError>>()?,
            ),
            None => AuthLayer::open(),
        };
        let admin_token = config
            .admin_token
            .as_ref()
            .map(|token| token.resolve("admin_token"))
            .transpose()?;
        let route = ConfigRoutePolicy::from_config(&config)?;
        let health = Arc::new(ProviderHealth::default());
        let mut prices = PriceTable::builtin();
        for (model, price) in &config.pricing {
            prices.insert(model, *price);
        }
        let metrics = GatewayMetrics::new();
        metrics.watch_health(health.clone(), config.providers.keys().cloned().collect());
        let fallback = FallbackLayer::new(DefaultFallbackPolicy::default())
            .with_health(health.clone())
            .on_fallback(metrics.clone())
            .max_hold(Duration::from_millis(config.fallback.max_hold_ms));

        let options = AuditOptions {
            log_request_bodies: config.audit.log_request_bodies,
            log_response_bodies: config.audit.log_response_bodies,
            max_body_bytes: config.audit.max_body_bytes,
        };
        let record = RecordLayer::new().sink(MetricsRecordSink::new(metrics.clone()));
        let (audit_store, record) = match (self.audit_sink, config.audit.enabled) {
            (Some(sink), _) => (None, record.sink(AuditRecordSink::new(sink, options))),
            (None, true) => {
                let mut store_config = AuditStoreConfig::new(&config.audit.path);
                store_config.retention_days = config.audit.retention_days;
                store_config.max_bytes = config.audit.max_db_bytes;
                store_config.writer_priority = config.audit.writer_priority;
                let store = AuditStore::open(store_config).map_err(|e| {
                    ConfigError::at("audit.path", format!("cannot open the audit store: {e}"))
                })?;
                let store = Arc::new(store);
                metrics.watch_audit(store.clone());
                let sink = AuditRecordSink::new(store.clone(), options);
                (Some(store), record.sink(sink))
            }
            (None, false) => (None, record),
        };

        let body_timeout = Duration::from_millis(config.timeouts.request_body_ms);
        let stack = ServiceBuilder::new()
            .layer(record)
            .layer(ErrorResponseLayer::new())
            .layer(auth.with_body_timeout(body_timeout))
            .layer(
                IngressLayer::new(config.limits.max_request_bytes).with_body_timeout(body_timeout),
            )
            .layer(ConcurrencyShedLayer::new(
                config.limits.max_concurrent_requests,
            ))
            .layer(RouteLayer::new(route))
            .layer(fallback)
            .layer(UsageLayer::new(self.on_usage).priced(prices, self.on_cost))
            .layer(TimeoutLayer::new(
                Duration::from_millis(config.timeouts.first_byte_ms),
                Duration::from_millis(config.timeouts.idle_ms),
            ))
            .service(providers);

        let state = Arc::new(GatewayState {
            config,
            metrics,
            health,
            audit: audit_store,
            admin_token,
            key_sources,
        });
        let admin = Router::new()
            .route("/gateway/metrics", get(metrics_summary))
            .route("/metrics", get(prometheus))
            .route("/gateway/audit", get(audit_records))
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                require_admin,
            ));
        let router = Router::new()
            .route("/gateway/health", get(health_status))
            .merge(admin)
            .with_state(state.clone())
            .route_service("/v1/messages", stack.clone())
            .route_service("/v1/messages/count_tokens", stack.clone())
            .route_service("/v1/models", stack.clone())
            .route_service("/v1/models/{id}", stack.clone())
            .fallback_service(stack)
            .layer(axum::middleware::map_request(assign_request_id))
            .layer(axum::middleware::map_response(stamp_request_id));
        Ok(Gateway { router, state })
    }
}

/// Where each provider's key comes from: `env`, `credential_store`, `config`,
/// `client_passthrough` or `none`.
type KeySources = Vec<(String, &'static str)>;

/// One provider service per configured provider, keys resolved now; and where each
/// provider's key comes from.
fn build_providers(
    config: &Config,
    client: &reqwest::Client,
) -> Result<(ProviderSet, KeySources), ConfigError> {
    let mut services: HashMap<Arc<str>, ProviderService> = HashMap::new();
    let mut sources = Vec::new();
    for (name, provider) in &config.providers {
        sources.push((
            name.clone(),
            match (&provider.api_key, provider.kind) {
                (Some(SecretRef::Env(_)), _) => "env",
                (Some(SecretRef::Credential(_)), _) => "credential_store",
                (Some(SecretRef::Literal(_)), _) => "config",
                (None, ProviderKind::Anthropic) if config.auth.is_none() => "client_passthrough",
                (None, _) => "none",
            },
        ));
        let api_key = provider
            .api_key
            .as_ref()
            .map(|key| key.resolve(&format!("providers.{name}.api_key")))
            .transpose()?;
        let service = match provider.kind {
            ProviderKind::Anthropic => BoxCloneSyncService::new(AnthropicProvider::new(
                name.as_str(),
                provider.base_url.clone(),
                api_key,
                client.clone(),
            )),
            ProviderKind::Openai | ProviderKind::AzureOpenai => BoxCloneSyncService::new(
                OpenAiProvider::new(name.as_str(), provider, api_key, client.clone()),
            ),
        };
        services.insert(Arc::from(name.as_str()), service);
    }
    let default = config
        .default_provider()
        .ok_or_else(|| ConfigError::at("routing.default_provider", "no provider is configured"))?;
    Ok((ProviderSet::new(services, default), sources))
}

fn log_cost(report: crate::usage::CostReport) {
    let usage: &UsageReport = &report.usage;
    tracing::debug!(
        request_id = %usage.request_id,
        provider = %usage.provider,
        model = usage.model.as_deref().unwrap_or(""),
        outcome = ?usage.outcome,
        input = ?usage.usage.input_tokens,
        output = ?usage.usage.output_tokens,
        cache_read = ?usage.usage.cache_read_input_tokens,
        cache_write = ?usage.usage.cache_creation_input_tokens,
        cost_usd = %report.cost.map_or_else(|| "unpriced".to_owned(), |c| c.to_string()),
        "usage"
    );
}

/// The gateway: the layered stack behind an `axum::Router` another service can mount.
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
    router: Router,
    state: Arc<GatewayState>,
}

struct GatewayState {
    config: Config,
    metrics: GatewayMetrics,
    health: Arc<ProviderHealth>,
    audit: Option<Arc<AuditStore>>,
    admin_token: Option<Secret>,
    /// Where each provider's key comes from, for `/gateway/health` (never the key).
    key_sources: KeySources,
}

/// SPEC §6: with an admin token, the admin endpoints need `Authorization: Bearer <token>`.
async fn require_admin(
    State(state): State<Arc<GatewayState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match &state.admin_token {
        Some(token) if !bearer_matches(request.headers(), token) => gateway_error(
            http::StatusCode::FORBIDDEN,
            "permission_error",
            "this endpoint needs Authorization: Bearer <admin_token>",
        ),
        _ => next.run(request).await,
    }
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

    /// The router serving the HTTP API of SPEC §3.
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

/// `GET /gateway/health`. `status` is `healthy` when every provider is available
/// and the audit store writes; `degraded` when some provider is skipped or audit
/// writes are failing (`audit.healthy` is then false and `audit.error` says why:
/// requests are still served, their records are held in memory, bounded, and
/// retried); `unhealthy` when no provider is available.
async fn health_status(State(state): State<Arc<GatewayState>>) -> impl IntoResponse {
    let config = &state.config;
    let snapshot = state
        .health
        .snapshot(config.providers.keys().map(String::as_str));
    let up = snapshot.iter().filter(|(_, available)| *available).count();
    let audit_stats = state.audit.as_ref().map(|store| store.stats());
    // Failing audit writes degrade the gateway: requests are served, but their
    // records are only held in memory until the store can write again.
    let audit_healthy = audit_stats.is_none_or(|stats| !stats.failing);
    let status = if up == snapshot.len() && audit_healthy {
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
    if let Some(error) = audit_error {
        body["audit"]["error"] = serde_json::Value::String(error);
    }
    Json(body)
}

async fn metrics_summary(State(state): State<Arc<GatewayState>>) -> impl IntoResponse {
    Json(state.metrics.summary_json())
}

/// `GET /gateway/audit`: one page of audit records, newest first, as
/// `{"records":[…],"bodies":bool,"next_cursor":"…"|null}`.
///
/// Query parameters (all optional, ANDed):
/// - `request_id`: only that record; the answer then carries its bodies;
/// - `model` (requested or served), `provider`, `since` (unix ms or RFC 3339);
/// - `limit`: records per page, default 50, at most 1000;
/// - `cursor` (or `before`): the `next_cursor` of the previous page, to continue
///   the listing; pages stay disjoint while new records are written;
/// - `bodies=true`: include bodies in a listing too.
///
/// A listing carries metadata only (bodies null) unless it is for one record or
/// asks for bodies, and every page ends early once its records reach 8 MiB of
/// JSON; `next_cursor` is then set, as it is when `limit` cut the page.
async fn audit_records(
    State(state): State<Arc<GatewayState>>,
    query: Result<axum::extract::Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> axum::response::Response {
    let Some(store) = state.audit.clone() else {
        return gateway_error(
            http::StatusCode::NOT_FOUND,
            "not_found_error",
            "the audit store is not enabled",
        );
    };
    let query = match query {
        Ok(axum::extract::Query(query)) => query,
        Err(rejection) => {
            return gateway_error(
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
            http::StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &error.to_string(),
        ),
        Err(_) => gateway_error(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "the audit query failed",
        ),
    }
}

/// Marks an answer the gateway made itself, so it gets the SDKs' `request-id` header.
#[derive(Clone, Copy)]
struct OwnAnswer;

fn gateway_error(status: http::StatusCode, kind: &str, message: &str) -> axum::response::Response {
    let body = crate::error_response::error_body(kind, message, None);
    let mut response = (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    response.extensions_mut().insert(OwnAnswer);
    response
}

async fn prometheus(State(state): State<Arc<GatewayState>>) -> impl IntoResponse {
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render_prometheus(),
    )
}

async fn assign_request_id(mut request: axum::extract::Request) -> axum::extract::Request {
    request.extensions_mut().insert(RequestId::generate());
    request
}

async fn stamp_request_id(
    request_id: Option<axum::Extension<RequestId>>,
    mut response: axum::response::Response,
) -> axum::response::Response {
    if !response.headers().contains_key(REQUEST_ID_HEADER) {
        let id = request_id.map_or_else(RequestId::generate, |axum::Extension(id)| id);
        if let Ok(value) = HeaderValue::from_str(&id.0) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
    }
    if response.extensions().get::<OwnAnswer>().is_some()
        && !response.headers().contains_key(SDK_REQUEST_ID_HEADER)
    {
        if let Some(value) = response.headers().get(REQUEST_ID_HEADER).cloned() {
            response.headers_mut().insert(SDK_REQUEST_ID_HEADER, value);
        }
    }
    response
}
