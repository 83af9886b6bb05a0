//! Audit store workloads shaped like Claude Code traffic, and a one-shot
//! measurement of them: bytes on disk per record and the writer thread's CPU
//! per record. Shared by `benches/audit_throughput.rs`; written against the
//! store's stable surface (open, submit, flush, shutdown, reader stats) so the
//! same file can measure another version of the store. The includer provides
//! `make_record(i, request_body, response_body)`.

use std::path::Path;
use std::time::{Duration, Instant};

use llm_gateway::audit::{AuditReader, AuditRecord, AuditStore, AuditStoreConfig};

use super::make_record;
use super::synthetic::RequestBody;

/// Deterministic words, so chunk boundaries fall where real text puts them
/// (a repeated phrase would dedup against itself and flatter the store).
pub struct Words(pub u64);

impl Words {
    fn next(&mut self) -> &'static str {
        const WORDS: [&str; 16] = [
            "the", "tool", "returns", "a", "file", "with", "lines", "of", "rust", "code", "and",
            "tests", "that", "pass", "fn", "main",
        ];
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        WORDS[(self.0 >> 60) as usize]
    }

    pub fn text(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len + 16);
        while s.len() < len {
            s.push_str(self.next());
            s.push(' ');
        }
        s
    }
}

/// A unique ~20 KB SSE answer for record `i`.
pub fn sse_answer(i: usize) -> String {
    let mut words = Words(1_000_000 + i as u64);
    let mut out = String::new();
    while out.len() < 20_000 {
        out.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{}\"}}}}\n\n",
            words.text(40)
        ));
    }
    out
}

/// `n` records of the load tool's Claude Code request (~100 KB: 24 tools, the
/// system prompt, a conversation) with a final user message unique to each,
/// and a unique ~20 KB SSE answer.
pub fn claude_code(n: usize) -> Box<dyn Iterator<Item = AuditRecord>> {
    let body = RequestBody::varying("claude-sonnet-4-5");
    Box::new((0..n).map(move |i| {
        let request = body.get(0, i % 8, i as u64);
        make_record(i, request.to_vec(), sse_answer(i))
    }))
}

/// `n` records of 8 conversations running side by side, each starting from
/// the same 60 KB of tools and system prompt and growing by a ~2 KB exchange
/// a turn (inside the `messages` array, so the closing `]}` moves), 40 turns
/// each before a new one takes its place; each with a unique ~20 KB answer.
pub fn growing(n: usize) -> Box<dyn Iterator<Item = AuditRecord>> {
    const CONVERSATIONS: usize = 8;
    const TURNS: usize = 40;
    let tools = Words(7).text(60_000);
    let start = move |seed: u64| {
        let mut words = Words(seed);
        let open = format!(
            "{{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,\"system\":\"{tools}\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}",
            words.text(1_000)
        );
        (open, words, 0)
    };
    let mut slots: Vec<(String, Words, usize)> = (0..CONVERSATIONS)
        .map(|c| start(10_000 + c as u64))
        .collect();
    let mut next_seed = 10_000 + CONVERSATIONS as u64;
    Box::new((0..n).map(move |i| {
            let slot = &mut slots[i % CONVERSATIONS];
            if slot.2 == TURNS {
                *slot = start(next_seed);
                next_seed += 1;
            }
            let (open, words, turns) = slot;
            let body = format!("{open}]}}");
            let answer = words.text(1_400);
            let user = words.text(600);
            open.push_str(&format!(
                ",{{\"role\":\"assistant\",\"content\":\"{answer}\"}},{{\"role\":\"user\",\"content\":\"{user}\"}}"
            ));
            *turns += 1;
            make_record(i, body.into_bytes(), sse_answer(i))
        }))
}

/// Nanoseconds this process's thread named `name` has run on a CPU (from
/// `/proc/self/task/*/schedstat`); `None` where that is not available.
pub fn thread_cpu(name: &str) -> Option<Duration> {
    // A thread that just ended may still be listed: skip what cannot be read.
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .map(|task| task.path())
        .filter(|dir| std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == name))
        .find_map(|dir| {
            let stat = std::fs::read_to_string(dir.join("schedstat")).ok()?;
            let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
            Some(Duration::from_nanos(ns))
        })
}

/// What [`measure`] found.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub records: usize,
    pub body_bytes_per_record: u64,
    pub disk_bytes_per_record: u64,
    pub writer_cpu_per_record: Option<Duration>,
    pub durable_per_second: f64,
}

/// Submit `records` to `store` (made as they go, a flush every 256 so the
/// queue's byte budget never sheds a body), wait until all are committed,
/// and return how many and their body bytes.
pub fn feed(store: &AuditStore, records: impl Iterator<Item = AuditRecord>) -> (usize, usize) {
    let (mut n, mut body_bytes) = (0, 0);
    for record in records {
        body_bytes += record.body_bytes();
        store.submit(record);
        n += 1;
        if n % 256 == 0 {
            store.flush().expect("the records commit");
        }
    }
    store.flush().expect("the records commit");
    (n, body_bytes)
}

/// Feed `records` to a fresh store in `dir` and take the figures: the
/// writer's CPU (read before shutdown, while the thread lives) and the
/// file's size after shutdown.
pub fn measure(dir: &Path, records: impl Iterator<Item = AuditRecord>) -> Figures {
    let path = dir.join("audit.db");
    let store = AuditStore::open(AuditStoreConfig::new(&path)).expect("the store opens");
    let before = thread_cpu("audit-writer");
    let t0 = Instant::now();
    let (n, body_bytes) = feed(&store, records);
    let elapsed = t0.elapsed();
    let cpu = thread_cpu("audit-writer").zip(before).map(|(a, b)| a - b);
    let stats = store.shutdown().expect("the store shuts down");
    assert_eq!(stats.written as usize, n, "{stats:?}");
    let db = AuditReader::new(&path).stats().expect("the file reads");
    assert_eq!(db.records as usize, n);
    let file = std::fs::metadata(&path).expect("the file exists").len();
    Figures {
        records: n,
        body_bytes_per_record: (body_bytes / n) as u64,
        disk_bytes_per_record: file / n as u64,
        writer_cpu_per_record: cpu.map(|c| c / n as u32),
        durable_per_second: n as f64 / elapsed.as_secs_f64(),
    }
}
