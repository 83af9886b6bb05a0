//! The audit record: what one request leaves behind, and what
//! `GET /gateway/audit` returns as JSON.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::BodyTicket;

/// One request's audit record. Exactly one is written per request.
///
/// Serialized with serde as-is (field names are the JSON keys); the store
/// keeps it as JSON text plus a few scalar columns used for filtering, and
/// the bodies apart (large ones split into deduplicated chunks).
///
/// Bodies are raw bytes, exactly as they passed through the gateway. They
/// become text only where they are read out: serializing a record writes
/// each body as a JSON string, converting it from UTF-8 lossily (an invalid
/// sequence becomes U+FFFD, never an error); [`request_body_text`] and
/// [`response_body_text`] do the same for other readers.
///
/// [`request_body_text`]: AuditRecord::request_body_text
/// [`response_body_text`]: AuditRecord::response_body_text
///
/// ```
/// use llm_gateway::audit::AuditRecord;
///
/// let record = AuditRecord {
///     request_body: Some(bytes::Bytes::from_static(b"{\"model\":\"m\"}")),
///     ..Default::default()
/// };
/// assert_eq!(record.request_body_text().as_deref(), Some("{\"model\":\"m\"}"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The gateway's request id (`x-gateway-request-id`).
    pub request_id: String,
    /// Unix time in milliseconds when the request arrived.
    pub timestamp_ms: i64,
    /// The client key's configured *name*, never the key itself.
    #[serde(default)]
    pub client: Option<String>,
    /// The caller's agent type, when it sent one.
    #[serde(default)]
    pub agent_type: Option<String>,
    /// The model the client asked for.
    #[serde(default)]
    pub requested_model: Option<String>,
    /// The model that actually served the request (after routing/fallback).
    #[serde(default)]
    pub served_model: Option<String>,
    /// The provider that served the request, or the last one tried.
    #[serde(default)]
    pub provider: Option<String>,
    /// Which endpoint: `"messages"`, `"count_tokens"` or `"models"`.
    pub endpoint: String,
    /// Every upstream attempt, in order.
    #[serde(default)]
    pub attempts: Vec<AuditAttempt>,
    /// The HTTP status the client got.
    pub status: u16,
    /// Whether the client asked for a streamed answer.
    pub stream: bool,
    /// Time to first token in milliseconds (streams), when one arrived.
    #[serde(default)]
    pub ttft_ms: Option<u64>,
    /// Total latency in milliseconds as seen by the gateway.
    pub latency_ms: u64,
    /// Token usage as read from the answer.
    #[serde(default)]
    pub usage: AuditUsage,
    /// Exact decimal USD cost as text (e.g. `"0.0123"`); `None` when the
    /// model has no price.
    #[serde(default)]
    pub cost_usd: Option<String>,
    /// Version of the price table the cost was computed with.
    #[serde(default)]
    pub price_table_version: Option<String>,
    /// `"complete"`, `"error"`, `"client_disconnected"` or `"incomplete"`.
    pub outcome: String,
    /// Client-safe error message, if any.
    #[serde(default)]
    pub error: Option<String>,
    /// The request body as configured, as raw bytes; already cut by the
    /// caller at `max_body_bytes` with a visible marker appended. The store
    /// never adds to it (except its overload marker, see
    /// [`BODY_SHED_MARKER`](super::BODY_SHED_MARKER)). Serialized as a JSON
    /// string (lossy UTF-8).
    #[serde(default, with = "body_text")]
    pub request_body: Option<Bytes>,
    /// The response body as configured, as raw bytes; for streams the SSE
    /// text as sent. Cut and serialized like `request_body`.
    #[serde(default, with = "body_text")]
    pub response_body: Option<Bytes>,
    /// Set instead of `request_body` when the request body was handed to
    /// the sink ahead of the record ([`AuditSink::stage_request_body`]); the
    /// sink that issued the ticket puts the body back in the record it
    /// stores. `None` in every record read back, and never serialized.
    ///
    /// [`AuditSink::stage_request_body`]: super::AuditSink::stage_request_body
    #[serde(skip)]
    pub request_body_ticket: Option<BodyTicket>,
}

/// One upstream attempt of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAttempt {
    /// The provider's configured name.
    pub provider: String,
    /// The upstream HTTP status, when one was received.
    #[serde(default)]
    pub status: Option<u16>,
    /// Why the attempt failed, if it did (client-safe text).
    #[serde(default)]
    pub error: Option<String>,
    /// How long the attempt took, in milliseconds.
    pub latency_ms: u64,
}

