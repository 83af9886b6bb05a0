#![allow(missing_docs)] // criterion_group! generates undocumented items
//! The audit store on Claude Code-shaped traffic. Run with
//! `cargo bench --bench audit_throughput`.
//!
//! First, once per workload, it prints bytes on disk per record and the
//! writer thread's CPU per record for 2000 records (see `audit/workload.rs`):
//! `claude_code` (the load tool's ~100 KB Claude Code request, a unique final
//! message each) and `growing` (8 interleaved conversations growing 2 KB a
//! turn from 60 KB), each with a unique ~20 KB SSE answer. Then criterion
//! measures the writer's CPU time per committed record on the same
//! workloads (`iter_custom` returns the writer thread's CPU time, not wall
//! time). Benches measure; nothing here asserts a time.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use llm_gateway::audit::{
    AuditAttempt, AuditRecord, AuditStore, AuditStoreConfig, AuditUsage, Outcome,
};

/// The load tool's synthetic ~100 KB Claude Code request, shared rather than written twice.
#[allow(dead_code)] // only the varying Claude Code body is used here
#[path = "../examples/loadtest/body.rs"]
mod synthetic;

#[path = "audit/workload.rs"]
mod workload;

/// A streamed `messages` record, as the gateway writes one, around two bodies.
fn make_record(i: usize, request_body: Vec<u8>, response_body: String) -> AuditRecord {
    AuditRecord {
        client: Some("bench".into()),
        agent_type: Some("coder".into()),
        requested_model: Some("claude-sonnet-4-5".into()),
        served_model: Some("claude-sonnet-4-5-20250929".into()),
        provider: Some("anthropic".into()),
        attempts: vec![AuditAttempt {
            provider: "anthropic".into(),
            status: Some(200),
            error: None,
            latency_ms: 900,
        }],
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
        outcome: Outcome::Complete,
        request_body: Some(request_body.into()),
        response_body: Some(response_body.into()),
        ..AuditRecord::new(format!("req_{i:08}"), 1_700_000_000_000 + i as i64)
    }
}

type Workload = fn(usize) -> Box<dyn Iterator<Item = AuditRecord>>;

fn print_figures() {
    let workloads: [(&str, Workload); 2] = [
        ("claude_code", workload::claude_code),
        ("growing", workload::growing),
    ];
    for (name, records) in workloads {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let f = workload::measure(dir.path(), records(2000));
        eprintln!(
            "audit {name}: {} records, bodies {} B/record, on disk {} B/record, writer CPU {} µs/record, {:.0} records/s durable",
            f.records,
            f.body_bytes_per_record,
            f.disk_bytes_per_record,
            f.writer_cpu_per_record
                .map_or_else(|| "n/a".to_owned(), |d| format!("{:.0}", d.as_secs_f64() * 1e6)),
            f.durable_per_second,
        );
    }
}

fn writer_cpu(c: &mut Criterion) {
    print_figures();
    let mut group = c.benchmark_group("audit_writer_cpu_per_record");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let workloads: [(&str, Workload); 2] = [
        ("claude_code", workload::claude_code),
        ("growing", workload::growing),
    ];
    for (name, make) in workloads {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                // Fresh records and a fresh file each time; only the writer's CPU
                // is counted, not making the records or waiting for commits.
                let dir = tempfile::tempdir().expect("a temporary directory");
                let store = AuditStore::open(AuditStoreConfig::new(dir.path().join("a.db")))
                    .expect("the store opens");
                let before = workload::thread_cpu("audit-writer").unwrap_or_default();
                workload::feed(&store, make(iters as usize));
                let spent = workload::thread_cpu("audit-writer").unwrap_or_default() - before;
                drop(store);
                spent
            })
        });
    }
    group.finish();
}

criterion_group!(benches, writer_cpu);
criterion_main!(benches);
