//! Usage accumulation from SSE events or a JSON body, by the rules.

use super::{Outcome, Usage};
use crate::sse::{SseDecoder, SseEvent};
use serde::Deserialize;
use std::time::Instant;

/// Longest non-streaming body kept to read its `usage` (a Messages answer is far smaller).
const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// Reads usage from the bytes of one answer, fed frame by frame.
#[derive(Debug)]
pub struct UsageTracker {
    mode: Mode,
    usage: Usage,
    model: Option<String>,
    /// The answer's id and `stop_reason` (for its trace span).
    answer: AnswerFacts,
    parse_failures: u32,
    saw_stop: bool,
    saw_error: bool,
    first_content_at: Option<Instant>,
    /// The JSON body outgrew its bound; it is not read (counted once).
    json_too_large: bool,
    /// `message_start` usage is a local estimate: not read (see [`Self::estimated_start`]).
    start_estimated: bool,
}

/// What an answer says about itself besides usage: its id and why it stopped.
#[derive(Debug, Default)]
pub(crate) struct AnswerFacts {
    pub(crate) id: Option<String>,
    pub(crate) stop_reason: Option<String>,
}

#[derive(Debug)]
enum Mode {
    Sse(SseDecoder),
    Json(Vec<u8>),
}

/// The largest token count one answer can report and be believed: a thousand times the
/// largest context window. A count above it (like 2^64 − 1) is a broken upstream, and is
/// treated as unreadable rather than priced.
pub const MAX_TOKENS_PER_ANSWER: u64 = 1_000_000_000;

/// One usage field as the upstream sent it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Count {
    /// Absent or `null`: says nothing, an earlier value stands.
    #[default]
    Absent,
    /// A whole number of tokens within [`MAX_TOKENS_PER_ANSWER`].
    Tokens(u64),
    /// Present but not a count: negative, fractional, huge, a string, an object.
    Unreadable,
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CountVisitor)
    }
}

struct CountVisitor;

impl<'de> serde::de::Visitor<'de> for CountVisitor {
    type Value = Count;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a token count")
    }

    fn visit_u64<E>(self, n: u64) -> Result<Count, E> {
        Ok(if n <= MAX_TOKENS_PER_ANSWER {
            Count::Tokens(n)
        } else {
            Count::Unreadable
        })
    }

    fn visit_i64<E>(self, n: i64) -> Result<Count, E> {
        Ok(match u64::try_from(n) {
            Ok(n) if n <= MAX_TOKENS_PER_ANSWER => Count::Tokens(n),
            _ => Count::Unreadable,
        })
    }

    fn visit_u128<E>(self, _: u128) -> Result<Count, E> {
        Ok(Count::Unreadable)
    }

    fn visit_i128<E>(self, _: i128) -> Result<Count, E> {
        Ok(Count::Unreadable)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Count, E> {
        Ok(Count::Unreadable)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
        Ok(Count::Unreadable)
    }

    fn visit_str<E>(self, _: &str) -> Result<Count, E> {
        Ok(Count::Unreadable)
    }

    fn visit_unit<E>(self) -> Result<Count, E> {
        Ok(Count::Absent)
    }

    fn visit_none<E>(self) -> Result<Count, E> {
        Ok(Count::Absent)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Count::Unreadable)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Count::Unreadable)
    }
}

// Wire shapes: only the fields the tap reads; everything else is skipped by serde.
#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Count,
    #[serde(default)]
    output_tokens: Count,
    #[serde(default)]
    cache_creation_input_tokens: Count,
    #[serde(default)]
    cache_read_input_tokens: Count,
    cache_creation: Option<WireCacheCreation>,
}

#[derive(Deserialize)]
struct WireCacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: Count,
    #[serde(default)]
    ephemeral_1h_input_tokens: Count,
}

#[derive(Deserialize)]
struct MessageStart {
    message: WireMessage,
}

#[derive(Deserialize)]
struct WireMessage {
    id: Option<String>,
    model: Option<String>,
    stop_reason: Option<String>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct MessageDelta {
    usage: Option<WireUsage>,
    delta: Option<WireDelta>,
}

#[derive(Deserialize)]
struct WireDelta {
    stop_reason: Option<String>,
}

// === impl UsageTracker ===

impl UsageTracker {
    /// A tracker for a streamed (SSE) answer.
    pub fn sse() -> Self {
        Self::with_mode(Mode::Sse(SseDecoder::new()))
    }

