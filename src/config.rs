//! The gateway's configuration, read from TOML.
//!
//! Every section rejects unknown keys, naming them, and [`Config::validate`] checks the
//! cross-references (a chain naming an unknown provider, a bad URL) so the gateway never
//! starts half-configured.

pub use crate::credentials::Secret;

use crate::keys::{
    check_globs, parse_period, parse_usd, FieldError, KeyInfo, LimitFields, TeamInfo,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// A configuration error, naming the key it is about.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// An error about `key` (a dotted path such as `providers.azure.base_url`).
    pub fn at(key: &str, message: impl fmt::Display) -> Self {
        Self(format!("config key `{key}`: {message}"))
    }

    /// `Ok` when `errors` is empty, else one error listing each, a line apiece.
    fn all(errors: Vec<ConfigError>) -> Result<(), ConfigError> {
        if errors.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = errors.into_iter().map(|e| e.0).collect();
        Err(ConfigError(lines.join("\n")))
    }
}

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Token that guards the admin endpoints (`/gateway/metrics`, `/metrics`, `/gateway/audit`).
    #[serde(default)]
    pub admin_token: Option<SecretRef>,
    /// Client keys; when present, `/v1/*` requires one.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Teams and their shared limits, by name.
    #[serde(default)]
    pub teams: BTreeMap<String, TeamConfig>,
    /// Which provider serves which request.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// The upstreams, by name.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Time limits.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Size limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The audit trail.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Per-model price overrides, USD per million tokens (exact decimals).
    #[serde(default)]
    pub pricing: BTreeMap<String, crate::pricing::ModelPrice>,
    /// How fallback holds a stream before its first content event.
    #[serde(default)]
    pub fallback: FallbackConfig,
    /// State shared by several replicas.
    #[serde(default)]
    pub state: StateConfig,
    /// OpenTelemetry traces.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8788))
}

/// `[auth]`: when present, `/v1/*` needs a client key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The keys from the config file, each with a name that audit and metrics show
    /// instead of the key; may be empty when keys come from the API.
    #[serde(default)]
    pub client_keys: Vec<ClientKey>,
    /// The SQLite file of keys created through the API (relative to the working
    /// directory); created with the first such key.
    #[serde(default = "default_store_path")]
    pub store_path: PathBuf,
}

fn default_store_path() -> PathBuf {
    PathBuf::from("llm-gateway-keys.db")
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl AuthConfig {
    /// `[auth]` with these keys and the default store path.
    pub fn new(client_keys: Vec<ClientKey>) -> Self {
        Self {
            client_keys,
            store_path: default_store_path(),
        }
    }
}

/// One named client key, with optional team, limits and model globs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientKey {
    /// The name shown in audit and metrics.
    pub name: String,
    /// The key itself.
    pub key: SecretRef,
    /// The team it belongs to (a team not in `[teams]` is one without limits).
    #[serde(default)]
    pub team: Option<String>,
    /// The most this key may spend per `budget_period`, in USD (read exactly).
    #[serde(default)]
    pub budget_usd: Option<UsdAmount>,
    /// `hour`, `day` (the default with a budget), `week`, `month` or `total`.
    #[serde(default)]
    pub budget_period: Option<String>,
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<i64>,
    /// Tokens per minute (input, cache writes, cache reads and output).
    #[serde(default)]
    pub tpm: Option<i64>,
    /// Requests open at once.
    #[serde(default)]
    pub max_concurrent: Option<i64>,
    /// Globs on the requested model; others are refused. Absent: every model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
}

impl ClientKey {
    /// A key named `name` with no team, limits or model globs.
    pub fn new(name: impl Into<String>, key: SecretRef) -> Self {
        Self {
            name: name.into(),
            key,
            team: None,
            budget_usd: None,
            budget_period: None,
            rpm: None,
            tpm: None,
            max_concurrent: None,
            models: None,
        }
    }

    /// The key as the registry holds it (without its value), checked; errors name
    /// `at` (the entry's path, such as `auth.client_keys[2]`) and the field.
    pub fn key_info(&self, at: &str, now: SystemTime) -> Result<KeyInfo, ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::at(&format!("{at}.name"), "must not be empty"));
        }
        if self.team.as_deref() == Some("") {
            return Err(ConfigError::at(&format!("{at}.team"), "must not be empty"));
        }
        let fields = LimitText {
            budget_usd: self.budget_usd.as_ref(),
            budget_period: self.budget_period.as_deref(),
            rpm: self.rpm,
            tpm: self.tpm,
            max_concurrent: self.max_concurrent,
            models: self.models.as_deref(),
        };
        Ok(KeyInfo {
            team: self.team.as_deref().map(Arc::from),
            limits: fields.limits(at)?,
            models: self.models.clone(),
            ..KeyInfo::config(&self.name, now)
        })
    }
}

/// `[teams.NAME]`: limits shared by every key with `team = NAME`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    /// The most the team may spend per `budget_period`, in USD (read exactly).
    #[serde(default)]
    pub budget_usd: Option<UsdAmount>,
    /// `hour`, `day` (the default with a budget), `week`, `month` or `total`.
    #[serde(default)]
    pub budget_period: Option<String>,
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<i64>,
    /// Tokens per minute.
    #[serde(default)]
    pub tpm: Option<i64>,
    /// Requests open at once.
    #[serde(default)]
    pub max_concurrent: Option<i64>,
    /// Globs on the requested model; others are refused. Absent: every model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
}

