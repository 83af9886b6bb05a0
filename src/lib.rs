//! # llm-gateway
//!
//! A streaming LLM gateway made of tower layers. Each concern — recording the request
//! (audit, metrics), turning errors into answers, reading and checking the request,
//! routing, fallback, reading and pricing usage, time limits — is a `Layer` around
//! one streaming provider `Service`; [`Gateway`] builds the whole stack from a [`Config`]
//! and hands out an `axum::Router` that another service can mount or nest. The library
//! installs no global state: no metrics recorder, no tracing subscriber, no signal
//! handlers.
//!
//! ## The layers, outermost first
//!
//! ```text
//! client ─▶ axum ─▶ edge ─▶ Record ─▶ ErrorResponse ─▶ Auth ─▶ Ingress ─▶ Dialect ─▶ Shed ─▶ Route ─▶ Govern ─▶ Fallback ─┐
//!          (tower-http)   (ledger → sinks)                                                                  per attempt │
//!                         ┌─────────────────────────────────────────────────────────────────────────────────────────────┘
//!                         └▶ Usage (+pricing) ─▶ Timeout ─▶ ProviderSet ─▶ anthropic | openai | azure
//! ```
//!
//! | layer | why it sits there |
//! |---|---|
//! | [`edge`] (tower-http, around the whole router) | sensitive headers marked, the client's `x-gateway-request-id` dropped and the gateway's `gw_` id set and echoed, one `request` span per request, a panic answered as a 500 `api_error` |
//! | [`Record`](record::RecordLayer) | outermost, so every `/v1` request, refused ones included, opens one [`RequestLedger`] and closes it once (body end, error or drop), after everything inside has reported; hands it to the sinks (budget settlement, metrics, audit) |
//! | [`ErrorResponse`](error_response::ErrorResponseLayer) | every error below becomes an Anthropic-shaped answer (OpenAI-shaped on `/v1/chat/completions`), and a failing stream ends with an `event: error` (an `error` data line for OpenAI clients) |
//! | [`Auth`](auth::AuthLayer) | checks the client key before the body is even read |
//! | [`Ingress`](ingress::IngressLayer) | reads the body once under the size cap and the body time limit; everything below sees `Request<Bytes>` and a [`RequestMeta`]; a Chat Completions request is translated to Messages here (kept as it came in an [`OpenAiRequest`] for OpenAI-kind providers) |
//! | [`Dialect`](dialect::DialectLayer) | an OpenAI client's answer back to Chat Completions (a stream chunk by chunk as it passes), a models list in both SDKs' fields; just below ingress, which translated the request in, so everything below sees one event model |
//! | [`Shed`](limit::ConcurrencyShedLayer) | refuses requests over the concurrency limit with 529 before any upstream work; below ingress, so only requests whose body has arrived count (a slow upload cannot take a slot) |
//! | [`Route`](route::RouteLayer) | decides the attempts (provider and model) |
//! | [`Govern`](govern::GovernLayer) | a client key's `models`, rate limits and budgets: admits the request and reserves an upper bound of its cost in the key and its team, or refuses it before anything goes upstream; below Route because the bound needs the models the attempts ask for |
//! | [`Fallback`](fallback::FallbackLayer) | calls the attempts in order; holds a stream until its first content event so a failure before it moves on |
//! | [`Usage`](usage::UsageLayer) | per attempt: reads the answer's usage as it passes and prices it, so every attempt is accounted |
//! | [`Timeout`](timeout::TimeoutLayer) | innermost, so a silent upstream fails the attempt, not the tap |
//! | [`ProviderSet`](provider::ProviderSet) | dispatches to the attempt's provider (translating for OpenAI kinds, so everything above sees Anthropic events only) |
//!
//! The streaming-aware timeout and the concurrency shed are written here rather than
//! taken from tower: tower's `Timeout` ends at the response head and its
//! `ConcurrencyLimit` queues and releases at the head, while these run to the body's end.
//!
//! Requests are small JSON, read once under a size cap into `http::Request<Bytes>` (so a
//! fallback replays them for free). Responses are `http::Response<B>` with a streaming
//! body: each layer that cares about the answer wraps the body in its own type and looks
//! at frames as they pass — [`UsageBody`](usage::UsageBody), [`ShedBody`](limit::ShedBody)
//! and [`RecordBody`](record::RecordBody) are one [`ObservedBody`](observe::ObservedBody)
//! each, the one type that notices a body's end, error or drop;
//! [`TimeoutBody`](timeout::TimeoutBody), [`PeekBody`](fallback::PeekBody) and
//! [`RescueBody`](error_response::RescueBody) change what passes. Nothing buffers a
//! stream past its commit point, nothing spawns a task per stream, nothing sits on an
//! unbounded channel: back-pressure and client disconnect travel by ownership (hyper
//! drops the body → every wrapper drops → reqwest closes the upstream connection).
//!
//! ## The ledger: per-request state, read once
//!
//! Each request has one [`RequestLedger`], opened by `Record` and written by the layers
//! through a narrow API; `Record` takes it once, at the end, into a
//! [`ClosedRequest`](record::ClosedRequest) for its [`RecordSink`](record::RecordSink)s.
//!
//! | entry | written by |
//! |---|---|
//! | request id, arrival time (wall and monotonic) | `Record`, when it opens the ledger |
//! | the request body for the audit (kept only when a sink asks, cut at its bound) | ingress |
//! | [`RequestMeta`]: endpoint, client, requested model, stream, agent type | ingress |
//! | clock marks: body read, upstream sent, each upstream chunk, each frame the gateway made | ingress, the providers, fallback's hold |
//! | every attempt ([`AttemptRecord`]: provider, status, error, latency), one the client left too | fallback |
//! | how the attempts ended when the head cannot say ([`AttemptsEnd`]: a held stream that failed, a client that left) | fallback |
//! | each attempt's usage with its priced cost ([`CostReport`](usage::CostReport)) | the usage tap |
//! | the answer's head, its error message, a bounded copy of its body, how its body ended | `Record` itself, as the answer passes |
//!
//! A layer used alone, without `Record`, finds no ledger and writes nothing; its own
//! hooks ([`OnUsage`](usage::OnUsage), [`OnCost`](usage::OnCost)) still hear it.
//! Everything else in the extensions carries facts inward, set once by an outer layer
//! for the inner ones:
//!
//! | extension | inserted by | read by |
//! |---|---|---|
//! | [`RequestLedger`] (request) | `Record` | the layers that write it (above) |
//! | tower-http's `RequestId` (request), read as a [`RequestId`](request_id::RequestId) | the [`edge`], else `Record` (or ingress, used alone) | `Record`, error answers, ingress |
//! | [`ClientName`] (request) | auth | ingress (into `RequestMeta::client`) |
//! | [`ClientTeam`] (request) | auth | ingress (into `RequestMeta::team`) |
//! | [`Authenticated`](keys::Authenticated) (request): the key and its team, with limits | auth | the host's own layers |
//! | [`ChargeTo`](govern::ChargeTo) (request): the scopes, limits and model globs to govern by | auth | Govern |
//! | [`WatchUsage`](usage::WatchUsage), [`GateAttempts`](fallback::GateAttempts) (request): the request's budget hold | Govern | the usage tap (exact input at `message_start`, each attempt's cost), fallback (before each further attempt) |
//! | [`RequestMeta`] (request) | ingress | route, usage, providers |
//! | [`RouteDecision`](route::RouteDecision) (request) | route | fallback |
//! | [`AttemptTarget`], [`TargetModel`], [`CrossProvider`] (request) | fallback, per attempt | [`ProviderSet`](provider::ProviderSet), the providers |
//! | [`AttemptSpan`](telemetry::AttemptSpan) (request): the attempt's trace span | fallback, per attempt | the providers (the upstream `traceparent`), the usage tap (records the answer on it, holds it until the body ends) |
//! | [`ServedBy`] (response) | the provider | usage |
//! | [`ErrorInfo`](error_response::ErrorInfo) (response) | `ErrorResponse` | `Record` |
//!
//! Memory of an open stream: besides its two connections' buffers, the SSE line being
//! decoded and the usage state, the ledger keeps the request body (one shared buffer,
//! the same one ingress read) until the record is handed to the audit sink at the end,
//! when request bodies are audited. Fallback's replay copy and the request it built go
//! once the stream commits.
//!
//! Errors: every layer below `ErrorResponse` fails with [`Error`]; a non-success
//! upstream status is an `Error` that keeps the upstream's answer
//! ([`Error::upstream`]), which fallback classifies and the edge returns as it came.
//!
//! ## Using a layer alone
//!
//! ```
//! use llm_gateway::pricing::PriceTable;
//! use llm_gateway::usage::{CostReport, UsageLayer, UsageReport};
//! use tower::ServiceBuilder;
//! # fn wrap<S>(provider: S) {
//! let stack = ServiceBuilder::new()
//!     .layer(
//!         UsageLayer::new(|report: UsageReport| println!("{:?}", report.usage))
//!             .priced(PriceTable::builtin(), |report: CostReport| println!("{:?}", report.cost)),
//!     )
//!     .service(provider);
//! # let _ = stack; }
//! ```

mod admin;
pub mod audit;
pub mod auth;
pub mod body;
pub mod budget;
mod calendar;
pub mod config;
pub mod credentials;
pub mod dialect;
pub mod edge;
pub mod error;
pub mod error_response;
pub mod fallback;
mod gateway;
pub mod govern;
pub mod ingress;
pub mod keys;
pub mod ledger;
pub mod limit;
pub mod meta;
pub mod metrics;
pub mod observe;
pub mod pricing;
pub mod provider;
pub mod record;
pub mod request_id;
pub mod route;
pub mod series;
mod serve;
pub mod ship;
pub mod sse;
pub mod telemetry;
pub mod timeout;
pub mod usage;

pub use body::Body;
pub use config::Config;
pub use error::{Error, ErrorKind};
pub use gateway::{Gateway, GatewayBuilder};
pub use ledger::{AttemptRecord, AttemptsEnd, RequestLedger};
pub use meta::{
    AnswerHead, AttemptTarget, ClientName, ClientTeam, CrossProvider, Endpoint, Ingress,
    OpenAiRequest, RequestMeta, ServedBy, TargetModel,
};