    /// A tracker for a non-streaming JSON answer.
    pub fn json() -> Self {
        Self::with_mode(Mode::Json(Vec::new()))
    }

    fn with_mode(mode: Mode) -> Self {
        Self {
            mode,
            usage: Usage::default(),
            model: None,
            answer: AnswerFacts::default(),
            parse_failures: 0,
            saw_stop: false,
            saw_error: false,
            first_content_at: None,
            json_too_large: false,
            start_estimated: false,
        }
    }

    /// The answer's `message_start` usage is a local estimate
    /// ([`EstimatedStartUsage`](crate::meta::EstimatedStartUsage)): it is not read, so
    /// the input is known only from the provider's real figures at the end.
    pub fn estimated_start(mut self) -> Self {
        self.start_estimated = true;
        self
    }

    /// Feed one frame of the answer, as forwarded.
    pub fn feed(&mut self, bytes: &[u8]) {
        match &mut self.mode {
            Mode::Sse(decoder) => {
                let was_overflowed = decoder.overflowed();
                // Split the borrow: the decoder lives in `mode`, the callback writes the rest.
                let Self {
                    usage,
                    model,
                    answer,
                    parse_failures,
                    saw_stop,
                    saw_error,
                    first_content_at,
                    start_estimated,
                    ..
                } = self;
                let mut state = EventState {
                    usage,
                    model,
                    answer,
                    parse_failures,
                    saw_stop,
                    saw_error,
                    first_content_at,
                    start_estimated: *start_estimated,
                };
                decoder.feed(bytes, wants_event, |event| state.on_event(event));
                if decoder.overflowed() && !was_overflowed {
                    self.parse_failures = self.parse_failures.saturating_add(1);
                }
            }
            Mode::Json(buffer) => {
                if self.json_too_large {
                    return;
                }
                if buffer.len() + bytes.len() <= MAX_JSON_BODY {
                    buffer.extend_from_slice(bytes);
                } else {
                    // Too large to hold: give up on it once, and count that.
                    *buffer = Vec::new();
                    self.json_too_large = true;
                    self.parse_failures = self.parse_failures.saturating_add(1);
                }
            }
        }
    }

    /// The answer's body ended normally: finish a JSON answer.
    pub fn finish(&mut self) {
        if let Mode::Json(buffer) = &mut self.mode {
            if self.json_too_large {
                return;
            }
            let body = std::mem::take(buffer);
            match serde_json::from_slice::<WireMessage>(&body) {
                Ok(message) => {
                    if let Some(usage) = message.usage {
                        self.parse_failures = self
                            .parse_failures
                            .saturating_add(replace_present(&mut self.usage, usage));
                    } else {
                        self.parse_failures = self.parse_failures.saturating_add(1);
                    }
                    self.model = message.model;
                    self.answer = AnswerFacts {
                        id: message.id,
                        stop_reason: message.stop_reason,
                    };
                    self.saw_stop = true;
                }
                Err(_) => self.parse_failures = self.parse_failures.saturating_add(1),
            }
        }
    }

    /// Whether this tracker reads a stream (SSE) rather than a JSON body.
    pub fn is_sse(&self) -> bool {
        matches!(self.mode, Mode::Sse(_))
    }

    /// The usage seen so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The model the upstream said it served, if it said.
    pub fn served_model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The answer's id and `stop_reason`, when it said.
    pub(crate) fn answer(&self) -> &AnswerFacts {
        &self.answer
    }

    /// Usage-bearing events or bodies, and token counts, that could not be read.
    pub fn parse_failures(&self) -> u32 {
        self.parse_failures
    }

    /// When the first content event passed (streams).
    pub fn first_content_at(&self) -> Option<Instant> {
        self.first_content_at
    }

    /// The outcome if the body ended now, normally.
    pub fn outcome_at_end(&self) -> Outcome {
        if self.saw_error {
            Outcome::Error
        } else if self.saw_stop {
            Outcome::Complete
        } else {
            Outcome::Incomplete
        }
    }
}

/// The events whose data the tap reads; text deltas are skipped without a copy.
fn wants_event(name: &[u8]) -> bool {
    matches!(
        name,
        b"message_start" | b"message_delta" | b"message_stop" | b"error"
    )
}

struct EventState<'a> {
    usage: &'a mut Usage,
    model: &'a mut Option<String>,
    answer: &'a mut AnswerFacts,
    parse_failures: &'a mut u32,
    saw_stop: &'a mut bool,
    saw_error: &'a mut bool,
    first_content_at: &'a mut Option<Instant>,
    start_estimated: bool,
}

