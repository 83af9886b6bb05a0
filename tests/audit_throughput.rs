//! Write throughput, bytes per record on disk and the writer thread's CPU
//! for two conversation-shaped loads, each 2000 records with a unique ~20 KB
//! SSE response:
//!
//! - `throughput` (shared prefix): every request body is the *same* ~100 KB
//!   prefix (tools, system prompt, earlier turns) plus a unique ~4 KB tail.
//!   Every request shares one identical prefix with every other, which is
//!   the friendliest case for dedup and for the writer's prefix cache.
//! - `throughput_growing` (growing conversations): 8 conversations run
//!   interleaved (round robin); each starts from the same ~60 KB of tools and
//!   system prompt, and turn N's body is turn N−1's with a new ~2 KB exchange
//!   appended inside the `messages` array (so the JSON's closing `]}` moves,
//!   as a real client's does). A conversation ends after 40 turns (~140 KB)
//!   and a new one takes its place; bodies average ~100 KB.
//!
//! Prints; asserts only that all landed.
//!
//! `cargo test --release --test audit_throughput -- --ignored --nocapture --test-threads 1`
//!
//! On a shared 2-core VM (load ~4), 2000 records of 124 KB bodies:
//! schema v1 (bodies inline): 1190–1490 records/s durable, writer CPU
//! 300–350 µs/record, 127,193 bytes/record on disk; schema v2 (chunk dedup):
//! 1680–3610 records/s, 225–235 µs/record, 42,610 bytes/record.
//!
//! Writer prefix cache (two runs each, load ~2–3; before → after):
//! shared prefix 3346–3450 → 3634–3886 records/s, 225–235 → 165–175
//! µs/record; growing conversations 4308–4320 → 4719–5599 records/s,
//! 185–190 → 125–135 µs/record. Bytes on disk unchanged (42,610 and 32,694
//! per record): the cache yields the very chunks chunking whole would.

use std::time::Instant;

use llm_gateway::audit::{
    AuditAttempt, AuditReader, AuditRecord, AuditStore, AuditStoreConfig, AuditUsage,
};

/// Deterministic words, so chunk boundaries fall where real text puts them
/// (a repeated phrase would dedup against itself and flatter the store).
struct Words(u64);

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

    fn text(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len + 16);
        while s.len() < len {
            s.push_str(self.next());
            s.push(' ');
        }
        s
    }
}

fn prefix() -> String {
    format!(
        "{{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,\"system\":\"{}\",\"messages\":[{{\"role\":\"user\",\"content\":\"",
        Words(7).text(100_000)
    )
}

fn big_record(i: usize, prefix: &str) -> AuditRecord {
    let mut words = Words(1000 + i as u64);
    let request_body = format!("{prefix}{}\"}}]}}", words.text(4_000));
    record(i, request_body, &mut words)
}

/// A record around `request_body`, with a unique ~20 KB SSE response drawn
/// from `words`.
fn record(i: usize, request_body: String, words: &mut Words) -> AuditRecord {
    let mut response_body = String::new();
    while response_body.len() < 20_000 {
        response_body.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{}\"}}}}\n\n",
            words.text(40)
        ));
    }
    AuditRecord {
        request_id: format!("req_{i:08}"),
        timestamp_ms: 1_700_000_000_000 + i as i64,
        client: Some("bench".into()),
        agent_type: Some("coder".into()),
        requested_model: Some("claude-sonnet-4-5".into()),
        served_model: Some("claude-sonnet-4-5-20250929".into()),
        provider: Some("anthropic".into()),
        endpoint: "messages".into(),
        attempts: vec![AuditAttempt {
            provider: "anthropic".into(),
            status: Some(200),
            error: None,
            latency_ms: 900,
        }],
        status: 200,
        stream: true,
        ttft_ms: Some(300),
        latency_ms: 950,
        usage: AuditUsage {
            input_tokens: Some(25_000),
            output_tokens: Some(400),
            cache_creation_input_tokens: Some(0),
            cache_write_5m_tokens: Some(0),
            cache_write_1h_tokens: Some(0),
            cache_read_input_tokens: Some(0),
        },
        cost_usd: Some("0.081".into()),
        price_table_version: Some("2025-10-01".into()),
        outcome: "complete".into(),
        error: None,
        request_body: Some(request_body.into()),
        response_body: Some(response_body.into()),
        request_body_ticket: None,
    }
}

