//! OpenTelemetry traces: the GenAI span attributes, the W3C trace context, and an OTLP
//! exporter for the host to install.
//!
//! The layers only make `tracing` spans and record fields on them: the edge's `request`
//! span (its parent taken from the client's `traceparent`) and, per attempt, a child
//! `attempt` span named `chat {model}` ([`AttemptSpan`]), opened by fallback, carried to
//! the provider in the attempt's request extensions (which send its `traceparent`
//! upstream, [`trace_headers`]) and to the usage tap (which records the answer's model,
//! id, finish reasons, tokens and cost on it when the attempt's body ends). The span
//! ends when its last holder drops it: the attempt's body, or fallback when the attempt
//! failed before it had one. No task, no channel: nothing per stream.
//!
//! `tracing` with `tracing-opentelemetry` rather than the OpenTelemetry API directly:
//! the request span already exists and the layers already record on it, a host that
//! uses no OpenTelemetry pays nothing (the spans are `tracing`'s, seen by whatever
//! subscriber it has), and the library installs no global state. With no
//! OpenTelemetry layer in the subscriber the spans have no trace context, so no
//! `traceparent` is invented: the client's own passes through as before.
//!
//! The host that wants OTLP export builds it with [`otlp_layer`]: a batch exporter over
//! OTLP/HTTP protobuf to `{otlp_endpoint}/v1/traces`, with a bounded queue; a full
//! queue drops spans instead of waiting, and a failed export drops its batch, counted
//! in `llm_gateway_telemetry_spans_dropped_total`. A request never waits on the
//! collector.
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # let _entered = runtime.enter();
//! let config = llm_gateway::config::TelemetryConfig {
//!     otlp_endpoint: Some("http://127.0.0.1:4318".parse()?),
//!     ..Default::default()
//! };
//! let otlp = llm_gateway::telemetry::otlp_layer(&config)?.expect("an endpoint is set");
//! let subscriber = tracing_subscriber::registry().with(otlp.layer);
//! # let _ = subscriber;
//! // ... serve; at exit `otlp.provider.shutdown()` flushes what is queued.
//! # Ok(()) }
//! ```

mod attempt;
mod export;
mod propagate;

pub use attempt::AttemptSpan;
pub(crate) use attempt::{Answered, Tokens};
pub use export::{otlp_layer, OtlpLayer, SPANS_DROPPED};
pub use propagate::{set_parent_from, trace_headers, TRACEPARENT};
