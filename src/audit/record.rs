//! The audit record: what one request leaves behind, and what
//! `GET /gateway/audit` returns as JSON.

use std::borrow::Cow;
use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use crate::meta::{Endpoint, Ingress};
pub use crate::usage::Outcome;

/// One request's audit record. Exactly one is written per request.
///
/// Serialized with serde as-is (field names are the JSON keys). A record is
/// self-contained and its `request_id` identifies it (a store keeps one
/// record per request id). Bodies are raw bytes as they passed through the
/// gateway; they become text (lossy UTF-8) only when serialized or read with
/// [`request_body_text`](Self::request_body_text).
///
/// ```
/// use llm_gateway::audit::AuditRecord;
///
/// let mut record = AuditRecord::new("req_1", 1_700_000_000_123);
/// assert_eq!(record.timestamp, "2023-11-14T22:13:20.123Z");
/// record.request_body = Some(bytes::Bytes::from_static(b"{\"model\":\"m\"}"));
/// assert_eq!(record.request_body_text().as_deref(), Some("{\"model\":\"m\"}"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditRecord {
    /// The gateway's request id (`x-gateway-request-id`).
    pub request_id: String,
    /// When the request arrived: RFC 3339 in UTC with milliseconds
    /// (`2026-12-07T08:40:00.123Z`).
    pub timestamp: String,
    /// The client key's configured *name*, never the key itself.
    pub client: Option<String>,
    /// The client key's team, when it has one.
    pub team: Option<String>,
    /// The client's session id: the `x-gateway-session` header, Claude Code's
    /// `x-claude-code-session-id`, or the `session_id` in `metadata.user_id`.
    pub session: Option<String>,
    /// The caller's agent type, when it sent one.
    pub agent_type: Option<String>,
    /// The model the client asked for.
    pub requested_model: Option<String>,
    /// The model that actually served the request (after routing/fallback).
    pub served_model: Option<String>,
    /// The provider that served the request, or the last one tried.
    pub provider: Option<String>,
    /// Which endpoint (`"messages"`, `"count_tokens"` or `"models"` in JSON);
    /// `None` (`null`) for a path the gateway does not serve.
    pub endpoint: Option<Endpoint>,
    /// Which dialect the client spoke (`"anthropic"` or `"openai"`); `None` when the
    /// request was refused before ingress read it.
    pub ingress: Option<Ingress>,
    /// Every upstream attempt, in order.
    pub attempts: Vec<AuditAttempt>,
    /// The HTTP status the client got.
    pub status: u16,
    /// Whether the client asked for a streamed answer.
    pub stream: bool,
    /// Time to first token in milliseconds (streams), when one arrived.
    pub ttft_ms: Option<u64>,
    /// Total latency in milliseconds as seen by the gateway.
    pub latency_ms: u64,
    /// Token usage as read from the answer.
    pub usage: AuditUsage,
    /// Exact decimal USD cost of all the attempts as text (e.g. `"0.0123"`);
    /// `None` when an attempt's model has no price.
    pub cost_usd: Option<String>,
    /// Version of the price table the cost was computed with.
    pub price_table_version: Option<String>,
    /// How the request ended (`"complete"`, `"error"`,
    /// `"client_disconnected"` or `"incomplete"` in JSON).
    pub outcome: Outcome,
    /// Client-safe error message, if any.
    pub error: Option<String>,
    /// The request body as configured, as raw bytes; already cut by the
    /// caller at `max_body_bytes` with a visible marker appended. The store
    /// never adds to it (except its overload marker, see
    /// [`BODY_SHED_MARKER`](super::BODY_SHED_MARKER)). Serialized as a JSON
    /// string (lossy UTF-8).
    #[serde(with = "body_text")]
    pub request_body: Option<Bytes>,
    /// The response body as configured, as raw bytes; for streams the SSE
    /// text as sent. Cut and serialized like `request_body`.
    #[serde(with = "body_text")]
    pub response_body: Option<Bytes>,
}

/// One upstream attempt of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditAttempt {
    /// The provider's configured name.
    pub provider: String,
    /// The upstream HTTP status, when one was received.
    pub status: Option<u16>,
    /// Why the attempt failed, if it did (client-safe text).
    pub error: Option<String>,
    /// How long the attempt took, in milliseconds.
    pub latency_ms: u64,
}

/// Token usage of one request, as the usage tap read it (`None` = not reported, which
/// is different from a reported zero).
pub type AuditUsage = crate::usage::Usage;

impl Default for AuditRecord {
    /// An empty record: no id, the epoch, no endpoint, status 0, `complete`.
    fn default() -> Self {
        AuditRecord {
            request_id: String::new(),
            timestamp: super::time::format_ms(0),
            client: None,
            team: None,
            session: None,
            agent_type: None,
            requested_model: None,
            served_model: None,
            provider: None,
            endpoint: None,
            ingress: None,
            attempts: Vec::new(),
            status: 0,
            stream: false,
            ttft_ms: None,
            latency_ms: 0,
            usage: AuditUsage::default(),
            cost_usd: None,
            price_table_version: None,
            outcome: Outcome::Complete,
            error: None,
            request_body: None,
            response_body: None,
        }
    }
}

impl AuditRecord {
    /// A `messages` record with status 200 and outcome `complete`, for
    /// request `request_id` at `timestamp_ms` (unix milliseconds).
    pub fn new(request_id: impl Into<String>, timestamp_ms: i64) -> AuditRecord {
        AuditRecord {
            request_id: request_id.into(),
            timestamp: super::time::format_ms(timestamp_ms),
            endpoint: Some(Endpoint::Messages),
            status: 200,
            ..AuditRecord::default()
        }
    }

    /// `t` in the form of [`timestamp`](Self::timestamp).
    pub fn format_timestamp(t: SystemTime) -> String {
        super::time::format_rfc3339(t)
    }

    /// [`timestamp`](Self::timestamp) as unix milliseconds, when it parses.
    pub fn timestamp_ms(&self) -> Option<i64> {
        super::time::parse_rfc3339_ms(&self.timestamp)
    }

    /// Total length in bytes of the two bodies.
    pub fn body_bytes(&self) -> usize {
        self.request_body.as_ref().map_or(0, Bytes::len)
            + self.response_body.as_ref().map_or(0, Bytes::len)
    }

    /// The request body as text: lossy UTF-8, borrowed when it is valid.
    pub fn request_body_text(&self) -> Option<Cow<'_, str>> {
        self.request_body.as_deref().map(String::from_utf8_lossy)
    }
}

/// Bodies in JSON: a string, converted from the raw bytes when serialized
/// (lossy UTF-8), and taken as its UTF-8 bytes when deserialized.
mod body_text {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        body: &Option<Bytes>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match body {
            Some(bytes) => serializer.serialize_str(&String::from_utf8_lossy(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Bytes>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(Bytes::from))
    }
}
