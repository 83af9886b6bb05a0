//! Provider services: the leaves of the stack, one upstream each.
//!
//! A provider turns a checked `Request<Bytes>` into an upstream HTTP request and exposes
//! the upstream's answer as a streaming [`Body`](crate::Body). Success answers come back
//! as `Ok(Response)` carrying a [`ServedBy`](crate::ServedBy) extension; non-success
//! statuses come back as an [`Error`](crate::Error) holding the upstream's own answer, so
//! a fallback can decide on it and the edge can return it as it came.
//!
//! A provider never follows a redirect, and an answer it cannot pass on honestly is a
//! failed attempt ([`ErrorKind::UpstreamProtocol`](crate::ErrorKind::UpstreamProtocol),
//! retryable): a 3xx, a 204, a `content-encoding` other than identity (the gateway asks
//! for identity and does not decode), or a media type other than the one asked for
//! (`text/event-stream` for a stream, `application/json` otherwise). Upstream URLs are
//! built by path segments from the base URL, so a request path can never climb out of
//! its path. An Anthropic event stream is checked as it passes (each event's data is
//! JSON, no foreign bytes, an end at `message_stop` or an in-band `error`); an OpenAI
//! stream is checked the same way by its translator. A broken stream ends its body with
//! an error: a failed attempt before the commit point, one `event: error` after it.

mod answer;
mod anthropic;
mod checked_sse;
mod clean;
mod headers;
pub mod openai;
mod set;
mod upstream;

pub use anthropic::AnthropicProvider;
pub use headers::{is_hop_by_hop, PROVIDER_HEADER};
pub use openai::OpenAiProvider;
pub use set::{ProviderService, ProviderSet};

use crate::config::TimeoutsConfig;
use std::time::Duration;

/// The HTTP client providers share: no decompression (the gateway asks for identity and
/// must see plain SSE), no total timeout (streams are long; the Timeout layer rules), and
/// no redirects (following one would resend the body and the provider key to wherever the
/// `Location` points; a provider that answers 3xx has failed its attempt).
pub fn http_client(timeouts: &TimeoutsConfig) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_millis(timeouts.connect_ms))
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
}