/// CPU time (user + system, clock ticks) of this process's thread named
/// `name`, from `/proc`; `None` where that is not available.
fn thread_cpu_ticks(name: &str) -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        return Some(utime + stime);
    }
    None
}

/// Submit `records`, wait until all are durable and print the figures.
fn run(label: &str, records: Vec<AuditRecord>) {
    let n = records.len();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let body_bytes: usize = records.iter().map(AuditRecord::body_bytes).sum();

    let store = AuditStore::open(AuditStoreConfig::new(&path)).unwrap();
    let t0 = Instant::now();
    for r in records {
        store.submit(r);
    }
    let submit_time = t0.elapsed();
    store.flush().unwrap();
    let write_time = t0.elapsed();
    let writer_ticks = thread_cpu_ticks("audit-writer");
    let stats = store.shutdown().unwrap();
    assert_eq!(stats.written as usize, n);
    assert_eq!(stats.dropped, 0);

    let db = AuditReader::new(&path).stats().unwrap();
    let file = std::fs::metadata(&path).unwrap().len();
    println!(
        "audit throughput ({} build), {label}: {n} records, bodies {:.1} KB/record",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        body_bytes as f64 / n as f64 / 1000.0
    );
    println!(
        "  submit: {:.0} records/s ({:?} total, {:.2} µs/record)",
        n as f64 / submit_time.as_secs_f64(),
        submit_time,
        submit_time.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "  durable: {:.0} records/s, {:.1} MB/s of bodies ({:?} to commit all)",
        n as f64 / write_time.as_secs_f64(),
        body_bytes as f64 / write_time.as_secs_f64() / 1e6,
        write_time
    );
    match writer_ticks {
        Some(ticks) => println!(
            "  writer CPU: {:.2} s, {:.0} µs/record (clock ticks at 100 Hz)",
            ticks as f64 / 100.0,
            ticks as f64 * 1e4 / n as f64
        ),
        None => println!("  writer CPU: not available on this system"),
    }
    println!(
        "  on disk: {} bytes/record ({} bytes file / {} records; {:.1}% of body bytes)",
        file / n as u64,
        file,
        db.records,
        file as f64 / body_bytes as f64 * 100.0
    );
}

#[test]
#[ignore = "prints a throughput figure; run on demand"]
fn throughput() {
    let prefix = prefix();
    let records = (0..2000).map(|i| big_record(i, &prefix)).collect();
    run("one shared 100 KB prefix + unique 4 KB tail", records);
}

/// Conversations running side by side: how many, and turns per conversation.
const CONVERSATIONS: usize = 8;
const TURNS: usize = 40;

/// One conversation's request body so far: the JSON up to and including
/// its last message; `body()` closes it.
struct Conversation {
    open: String,
    words: Words,
}

impl Conversation {
    fn new(seed: u64, tools: &str) -> Conversation {
        let mut words = Words(seed);
        let open = format!(
            "{{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,\"system\":\"{tools}\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}",
            words.text(1_000)
        );
        Conversation { open, words }
    }

    /// Append one exchange (~2 KB: the assistant's answer and the next user
    /// turn).
    fn turn(&mut self) {
        let answer = self.words.text(1_400);
        let user = self.words.text(600);
        self.open.push_str(&format!(
            ",{{\"role\":\"assistant\",\"content\":\"{answer}\"}},{{\"role\":\"user\",\"content\":\"{user}\"}}"
        ));
    }

    fn body(&self) -> String {
        format!("{}]}}", self.open)
    }
}

#[test]
#[ignore = "prints a throughput figure; run on demand"]
fn throughput_growing() {
    let tools = Words(7).text(60_000);
    let mut slots: Vec<(Conversation, usize)> = (0..CONVERSATIONS)
        .map(|c| (Conversation::new(10_000 + c as u64, &tools), 0))
        .collect();
    let mut next_seed = 10_000 + CONVERSATIONS as u64;
    let mut records = Vec::with_capacity(2000);
    for i in 0..2000 {
        let (conversation, turns) = &mut slots[i % CONVERSATIONS];
        if *turns == TURNS {
            *conversation = Conversation::new(next_seed, &tools);
            next_seed += 1;
            *turns = 0;
        }
        let body = conversation.body();
        conversation.turn();
        *turns += 1;
        let mut words = Words(1_000_000 + i as u64);
        records.push(record(i, body, &mut words));
    }
    run(
        "8 interleaved conversations growing 2 KB a turn from 60 KB, 40 turns each",
        records,
    );
}