impl TeamConfig {
    /// The team as the registry holds it, checked; errors name `teams.NAME.FIELD`.
    pub fn team_info(&self, name: &str) -> Result<TeamInfo, ConfigError> {
        let fields = LimitText {
            budget_usd: self.budget_usd.as_ref(),
            budget_period: self.budget_period.as_deref(),
            rpm: self.rpm,
            tpm: self.tpm,
            max_concurrent: self.max_concurrent,
            models: self.models.as_deref(),
        };
        Ok(TeamInfo {
            name: Arc::from(name),
            limits: fields.limits(&format!("teams.{name}"))?,
            models: self.models.clone(),
        })
    }
}

/// A USD amount as written in the config (a number or a decimal string), kept as its
/// decimal text so it becomes exact [`Money`](crate::pricing::Money).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsdAmount(pub String);

impl<'de> Deserialize<'de> for UsdAmount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = UsdAmount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount of USD")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<UsdAmount, E> {
                Ok(UsdAmount(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<UsdAmount, E> {
                Ok(UsdAmount(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<UsdAmount, E> {
                // Display is the shortest round-trip decimal: the text the number was written with.
                Ok(UsdAmount(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UsdAmount, E> {
                Ok(UsdAmount(v.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The limit fields of a key or a team, as written.
struct LimitText<'a> {
    budget_usd: Option<&'a UsdAmount>,
    budget_period: Option<&'a str>,
    rpm: Option<i64>,
    tpm: Option<i64>,
    max_concurrent: Option<i64>,
    models: Option<&'a [String]>,
}

impl LimitText<'_> {
    fn limits(&self, at: &str) -> Result<crate::budget::Limits, ConfigError> {
        let named =
            |error: FieldError| ConfigError::at(&format!("{at}.{}", error.field), error.message);
        let budget_usd = self
            .budget_usd
            .map(|amount| {
                parse_usd(&amount.0)
                    .map_err(|message| ConfigError::at(&format!("{at}.budget_usd"), message))
            })
            .transpose()?;
        let budget_period = self
            .budget_period
            .map(parse_period)
            .transpose()
            .map_err(named)?;
        // A negative count is as wrong as zero: both are "not a positive integer".
        let count = |v: Option<i64>| v.map(|v| u64::try_from(v).unwrap_or(0));
        let fields = LimitFields {
            budget_usd,
            budget_period,
            rpm: count(self.rpm),
            tpm: count(self.tpm),
            max_concurrent: count(self.max_concurrent),
        };
        let limits = fields.limits().map_err(named)?;
        if let Some(models) = self.models {
            check_globs(&format!("{at}.models"), models)
                .map_err(|(field, message)| ConfigError::at(&field, message))?;
        }
        Ok(limits)
    }
}

/// `[routing]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// The provider used when no rule matches; defaults to the only (or `anthropic`) provider.
    #[serde(default)]
    pub default_provider: Option<String>,
    /// Providers tried in order after the chosen one fails.
    #[serde(default)]
    pub fallback_chain: Vec<String>,
    /// `agent_type` → provider and model.
    #[serde(default)]
    pub agent_types: BTreeMap<String, RouteTarget>,
    /// Glob rules on the requested model; the first match wins.
    #[serde(default)]
    pub models: Vec<ModelRule>,
}

/// Where a rule sends a request.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTarget {
    /// Provider name.
    pub provider: String,
    /// Model to ask that provider for; absent = the requested model.
    #[serde(default)]
    pub model: Option<String>,
}

/// One `[[routing.models]]` rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRule {
    /// Glob on the requested model (`*` and `?`).
    #[serde(rename = "match")]
    pub pattern: String,
    /// Provider name.
    pub provider: String,
    /// Model to ask that provider for; absent = the requested model.
    #[serde(default)]
    pub model: Option<String>,
}

/// The wire protocol a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// Anthropic Messages (Anthropic, Foundry `/anthropic`, DeepSeek `/anthropic`, Ollama ≥ 0.14).
    Anthropic,
    /// OpenAI chat completions.
    Openai,
    /// Azure OpenAI chat completions (deployment URL, `api-key` header).
    AzureOpenai,
}

/// `[providers.NAME]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Wire protocol.
    pub kind: ProviderKind,
    /// Base URL, e.g. `https://api.anthropic.com`.
    pub base_url: url::Url,
    /// Key; absent = pass the client's key through (Anthropic kinds only).
    #[serde(default)]
    pub api_key: Option<SecretRef>,
    /// Model used when a request is routed here by fallback.
    #[serde(default)]
    pub model: Option<String>,
    /// Azure deployment name.
    #[serde(default)]
    pub deployment: Option<String>,
    /// Azure `api-version`.
    #[serde(default)]
    pub api_version: Option<String>,
}

impl ProviderConfig {
    /// An Anthropic-kind provider at `base_url` with no key of its own (pass-through).
    pub fn anthropic(base_url: url::Url) -> Self {
        Self {
            kind: ProviderKind::Anthropic,
            base_url,
            api_key: None,
            model: None,
            deployment: None,
            api_version: None,
        }
    }
}

/// `[timeouts]`, in milliseconds.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsConfig {
    /// TCP (and TLS) connect.
    pub connect_ms: u64,
    /// Until the upstream's response headers and its first body bytes.
    pub first_byte_ms: u64,
    /// Longest silence inside a stream.
    pub idle_ms: u64,
    /// On SIGTERM, how long open streams may run before the process exits anyway.
    pub shutdown_grace_ms: u64,
    /// Time a client has to send its whole request body, from the moment the gateway
    /// starts reading it; 408 after that, and nothing goes upstream. Default 30000.
    pub request_body_ms: u64,
    /// A connection (HTTP/1 keep-alive or HTTP/2) with no request in flight for this
    /// long is closed. HTTP/2 connections are also pinged at this interval, and one
    /// whose peer does not answer a ping within 20 s is dropped. Default 60000.
    pub idle_connection_ms: u64,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            connect_ms: 10_000,
            first_byte_ms: 120_000,
            idle_ms: 300_000,
            shutdown_grace_ms: 30_000,
            request_body_ms: 30_000,
            idle_connection_ms: 60_000,
        }
    }
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body accepted (413 above).
    pub max_request_bytes: usize,
    /// Requests (streams included) in flight at once, counted from the moment a
    /// request's body has been read; the next gets 529 at once.
    pub max_concurrent_requests: usize,
    /// Largest request head (request line and headers) read; 431 above. At least 8192.
    ///
    /// It is also the size a connection's read buffer may grow to (hyper ties the two),
    /// and every open stream keeps its buffer: 16 KiB (Node.js's default head limit)
    /// instead of 64 KiB saves ~48 KiB per open stream whose request body was large.
    pub max_header_bytes: usize,
    /// Time a client has to send its request head (slow-loris guard).
    pub header_read_timeout_ms: u64,
    /// Concurrent streams one HTTP/2 connection may open (advertised in SETTINGS;
    /// streams over it are refused). Default 100.
    pub max_streams_per_connection: u32,
    /// Connections open at once; at the cap the gateway stops accepting until one
    /// closes (new ones wait in the listen backlog). Default 10000.
    pub max_connections: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 32 * 1024 * 1024,
            max_concurrent_requests: 4096,
            max_header_bytes: 16 * 1024,
            header_read_timeout_ms: 10_000,
            max_streams_per_connection: 100,
            max_connections: 10_000,
        }
    }
}

