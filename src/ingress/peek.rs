//! Reading the few top-level fields the gateway needs from a Messages body without
//! parsing it into a tree.
//!
//! Written by hand because the gateway needs the byte spans of top-level members (to
//! strip `agent_type` and rewrite `model` while every other byte goes upstream as it
//! came), and no JSON crate exposes member spans. It validates the JSON structure as it
//! skips (strings are skipped with `memchr`, so an 80–120 KB Claude Code body costs
//! microseconds); it decodes nothing but the few fields it reads, and hands on the span of
//! `metadata` for the session to be parsed out of that small value alone.

use memchr::memchr2;
use std::ops::Range;

/// Deepest nesting accepted (serde_json's own limit is 128).
const MAX_DEPTH: usize = 128;

/// What the scanner found at the top level of a request body.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Peeked {
    /// `model`, decoded, and the span of its JSON string value.
    pub model: Option<(String, Range<usize>)>,
    /// `model` is present but not a string.
    pub model_not_string: bool,
    /// `stream`, when it is a boolean (`null` = absent).
    pub stream: Option<bool>,
    /// `stream` is present with a value that is neither boolean nor null.
    pub stream_invalid: bool,
    /// `agent_type` (if a string) and the span of the whole member, with its comma.
    pub agent_type: Option<(Option<String>, Range<usize>)>,
    /// `messages` is present and is an array.
    pub messages_is_array: bool,
    /// `messages` is present.
    pub has_messages: bool,
    /// `max_tokens`, when it is a non-negative whole number that fits a `u64`.
    pub max_tokens: Option<u64>,
    /// A non-null top-level `thread` member: an Anthropic server-side thread.
    pub thread: bool,
    /// The span of the `metadata` value (any JSON value), for the session it may carry.
    pub metadata: Option<Range<usize>>,
}

/// Why a body is not a JSON object.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PeekError {
    /// Not valid JSON; the message says where.
    Malformed(String),
    /// Valid JSON, but not an object.
    NotObject,
}

struct Member {
    key: Range<usize>,
    value: Range<usize>,
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// Scan `body`, a JSON object, for its `model`, `stream`, `agent_type`, `messages`,
/// `max_tokens` and `metadata`.
///
/// The body must be UTF-8 throughout, and its strings must not hold raw control
/// characters (below U+0020) or unknown escapes, as JSON requires.
pub(crate) fn peek(body: &[u8]) -> Result<Peeked, PeekError> {
    if let Err(error) = std::str::from_utf8(body) {
        return Err(PeekError::Malformed(format!(
            "the body is not valid UTF-8 (at byte {})",
            error.valid_up_to()
        )));
    }
    let mut scanner = Scanner {
        bytes: body,
        pos: 0,
    };
    scanner.skip_ws();
    match scanner.peek_byte() {
        Some(b'{') => {}
        Some(_) => {
            scanner.skip_value(0)?;
            scanner.skip_ws();
            return match scanner.peek_byte() {
                None => Err(PeekError::NotObject),
                Some(_) => Err(scanner.error("unexpected data after the JSON value")),
            };
        }
        None => return Err(PeekError::Malformed("the body is empty".into())),
    }
    scanner.pos += 1;
    let mut peeked = Peeked::default();
    let mut members: Vec<Member> = Vec::with_capacity(16);
    let mut agent_index = None;
    scanner.skip_ws();
    if scanner.peek_byte() == Some(b'}') {
        scanner.pos += 1;
    } else {
        loop {
            scanner.skip_ws();
            let key = scanner.string_span()?;
            scanner.skip_ws();
            scanner.expect(b':')?;
            scanner.skip_ws();
            let start = scanner.pos;
            scanner.skip_value(1)?;
            let value = start..scanner.pos;
            let raw_key = &body[key.start + 1..key.end - 1];
            let raw_value = &body[value.clone()];
            match raw_key {
                b"model" => {
                    if raw_value.first() == Some(&b'"') {
                        let model = decode_string(raw_value).map_err(|m| scanner.error(&m))?;
                        peeked.model = Some((model, value.clone()));
                        peeked.model_not_string = false;
                    } else {
                        peeked.model = None;
                        peeked.model_not_string = true;
                    }
                }
                b"stream" => {
                    peeked.stream_invalid = false;
                    peeked.stream = match raw_value {
                        b"true" => Some(true),
                        b"false" => Some(false),
                        b"null" => None,
                        _ => {
                            peeked.stream_invalid = true;
                            None
                        }
                    }
                }
                b"agent_type" => {
                    let agent = if raw_value.first() == Some(&b'"') {
                        Some(decode_string(raw_value).map_err(|m| scanner.error(&m))?)
                    } else {
                        None
                    };
                    agent_index = Some(members.len());
                    peeked.agent_type = Some((agent, 0..0));
                }
                b"messages" => {
                    peeked.has_messages = true;
                    peeked.messages_is_array = raw_value.first() == Some(&b'[');
                }
                b"max_tokens" => peeked.max_tokens = whole_number(raw_value),
                b"thread" => peeked.thread = raw_value != b"null",
                b"metadata" => peeked.metadata = Some(value.clone()),
                _ => {}
            }
            members.push(Member { key, value });
            scanner.skip_ws();
            match scanner.next_byte() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(scanner.error("expected `,` or `}` after an object member")),
            }
        }
    }
    scanner.skip_ws();
    if scanner.pos != body.len() {
        return Err(scanner.error("unexpected data after the JSON object"));
    }
    if let (Some(index), Some((_, span))) = (agent_index, peeked.agent_type.as_mut()) {
        *span = member_removal_span(&members, index);
    }
    Ok(peeked)
}

