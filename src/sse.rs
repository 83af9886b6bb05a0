//! An incremental Server-Sent Events decoder that keeps only the unfinished line.
//!
//! Written by hand because the taps need what no SSE crate offers: borrowed events with
//! no allocation per event, a filter that skips the data of events nobody reads (text
//! deltas are most of a stream), and a hard bound on the partial line. `eventsource-stream`
//! serves as the test oracle for it.

use memchr::memchr2;

/// Longest line the decoder holds; a longer one turns the decoder off (counted by the caller).
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// One decoded event, borrowed from the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, or `message` when the event had none.
    pub event: &'a [u8],
    /// The `data:` lines joined with `\n`.
    pub data: &'a [u8],
}

/// The decoder's state between chunks.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` opening the next one belongs to it.
    after_cr: bool,
    event: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    data_lines: u32,
    /// The current event's data is not wanted: do not copy it.
    skipping: bool,
    overflowed: bool,
    /// Lines that are neither a comment nor a field SSE defines.
    foreign_lines: u32,
}

impl SseDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a line exceeded [`MAX_LINE_BYTES`]; the decoder then stops decoding.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Lines seen so far that are neither a comment nor an `event`, `data`, `id` or `retry`
    /// field: a real SSE producer sends none, so they mean bytes that are not SSE.
    pub fn foreign_lines(&self) -> u32 {
        self.foreign_lines
    }

    /// Decode `chunk`, calling `on_event` for each complete event.
    ///
    /// `wants(event_name)` is asked when an `event:` line arrives; when it says no, the
    /// event's data lines are skipped without being copied (the event is still reported,
    /// with empty data). Events with no `event:` line are always decoded.
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        wants: impl Fn(&[u8]) -> bool,
        mut on_event: impl FnMut(SseEvent<'_>),
    ) {
        if self.overflowed {
            return;
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(end) = memchr2(b'\n', b'\r', chunk) {
            if self.partial.is_empty() {
                self.line(&chunk[..end], &wants, &mut on_event);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&chunk[..end]);
                self.line(&line, &wants, &mut on_event);
                line.clear();
                self.partial = line;
            }
            if chunk[end] == b'\r' {
                match chunk.get(end + 1) {
                    Some(b'\n') => chunk = &chunk[end + 2..],
                    Some(_) => chunk = &chunk[end + 1..],
                    None => {
                        self.after_cr = true;
                        chunk = &[];
                    }
                }
            } else {
                chunk = &chunk[end + 1..];
            }
        }
        if self.partial.len() + chunk.len() > MAX_LINE_BYTES {
            self.overflowed = true;
            self.partial = Vec::new();
            return;
        }
        self.partial.extend_from_slice(chunk);
    }

    fn line(
        &mut self,
        line: &[u8],
        wants: &impl Fn(&[u8]) -> bool,
        on_event: &mut impl FnMut(SseEvent<'_>),
    ) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
                self.skipping = !wants(value);
            }
            b"data" => {
                self.has_data = true;
                if self.skipping {
                    return;
                }
                // Lines of one event join with '\n', even when the first line was empty.
                if self.data_lines > 0 {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.data_lines += 1;
            }
            b"id" | b"retry" => {}
            _ => self.foreign_lines = self.foreign_lines.saturating_add(1),
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if self.has_data {
            let event: &[u8] = if self.event.is_empty() {
                b"message"
            } else {
                &self.event
            };
            on_event(SseEvent {
                event,
                data: &self.data,
            });
        }
        self.event.clear();
        self.data.clear();
        self.data_lines = 0;
        self.has_data = false;
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(
                chunk,
                |_| true,
                |e| {
                    out.push((
                        String::from_utf8_lossy(e.event).into_owned(),
                        String::from_utf8_lossy(e.data).into_owned(),
                    ))
                },
            );
        }
        out
    }

    #[test]
    fn decodes_events_with_any_line_ending() {
        let text = b"event: a\ndata: 1\n\nevent: b\r\ndata: 2\r\n\r\nevent: c\rdata: 3\r\r: comment\ndata: x\ndata: y\n\n";
        assert_eq!(
            decode_all(&[text]),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("c".into(), "3".into()),
                ("message".into(), "x\ny".into()),
            ]
        );
    }

    #[test]
    fn crlf_split_between_chunks_is_one_line_end() {
        assert_eq!(
            decode_all(&[b"data: 1\r", b"\n\r", b"\ndata: 2\n\n"]),
            vec![
                ("message".into(), "1".into()),
                ("message".into(), "2".into())
            ]
        );
    }

    #[test]
    fn unwanted_events_are_reported_without_data() {
        let mut decoder = SseDecoder::new();
        let mut seen = Vec::new();
        decoder.feed(
            b"event: skip\ndata: big\n\nevent: keep\ndata: small\n\n",
            |name| name == b"keep",
            |e| seen.push((e.event.to_vec(), e.data.to_vec())),
        );
        assert_eq!(
            seen,
            vec![
                (b"skip".to_vec(), Vec::new()),
                (b"keep".to_vec(), b"small".to_vec())
            ]
        );
    }

    #[test]
    fn lines_that_are_not_sse_are_counted() {
        let mut decoder = SseDecoder::new();
        decoder.feed(
            b"id: 1\nretry: 5\n: note\ndata: 1\n\n\xff\xfe garbage\n<html>\n\n",
            |_| true,
            |_| {},
        );
        assert_eq!(decoder.foreign_lines(), 2);
    }

    #[test]
    fn an_endless_line_turns_the_decoder_off() {
        let mut decoder = SseDecoder::new();
        let big = vec![b'x'; MAX_LINE_BYTES + 1];
        decoder.feed(&big, |_| true, |_| panic!("no event"));
        assert!(decoder.overflowed());
        assert!(decoder.partial.capacity() == 0);
    }
}
