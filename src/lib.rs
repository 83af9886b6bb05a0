//! # llm-gateway
//!
//! A streaming LLM gateway made of tower layers. Each concern — reading and checking the
//! request, turning errors into answers, reading usage, time limits — is a `Layer` around
//! one streaming provider `Service`; [`Gateway`] builds the whole stack from a [`Config`]
//! and hands out an `axum::Router` that another service can mount or nest. The library
//! installs no global state: no metrics recorder, no tracing subscriber, no signal
//! handlers.
//!
//! ```text
//! client ─▶ axum ─▶ ErrorResponse ─▶ Ingress ─▶ Usage ─▶ Timeout ─▶ Provider (anthropic)
//! ```
//!
//! Requests are small JSON, read once under a size cap into `http::Request<Bytes>`.
//! Responses are `http::Response<B>` with a streaming body: each layer that cares about
//! the answer wraps the body in its own type ([`UsageBody`](usage::UsageBody),
//! [`TimeoutBody`](timeout::TimeoutBody), [`RescueBody`](error_response::RescueBody)) and
//! looks at frames as they pass. Nothing buffers a stream, nothing spawns a task per
//! stream, nothing sits on an unbounded channel: back-pressure and client disconnect
//! travel by ownership (hyper drops the body → every wrapper drops → reqwest closes the
//! upstream connection).
//!
//! ## The extension contract
//!
//! | extension | inserted by | read by |
//! |---|---|---|
//! | [`RequestId`](error_response::RequestId) (request) | the router, or [`ErrorResponseLayer`](error_response::ErrorResponseLayer) | ingress, error rendering |
//! | [`RequestMeta`] (request) | [`IngressLayer`](ingress::IngressLayer) | usage, provider |
//! | [`TargetModel`] (request) | routing (when it picks another model) | provider (rewrites `model`) |
//! | [`ServedBy`] (response) | the provider | usage |
//!
//! Errors: every layer below `ErrorResponse` fails with [`Error`]; a non-success
//! upstream status is an `Error` that keeps the upstream's answer
//! ([`Error::upstream`]), which the edge returns as it came.
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

pub mod audit;
pub mod body;
pub mod config;
pub mod cost;
pub mod error;
pub mod error_response;
pub mod fallback;
mod gateway;
pub mod ingress;
pub mod meta;
pub mod metrics;
pub mod pricing;
pub mod provider;
pub mod route;
pub mod sse;
pub mod timeout;
pub mod usage;

pub use body::Body;
pub use config::Config;
pub use error::{Error, ErrorKind};
pub use gateway::{Gateway, GatewayBuilder};
pub use meta::{Endpoint, RequestClock, RequestMeta, ServedBy, TargetModel};