/// `[audit]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Whether records are written.
    pub enabled: bool,
    /// Whether request bodies are kept.
    pub log_request_bodies: bool,
    /// Whether response bodies (the SSE text for streams) are kept.
    pub log_response_bodies: bool,
    /// The store's file.
    pub path: std::path::PathBuf,
    /// Longest body kept; longer ones are cut with a marker.
    pub max_body_bytes: usize,
    /// Records older than this many days are pruned (absent = kept).
    pub retention_days: Option<u32>,
    /// The store is pruned, oldest records first, to stay under this many bytes.
    pub max_db_bytes: Option<u64>,
    /// PostgreSQL to ship every record to (usually `env:DATABASE_URL`; a secret, never
    /// logged). The file at `path` is then the replica's spool, and `/gateway/audit`
    /// answers from PostgreSQL.
    pub postgres_url: Option<SecretRef>,
    /// The PostgreSQL schema the audit tables live in (default `llm_gateway`).
    pub postgres_schema: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            log_request_bodies: true,
            log_response_bodies: true,
            path: "llm-gateway-audit.db".into(),
            max_body_bytes: 1024 * 1024,
            retention_days: None,
            max_db_bytes: None,
            postgres_url: None,
            postgres_schema: "llm_gateway".into(),
        }
    }
}

/// `[fallback]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FallbackConfig {
    /// Longest time, in milliseconds from sending the request upstream, that a stream is
    /// held with no byte to the client while no content has arrived (default 10000).
    /// After it the client gets the `200` head and an SSE `: keepalive` comment every
    /// few seconds, while a failure before content still moves invisibly to the next
    /// provider; when every attempt fails, the stream ends with one `event: error`.
    pub max_hold_ms: u64,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self {
            max_hold_ms: 10_000,
        }
    }
}

/// `[telemetry]`: OpenTelemetry traces over OTLP/HTTP (protobuf).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL (e.g. `http://127.0.0.1:4318`); spans go to
    /// `{otlp_endpoint}/v1/traces`. Absent: no traces are exported.
    pub otlp_endpoint: Option<url::Url>,
    /// The `service.name` resource attribute (default `llm-gateway`).
    pub service_name: String,
    /// Put the request's messages into the attempt spans (`gen_ai.input.messages`),
    /// redacted as the audit log is (default false: no content leaves).
    pub capture_content: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "llm-gateway".to_owned(),
            capture_content: false,
        }
    }
}

/// `[state]`: what replicas share.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// The Redis that holds budgets, reservations and rate limits for every replica
    /// (`env:NAME`, `credential:NAME` or the URL itself; it may hold a password and is
    /// never logged). Absent: this process's memory, its spend journalled beside the
    /// key store.
    pub redis_url: Option<SecretRef>,
    /// What a request of a key or team with limits gets while Redis is unreachable:
    /// `deny` (503, the default) or `allow` (admitted, limits not enforced).
    pub on_unavailable: crate::budget::OnUnavailable,
    /// What every Redis key of this gateway starts with (default `lg`): gateways that
    /// share one Redis but not their limits need different prefixes.
    pub key_prefix: String,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            on_unavailable: Default::default(),
            key_prefix: "lg".into(),
        }
    }
}

