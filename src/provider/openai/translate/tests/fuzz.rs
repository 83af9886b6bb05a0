//! Property-style robustness: random and mutated input never panics, and the streaming output
//! always stays well-formed.

use bytes::BytesMut;
use serde_json::{json, Map, Value};

use super::super::{
    estimate_input_tokens, translate_error, translate_request, translate_response, Dialect,
    StreamTranslator, Target,
};
use super::{accumulate, data_lines};

/// Small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const KEYS: &[&str] = &[
    "choices",
    "delta",
    "content",
    "tool_calls",
    "index",
    "id",
    "function",
    "name",
    "arguments",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_details",
    "cached_tokens",
    "cache_write_tokens",
    "prompt_cache_hit_tokens",
    "reasoning_content",
    "reasoning",
    "refusal",
    "error",
    "message",
    "type",
    "role",
    "messages",
    "system",
    "tools",
    "input_schema",
    "tool_choice",
    "tool_use_id",
    "source",
    "text",
    "input",
    "thinking",
    "max_tokens",
    "stream",
    "media_type",
    "data",
    "url",
    "metadata",
    "user_id",
    "stop_sequences",
];

const STRINGS: &[&str] = &[
    "",
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "text",
    "image",
    "tool_use",
    "tool_result",
    "thinking",
    "user",
    "assistant",
    "system",
    "base64",
    "url",
    "{\"a\":",
    "1}",
    "é日本",
    "[DONE]",
    "function",
    "any",
    "tool",
    "auto",
    "\n",
    "\"",
];

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(rng.below(5) as i64 - 1),
        3 => json!(rng.next() as f64 / 3.0e18 - 1.0),
        4 => Value::from(*rng.pick(STRINGS)),
        5 | 6 => {
            let mut map = Map::new();
            for _ in 0..rng.below(5) {
                map.insert((*rng.pick(KEYS)).to_owned(), random_value(rng, depth - 1));
            }
            Value::Object(map)
        }
        _ => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
    }
}

fn random_text(rng: &mut Rng) -> String {
    const ALPHABET: &[char] = &[
        '{', '}', '[', ']', '"', ':', ',', '0', '9', '-', '.', 'e', 'n', 'u', 'l', 't', ' ', '\\',
        'é', '\u{0}',
    ];
    (0..rng.below(40)).map(|_| *rng.pick(ALPHABET)).collect()
}

/// Truncates or corrupts a valid line at a random char position.
fn mutate(rng: &mut Rng, line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let at = rng.below(chars.len() + 1);
    match rng.below(3) {
        0 => chars[..at].iter().collect(),
        1 => {
            let mut c = chars.clone();
            if at < c.len() {
                c[at] = *rng.pick(&['"', '{', ']', '1', 'x', ',']);
            }
            c.into_iter().collect()
        }
        _ => {
            let mut c = chars.clone();
            c.insert(at.min(c.len()), ',');
            c.into_iter().collect()
        }
    }
}

const FIXTURES: &[&str] = &[
    include_str!("../fixtures/openai_text.sse"),
    include_str!("../fixtures/openai_parallel_tools.sse"),
    include_str!("../fixtures/azure_content_filter.sse"),
    include_str!("../fixtures/deepseek_reasoning.sse"),
    include_str!("../fixtures/ollama_tool_call.sse"),
];

#[test]
fn garbage_never_panics_and_output_stays_well_formed() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let fixture_lines: Vec<&str> = FIXTURES.iter().flat_map(|f| data_lines(f)).collect();
    for round in 0..400 {
        let mut translator = StreamTranslator::new(format!("msg_{round}"), "m".to_owned());
        let mut out = BytesMut::new();
        for _ in 0..rng.below(25) {
            let data = match rng.below(4) {
                0 => random_text(&mut rng),
                1 => random_value(&mut rng, 4).to_string(),
                2 => {
                    let line = *rng.pick(&fixture_lines);
                    mutate(&mut rng, line)
                }
                _ => (*rng.pick(&fixture_lines)).to_owned(),
            };
            let _ = translator.push_data(&data, &mut out);
        }
        translator.finish(&mut out);
        let frames = std::str::from_utf8(&out).expect("frames are UTF-8");
        let message = accumulate(frames);
        assert!(
            message["stop_reason"].is_string(),
            "round {round}: {frames}"
        );
    }
}

#[test]
fn garbage_never_panics_the_other_translators() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let target = Target {
        model: "m",
        dialect: Dialect::DeepSeek,
    };
    let seeds = [
        include_str!("../fixtures/claude_code_request.json"),
        include_str!("../fixtures/openai_completion_tools.json"),
        include_str!("../fixtures/deepseek_completion_reasoning.json"),
    ];
    for _ in 0..1500 {
        let input = match rng.below(3) {
            0 => random_text(&mut rng),
            1 => random_value(&mut rng, 5).to_string(),
            _ => {
                let seed = *rng.pick(&seeds);
                mutate(&mut rng, seed)
            }
        };
        let bytes = input.as_bytes();
        if let Ok(out) = translate_request(bytes, &target) {
            assert!(serde_json::from_slice::<Value>(&out).is_ok());
        }
        if let Ok(out) = translate_response(bytes, &target) {
            assert!(serde_json::from_slice::<Value>(&out).is_ok());
        }
        let _ = estimate_input_tokens(bytes);
        let err: Value = serde_json::from_slice(&translate_error(500, bytes)).expect("error JSON");
        assert_eq!(err["type"], "error");
    }
}