/// Token usage of one request. Every field is `None` when the answer did not
/// report it (which is different from a reported zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditUsage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: Option<u64>,
    /// All cache-write tokens (5m + 1h).
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    /// Cache-write tokens with the 5 minute TTL.
    #[serde(default)]
    pub cache_write_5m_tokens: Option<u64>,
    /// Cache-write tokens with the 1 hour TTL.
    #[serde(default)]
    pub cache_write_1h_tokens: Option<u64>,
    /// Cache-read tokens.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

impl AuditRecord {
    /// Total length in bytes of the two bodies (what dominates the record's
    /// size in memory and on disk).
    pub fn body_bytes(&self) -> usize {
        self.request_body.as_ref().map_or(0, Bytes::len)
            + self.response_body.as_ref().map_or(0, Bytes::len)
    }

    /// The request body as text: lossy UTF-8, borrowed when it is valid.
    pub fn request_body_text(&self) -> Option<Cow<'_, str>> {
        self.request_body.as_deref().map(String::from_utf8_lossy)
    }

    /// The response body as text: lossy UTF-8, borrowed when it is valid.
    pub fn response_body_text(&self) -> Option<Cow<'_, str>> {
        self.response_body.as_deref().map(String::from_utf8_lossy)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> AuditRecord {
        AuditRecord {
            request_id: "req_1".into(),
            timestamp_ms: 1_700_000_000_123,
            client: Some("team-a".into()),
            agent_type: Some("coder".into()),
            requested_model: Some("claude-sonnet-4-5".into()),
            served_model: Some("gpt-4o".into()),
            provider: Some("openai".into()),
            endpoint: "messages".into(),
            attempts: vec![
                AuditAttempt {
                    provider: "anthropic".into(),
                    status: Some(529),
                    error: Some("overloaded".into()),
                    latency_ms: 12,
                },
                AuditAttempt {
                    provider: "openai".into(),
                    status: Some(200),
                    error: None,
                    latency_ms: 340,
                },
            ],
            status: 200,
            stream: true,
            ttft_ms: Some(80),
            latency_ms: 360,
            usage: AuditUsage {
                input_tokens: Some(10),
                output_tokens: Some(20),
                cache_creation_input_tokens: Some(0),
                cache_write_5m_tokens: None,
                cache_write_1h_tokens: None,
                cache_read_input_tokens: Some(5),
            },
            cost_usd: Some("0.0123".into()),
            price_table_version: Some("2025-09".into()),
            outcome: "complete".into(),
            error: None,
            request_body: Some(Bytes::from_static(b"{\"model\":\"x\"}")),
            response_body: Some(Bytes::from_static(b"event: ping\ndata: {}\n\n")),
            request_body_ticket: None,
        }
    }

    #[test]
    fn json_round_trip_keeps_every_field() {
        let r = full();
        let text = serde_json::to_string(&r).unwrap();
        let back: AuditRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn json_uses_the_documented_keys_and_null_for_missing() {
        let mut r = full();
        r.cost_usd = None;
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "request_id",
            "timestamp_ms",
            "client",
            "agent_type",
            "requested_model",
            "served_model",
            "provider",
            "endpoint",
            "attempts",
            "status",
            "stream",
            "ttft_ms",
            "latency_ms",
            "usage",
            "cost_usd",
            "price_table_version",
            "outcome",
            "error",
            "request_body",
            "response_body",
        ] {
            assert!(v.get(key).is_some(), "missing key {key}");
        }
        assert!(v["cost_usd"].is_null());
        assert_eq!(v["usage"]["cache_read_input_tokens"], 5);
        assert!(v["usage"]["cache_write_1h_tokens"].is_null());
        assert_eq!(v["attempts"][0]["status"], 529);
    }

    #[test]
    fn body_bytes_sums_both_bodies() {
        let r = full();
        assert_eq!(
            r.body_bytes(),
            "{\"model\":\"x\"}".len() + "event: ping\ndata: {}\n\n".len()
        );
        assert_eq!(AuditRecord::default().body_bytes(), 0);
    }

    #[test]
    fn invalid_utf8_bodies_serialize_with_replacement_characters() {
        let mut r = full();
        r.request_body = Some(Bytes::from_static(b"ok \xff\xfe end"));
        r.response_body = Some(Bytes::from_static(b"\xe2\x82"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["request_body"], "ok \u{FFFD}\u{FFFD} end");
        assert_eq!(v["response_body"], "\u{FFFD}");
        assert_eq!(r.request_body_text().unwrap(), "ok \u{FFFD}\u{FFFD} end");
        assert!(v.get("request_body_ticket").is_none());
    }
}