/// Where a secret comes from: `env:NAME`, `credential:NAME`, or the literal value.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum SecretRef {
    /// Read from an environment variable at start-up.
    Env(String),
    /// Read from the credential store at start-up.
    Credential(String),
    /// The value itself.
    Literal(Secret),
}

impl From<String> for SecretRef {
    fn from(s: String) -> Self {
        if let Some(name) = s.strip_prefix("env:") {
            SecretRef::Env(name.to_owned())
        } else if let Some(name) = s.strip_prefix("credential:") {
            SecretRef::Credential(name.to_owned())
        } else {
            SecretRef::Literal(Secret::new(s))
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::Credential(name) => write!(f, "credential:{name}"),
            SecretRef::Literal(_) => f.write_str("[redacted]"),
        }
    }
}

impl SecretRef {
    /// Resolve to the secret's value; `key` names the config key in errors.
    pub fn resolve(&self, key: &str) -> Result<Secret, ConfigError> {
        match self {
            SecretRef::Literal(secret) => Ok(secret.clone()),
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
                _ => Err(ConfigError::at(
                    key,
                    format!("environment variable {name} is not set"),
                )),
            },
            SecretRef::Credential(name) => {
                let store = crate::credentials::CredentialStore::open_default()
                    .map_err(|e| ConfigError::at(key, e))?;
                match store.get(name).map_err(|e| ConfigError::at(key, e))? {
                    Some(secret) => Ok(secret),
                    None => Err(ConfigError::at(
                        key,
                        format!(
                            "credential {name} is not in the credential store {}; add it with `credentials store {name}`",
                            store.path().display()
                        ),
                    )),
                }
            }
        }
    }
}

// === impl Config ===

