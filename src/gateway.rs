//! [`Gateway`]: the whole stack built from a [`Config`], as an `axum::Router`.
//!
//! This file builds it ([`GatewayBuilder`], the one place the layer order is fixed);
//! `gateway/running.rs` is the built gateway and its server; the gateway's own
//! endpoints are in `admin/`, and the tower-http edge ([`edge::wrap`]) goes around
//! the stack and those endpoints alike.

mod running;

pub use running::Gateway;

use crate::admin::{self, AdminState, KeySources};
use crate::audit::{AuditSink, AuditStore, AuditStoreConfig};
use crate::auth::AuthLayer;
use crate::budget::{Ledger, MemoryLedger, RedisLedger, Refusal, SpendJournal};
use crate::config::{Config, ConfigError, ProviderKind, Secret, SecretRef};
use crate::dialect::DialectLayer;
use crate::edge;
use crate::error_response::ErrorResponseLayer;
use crate::fallback::{share_cool_downs, DefaultFallbackPolicy, FallbackLayer, ProviderHealth};
use crate::govern::GovernLayer;
use crate::ingress::IngressLayer;
use crate::keys::KeyRegistry;
use crate::limit::ConcurrencyShedLayer;
use crate::metrics::{Exposition, GatewayMetrics, Render};
use crate::pricing::PriceTable;
use crate::provider::{self, AnthropicProvider, OpenAiProvider, ProviderService, ProviderSet};
use crate::record::{
    AuditOptions, AuditRecordSink, AuditStream, BudgetRecordSink, MetricsRecordSink, RecordLayer,
};
use crate::route::{ConfigRoutePolicy, RouteLayer};
use crate::series::UsageRollup;
use crate::ship::{Cursor, PgAudit, Shipper};
use crate::timeout::TimeoutLayer;
use crate::usage::{OnCost, OnUsage, UsageLayer, UsageReport};
use std::collections::HashMap;
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
    metrics: GatewayMetrics,
    metrics_render: Option<Render>,
    ledger: Option<Arc<dyn Ledger>>,
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
            metrics: GatewayMetrics::new(),
            metrics_render: None,
            ledger: None,
        }
    }

    /// Send the gateway's metrics to `recorder` instead of the global `metrics` recorder.
    ///
    /// ```
    /// # let config = llm_gateway::Config::default();
    /// let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    /// let handle = recorder.handle();
    /// let gateway = llm_gateway::Gateway::builder(config)
    ///     .metrics_recorder(recorder)
    ///     .serve_metrics(move || handle.render())
    ///     .build()?;
    /// # Ok::<(), llm_gateway::config::ConfigError>(())
    /// ```
    pub fn metrics_recorder(
        mut self,
        recorder: impl metrics::Recorder + Send + Sync + 'static,
    ) -> Self {
        self.metrics = GatewayMetrics::with_recorder(recorder);
        self
    }

    /// Serve `GET /metrics` (behind the admin token) with the text `render` returns, as
    /// the classic Prometheus text format; without it the router has no `/metrics`.
    ///
    /// Give it the exporter's render, e.g. `move || handle.render()` for
    /// metrics-exporter-prometheus. Each scrape first calls
    /// [`GatewayMetrics::refresh`], so provider health and the audit queue are current.
    pub fn serve_metrics(mut self, render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.metrics_render = Some(Arc::new(render));
        self
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

    /// Count budgets, reservations and rate limits in `ledger` (the default is a
    /// [`MemoryLedger`] of this process); `/gateway/keys`, `/gateway/teams` and
    /// `/gateway/me` read spend from it.
    pub fn ledger(mut self, ledger: Arc<dyn Ledger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Check the configuration, resolve its secrets and build the stack.
    pub fn build(self) -> Result<Gateway, ConfigError> {
        let config = self.config;
        config.validate()?;
        config.check_env_secrets()?;
        let client = match self.http_client {
            Some(client) => client,
            None => provider::http_client(&config.timeouts).map_err(|e| {
                ConfigError::at("timeouts", format!("cannot build the HTTP client: {e}"))
            })?,
        };
        let (providers, key_sources) = build_providers(&config, &client)?;
        let pg_url = config
            .audit
            .postgres_url
            .as_ref()
            .map(|url| url.resolve("audit.postgres_url"))
            .transpose()?;
        let redis_url = config
            .state
            .redis_url
            .as_ref()
            .map(|url| url.resolve("state.redis_url"))
            .transpose()?;
        let keys = build_keys(&config, pg_url.as_ref())?;
        let auth = AuthLayer::with_registry(keys.clone());
        let admin_token = config
            .admin_token
            .as_ref()
            .map(|token| token.resolve("admin_token"))
            .transpose()?;
        let route = ConfigRoutePolicy::from_config(&config)?;
        let health = Arc::new(ProviderHealth::default());
        let mut redis_ledger = None;
        let mut prices = PriceTable::builtin();
        for (model, price) in &config.pricing {
            prices.insert(model, *price);
        }
        let metrics = self.metrics;
        metrics.watch_health(health.clone(), config.providers.keys().cloned().collect());
        let fallback = FallbackLayer::new(DefaultFallbackPolicy::default())
            .with_health(health.clone())
            .on_fallback(metrics.clone())
            .max_hold(Duration::from_millis(config.fallback.max_hold_ms))
            .capture_content(
                (config.telemetry.capture_content).then_some(config.audit.max_body_bytes),
            );

        let options = AuditOptions {
            log_request_bodies: config.audit.log_request_bodies,
            log_response_bodies: config.audit.log_response_bodies,
            max_body_bytes: config.audit.max_body_bytes,
        };
        let ledger = match (self.ledger, &config.auth, &redis_url) {
            (Some(ledger), _, _) => ledger,
            (None, _, Some(url)) => {
                let ledger = RedisLedger::new(url.expose(), config.state.on_unavailable)
                    .map_err(|e| ConfigError::at("state.redis_url", e.0))?
                    .with_prefix(&config.state.key_prefix);
                let ledger = Arc::new(ledger);
                redis_ledger = Some(ledger.clone());
                ledger as Arc<dyn Ledger>
            }
            (None, Some(auth), None) => {
                let journal = SpendJournal::open(&auth.store_path).map_err(|e| {
                    ConfigError::at(
                        "auth.store_path",
                        format!(
                            "cannot read the spend in {}: {e}",
                            auth.store_path.display()
                        ),
                    )
                })?;
                Arc::new(MemoryLedger::new().with_journal(journal)) as Arc<dyn Ledger>
            }
            (None, None, None) => Arc::new(MemoryLedger::new()),
        };
        if let Some(url) = &redis_url {
            // Cool-downs shared with the other replicas; the same poll is Redis's idle
            // health check for the ledger.
            let on_reachable = move |up: bool| {
                if let Some(ledger) = &redis_ledger {
                    ledger.note_reachable(up);
                }
            };
            let providers = config.providers.keys().cloned().collect();
            share_cool_downs(
                &health,
                url.expose(),
                &config.state.key_prefix,
                providers,
                on_reachable,
            )
            .map_err(|e| ConfigError::at("state.redis_url", e))?;
        }
        metrics.watch_budgets(keys.clone(), ledger.clone());
        let govern = {
            let metrics = metrics.clone();
            GovernLayer::new(ledger.clone(), prices.clone()).on_refusal(move |refusal: &Refusal| {
                metrics.rate_limited(&refusal.scope, refusal.reason.limit_name());
            })
        };
        // The budget sink first: the other sinks see the request settled.
        let audit_stream = AuditStream::new();
        let record = RecordLayer::new()
            .sink(BudgetRecordSink::new())
            .sink(MetricsRecordSink::new(metrics.clone()))
            .sink(audit_stream.clone());
        // One connection for `/gateway/audit`, another for the shipper's thread.
        let open_pg = || -> Result<Option<Arc<PgAudit>>, ConfigError> {
            pg_url
                .as_ref()
                .map(|url| PgAudit::new(url, &config.audit.postgres_schema).map(Arc::new))
                .transpose()
        };
        let audit_pg = open_pg()?;
        let mut audit_shipper = None;
        let (audit_store, record) = match (self.audit_sink, config.audit.enabled) {
            (Some(sink), _) => (None, record.sink(AuditRecordSink::new(sink, options))),
            (None, true) => {
                let mut store_config = AuditStoreConfig::new(&config.audit.path);
                store_config.retention_days = config.audit.retention_days;
                store_config.max_bytes = config.audit.max_db_bytes;
                // A spool keeps what the shipper has not sent yet, retention or not.
                store_config.keep_unshipped = pg_url
                    .is_some()
                    .then(|| Cursor::for_spool(&config.audit.path).path().to_owned());
                let store = AuditStore::open(store_config).map_err(|e| {
                    ConfigError::at("audit.path", format!("cannot open the audit store: {e}"))
                })?;
                let store = Arc::new(store);
                if let Some(pg) = open_pg()? {
                    // The file is this replica's spool; the shipper moves it on.
                    let shipper =
                        Shipper::start(pg, store.reader().clone(), config.audit.retention_days)
                            .map_err(|e| {
                                ConfigError::at(
                                    "audit.postgres_url",
                                    format!("cannot start the audit shipper: {e}"),
                                )
                            })?;
                    audit_shipper = Some(shipper);
                }
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
            .layer(DialectLayer::new())
            .layer(ConcurrencyShedLayer::new(
                config.limits.max_concurrent_requests,
            ))
            .layer(RouteLayer::new(route))
            .layer(govern)
            .layer(fallback)
            .layer(UsageLayer::new(self.on_usage).priced(prices.clone(), self.on_cost))
            .layer(TimeoutLayer::new(
                Duration::from_millis(config.timeouts.first_byte_ms),
                Duration::from_millis(config.timeouts.idle_ms),
            ))
            .service(providers);

        let state = Arc::new(AdminState {
            config,
            metrics,
            health,
            usage_rollup: audit_store.as_ref().map(|store| {
                let rollup = Arc::new(UsageRollup::new(store.reader().path()));
                rollup.catch_up_in_background();
                rollup
            }),
            audit: audit_store,
            audit_pg,
            audit_stream,
            audit_shipper,
            admin_token,
            key_sources,
            keys,
            ledger,
            prices,
        });
        let exposition = self
            .metrics_render
            .map(|render| Exposition::new(state.metrics.clone(), render));
        let router = admin::router(state.clone(), exposition)
            .route_service("/v1/messages", stack.clone())
            .route_service("/v1/messages/count_tokens", stack.clone())
            .route_service(crate::meta::CHAT_COMPLETIONS_PATH, stack.clone())
            .route_service("/v1/models", stack.clone())
            .route_service("/v1/models/{id}", stack.clone())
            .fallback_service(stack);
        Ok(Gateway {
            router: edge::wrap(router),
            state,
        })
    }
}

/// The registry of the config's keys and teams, with the API keys in PostgreSQL when
/// `pg_url` is set (shared by every replica), else in `[auth] store_path`; a disabled
/// one without `[auth]`.
fn build_keys(config: &Config, pg_url: Option<&Secret>) -> Result<Arc<KeyRegistry>, ConfigError> {
    let Some(auth) = &config.auth else {
        return Ok(Arc::new(KeyRegistry::disabled()));
    };
    let config_keys = auth
        .client_keys
        .iter()
        .zip(config.key_infos()?)
        .enumerate()
        .map(|(i, (key, info))| {
            let secret = key.key.resolve(&format!("auth.client_keys[{i}].key"))?;
            Ok((info, secret))
        })
        .collect::<Result<_, ConfigError>>()?;
    let registry = KeyRegistry::new(config_keys, config.team_infos()?);
    let Some(url) = pg_url else {
        let registry = registry.with_store(&auth.store_path).map_err(|e| {
            ConfigError::at(
                "auth.store_path",
                format!("cannot open {}: {e}", auth.store_path.display()),
            )
        })?;
        return Ok(Arc::new(registry));
    };
    let registry = Arc::new(registry);
    let schema = &config.audit.postgres_schema;
    // Writes from the admin handlers on one connection, the poller's reads on another.
    registry
        .share_through(PgAudit::new(url, schema)?, PgAudit::new(url, schema)?)
        .map_err(|e| {
            ConfigError::at(
                "audit.postgres_url",
                format!("cannot start the key poller: {e}"),
            )
        })?;
    Ok(registry)
}

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
