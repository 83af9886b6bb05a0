//! # llm-gateway
//!
//! A streaming LLM gateway made of tower layers. Each concern — auditing, metrics,
//! turning errors into answers, reading and checking the request, routing, fallback,
//! pricing, reading usage, time limits — is a `Layer` around
//! one streaming provider `Service`; [`Gateway`] builds the whole stack from a [`Config`]
//! and hands out an `axum::Router` that another service can mount or nest. The library
//! installs no global state: no metrics recorder, no tracing subscriber, no signal
//! handlers.
//!
//! ```text
//! client ─▶ axum ─▶ Audit ─▶ Metrics ─▶ ErrorResponse ─▶ Auth ─▶ Ingress ─▶ Shed ─▶ Route ─▶ Fallback
//!                                          ┌──────────── per attempt ────────────┘
//!                                          └▶ Cost ─▶ Usage ─▶ Timeout ─▶ ProviderSet ─▶ anthropic | openai | azure
//! ```
//!
//! Requests are small JSON, read once under a size cap into `http::Request<Bytes>` (so a
//! fallback replays them for free). Responses are `http::Response<B>` with a streaming
//! body: each layer that cares about the answer wraps the body in its own type
//! ([`UsageBody`](usage::UsageBody), [`TimeoutBody`](timeout::TimeoutBody),
//! [`PeekBody`](fallback::PeekBody), [`RescueBody`](error_response::RescueBody),
//! [`MetricsBody`](metrics::MetricsBody), [`AuditBody`](audit::AuditBody)) and looks at
//! frames as they pass. Nothing buffers a stream past its commit point, nothing spawns a
//! task per stream, nothing sits on an unbounded channel: back-pressure and client
//! disconnect travel by ownership (hyper drops the body → every wrapper drops → reqwest
//! closes the upstream connection). Provider services for OpenAI kinds translate in the
//! leaf, so every layer above sees Anthropic events only.
//!
//! ## The extension contract
//!
//! | extension | inserted by | read by |
//! |---|---|---|
//! | tower-http's `RequestId` (request), read as a [`RequestId`](request_id::RequestId) | the [`edge`], or [`RequestId::of`](request_id::RequestId::of) when a layer is used alone | every layer that reports |
//! | [`AuditDraft`](audit::AuditDraft) (request) | [`AuditLayer`](audit::AuditLayer) | ingress fills it (meta; the body goes on to the audit sink at once) |
//! | [`AttemptLog`] (request) | [`AuditLayer`](audit::AuditLayer) | fallback appends each attempt (one the client left too) and says when a held stream failed ([`AttemptsEnd`]) |
//! | [`CostObservers`](cost::CostObservers) (request) | audit, metrics | [`CostLayer`](cost::CostLayer) reports to them |
//! | `Arc<`[`RequestClock`]`>` (request) | [`MetricsLayer`](metrics::MetricsLayer) | the provider marks send and chunk times |
//! | [`ClientName`](auth::ClientName) (request) | [`AuthLayer`](auth::AuthLayer) | ingress (into `RequestMeta::client`) |
//! | [`RequestMeta`] (request) | [`IngressLayer`](ingress::IngressLayer) | route, usage, providers |
//! | [`RouteDecision`](route::RouteDecision) (request) | [`RouteLayer`](route::RouteLayer) | fallback |
//! | [`UsageObservers`](usage::UsageObservers) (request) | [`CostLayer`](cost::CostLayer) | [`UsageLayer`](usage::UsageLayer) reports to them |
//! | [`AttemptTarget`], [`TargetModel`], [`CrossProvider`] (request) | fallback, per attempt | [`ProviderSet`](provider::ProviderSet), the providers |
//! | [`ServedBy`] (response) | the provider | usage |
//! | [`ErrorInfo`](error_response::ErrorInfo) (response) | [`ErrorResponseLayer`](error_response::ErrorResponseLayer) | audit |
//!
//! Observers flow inward (an outer layer registers, an inner one reports), so each outer
//! layer learns every attempt's usage and cost without the inner layers knowing it exists.
//! The outer bodies declare their record guard after the inner body: on a client
//! disconnect the inner usage tap reports before the outer record closes.
//!
//! Errors: every layer below `ErrorResponse` fails with [`Error`]; a non-success
//! upstream status is an `Error` that keeps the upstream's answer
//! ([`Error::upstream`]), which fallback classifies and the edge returns as it came.
//!
//! ## Using a layer alone
//!
//! ```
//! use llm_gateway::usage::{UsageLayer, UsageReport};
//! use tower::ServiceBuilder;
//! # fn wrap<S>(provider: S) {
//! let stack = ServiceBuilder::new()
//!     .layer(UsageLayer::new(|report: UsageReport| println!("{:?}", report.usage)))
//!     .service(provider);
//! # let _ = stack; }
//! ```

mod admin;
pub mod audit;
pub mod auth;
pub mod body;
pub mod config;
pub mod cost;
pub mod credentials;
pub mod edge;
pub mod error;
pub mod error_response;
pub mod fallback;
mod gateway;
pub mod ingress;
pub mod limit;
pub mod meta;
pub mod metrics;
pub mod observers;
pub mod pricing;
pub mod provider;
pub mod request_id;
pub mod route;
mod serve;
pub mod sse;
pub mod timeout;
pub mod usage;

pub use body::Body;
pub use config::Config;
pub use error::{Error, ErrorKind};
pub use gateway::{Gateway, GatewayBuilder};
pub use meta::{
    AnswerHead, AttemptLog, AttemptRecord, AttemptTarget, AttemptsEnd, CrossProvider, Endpoint,
    RequestClock, RequestMeta, ServedBy, TargetModel,
};