/// `raw` (a JSON number or other value) as a `u64`, when it is written as digits only:
/// no sign, fraction or exponent.
fn whole_number(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// How many times the JSON strings `"image"` and `"document"` occur in `body`: at least
/// the number of image and document blocks (a `type` value), and an upper bound of
/// them for a budget, never an exact count (the same text in a prompt counts too).
pub(crate) fn media_blocks(body: &[u8]) -> u32 {
    let count = |needle: &[u8]| memchr::memmem::find_iter(body, needle).count();
    let total = count(b"\"image\"").saturating_add(count(b"\"document\""));
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// The bytes to delete to remove member `index` and one adjacent comma.
fn member_removal_span(members: &[Member], index: usize) -> Range<usize> {
    let this = &members[index];
    if index > 0 {
        // `, "key": value` — from the end of the previous value.
        members[index - 1].value.end..this.value.end
    } else if let Some(next) = members.get(1) {
        // `"key": value, ` — up to the next key.
        this.key.start..next.key.start
    } else {
        this.key.start..this.value.end
    }
}

fn decode_string(raw: &[u8]) -> Result<String, String> {
    if !raw.contains(&b'\\') {
        return std::str::from_utf8(&raw[1..raw.len() - 1])
            .map(str::to_owned)
            .map_err(|_| "a string is not valid UTF-8".to_owned());
    }
    serde_json::from_slice(raw).map_err(|e| format!("a string is not valid JSON: {e}"))
}

/// Where the first byte below 0x20 is in `bytes` (which JSON forbids raw in strings).
///
/// Checked a block at a time without early exit inside a block, so it compiles to
/// vector compares; strings are most of a request body.
fn first_control(bytes: &[u8]) -> Option<usize> {
    const BLOCK: usize = 64;
    let mut blocks = bytes.chunks(BLOCK);
    let mut offset = 0;
    for block in blocks.by_ref() {
        if block.iter().fold(false, |found, b| found | (*b < 0x20)) {
            return block.iter().position(|b| *b < 0x20).map(|i| offset + i);
        }
        offset += block.len();
    }
    None
}

// === impl Scanner ===

impl Scanner<'_> {
    fn error(&self, message: &str) -> PeekError {
        PeekError::Malformed(format!("{message} (at byte {})", self.pos))
    }

    fn peek_byte(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next_byte(&mut self) -> Option<u8> {
        let byte = self.peek_byte()?;
        self.pos += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Result<(), PeekError> {
        if self.next_byte() == Some(byte) {
            Ok(())
        } else {
            self.pos = self.pos.saturating_sub(1);
            Err(self.error(&format!("expected `{}`", byte as char)))
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek_byte() {
            self.pos += 1;
        }
    }

    /// A string starting at `pos`; returns its span, quotes included.
    fn string_span(&mut self) -> Result<Range<usize>, PeekError> {
        let start = self.pos;
        if self.peek_byte() != Some(b'"') {
            return Err(self.error("expected a string"));
        }
        self.pos += 1;
        while let Some(offset) = memchr2(b'"', b'\\', &self.bytes[self.pos..]) {
            if let Some(at) = first_control(&self.bytes[self.pos..self.pos + offset]) {
                self.pos += at;
                return Err(self.error("a string holds a raw control character"));
            }
            self.pos += offset;
            if self.bytes[self.pos] == b'"' {
                self.pos += 1;
                return Ok(start..self.pos);
            }
            match self.bytes.get(self.pos + 1) {
                None => break,
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
                Some(b'u') => {
                    let hex = self.bytes.get(self.pos + 2..self.pos + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return Err(self.error("a `\\u` escape needs four hex digits"));
                    }
                    self.pos += 6;
                }
                Some(_) => return Err(self.error("a string holds an unknown escape")),
            }
        }
        self.pos = self.bytes.len();
        Err(self.error("unterminated string"))
    }

    fn skip_value(&mut self, depth: usize) -> Result<(), PeekError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting is too deep"));
        }
        match self.peek_byte() {
            Some(b'"') => self.string_span().map(drop),
            Some(b'{') => {
                self.pos += 1;
                self.skip_ws();
                if self.peek_byte() == Some(b'}') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    self.string_span()?;
                    self.skip_ws();
                    self.expect(b':')?;
                    self.skip_ws();
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.next_byte() {
                        Some(b',') => continue,
                        Some(b'}') => return Ok(()),
                        _ => return Err(self.error("expected `,` or `}` in an object")),
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                self.skip_ws();
                if self.peek_byte() == Some(b']') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.next_byte() {
                        Some(b',') => continue,
                        Some(b']') => return Ok(()),
                        _ => return Err(self.error("expected `,` or `]` in an array")),
                    }
                }
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a JSON value")),
            None => Err(self.error("unexpected end of the body")),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), PeekError> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("expected a JSON value"))
        }
    }

    fn number(&mut self) -> Result<(), PeekError> {
        let start = self.pos;
        if self.peek_byte() == Some(b'-') {
            self.pos += 1;
        }
        let digits = self.digits();
        if digits == 0 {
            return Err(self.error("a number has no digits"));
        }
        if self.peek_byte() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("a number has no digits after `.`"));
            }
        }
        if let Some(b'e' | b'E') = self.peek_byte() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek_byte() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("a number has no exponent digits"));
            }
        }
        debug_assert!(self.pos > start);
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek_byte() {
            self.pos += 1;
        }
        self.pos - start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fields_and_spans() {
        let body = br#"{"model":"claude-sonnet-4-5","max_tokens":10,"agent_type":"code-reviewer","messages":[{"role":"user","content":"hi \"there\" \\ {["}],"stream":true}"#;
        let peeked = peek(body).unwrap();
        let (model, span) = peeked.model.unwrap();
        assert_eq!(model, "claude-sonnet-4-5");
        assert_eq!(&body[span], br#""claude-sonnet-4-5""#);
        assert_eq!(peeked.stream, Some(true));
        assert!(peeked.messages_is_array);
        let (agent, span) = peeked.agent_type.unwrap();
        assert_eq!(agent.as_deref(), Some("code-reviewer"));
        assert_eq!(&body[span], br#","agent_type":"code-reviewer""#);
    }

    #[test]
    fn removal_span_of_first_and_only_member() {
        let body = br#"{ "agent_type" : "a" , "model":"m"}"#;
        let (_, span) = peek(body).unwrap().agent_type.unwrap();
        assert_eq!(&body[span], br#""agent_type" : "a" , "#);
        let body = br#"{"agent_type":null}"#;
        let (agent, span) = peek(body).unwrap().agent_type.unwrap();
        assert_eq!(agent, None);
        assert_eq!(&body[span], br#""agent_type":null"#);
    }

    #[test]
    fn escaped_model_is_decoded() {
        let peeked = peek(br#"{"model":"claude\u002dx","messages":[]}"#).unwrap();
        assert_eq!(peeked.model.unwrap().0, "claude-x");
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for body in [
            &b""[..],
            b"{",
            b"{\"model\":",
            b"{\"model\":\"x\"",
            b"{\"model\":\"x}",
            b"{\"a\":[1,2}",
            b"{\"a\":tru}",
            b"{\"a\":1 2}",
            b"{\"a\":-}",
            b"{\"a\":1.}",
            b"{} {}",
            b"{'a':1}",
            b"{\"a\":\"\\",
        ] {
            assert!(
                matches!(peek(body), Err(PeekError::Malformed(_))),
                "{:?} should be malformed",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn bad_utf8_control_characters_and_escapes_are_refused() {
        for body in [
            &b"{\"model\":\"m\",\"messages\":[],\"x\":\"\xff\"}"[..],
            b"{\"model\":\"m\xc3\",\"messages\":[]}",
            b"{\"model\":\"m\",\"messages\":[\"a\x00b\"]}",
            b"{\"model\":\"m\",\"messages\":[\"line\nbreak\"]}",
            b"{\"model\":\"m\",\"messages\":[\"tab\tin\"]}",
            b"{\"model\":\"m\",\"messages\":[\"\\x\"]}",
            b"{\"model\":\"m\",\"messages\":[\"\\u12\"]}",
            b"{\"model\":\"m\",\"messages\":[\"\\\x01\"]}",
        ] {
            assert!(
                matches!(peek(body), Err(PeekError::Malformed(_))),
                "{:?} should be malformed",
                String::from_utf8_lossy(body)
            );
            assert!(serde_json::from_slice::<serde_json::Value>(body).is_err());
        }
        // Escaped forms and whitespace between tokens are fine.
        let long = format!(
            r#"{{"model":"m","messages":["{}\n\t\u0000é"],
	"stream":true}}"#,
            "x".repeat(200)
        );
        assert!(peek(long.as_bytes()).is_ok());
    }

    #[test]
    fn non_objects_are_told_apart() {
        for body in [&b"[]"[..], b"\"x\"", b"12", b"null", b" true "] {
            assert_eq!(peek(body), Err(PeekError::NotObject), "{body:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut body = b"{\"a\":".to_vec();
        body.extend(std::iter::repeat_n(b'[', 100_000));
        assert!(matches!(peek(&body), Err(PeekError::Malformed(_))));
    }

    #[test]
    fn agrees_with_serde_json_on_validity() {
        let cases: &[&[u8]] = &[
            br#"{"a":[{"b":{"c":[1,-2.5e+3,true,false,null,"x\"y"]}}],"model":"m"}"#,
            br#"{"a":01}"#,
            br#"{"a":1e}"#,
            br#"{"a":[1,]}"#,
            br#"{"a":{"b":1,}}"#,
            br#"{"a":"\u00e9"}"#,
        ];
        for case in cases {
            let ours = peek(case).is_ok();
            let serde = serde_json::from_slice::<serde_json::Value>(case).is_ok();
            // Leading zeros are the one laxity we accept (upstream rejects them).
            if case != br#"{"a":01}"# {
                assert_eq!(ours, serde, "{}", String::from_utf8_lossy(case));
            }
        }
    }

    #[test]
    fn a_thread_member_marks_a_server_side_thread() {
        let thread = |member: &str| {
            let body = format!(r#"{{"model":"m",{member}"messages":[]}}"#);
            peek(body.as_bytes()).unwrap().thread
        };
        assert!(thread(r#""thread":{"type":"create"},"#));
        assert!(thread(
            r#""thread":{"type":"continue","previous_message_id":"msg_1"},"#
        ));
        assert!(!thread(r#""thread":null,"#));
        assert!(!thread(r#""metadata":{"thread":{"type":"create"}},"#));
        assert!(!thread(""));
    }

    #[test]
    fn max_tokens_is_a_whole_number_or_none() {
        let at = |value: &str| {
            let body = format!(r#"{{"model":"m","max_tokens":{value},"messages":[]}}"#);
            peek(body.as_bytes()).unwrap().max_tokens
        };
        assert_eq!(at("0"), Some(0));
        assert_eq!(at("64000"), Some(64_000));
        assert_eq!(at("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "-1",
            "1.5",
            "10.0",
            "1e3",
            "\"100\"",
            "null",
            "true",
            "[1]",
            "18446744073709551616",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
        assert_eq!(
            peek(br#"{"model":"m","messages":[]}"#).unwrap().max_tokens,
            None
        );
        // The last of duplicate members wins, as upstream's parser has it.
        let twice = br#"{"max_tokens":5,"model":"m","messages":[],"max_tokens":7}"#;
        assert_eq!(peek(twice).unwrap().max_tokens, Some(7));
        // Only the top level counts.
        let nested = br#"{"model":"m","messages":[{"max_tokens":9}]}"#;
        assert_eq!(peek(nested).unwrap().max_tokens, None);
    }

    #[test]
    fn metadata_span_is_the_whole_value() {
        let body =
            br#"{"model":"m","metadata" : {"user_id":"{\"session_id\":\"s\"}"},"messages":[]}"#;
        let span = peek(body).unwrap().metadata.unwrap();
        assert_eq!(&body[span], br#"{"user_id":"{\"session_id\":\"s\"}"}"#);
        let body = br#"{"model":"m","messages":[],"metadata":null}"#;
        assert_eq!(&body[peek(body).unwrap().metadata.unwrap()], b"null");
        assert_eq!(
            peek(br#"{"model":"m","messages":[]}"#).unwrap().metadata,
            None
        );
    }

    #[test]
    fn media_blocks_count_image_and_document_strings() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":[
            {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},
            {"type":"document","source":{"type":"text","data":"x"}},
            {"type":"text","text":"an image of a \"image\" word"},
            {"type":"image","source":{"type":"url","url":"https://x/y.png"}}
        ]}]}"#;
        assert_eq!(media_blocks(body), 3);
        assert_eq!(media_blocks(br#"{"model":"m","messages":[]}"#), 0);
        // An over-count is fine: the figure is an upper bound.
        assert_eq!(media_blocks(br#"{"image":"document"}"#), 2);
    }
}
