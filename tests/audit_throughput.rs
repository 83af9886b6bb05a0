//! Write throughput and bytes per record for a record with a 100 KB request
//! body and a 20 KB response body. Prints; asserts only that all landed.
//!
//! `cargo test --test throughput -- --ignored --nocapture`

use std::time::Instant;

use llm_gateway::audit::{
    AuditAttempt, AuditReader, AuditRecord, AuditStore, AuditStoreConfig, AuditUsage,
};

fn big_record(i: usize) -> AuditRecord {
    let request_body = format!(
        "{{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
        "lorem ipsum dolor sit amet ".repeat(100_000 / 27)
    );
    let mut response_body = String::new();
    while response_body.len() < 20_000 {
        response_body.push_str(
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hello world \"}}\n\n",
        );
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
        request_body: Some(request_body),
        response_body: Some(response_body),
    }
}

#[test]
#[ignore = "prints a throughput figure; run on demand"]
fn throughput() {
    let n = 2000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let records: Vec<AuditRecord> = (0..n).map(big_record).collect();
    let body_bytes: usize = records.iter().map(AuditRecord::body_bytes).sum();

    let store = AuditStore::open(AuditStoreConfig::new(&path)).unwrap();
    let t0 = Instant::now();
    for r in records {
        store.submit(r);
    }
    let submit_time = t0.elapsed();
    store.flush().unwrap();
    let write_time = t0.elapsed();
    let stats = store.shutdown().unwrap();
    assert_eq!(stats.written as usize, n);

    let db = AuditReader::new(&path).stats().unwrap();
    let file = std::fs::metadata(&path).unwrap().len();
    println!(
        "audit throughput ({} build): {n} records, bodies {:.1} KB/record",
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
        "  durable: {:.0} records/s, {:.1} MB/s ({:?} to commit all)",
        n as f64 / write_time.as_secs_f64(),
        body_bytes as f64 / write_time.as_secs_f64() / 1e6,
        write_time
    );
    println!(
        "  on disk: {} bytes/record ({} bytes file / {} records; overhead {:.1}% over body bytes)",
        file / n as u64,
        file,
        db.records,
        (file as f64 / body_bytes as f64 - 1.0) * 100.0
    );
}
