//! What the gateway knows about a request, set once by ingress.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Which API a request is for (in JSON: `messages`, `count_tokens`, `models`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `GET /v1/models` (and `/v1/models/{id}`).
    Models,
    /// Any other `/v1/` path (Message Batches, Files, …): forwarded as it came to the
    /// default Anthropic-kind provider.
    Passthrough,
}

impl Endpoint {
    /// Whether the body is a Messages-shaped request that must carry `model` and `messages`.
    pub fn has_messages_body(self) -> bool {
        matches!(self, Endpoint::Messages | Endpoint::CountTokens)
    }
}

/// Which API dialect the client speaks (in JSON: `anthropic`, `openai`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Ingress {
    /// The Anthropic API: `/v1/messages` and the rest of `/v1/`.
    #[default]
    Anthropic,
    /// OpenAI Chat Completions: `POST /v1/chat/completions`.
    #[serde(rename = "openai")]
    OpenAi,
}

/// The path OpenAI clients post chat completions to.
pub const CHAT_COMPLETIONS_PATH: &str = "/v1/chat/completions";

impl Ingress {
    /// The dialect of a request for `path`.
    pub fn of_path(path: &str) -> Self {
        if path == CHAT_COMPLETIONS_PATH {
            Ingress::OpenAi
        } else {
            Ingress::Anthropic
        }
    }
}

/// An OpenAI Chat Completions request as the client sent it, kept by ingress beside the
/// Messages translation the layers below read: an OpenAI-kind provider sends these bytes
/// (only `model` rewritten), an Anthropic-kind one the translation.
#[derive(Clone, Debug)]
pub struct OpenAiRequest {
    /// The body as it came.
    pub body: bytes::Bytes,
    /// Byte range of the `model` value (a JSON string, quotes included) in `body`.
    pub model_span: Range<usize>,
    /// Whether the client asked for a final usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// Why an Anthropic-kind provider cannot serve this request (a field with no Messages
    /// equivalent, such as `n` above 1); an OpenAI-kind provider can.
    pub untranslatable: Option<String>,
}

/// Longest session id kept in [`RequestMeta::session`], in bytes; a longer one is ignored.
pub const MAX_SESSION_BYTES: usize = 256;

/// The facts about one request that every layer reads.
///
/// Inserted into the request's extensions by ingress;
/// the forwarded body is the request's `Bytes` (with `agent_type` already removed).
#[derive(Clone, Debug)]
pub struct RequestMeta {
    /// The gateway's id for this request (`x-gateway-request-id`).
    pub request_id: String,
    /// Which API the request is for.
    pub endpoint: Endpoint,
    /// Which dialect the client speaks; a Chat Completions request is a
    /// [`Endpoint::Messages`] request from an [`Ingress::OpenAi`] client.
    pub ingress: Ingress,
    /// The `model` the client asked for (absent for `GET /v1/models`).
    pub model: Option<String>,
    /// Byte range of the `model` value (a JSON string, quotes included) in the forwarded
    /// body, so a provider can rewrite it without re-serializing the body.
    pub model_span: Option<Range<usize>>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The gateway's own `agent_type` field, removed from the forwarded body.
    pub agent_type: Option<String>,
    /// The name of the client key that authenticated the request, when auth is on.
    pub client: Option<String>,
    /// The team of that client key, when it has one.
    pub team: Option<String>,
    /// The client's session: the `x-gateway-session` header, else Claude Code's
    /// `x-claude-code-session-id` header, else the `session_id` in the body's
    /// `metadata.user_id`. At most [`MAX_SESSION_BYTES`] of printable text; anything
    /// else is ignored.
    pub session: Option<String>,
    /// The top-level `max_tokens`, when it is a whole number.
    pub max_tokens: Option<u64>,
    /// The request creates or continues an Anthropic server-side thread (a top-level
    /// `thread` member, the `message-threads-2026-08-12` beta): the conversation lives
    /// at the provider that holds the thread, so no other provider can serve it.
    pub server_thread: bool,
    /// How many image and document blocks the body may hold (an upper bound: each
    /// JSON string `"image"` or `"document"` counts).
    pub media_blocks: u32,
    /// When the gateway received the request (monotonic).
    pub received_at: Instant,
    /// When the gateway received the request (wall clock).
    pub received_at_wall: SystemTime,
}

impl RequestMeta {
    /// A request received now, with nothing peeked yet (no model, not a stream).
    pub fn new(request_id: impl Into<String>, endpoint: Endpoint) -> Self {
        Self {
            request_id: request_id.into(),
            endpoint,
            ingress: Ingress::Anthropic,
            model: None,
            model_span: None,
            stream: false,
            agent_type: None,
            client: None,
            team: None,
            session: None,
            max_tokens: None,
            server_thread: false,
            media_blocks: 0,
            received_at: Instant::now(),
            received_at_wall: SystemTime::now(),
        }
    }
}

/// The provider (and model) that answered, set by the provider service on its response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedBy {
    /// The provider's configured name.
    pub provider: Arc<str>,
    /// The model the upstream was asked for.
    pub model: Option<String>,
}

/// The name of the client key a request presented; set by auth, read by ingress (into
/// [`RequestMeta::client`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientName(pub Arc<str>);

/// The team of the client key a request presented; set by auth, read by ingress (into
/// [`RequestMeta::team`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTeam(pub Arc<str>);

/// The model to ask the upstream for, when routing chose another than the client's.
///
/// Inserted by routing; read by the provider, which rewrites the body's `model` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetModel(pub String);

/// Which provider an attempt goes to; set by fallback on each attempt's request, read by
/// the [`ProviderSet`](crate::provider::ProviderSet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptTarget(pub Arc<str>);

/// Marks an attempt whose conversation may come from another provider: thinking blocks
/// (their signatures are provider-bound) and `cache_control` are removed for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossProvider;

/// Marks an answer whose `message_start` usage is a local estimate, not the provider's
/// count: a stream translated from an OpenAI-kind provider, which reports usage only at
/// the end. Clients reading `message_start` see a sensible input figure; the usage tap
/// ignores it and takes the final `message_delta`'s real figures, so cost and budgets
/// never rest on the estimate. Set in the response's extensions by the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EstimatedStartUsage;

/// What an answer's head says, as the end-of-request layer sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnswerHead {
    /// The HTTP status the client got.
    pub status: u16,
    /// The provider that answered (`x-gateway-provider`), if one did.
    pub provider: Option<String>,
    /// Whether the answer is an SSE stream.
    pub stream: bool,
}

impl AnswerHead {
    /// Read from a response's status and headers.
    pub fn of<B>(response: &http::Response<B>) -> Self {
        let headers = response.headers();
        Self {
            status: response.status().as_u16(),
            provider: headers
                .get(crate::provider::PROVIDER_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            stream: headers
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream")),
        }
    }
}