impl EventState<'_> {
    fn on_event(&mut self, event: SseEvent<'_>) {
        match event.event {
            b"content_block_delta" if self.first_content_at.is_none() => {
                *self.first_content_at = Some(Instant::now());
            }
            b"message_start" => match serde_json::from_slice::<MessageStart>(event.data) {
                Ok(start) => {
                    *self.model = start.message.model;
                    self.answer.id = start.message.id;
                    match start.message.usage {
                        // An estimate is for the client's display, not for accounting.
                        Some(_) if self.start_estimated => {}
                        Some(usage) => {
                            *self.parse_failures = (*self.parse_failures)
                                .saturating_add(replace_present(self.usage, usage))
                        }
                        None => *self.parse_failures = (*self.parse_failures).saturating_add(1),
                    }
                }
                Err(_) => *self.parse_failures = (*self.parse_failures).saturating_add(1),
            },
            b"message_delta" => match serde_json::from_slice::<MessageDelta>(event.data) {
                Ok(delta) => {
                    if let Some(reason) = delta.delta.and_then(|d| d.stop_reason) {
                        self.answer.stop_reason = Some(reason);
                    }
                    if let Some(usage) = delta.usage {
                        *self.parse_failures = (*self.parse_failures)
                            .saturating_add(replace_present(self.usage, usage));
                    }
                }
                Err(_) => *self.parse_failures = (*self.parse_failures).saturating_add(1),
            },
            b"message_stop" => {
                *self.saw_stop = true;
                if self.first_content_at.is_none() {
                    // An empty answer: its end is its first (and only) content.
                    *self.first_content_at = Some(Instant::now());
                }
            }
            b"error" => *self.saw_error = true,
            _ => {}
        }
    }
}