impl Default for Config {
    /// One provider, `anthropic` at `https://api.anthropic.com`, passing the client's key.
    fn default() -> Self {
        let mut providers = BTreeMap::new();
        let url = url::Url::parse("https://api.anthropic.com").expect("constant URL parses");
        providers.insert("anthropic".to_owned(), ProviderConfig::anthropic(url));
        Self {
            listen: default_listen(),
            admin_token: None,
            auth: None,
            teams: BTreeMap::new(),
            routing: RoutingConfig::default(),
            providers,
            timeouts: TimeoutsConfig::default(),
            limits: LimitsConfig::default(),
            audit: AuditConfig::default(),
            pricing: BTreeMap::new(),
            fallback: FallbackConfig::default(),
            state: StateConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

impl Config {
    /// Parse and validate TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError(format!("invalid config: {e}")))?;
        if config.providers.is_empty() {
            config.providers = Config::default().providers;
        }
        config.validate()?;
        Ok(config)
    }

    /// Read, parse and validate a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
        Self::from_toml_str(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Without an admin token the gateway listens on loopback only.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        if self.admin_token.is_none() && !self.listen.ip().is_loopback() {
            return Err(ConfigError::at(
                "listen",
                format!(
                    "refusing to listen on {} without an admin token: set admin_token = \"env:GATEWAY_ADMIN_TOKEN\" \
                     (and [auth] client_keys) in the config, or listen on 127.0.0.1",
                    self.listen
                ),
            ));
        }
        Ok(())
    }

    /// The provider that serves requests no rule claims.
    pub fn default_provider(&self) -> Option<&str> {
        if let Some(name) = &self.routing.default_provider {
            return Some(name);
        }
        if self.providers.contains_key("anthropic") {
            return Some("anthropic");
        }
        self.providers.keys().next().map(String::as_str)
    }

    /// Check cross-references and values; the message names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        if self.providers.is_empty() {
            errors.push(ConfigError::at(
                "providers",
                "at least one provider is needed",
            ));
        }
        for (name, provider) in &self.providers {
            let key = format!("providers.{name}.base_url");
            if !matches!(provider.base_url.scheme(), "http" | "https") {
                errors.push(ConfigError::at(&key, "must be an http or https URL"));
            }
            if provider.base_url.host_str().is_none() {
                errors.push(ConfigError::at(&key, "has no host"));
            }
            if provider.kind == ProviderKind::AzureOpenai && provider.deployment.is_none() {
                errors.push(ConfigError::at(
                    &format!("providers.{name}.deployment"),
                    "is required for kind = \"azure-openai\"",
                ));
            }
        }
        let known = |key: &str, name: &str| {
            if self.providers.contains_key(name) {
                Ok(())
            } else {
                Err(ConfigError::at(
                    key,
                    format!("names unknown provider `{name}`"),
                ))
            }
        };
        if let Some(name) = &self.routing.default_provider {
            if let Err(error) = known("routing.default_provider", name) {
                errors.push(error);
            }
        }
        if let Some(url) = &self.telemetry.otlp_endpoint {
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                errors.push(ConfigError::at(
                    "telemetry.otlp_endpoint",
                    "must be an http or https URL with a host",
                ));
            }
        }
        if self.telemetry.service_name.trim().is_empty() {
            errors.push(ConfigError::at(
                "telemetry.service_name",
                "must not be empty",
            ));
        }
        for name in &self.routing.fallback_chain {
            if let Err(error) = known("routing.fallback_chain", name) {
                errors.push(error);
            }
        }
        for (agent, target) in &self.routing.agent_types {
            if let Err(error) = known(
                &format!("routing.agent_types.{agent}.provider"),
                &target.provider,
            ) {
                errors.push(error);
            }
        }
        for (i, rule) in self.routing.models.iter().enumerate() {
            if let Err(error) = known(&format!("routing.models[{i}].provider"), &rule.provider) {
                errors.push(error);
            }
        }
        if self.limits.max_request_bytes == 0 {
            errors.push(ConfigError::at(
                "limits.max_request_bytes",
                "must be positive",
            ));
        }
        for (key, value) in [
            ("timeouts.connect_ms", self.timeouts.connect_ms),
            ("timeouts.first_byte_ms", self.timeouts.first_byte_ms),
            ("timeouts.idle_ms", self.timeouts.idle_ms),
            ("timeouts.request_body_ms", self.timeouts.request_body_ms),
            (
                "timeouts.idle_connection_ms",
                self.timeouts.idle_connection_ms,
            ),
            (
                "limits.max_streams_per_connection",
                u64::from(self.limits.max_streams_per_connection),
            ),
            (
                "limits.max_connections",
                u64::from(self.limits.max_connections),
            ),
        ] {
            if value == 0 {
                errors.push(ConfigError::at(key, "must be positive"));
            }
        }
        if self.fallback.max_hold_ms == 0 {
            errors.push(ConfigError::at("fallback.max_hold_ms", "must be positive"));
        }
        let prefix = &self.state.key_prefix;
        if prefix.is_empty()
            || prefix.len() > 64
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            errors.push(ConfigError::at(
                "state.key_prefix",
                format!("{prefix:?} must be 1 to 64 letters, digits, _, - or ."),
            ));
        }
        errors.extend(self.key_infos().err());
        errors.extend(self.team_infos().err());
        errors.extend(self.check_no_empty_secrets().err());
        ConfigError::all(errors)
    }

    /// Check that every `env:` secret's variable is set, naming each one that is not (all
    /// of them at once, so one start finds them all).
    pub fn check_env_secrets(&self) -> Result<(), ConfigError> {
        ConfigError::all(self.unset_env_secrets())
    }

    /// Every `env:` secret whose variable is unset or empty, each naming its key.
    fn unset_env_secrets(&self) -> Vec<ConfigError> {
        let mut secrets: Vec<(String, &SecretRef)> = Vec::new();
        secrets.extend(
            self.admin_token
                .iter()
                .map(|s| ("admin_token".to_owned(), s)),
        );
        if let Some(auth) = &self.auth {
            for (i, key) in auth.client_keys.iter().enumerate() {
                secrets.push((format!("auth.client_keys[{i}].key"), &key.key));
            }
        }
        for (name, provider) in &self.providers {
            if let Some(key) = &provider.api_key {
                secrets.push((format!("providers.{name}.api_key"), key));
            }
        }
        secrets.extend(
            self.state
                .redis_url
                .iter()
                .map(|s| ("state.redis_url".to_owned(), s)),
        );
        secrets.extend(
            self.audit
                .postgres_url
                .iter()
                .map(|s| ("audit.postgres_url".to_owned(), s)),
        );
        secrets
            .into_iter()
            .filter_map(|(key, secret)| match secret {
                SecretRef::Env(_) => secret.resolve(&key).err(),
                _ => None,
            })
            .collect()
    }

    /// The config file's client keys as the registry holds them (values left out),
    /// each checked; loaded at `SystemTime::now()`.
    pub fn key_infos(&self) -> Result<Vec<KeyInfo>, ConfigError> {
        let Some(auth) = &self.auth else {
            return Ok(Vec::new());
        };
        let now = SystemTime::now();
        let mut seen = std::collections::BTreeSet::new();
        let mut infos = Vec::new();
        for (i, key) in auth.client_keys.iter().enumerate() {
            let at = format!("auth.client_keys[{i}]");
            if !seen.insert(key.name.as_str()) {
                return Err(ConfigError::at(
                    &format!("{at}.name"),
                    format!("{:?} is the name of an earlier key", key.name),
                ));
            }
            infos.push(key.key_info(&at, now)?);
        }
        Ok(infos)
    }

    /// The `[teams]` as the registry holds them, each checked.
    pub fn team_infos(&self) -> Result<Vec<TeamInfo>, ConfigError> {
        self.teams
            .iter()
            .map(|(name, team)| team.team_info(name))
            .collect()
    }

    /// An empty key would let an empty `x-api-key:` header in; an empty admin token
    /// an empty `Bearer`.
    fn check_no_empty_secrets(&self) -> Result<(), ConfigError> {
        let empty = |secret: &SecretRef| match secret {
            SecretRef::Literal(value) => value.expose().is_empty(),
            SecretRef::Env(name) | SecretRef::Credential(name) => name.is_empty(),
        };
        if let Some(auth) = &self.auth {
            for (i, key) in auth.client_keys.iter().enumerate() {
                if empty(&key.key) {
                    return Err(ConfigError::at(
                        &format!("auth.client_keys[{i}].key"),
                        "must not be empty",
                    ));
                }
            }
        }
        if self.admin_token.as_ref().is_some_and(empty) {
            return Err(ConfigError::at("admin_token", "must not be empty"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_config_error_is_reported_at_once() {
        let providers = "[providers.a]\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:1\"\n\
             api_key = \"env:LLM_GATEWAY_UNSET_A\"\n\
             [providers.b]\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:2\"\n\
             api_key = \"env:LLM_GATEWAY_UNSET_B\"\n";
        let invalid = Config::from_toml_str(&format!(
            "[timeouts]\nidle_ms = 0\n[fallback]\nmax_hold_ms = 0\n{providers}"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            invalid.contains("timeouts.idle_ms") && invalid.contains("fallback.max_hold_ms"),
            "{invalid}"
        );
        let config = Config::from_toml_str(&format!(
            "admin_token = \"env:LLM_GATEWAY_UNSET_ADMIN\"\n{providers}"
        ))
        .unwrap();
        let unset = config.check_env_secrets().unwrap_err().to_string();
        for name in [
            "LLM_GATEWAY_UNSET_ADMIN",
            "LLM_GATEWAY_UNSET_A",
            "LLM_GATEWAY_UNSET_B",
        ] {
            assert!(unset.contains(name), "{unset}");
        }
        assert_eq!(unset.lines().count(), 3);
    }

    #[test]
    fn state_names_redis_and_what_a_limited_request_gets_without_it() {
        let config = Config::from_toml_str(
            "[state]\nredis_url = \"redis://:pw-secret@10.0.0.5:6379\"\non_unavailable = \"allow\"\n",
        )
        .unwrap();
        assert_eq!(
            config.state.on_unavailable,
            crate::budget::OnUnavailable::Allow
        );
        assert!(!format!("{config:?}").contains("pw-secret"));
        let default = Config::from_toml_str("").unwrap();
        assert!(default.state.redis_url.is_none());
        assert_eq!(
            default.state.on_unavailable,
            crate::budget::OnUnavailable::Deny
        );
        assert_eq!(default.state.key_prefix, "lg");
        let mut bad = default.clone();
        bad.state.key_prefix = "a{b}".into();
        let error = bad.validate().unwrap_err().to_string();
        assert!(error.contains("state.key_prefix"), "{error}");
        let error = Config::from_toml_str("[state]\non_unavailable = \"maybe\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("maybe") && error.contains("on_unavailable"),
            "{error}"
        );
    }

    const FULL_EXAMPLE: &str = r#"
listen = "127.0.0.1:8788"
admin_token = "env:GATEWAY_ADMIN_TOKEN"

[auth]
client_keys = [{ name = "ci", key = "env:GW_KEY_CI" }, { name = "dev", key = "gk-literal" }]

[routing]
default_provider = "anthropic"
fallback_chain = ["anthropic", "azure", "deepseek", "ollama"]
[routing.agent_types]
"code-reviewer" = { provider = "deepseek", model = "deepseek-flash" }
[[routing.models]]
match = "claude-haiku-*"
provider = "ollama"
model = "llama3.1"

[providers.anthropic]
kind = "anthropic"
base_url = "https://api.anthropic.com"
api_key = "env:ANTHROPIC_API_KEY"

[providers.azure]
kind = "azure-openai"
base_url = "https://RESOURCE.openai.azure.com"
deployment = "gpt-4o"
api_version = "2024-10-21"
api_key = "credential:AZURE_OPENAI_API_KEY"

[providers.deepseek]
kind = "openai"
base_url = "https://api.deepseek.com"
model = "deepseek-flash"
api_key = "env:DEEPSEEK_API_KEY"

[providers.ollama]
kind = "openai"
base_url = "http://127.0.0.1:11434"
model = "llama3.1"

[timeouts]
connect_ms = 10000
first_byte_ms = 120000
idle_ms = 300000

[limits]
max_request_bytes = 33554432

[audit]
enabled = true
log_request_bodies = true
log_response_bodies = true
path = "llm-gateway-audit.db"
max_body_bytes = 1048576

[pricing."claude-sonnet-4-5-20250929"]
input = 3.0
output = 15.0
cache_write_5m = 3.75
cache_write_1h = 6.0
cache_read = 0.30
"#;

    const KEYS_EXAMPLE: &str = r#"
[auth]
store_path = "/var/lib/gw/keys.db"
[[auth.client_keys]]
name = "ci"
key = "env:GW_KEY_CI"
team = "platform"
budget_usd = 50.0
budget_period = "day"
rpm = 60
tpm = 1000000
max_concurrent = 8
models = ["claude-*"]

[[auth.client_keys]]
name = "dev"
key = "gk-dev"
budget_usd = 0.1

[teams.platform]
budget_usd = 500
budget_period = "month"
rpm = 600
tpm = 5000000
max_concurrent = 64
models = ["claude-*", "deepseek-*"]
"#;

    #[test]
    fn keys_with_limits_and_teams_parse_exactly() {
        use crate::budget::Period;
        let config = Config::from_toml_str(KEYS_EXAMPLE).unwrap();
        let auth = config.auth.as_ref().unwrap();
        assert_eq!(auth.store_path, PathBuf::from("/var/lib/gw/keys.db"));
        let keys = config.key_infos().unwrap();
        assert_eq!(keys.len(), 2);
        let ci = &keys[0];
        assert_eq!(ci.team.as_deref(), Some("platform"));
        let budget = ci.limits.budget.unwrap();
        assert_eq!(budget.limit.to_string(), "50");
        assert_eq!(budget.period, Period::Day);
        assert_eq!(
            (ci.limits.rpm, ci.limits.tpm, ci.limits.max_concurrent),
            (Some(60), Some(1_000_000), Some(8))
        );
        assert_eq!(ci.models.as_deref(), Some(&["claude-*".to_owned()][..]));
        // 0.1 is read from its decimal text, not through float arithmetic.
        let dev = keys[1].limits.budget.unwrap();
        assert_eq!(dev.limit.picos(), 100_000_000_000);
        assert_eq!(dev.period, Period::Day, "day is the default period");
        let teams = config.team_infos().unwrap();
        assert_eq!(&*teams[0].name, "platform");
        assert_eq!(teams[0].limits.budget.unwrap().period, Period::Month);
        assert_eq!(teams[0].limits.budget.unwrap().limit.to_string(), "500");
    }

    #[test]
    fn both_key_forms_parse_and_keys_may_be_absent() {
        let inline = Config::from_toml_str(
            "[auth]\nclient_keys = [{ name = \"a\", key = \"k1\", rpm = 5 }, { name = \"b\", key = \"k2\" }]\n",
        )
        .unwrap();
        let tables = Config::from_toml_str(
            "[[auth.client_keys]]\nname = \"a\"\nkey = \"k1\"\nrpm = 5\n[[auth.client_keys]]\nname = \"b\"\nkey = \"k2\"\n",
        )
        .unwrap();
        assert_eq!(inline.key_infos().unwrap().len(), 2);
        let (a, b) = (
            &inline.key_infos().unwrap()[0],
            &tables.key_infos().unwrap()[0],
        );
        assert_eq!((a.limits, &a.name), (b.limits, &b.name));
        let empty = Config::from_toml_str("[auth]\n").unwrap();
        let auth = empty.auth.unwrap();
        assert!(auth.client_keys.is_empty());
        assert_eq!(auth.store_path, PathBuf::from("llm-gateway-keys.db"));
        let listed_empty = Config::from_toml_str("[auth]\nclient_keys = []\n").unwrap();
        assert!(listed_empty.auth.unwrap().client_keys.is_empty());
        // A team the keys name but [teams] does not define is fine.
        let config = Config::from_toml_str(
            "[[auth.client_keys]]\nname = \"a\"\nkey = \"k\"\nteam = \"nowhere\"\n",
        )
        .unwrap();
        assert!(config.teams.is_empty());
    }

    #[test]
    fn every_bad_limit_is_named() {
        let key = |extra: &str| {
            format!(
                "[[auth.client_keys]]\nname = \"a\"\nkey = \"k1\"\n[[auth.client_keys]]\nname = \"b\"\nkey = \"k2\"\n[[auth.client_keys]]\nname = \"c\"\nkey = \"k3\"\n{extra}\n"
            )
        };
        let team = |extra: &str| format!("[teams.platform]\n{extra}\n");
        let cases = [
            (key("rpm = 0"), "auth.client_keys[2].rpm", "positive"),
            (key("rpm = -4"), "auth.client_keys[2].rpm", "positive"),
            (
                key("rpm = 5000000000"),
                "auth.client_keys[2].rpm",
                "at most",
            ),
            (key("tpm = 0"), "auth.client_keys[2].tpm", "positive"),
            (
                key("max_concurrent = -1"),
                "auth.client_keys[2].max_concurrent",
                "positive",
            ),
            (
                key("budget_usd = -5.0"),
                "auth.client_keys[2].budget_usd",
                "negative",
            ),
            (
                key("budget_usd = nan"),
                "auth.client_keys[2].budget_usd",
                "finite",
            ),
            (
                key("budget_usd = inf"),
                "auth.client_keys[2].budget_usd",
                "finite",
            ),
            (
                key("budget_usd = \"ten\""),
                "auth.client_keys[2].budget_usd",
                "decimal",
            ),
            (
                key("budget_usd = 1\nbudget_period = \"fortnight\""),
                "auth.client_keys[2].budget_period",
                "fortnight",
            ),
            (
                key("budget_period = \"day\""),
                "auth.client_keys[2].budget_period",
                "budget_usd",
            ),
            (
                key("models = [\"claude-*\", \"[\"]"),
                "auth.client_keys[2].models[1]",
                "glob",
            ),
            (key("team = \"\""), "auth.client_keys[2].team", "empty"),
            (
                key("").replace("name = \"c\"", "name = \"a\""),
                "auth.client_keys[2].name",
                "earlier",
            ),
            (
                key("").replace("name = \"c\"", "name = \"\""),
                "auth.client_keys[2].name",
                "empty",
            ),
            (
                team("budget_usd = 1\nbudget_period = \"fortnight\""),
                "teams.platform.budget_period",
                "fortnight",
            ),
            (
                team("budget_usd = -1"),
                "teams.platform.budget_usd",
                "negative",
            ),
            (team("rpm = 0"), "teams.platform.rpm", "positive"),
            (team("tpm = -3"), "teams.platform.tpm", "positive"),
            (
                team("max_concurrent = 0"),
                "teams.platform.max_concurrent",
                "positive",
            ),
            (team("models = [\"[\"]"), "teams.platform.models[0]", "glob"),
            (
                team("budget_period = \"week\""),
                "teams.platform.budget_period",
                "budget_usd",
            ),
            (team("colour = \"red\""), "colour", "unknown"),
            (key("budget = 5"), "budget", "unknown"),
        ];
        for (text, field, why) in cases {
            let err = Config::from_toml_str(&text).expect_err(&text).to_string();
            assert!(err.contains(field) && err.contains(why), "{text}\n=> {err}");
        }
    }

    #[test]
    fn the_spec_example_parses() {
        let config = Config::from_toml_str(FULL_EXAMPLE).unwrap();
        assert_eq!(config.providers.len(), 4);
        assert_eq!(config.providers["azure"].kind, ProviderKind::AzureOpenai);
        assert_eq!(config.routing.fallback_chain.len(), 4);
        assert_eq!(config.routing.models[0].pattern, "claude-haiku-*");
        assert_eq!(
            config.admin_token,
            Some(SecretRef::Env("GATEWAY_ADMIN_TOKEN".into()))
        );
    }

    #[test]
    fn pricing_overrides_are_exact_and_strict() {
        let config = Config::from_toml_str(FULL_EXAMPLE).unwrap();
        let price = &config.pricing["claude-sonnet-4-5-20250929"];
        assert_eq!(price.cache_read.unwrap().micros_per_mtok(), 300_000);
        assert_eq!(price.cache_write_5m.unwrap().micros_per_mtok(), 3_750_000);
        let err =
            Config::from_toml_str("[pricing.m]\ninput = 1.0\noutput = 2.0\ncache_reed = 0.1\n")
                .unwrap_err();
        assert!(err.to_string().contains("cache_reed"), "{err}");
        let err = Config::from_toml_str("[pricing.m]\ninput = -1.0\noutput = 2.0\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("line 2") && text.contains("negative"),
            "{text}"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml_str("listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
        let err = Config::from_toml_str("[timeouts]\nfirst_bite_ms = 3\n").unwrap_err();
        assert!(err.to_string().contains("first_bite_ms"), "{err}");
    }

    #[test]
    fn fallback_max_hold_defaults_to_ten_seconds_and_must_be_positive() {
        assert_eq!(Config::default().fallback.max_hold_ms, 10_000);
        let config = Config::from_toml_str("[fallback]\nmax_hold_ms = 250\n").unwrap();
        assert_eq!(config.fallback.max_hold_ms, 250);
        let err = Config::from_toml_str("[fallback]\nmax_hold_ms = 0\n").unwrap_err();
        assert!(err.to_string().contains("fallback.max_hold_ms"), "{err}");
        let err = Config::from_toml_str("[fallback]\nmax_hold = 5\n").unwrap_err();
        assert!(err.to_string().contains("max_hold"), "{err}");
    }

    #[test]
    fn unknown_provider_in_chain_is_named() {
        let err = Config::from_toml_str("[routing]\nfallback_chain = [\"anthropic\", \"nope\"]\n")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("routing.fallback_chain") && text.contains("nope"),
            "{text}"
        );
    }

    #[test]
    fn bad_url_is_named() {
        let err = Config::from_toml_str(
            "[providers.x]\nkind = \"anthropic\"\nbase_url = \"ftp://example.com\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("providers.x.base_url"), "{err}");
    }

    #[test]
    fn no_providers_means_the_default_anthropic() {
        let config = Config::from_toml_str("").unwrap();
        assert_eq!(config.default_provider(), Some("anthropic"));
        assert_eq!(
            config.providers["anthropic"].base_url.as_str(),
            "https://api.anthropic.com/"
        );
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let config = Config::from_toml_str(
            "[providers.a]\nkind = \"anthropic\"\nbase_url = \"https://x.test\"\napi_key = \"sk-very-secret\"\n",
        )
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("sk-very-secret"), "{debug}");
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn non_loopback_needs_an_admin_token() {
        let config = Config::from_toml_str("listen = \"0.0.0.0:8788\"\n").unwrap();
        let err = config.check_exposure().unwrap_err().to_string();
        assert!(
            err.contains("admin_token") && err.contains("127.0.0.1"),
            "{err}"
        );
        let config =
            Config::from_toml_str("listen = \"0.0.0.0:8788\"\nadmin_token = \"t\"\n").unwrap();
        assert!(config.check_exposure().is_ok());
        assert!(Config::default().check_exposure().is_ok());
    }

    #[test]
    fn unresolvable_env_names_key_and_variable() {
        let secret = SecretRef::Env("LLM_GATEWAY_TEST_SURELY_UNSET".into());
        let err = secret
            .resolve("providers.a.api_key")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("providers.a.api_key") && err.contains("LLM_GATEWAY_TEST_SURELY_UNSET")
        );
    }

    #[test]
    fn edge_bounds_parse_default_and_refuse_zero() {
        let config = Config::default();
        assert_eq!(config.timeouts.request_body_ms, 30_000);
        assert_eq!(config.timeouts.idle_connection_ms, 60_000);
        assert_eq!(config.limits.max_streams_per_connection, 100);
        assert_eq!(config.limits.max_connections, 10_000);
        let config = Config::from_toml_str(
            "[timeouts]\nrequest_body_ms = 5\nidle_connection_ms = 6\n[limits]\nmax_streams_per_connection = 7\nmax_connections = 8\n",
        )
        .unwrap();
        assert_eq!(
            (
                config.timeouts.request_body_ms,
                config.timeouts.idle_connection_ms,
                config.limits.max_streams_per_connection,
                config.limits.max_connections
            ),
            (5, 6, 7, 8)
        );
        for (section, key) in [
            ("timeouts", "request_body_ms"),
            ("timeouts", "idle_connection_ms"),
            ("limits", "max_streams_per_connection"),
            ("limits", "max_connections"),
        ] {
            let err = Config::from_toml_str(&format!("[{section}]\n{key} = 0\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("{section}.{key}")), "{err}");
        }
    }
}