/// A later usage object replaces the fields it carries; absent or null fields keep what
/// an earlier one said. Never add. An unreadable field keeps the earlier value too, and
/// is counted: the number of unreadable fields is returned.
fn replace_present(usage: &mut Usage, wire: WireUsage) -> u32 {
    let mut unreadable = 0;
    let mut set = |slot: &mut Option<u64>, value: Count| match value {
        Count::Absent => {}
        Count::Tokens(n) => *slot = Some(n),
        Count::Unreadable => unreadable += 1,
    };
    set(&mut usage.input_tokens, wire.input_tokens);
    set(&mut usage.output_tokens, wire.output_tokens);
    set(
        &mut usage.cache_creation_input_tokens,
        wire.cache_creation_input_tokens,
    );
    set(
        &mut usage.cache_read_input_tokens,
        wire.cache_read_input_tokens,
    );
    if let Some(split) = wire.cache_creation {
        set(
            &mut usage.cache_write_5m_tokens,
            split.ephemeral_5m_input_tokens,
        );
        set(
            &mut usage.cache_write_1h_tokens,
            split.ephemeral_1h_input_tokens,
        );
    }
    unreadable
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":11,\"cache_creation_input_tokens\":300,\"cache_read_input_tokens\":40,\"cache_creation\":{\"ephemeral_5m_input_tokens\":100,\"ephemeral_1h_input_tokens\":200},\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":6}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn message_delta_replaces_and_never_adds() {
        let mut tracker = UsageTracker::sse();
        tracker.feed(BASIC.as_bytes());
        let usage = tracker.usage();
        assert_eq!(usage.input_tokens, Some(11));
        assert_eq!(usage.output_tokens, Some(6), "replaced, not 1 + 6");
        assert_eq!(usage.cache_creation_input_tokens, Some(300));
        assert_eq!(usage.cache_write_5m_tokens, Some(100));
        assert_eq!(usage.cache_write_1h_tokens, Some(200));
        assert_eq!(usage.cache_read_input_tokens, Some(40));
        assert_eq!(tracker.outcome_at_end(), Outcome::Complete);
        assert_eq!(tracker.served_model(), Some("claude-sonnet-4-5"));
        assert!(tracker.first_content_at().is_some());
    }

    #[test]
    fn cumulative_delta_with_input_fields_replaces_them() {
        let text = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"input_tokens\":7,\"cache_read_input_tokens\":null,\"output_tokens\":3}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":9}}\n\n";
        let mut tracker = UsageTracker::sse();
        tracker.feed(text.as_bytes());
        let usage = tracker.usage();
        assert_eq!(usage.input_tokens, Some(7));
        assert_eq!(
            usage.cache_read_input_tokens,
            Some(0),
            "null keeps the earlier value"
        );
        assert_eq!(usage.output_tokens, Some(9));
        assert_eq!(
            tracker.outcome_at_end(),
            Outcome::Incomplete,
            "no message_stop"
        );
    }

    #[test]
    fn unparseable_usage_is_counted_not_zeroed() {
        let mut tracker = UsageTracker::sse();
        tracker.feed(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":\"many\"}}}\n\n");
        assert_eq!(tracker.parse_failures(), 1);
        assert_eq!(tracker.usage().input_tokens, None);
    }

    #[test]
    fn counts_that_are_not_counts_are_unreadable_and_the_rest_still_reads() {
        for bad in [
            "-5",
            "1.5",
            "1e30",
            "18446744073709551615",
            "100000000000000000000",
            "\"12\"",
            "true",
            "[1]",
            "{\"n\":1}",
        ] {
            let mut tracker = UsageTracker::sse();
            let event = format!(
                "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"model\":\"m\",\"usage\":{{\"input_tokens\":{bad},\"output_tokens\":3}}}}}}\n\n"
            );
            tracker.feed(event.as_bytes());
            assert_eq!(tracker.parse_failures(), 1, "{bad}");
            assert_eq!(tracker.usage().input_tokens, None, "{bad}");
            assert_eq!(tracker.usage().output_tokens, Some(3), "{bad}");
            assert_eq!(tracker.served_model(), Some("m"), "{bad}");
        }
    }

    #[test]
    fn an_unreadable_later_value_keeps_the_earlier_one() {
        let mut tracker = UsageTracker::sse();
        tracker.feed(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":-1}}\n\n");
        assert_eq!(tracker.usage().output_tokens, Some(1));
        assert_eq!(tracker.parse_failures(), 1);
        let mut json = UsageTracker::json();
        json.feed(br#"{"model":"m","usage":{"input_tokens":1e30,"output_tokens":2}}"#);
        json.finish();
        assert_eq!(json.parse_failures(), 1);
        assert_eq!(json.usage().output_tokens, Some(2));
    }

    #[test]
    fn in_band_error_is_an_error_outcome() {
        let mut tracker = UsageTracker::sse();
        tracker.feed(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
        assert_eq!(tracker.outcome_at_end(), Outcome::Error);
    }

    #[test]
    fn json_answer_gives_the_same_usage() {
        let mut tracker = UsageTracker::json();
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn","usage":{"input_tokens":11,"cache_creation_input_tokens":300,"cache_read_input_tokens":40,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200},"output_tokens":6}}"#;
        let (a, b) = body.split_at(37);
        tracker.feed(a);
        tracker.feed(b);
        tracker.finish();
        let mut streamed = UsageTracker::sse();
        streamed.feed(BASIC.as_bytes());
        assert_eq!(tracker.usage(), streamed.usage());
        assert_eq!(tracker.outcome_at_end(), Outcome::Complete);
    }

    #[test]
    fn an_estimated_start_is_not_read_and_the_end_gives_the_input() {
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":900,\"output_tokens\":0}}}\n\n";
        let mut tracker = UsageTracker::sse().estimated_start();
        tracker.feed(start.as_bytes());
        assert_eq!(
            tracker.usage().input_tokens,
            None,
            "an estimate is not a count"
        );
        assert_eq!(tracker.served_model(), Some("m"));
        tracker.feed(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":1234,\"output_tokens\":2}}\n\n");
        assert_eq!(tracker.usage().input_tokens, Some(1234));
        assert_eq!(tracker.parse_failures(), 0);

        let mut plain = UsageTracker::sse();
        plain.feed(start.as_bytes());
        assert_eq!(
            plain.usage().input_tokens,
            Some(900),
            "a provider's own start is"
        );
    }
}
