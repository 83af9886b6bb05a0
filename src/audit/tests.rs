//! Tests of the store: writer, budget, retention and the read side together,
//! against real SQLite files; and of the record, the schema and the query
//! parsing on their own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use super::*;

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    super::time::now_ms()
}

/// The record fixture: a `messages` record, status 200, `complete`.
fn record(id: &str, ts: i64) -> AuditRecord {
    AuditRecord {
        latency_ms: 5,
        ..AuditRecord::new(id, ts)
    }
}

/// [`record`] with a JSON request body and an SSE response body of about
/// these sizes.
fn with_bodies(id: &str, ts: i64, req: usize, resp: usize) -> AuditRecord {
    AuditRecord {
        request_body: Some(format!("{{\"p\":\"{}\"}}", "q".repeat(req.saturating_sub(8))).into()),
        response_body: Some("event: x\ndata: {\"a\":1}\n\n".repeat(resp / 24 + 1).into()),
        ..record(id, ts)
    }
}

/// [`record`] with bodies (6 KB and 2 KB) that neither compress much nor
/// share chunks, different for each seed: what fills a file.
fn noisy(id: &str, seed: u64) -> AuditRecord {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed.wrapping_add(1);
    let mut text = |len: usize| -> String {
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ALPHABET[(x >> 58) as usize] as char
            })
            .collect()
    };
    AuditRecord {
        request_body: Some(text(6000).into()),
        response_body: Some(text(2000).into()),
        ..record(id, now_ms())
    }
}

/// [`record`] with every field set, bodies with quotes, escapes and non-ASCII.
fn full_record() -> AuditRecord {
    AuditRecord {
        client: Some("team-α".into()),
        team: Some("platform é".into()),
        session: Some("0b7e2a6c-1d3f".into()),
        agent_type: Some("reviewer".into()),
        requested_model: Some("claude-sonnet-4-5".into()),
        served_model: Some("gpt-4o-mini".into()),
        provider: Some("openai".into()),
        attempts: vec![
            AuditAttempt {
                provider: "anthropic".into(),
                status: Some(529),
                error: Some("overloaded_error: \"busy\"".into()),
                latency_ms: 41,
            },
            AuditAttempt {
                provider: "bedrock".into(),
                status: None,
                error: Some("connect timeout".into()),
                latency_ms: 3000,
            },
            AuditAttempt {
                provider: "openai".into(),
                status: Some(200),
                error: None,
                latency_ms: 812,
            },
        ],
        stream: true,
        ttft_ms: Some(311),
        latency_ms: 3_900,
        usage: AuditUsage {
            input_tokens: Some(1200),
            output_tokens: Some(340),
            cache_creation_input_tokens: Some(1000),
            cache_write_5m_tokens: Some(600),
            cache_write_1h_tokens: Some(400),
            cache_read_input_tokens: Some(0),
        },
        cost_usd: Some("0.012345678".into()),
        price_table_version: Some("2025-10-01".into()),
        outcome: Outcome::Incomplete,
        error: Some("upstream stream ended early".into()),
        request_body: Some(format!(
            "{{\"model\":\"claude-sonnet-4-5\",\"messages\":[{{\"role\":\"user\",\"content\":\"héllo \\\"quoted\\\" \\n {}\"}}]}}",
            "z".repeat(200_000)
        ).into()),
        response_body: Some(
            "event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: error\ndata: {\"x\":\"\u{1F600}\\u0000\"}\n\n"
                .into(),
        ),
        ..record("req_full", 1_700_000_000_123)
    }
}

fn config(dir: &tempfile::TempDir) -> AuditStoreConfig {
    AuditStoreConfig::new(dir.path().join("audit.db"))
}

fn count_rows(path: &std::path::Path) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row("SELECT count(*) FROM audit_records", [], |r| r.get(0))
        .unwrap()
}

fn all(reader: &AuditReader) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = reader.query_after(after, MAX_LIMIT).unwrap();
        let Some(last) = page.last() else { break };
        after = last.0;
        out.extend(page.into_iter().map(|(_, r)| r));
    }
    out
}

#[test]
fn full_record_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(config(&dir)).unwrap();
    let rec = full_record();
    store.submit(rec.clone());
    store.submit(record("other", 1));
    store.flush().unwrap();
    let q = AuditQuery {
        request_id: Some("req_full".into()),
        ..Default::default()
    };
    let got = store.reader().query(&q).unwrap();
    assert_eq!(got, vec![rec.clone()]);
    let stats = store.shutdown().unwrap();
    assert_eq!(stats.written, 2);
    assert_eq!(stats.queue_depth, 0);
    // And from a reader with no store running.
    let reader = AuditReader::new(dir.path().join("audit.db"));
    assert_eq!(reader.query(&q).unwrap(), vec![rec]);
}

#[test]
fn filters_limit_and_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(config(&dir)).unwrap();
    let base = 1_700_000_000_000;
    // Submitted in an order unrelated to their timestamps.
    for i in [7, 2, 9, 0, 5, 3, 8, 1, 6, 4, 10, 11] {
        let mut r = record(&format!("r{i}"), base + i * 1000);
        r.provider = Some(if i % 2 == 0 { "even" } else { "odd" }.into());
        r.requested_model = Some(format!("req-{}", i % 3));
        r.served_model = Some(if i % 4 == 0 {
            "req-1".into()
        } else {
            format!("srv-{i}")
        });
        store.submit(r);
    }
    store.flush().unwrap();
    let ids = |q: AuditQuery| -> Vec<String> {
        store
            .reader()
            .query(&q)
            .unwrap()
            .into_iter()
            .map(|r| r.request_id)
            .collect()
    };

    let newest: Vec<String> = (0..12).rev().map(|i| format!("r{i}")).collect();
    assert_eq!(ids(AuditQuery::default()), newest);
    assert_eq!(
        ids(AuditQuery {
            limit: Some(3),
            ..Default::default()
        }),
        ["r11", "r10", "r9"]
    );
    assert!(ids(AuditQuery {
        limit: Some(0),
        ..Default::default()
    })
    .is_empty());
    assert_eq!(
        ids(AuditQuery {
            limit: Some(1_000_000),
            ..Default::default()
        })
        .len(),
        12
    );
    assert_eq!(
        ids(AuditQuery {
            request_id: Some("r5".into()),
            ..Default::default()
        }),
        ["r5"]
    );
    assert_eq!(
        ids(AuditQuery {
            provider: Some("odd".into()),
            limit: Some(2),
            ..Default::default()
        }),
        ["r11", "r9"]
    );
    // `model` matches requested (i % 3 == 1) or served (i % 4 == 0).
    assert_eq!(
        ids(AuditQuery {
            model: Some("req-1".into()),
            ..Default::default()
        }),
        ["r10", "r8", "r7", "r4", "r1", "r0"]
    );
    assert_eq!(
        ids(AuditQuery {
            model: Some("srv-9".into()),
            ..Default::default()
        }),
        ["r9"]
    );
    // `since` as unix ms and as RFC 3339 (base = 2023-11-14T22:13:20Z).
    assert_eq!(
        ids(AuditQuery {
            since: Some((base + 9000).to_string()),
            ..Default::default()
        }),
        ["r11", "r10", "r9"]
    );
    assert_eq!(
        ids(AuditQuery {
            since: Some("2023-11-14T22:13:29Z".into()),
            ..Default::default()
        }),
        ["r11", "r10", "r9"]
    );
    assert_eq!(
        ids(AuditQuery {
            since: Some("2023-11-15T00:13:29.001+02:00".into()),
            ..Default::default()
        }),
        ["r11", "r10"]
    );
    // Combined filters are ANDed; empty strings are ignored.
    assert_eq!(
        ids(AuditQuery {
            provider: Some("even".into()),
            model: Some("req-1".into()),
            since: Some((base + 4000).to_string()),
            request_id: Some(String::new()),
            ..Default::default()
        }),
        ["r10", "r8", "r4"]
    );
    assert!(ids(AuditQuery {
        provider: Some("nobody".into()),
        ..Default::default()
    })
    .is_empty());
    // A bad `since` is an error, not a panic or an empty answer.
    let bad = AuditQuery {
        since: Some("last tuesday".into()),
        ..Default::default()
    };
    assert!(matches!(
        store.reader().query(&bad),
        Err(AuditError::InvalidQuery(_))
    ));
}

#[test]
fn query_after_is_oldest_first_by_seq_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(config(&dir)).unwrap();
    // Decreasing timestamps: seq order must win, not time order.
    for i in 0..10 {
        store.submit(record(&format!("f{i}"), 1_000_000 - i));
    }
    store.flush().unwrap();
    let got = store.reader().query_after(0, 100).unwrap();
    let seqs: Vec<i64> = got.iter().map(|(s, _)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let ids: Vec<&str> = got.iter().map(|(_, r)| r.request_id.as_str()).collect();
    assert_eq!(ids, (0..10).map(|i| format!("f{i}")).collect::<Vec<_>>());

    // Paging with the last seq seen returns each record exactly once.
    let mut after = 0;
    let mut paged = Vec::new();
    loop {
        let page = store.reader().query_after(after, 3).unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = last.0;
        paged.extend(page.into_iter().map(|(_, r)| r.request_id));
    }
    assert_eq!(paged, ids);
    assert!(store.reader().query_after(after, 10).unwrap().is_empty());
    assert!(store.reader().query_after(0, 0).unwrap().is_empty());

    // A follower sees only what came after.
    store.submit(record("late", 0));
    store.flush().unwrap();
    let tail = store.reader().query_after(after, 10).unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].1.request_id, "late");
    assert!(tail[0].0 > after);
    assert_eq!(store.reader().stats().unwrap().max_seq, tail[0].0);

    // query_with_seq pairs the newest-first order with seqs.
    let recent = store
        .reader()
        .query_with_seq(&AuditQuery {
            limit: Some(2),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(recent[0].1.request_id, "f0");
    assert_eq!(recent[0].0, seqs[0]);
}

#[test]
fn two_thousand_quick_records_all_land_after_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(config(&dir)).unwrap();
    let t0 = now_ms();
    for i in 0..2000 {
        store.submit(with_bodies(&format!("q{i}"), t0 + i, 300, 200));
    }
    let stats = store.shutdown().unwrap();
    assert_eq!(stats.written, 2000);
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.bodies_shed, 0);
    assert_eq!(stats.queue_depth, 0);
    assert_eq!(stats.queued_bytes, 0);
    assert_eq!(count_rows(&dir.path().join("audit.db")), 2000);
    let rows = all(&AuditReader::new(dir.path().join("audit.db")));
    let mut ids: Vec<String> = rows.into_iter().map(|r| r.request_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2000);
}

#[test]
fn records_are_committed_by_the_batch_timer_without_shutdown() {
    // Default settings: 200 ms flush interval, 256-record batches. 300 records
    // are one full batch and 44 that only the timer commits: that timer is what
    // makes a record durable within a second (a fixed wait here would test the
    // machine's load, not the store).
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(config(&dir)).unwrap();
    let n = 300;
    for i in 0..n {
        store.submit(with_bodies(&format!("d{i}"), now_ms(), 1000, 1000));
    }
    // No flush is asked for. The writer counts a record written after its
    // commit returned. Hang guard only.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while store.stats().written < n as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the timer never committed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A brand-new connection sees every record while the store still runs:
    // what `kill -9` would leave behind.
    assert_eq!(count_rows(&dir.path().join("audit.db")), n);
    assert_eq!(store.stats().queue_depth, 0);
    // One more, alone: committed by the timer, not by a full batch.
    store.submit(record("single", now_ms()));
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(count_rows(&dir.path().join("audit.db")), n + 1);
    drop(store);
}

/// Hold SQLite's write lock from another connection, which stalls the
/// writer exactly as a slow or stuck disk would.
fn lock_db(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

#[test]
fn an_exhausted_budget_sheds_bodies_then_drops_and_counts_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    // About seven whole records (1 KiB + ~1 KB of bodies each), then one shed.
    let store = AuditStore::open(AuditStoreConfig {
        queue_max_bytes: 16_000,
        batch_max: 8,
        flush_interval: Duration::from_millis(20),
        ..AuditStoreConfig::new(&path)
    })
    .unwrap();
    let lock = lock_db(&path);

    let submitted = 50;
    // The writer is stuck on a lock this test holds until much later: a `submit` that
    // waited on it could never return. Returning at all proves it does not block (the
    // receive below is only a guard against hanging the suite).
    let store = std::sync::Arc::new(store);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let submitter = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..submitted {
                store.submit(with_bodies(&format!("o{i}"), now_ms(), 500, 500));
            }
            let _ = done_tx.send(());
        })
    };
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("submit never returned while the writer was stuck");
    submitter.join().unwrap();
    let store = std::sync::Arc::try_unwrap(store).unwrap_or_else(|_| panic!("one owner"));
    // Give the writer time to pull what it can and hit the lock.
    std::thread::sleep(Duration::from_millis(300));
    let mid = store.stats();
    assert!(mid.bodies_shed > 0, "{mid:?}");
    assert!(mid.dropped > 0, "{mid:?}");
    assert_eq!(mid.written, 0);
    assert_eq!(mid.queue_depth as u64 + mid.dropped, submitted);
    assert!(mid.queued_bytes <= 16_000, "{mid:?}");
    assert!(store.last_error().is_some_and(|e| e.contains("budget")));

    // Keep the lock past the writer's busy timeout: its commit fails and is
    // retried, nothing is lost in the meantime.
    std::thread::sleep(Duration::from_millis(1200));
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let end = store.shutdown().unwrap();

    assert_eq!(end.queue_depth, 0);
    assert_eq!(end.dropped, mid.dropped, "drops happen only at submit here");
    assert_eq!(end.written + end.dropped, submitted);
    assert_eq!(end.queued_bytes, 0);
    assert_eq!(count_rows(&path) as u64, end.written);
    let rows = all(&AuditReader::new(&path));
    let shed = rows
        .iter()
        .filter(|r| {
            r.request_body.as_deref() == Some(BODY_SHED_MARKER.as_bytes())
                && r.response_body.as_deref() == Some(BODY_SHED_MARKER.as_bytes())
        })
        .count() as u64;
    assert_eq!(shed, end.bodies_shed);
    let intact = rows
        .iter()
        .filter(|r| r.request_body.as_ref().is_some_and(|b| b.len() == 500))
        .count() as u64;
    assert_eq!(intact, end.written - end.bodies_shed);
}

#[test]
fn shutdown_with_a_dead_disk_is_bounded_and_counts_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = AuditStore::open(AuditStoreConfig {
        queue_capacity: 4,
        batch_max: 8,
        flush_interval: Duration::from_millis(20),
        ..AuditStoreConfig::new(&path)
    })
    .unwrap();
    let lock = lock_db(&path);
    for i in 0..20 {
        store.submit(with_bodies(&format!("x{i}"), i, 100, 100));
    }
    // Let the writer fill its batch and start failing.
    std::thread::sleep(Duration::from_millis(1300));
    assert!(store.stats().write_errors > 0);
    // Shutdown gives up on a disk that never recovers (it would otherwise never return),
    // counts what it could not write, and says so: it is not a success.
    let shared = store.shared_for_tests();
    let error = store.shutdown().unwrap_err().to_string();
    assert!(
        error.contains("audit records could not be written"),
        "{error}"
    );
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(shared.written.load(Relaxed), 0);
    assert_eq!(shared.dropped.load(Relaxed), 20);
    assert_eq!(shared.queue_depth.load(Relaxed), 0);
    assert_eq!(shared.queued_bytes.load(Relaxed), 0);
    lock.execute_batch("ROLLBACK").unwrap();
    assert_eq!(count_rows(&path), 0);
}

#[test]
fn flush_reports_failing_writes_and_the_records_land_once_the_disk_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = AuditStore::open(AuditStoreConfig {
        flush_interval: Duration::from_millis(20),
        ..AuditStoreConfig::new(&path)
    })
    .unwrap();
    let lock = lock_db(&path);
    for i in 0..20 {
        store.submit(record(&format!("f{i}"), i));
    }
    // The commit waits out the writer's busy timeout, then fails: flush must say so.
    let error = store.flush().unwrap_err().to_string();
    assert!(error.contains("locked"), "{error}");
    let stats = store.stats();
    assert!(stats.failing, "{stats:?}");
    assert!(stats.write_errors > 0, "{stats:?}");
    assert_eq!(stats.written, 0);
    assert_eq!(
        stats.queue_depth, 20,
        "the failed batch is kept, not dropped"
    );
    assert!(store.last_error().is_some_and(|e| e.contains("locked")));
    // While failing, a flush does not wait for the disk.
    let error = store.flush().unwrap_err().to_string();
    assert!(
        error.contains("not written") || error.contains("locked"),
        "{error}"
    );

    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.flush().is_err() {
        assert!(std::time::Instant::now() < deadline, "never recovered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = store.stats();
    assert!(!stats.failing, "{stats:?}");
    assert_eq!((stats.written, stats.dropped), (20, 0));
    store.shutdown().unwrap();
    assert_eq!(count_rows(&path), 20);
}

#[test]
fn a_deleted_database_file_is_recreated_and_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = AuditStore::open(AuditStoreConfig {
        flush_interval: Duration::from_millis(20),
        ..config(&dir)
    })
    .unwrap();
    store.submit(with_bodies("before", 1, 40_000, 100));
    store.flush().unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    // A large body is chunked: its chunks must go to the new file, not the old one.
    store.submit(with_bodies("after", 2, 40_000, 100));
    store.flush().unwrap();
    assert_eq!(store.stats().reopened, 1);
    let rows = all(&AuditReader::new(&path));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].request_id, "after");
    assert_eq!(rows[0].request_body.as_ref().map(|b| b.len()), Some(40_000));
    store.shutdown().unwrap();
    assert_eq!(count_rows(&path), 1);
}

#[test]
fn pages_are_bounded_by_bytes_and_a_cursor_walks_them_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(config(&dir)).unwrap();
    // Two records per timestamp, so the cursor's tie-break on seq matters.
    for i in 0..30 {
        store.submit(with_bodies(&format!("p{i:02}"), i / 2, 100_000, 1000));
    }
    store.flush().unwrap();
    let reader = store.reader().clone();

    // A listing carries no bodies unless asked.
    let page = reader.page(&AuditQuery::default()).unwrap();
    assert!(!page.bodies);
    assert_eq!(page.records.len(), 30);
    assert!(page.next_cursor.is_none());
    assert!(page.records.iter().all(|r| r.request_body.is_none()));
    // One record by id carries them.
    let one = reader
        .page(&AuditQuery {
            request_id: Some("p07".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(one.bodies);
    assert_eq!(
        one.records[0].request_body.as_ref().map(|b| b.len()),
        Some(100_000)
    );

    // With bodies, a 350 KB budget holds three ~101 KB records; walk every page,
    // inserting newer records meanwhile: they must not shift the pages.
    let mut seen = Vec::new();
    let mut cursor = None;
    for step in 0..100 {
        let page = reader
            .page_within(
                &AuditQuery {
                    bodies: Some(true),
                    cursor: cursor.clone(),
                    ..Default::default()
                },
                350_000,
            )
            .unwrap();
        assert!(page.records.len() <= 3, "{}", page.records.len());
        let bytes: usize = page
            .records
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap().len())
            .sum();
        assert!(bytes <= 350_000, "{bytes}");
        seen.extend(page.records.iter().map(|r| r.request_id.clone()));
        store.submit(with_bodies(&format!("new{step}"), 1_000 + step, 10, 10));
        store.flush().unwrap();
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let want: Vec<String> = (0..30).rev().map(|i| format!("p{i:02}")).collect();
    assert_eq!(seen, want, "every record once, newest first");

    // `limit` also ends a page with a cursor; a bad cursor is refused.
    let page = reader
        .page(&AuditQuery {
            limit: Some(4),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.records.len(), 4);
    assert!(page.next_cursor.is_some());
    let bad = reader.page(&AuditQuery {
        cursor: Some("x".into()),
        ..Default::default()
    });
    assert!(matches!(bad, Err(AuditError::InvalidQuery(_))));
}

#[test]
fn body_budget_sheds_bodies_but_keeps_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = AuditStore::open(AuditStoreConfig {
        queue_max_bytes: 16_000,
        ..AuditStoreConfig::new(&path)
    })
    .unwrap();
    let lock = lock_db(&path);
    for i in 0..5 {
        // 1 KiB + ~10 KB each: only the first fits whole, the rest without bodies.
        store.submit(with_bodies(&format!("b{i}"), i, 5000, 4800));
    }
    let mid = store.stats();
    assert_eq!(mid.bodies_shed, 4, "{mid:?}");
    assert_eq!(mid.dropped, 0);
    assert!(mid.queued_bytes <= 16_000);
    drop(lock);
    let end = store.shutdown().unwrap();
    assert_eq!(end.written, 5);
    assert_eq!(end.dropped, 0);
    assert_eq!(end.queued_bytes, 0);
    let rows = all(&AuditReader::new(&path));
    assert_eq!(
        rows[0].request_body.as_ref().map(bytes::Bytes::len),
        Some(5000)
    );
    for r in &rows[1..] {
        assert_eq!(r.request_body.as_deref(), Some(BODY_SHED_MARKER.as_bytes()));
        assert_eq!(r.status, 200, "the rest of the record is kept");
    }
}

#[test]
fn retention_prunes_old_records_and_shrinks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let now = now_ms();
    {
        let store = AuditStore::open(AuditStoreConfig::new(&path)).unwrap();
        for i in 0..300 {
            store.submit(with_bodies(
                &format!("old{i}"),
                now - 30 * DAY_MS + i,
                8000,
                2000,
            ));
        }
        for i in 0..20 {
            store.submit(with_bodies(&format!("new{i}"), now - i, 8000, 2000));
        }
        assert_eq!(store.shutdown().unwrap().written, 320);
    }
    let before = AuditReader::new(&path).stats().unwrap();
    let size_before = std::fs::metadata(&path).unwrap().len();
    assert_eq!(before.records, 320);

    let store = AuditStore::open(AuditStoreConfig {
        retention_days: Some(7),
        ..AuditStoreConfig::new(&path)
    })
    .unwrap();
    store.prune().unwrap();
    let after = store.reader().stats().unwrap();
    assert_eq!(after.records, 20);
    assert_eq!(after.freelist_count, 0);
    // What the records take, beyond the pages of an empty file (one root page per
    // table and index).
    let empty_dir = tempfile::tempdir().unwrap();
    let empty_path = empty_dir.path().join("audit.db");
    AuditStore::open(AuditStoreConfig::new(&empty_path))
        .unwrap()
        .shutdown()
        .unwrap();
    let empty = AuditReader::new(&empty_path).stats().unwrap();
    let empty_size = std::fs::metadata(&empty_path).unwrap().len();
    assert!(
        (after.page_count - empty.page_count) * 5 < before.page_count - empty.page_count,
        "pages {} -> {} (empty: {})",
        before.page_count,
        after.page_count,
        empty.page_count
    );
    let left = store
        .reader()
        .query(&AuditQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap();
    assert!(left.iter().all(|r| r.request_id.starts_with("new")));
    // The file on disk shrank too, not just the page accounting.
    let size_after = std::fs::metadata(&path).unwrap().len();
    assert!(
        (size_after - empty_size) * 5 < size_before - empty_size,
        "{size_before} -> {size_after} (empty: {empty_size})"
    );
    let end = store.shutdown().unwrap();
    assert_eq!(end.pruned, 300);
}

#[test]
fn max_bytes_caps_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let max: u64 = 512 * 1024;
    let store = AuditStore::open(AuditStoreConfig {
        max_bytes: Some(max),
        ..AuditStoreConfig::new(&path)
    })
    .unwrap();
    for round in 0..4 {
        for i in 0..100 {
            store.submit(noisy(&format!("m{round}-{i}"), round * 1000 + i));
        }
        store.flush().unwrap();
        store.prune().unwrap();
        let s = store.reader().stats().unwrap();
        assert!(
            s.file_bytes() <= max,
            "round {round}: {} > {max}",
            s.file_bytes()
        );
    }
    let newest = store.reader().query(&AuditQuery::default()).unwrap();
    assert!(newest.iter().any(|r| r.request_id == "m3-99"));
    drop(store);
}

#[test]
fn max_bytes_holds_between_periodic_prunes() {
    // The periodic run is an hour away: only the check after each commit can
    // bring the file back under the cap.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let max: u64 = 512 * 1024;
    let store = AuditStore::open(AuditStoreConfig {
        max_bytes: Some(max),
        prune_interval: Duration::from_secs(3600),
        ..AuditStoreConfig::new(&path)
    })
    .unwrap();
    for i in 0..400 {
        store.submit(noisy(&format!("c{i}"), i));
    }
    // Hang guard only: the writer commits on its own clock, then prunes.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let written = store.stats().written;
        let file = store.reader().stats().unwrap().file_bytes();
        if written == 400 && file <= max {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{written} of 400 written; the file stayed over its cap: {file} > {max}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let newest = store.reader().query(&AuditQuery::default()).unwrap();
    assert!(newest.iter().any(|r| r.request_id == "c399"));
    let end = store.shutdown().unwrap();
    assert!(end.pruned > 0, "it pruned without being asked");
}

#[test]
fn store_adds_nothing_to_what_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let secret = "sk-ant-api03-NOT-A-REAL-KEY-4f9c2e";
    let store = AuditStore::open(AuditStoreConfig::new(&path)).unwrap();
    let mut with_secret = record("has-secret", 1);
    with_secret.request_body = Some(format!("{{\"note\":\"{secret}\"}}").into());
    store.submit(with_secret);
    let mut plain = record("plain", 2);
    plain.client = Some("team-a".into());
    store.submit(plain.clone());
    store.shutdown().unwrap();

    // The body is stored once, in its chunk, not also inside the JSON.
    let bytes = std::fs::read(&path).unwrap();
    let hits = bytes
        .windows(secret.len())
        .filter(|w| *w == secret.as_bytes())
        .count();
    assert!(hits <= 1, "{hits}");
    // A record without bodies comes back exactly as given: no added fields.
    let conn = Connection::open(&path).unwrap();
    let (json, req, resp): (String, Option<Vec<u8>>, Option<Vec<u8>>) = conn
        .query_row(
            "SELECT record_json, request_body, response_body FROM audit_records WHERE request_id = 'plain'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(json, serde_json::to_string(&plain).unwrap());
    assert!(req.is_none() && resp.is_none());
    assert!(!json.contains(secret));
}

#[test]
fn readers_run_while_the_writer_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = AuditStore::open(AuditStoreConfig {
        flush_interval: Duration::from_millis(5),
        batch_max: 16,
        ..AuditStoreConfig::new(&path)
    })
    .unwrap();
    let reader = store.reader().clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = Arc::clone(&done);
    let poller = std::thread::spawn(move || {
        let mut seen = 0;
        let mut polls = 0;
        while !done2.load(std::sync::atomic::Ordering::Relaxed) {
            let page = reader.query_after(seen, 1000).unwrap();
            if let Some(last) = page.last() {
                seen = last.0;
            }
            reader.query(&AuditQuery::default()).unwrap();
            polls += 1;
        }
        polls
    });
    for i in 0..500 {
        store.submit(with_bodies(&format!("c{i}"), now_ms(), 2000, 500));
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    store.flush().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let polls = poller.join().unwrap();
    assert!(polls > 0);
    assert_eq!(store.shutdown().unwrap().written, 500);
}

#[test]
fn sinks_closure_unit_arc_and_drop_flushes() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let closure = move |r: AuditRecord| seen2.lock().unwrap().push(r.request_id);
    let sinks: Vec<Box<dyn AuditSink>> = vec![Box::new(closure), Box::new(())];
    for s in &sinks {
        s.submit(record("s1", 1));
    }
    assert_eq!(*seen.lock().unwrap(), ["s1"]);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store: Arc<dyn AuditSink> =
        Arc::new(AuditStore::open(AuditStoreConfig::new(&path)).unwrap());
    let shared = Arc::clone(&store);
    std::thread::spawn(move || shared.submit(record("from-thread", 2)))
        .join()
        .unwrap();
    store.submit(record("from-main", 3));
    // Dropping the last handle flushes and joins the writer.
    drop(store);
    assert_eq!(count_rows(&path), 2);
}

#[test]
fn counters_balance_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(config(&dir)).unwrap();
    for i in 0..100 {
        store.submit(record(&format!("k{i}"), i));
    }
    let s = store.stats();
    assert_eq!(s.written + s.dropped + s.queue_depth as u64, 100);
    store.flush().unwrap();
    let s = store.stats();
    assert_eq!((s.written, s.queue_depth, s.dropped), (100, 0, 0));
    assert!(store.last_error().is_none());
    assert!(format!("{store:?}").contains("audit.db"));
}

// === chunk dedup, bytes, schema ===

/// Text with natural variety (so chunk boundaries fall where real text puts
/// them), different for each seed.
pub(crate) fn prose(seed: u64, len: usize) -> String {
    const WORDS: [&str; 12] = [
        "alpha", "tool", "returns", "file", "with", "lines", "of", "code", "and", "tests", "fn",
        "main",
    ];
    let mut x = seed;
    let mut s = String::with_capacity(len + 8);
    while s.len() < len {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        s.push_str(WORDS[(x >> 59) as usize % WORDS.len()]);
        s.push(' ');
    }
    s.truncate(len);
    s
}

fn scalar(path: &std::path::Path, sql: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

fn used_bytes(path: &std::path::Path) -> u64 {
    let conn = Connection::open(path).unwrap();
    super::schema::used_bytes(&conn).unwrap()
}

#[test]
fn shared_prefix_is_stored_once_and_reads_back_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = AuditStore::open(AuditStoreConfig::new(&path)).unwrap();
    let prefix = prose(1, 90_000);
    let first = format!("{prefix}{}", prose(2, 6_000));
    let second = format!("{prefix}{}", prose(3, 9_000));

    let mut a = record("a", 1);
    a.request_body = Some(first.clone().into());
    store.submit(a);
    store.flush().unwrap();
    let chunks_after_first = scalar(&path, "SELECT count(*) FROM audit_chunks");
    let bytes_after_first = scalar(&path, "SELECT sum(length(data)) FROM audit_chunks");
    let used_after_first = used_bytes(&path);
    assert!(chunks_after_first >= 6, "{chunks_after_first} chunks");
    assert!(
        (bytes_after_first as usize) < first.len() / 2,
        "chunks are compressed: {bytes_after_first} bytes for a {} byte body",
        first.len()
    );

    let mut b = record("b", 2);
    b.request_body = Some(second.clone().into());
    store.submit(b);
    store.flush().unwrap();
    let new_chunks = scalar(&path, "SELECT count(*) FROM audit_chunks") - chunks_after_first;
    let grown = used_bytes(&path) - used_after_first;
    // The second body adds its tail plus the chunk the edit falls in, not its 99 KB.
    let most = (9_000 / super::chunks::MIN_CHUNK + 2) as i64;
    assert!(new_chunks <= most, "{new_chunks} new chunks");
    assert!(
        grown < second.len() as u64 / 3,
        "file grew by {grown} bytes for a {} byte body",
        second.len()
    );
    // The shared chunks are listed by both rows, stored once.
    let listed = scalar(
        &path,
        "SELECT sum(length(request_body)) / 8 FROM audit_records",
    );
    let stored = scalar(&path, "SELECT count(*) FROM audit_chunks");
    assert!(listed - stored >= 5, "{listed} listed, {stored} stored");

    let rows = all(&AuditReader::new(&path));
    assert_eq!(rows[0].request_body.as_deref(), Some(first.as_bytes()));
    assert_eq!(rows[1].request_body.as_deref(), Some(second.as_bytes()));
    let newest = store.reader().query(&AuditQuery::default()).unwrap();
    assert_eq!(newest[0].request_body.as_deref(), Some(second.as_bytes()));
    drop(store);
}

#[test]
fn invalid_utf8_bodies_keep_their_bytes_and_read_as_replacement_characters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = AuditStore::open(AuditStoreConfig::new(&path)).unwrap();
    let mut big = prose(9, 40_000).into_bytes();
    big[100] = 0xff;
    big[30_000] = 0xc3; // a lead byte with no continuation
    let small = b"{\"x\":\"\xe2\x82\"} \xff".to_vec();
    let mut r = record("bad-utf8", 1);
    r.request_body = Some(big.clone().into());
    r.response_body = Some(small.clone().into());
    store.submit(r);
    store.shutdown().unwrap();

    let rows = all(&AuditReader::new(&path));
    assert_eq!(
        rows[0].request_body.as_deref(),
        Some(&big[..]),
        "chunked, exact"
    );
    assert_eq!(
        rows[0].response_body.as_deref(),
        Some(&small[..]),
        "inline, exact"
    );
    let json = serde_json::to_value(&rows[0]).unwrap();
    let text = json["request_body"].as_str().unwrap();
    assert_eq!(text.matches('\u{FFFD}').count(), 2);
    assert!(json["response_body"]
        .as_str()
        .unwrap()
        .ends_with(" \u{FFFD}"));
}

#[test]
fn retention_frees_every_chunk_with_the_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let prefix = prose(7, 80_000);
    {
        let store = AuditStore::open(config(&dir)).unwrap();
        for i in 0..20 {
            let mut r = record(&format!("old{i}"), now_ms() - 40 * DAY_MS + i);
            r.request_body = Some(format!("{prefix}{}", prose(100 + i as u64, 5_000)).into());
            r.response_body = Some(prose(200 + i as u64, 20_000).into());
            store.submit(r);
        }
        store.shutdown().unwrap();
    }
    assert!(scalar(&path, "SELECT count(*) FROM audit_chunks") > 10);
    let pages_full = scalar(&path, "PRAGMA page_count");
    let store = AuditStore::open(AuditStoreConfig {
        retention_days: Some(30),
        ..config(&dir)
    })
    .unwrap();
    store.prune().unwrap();
    let stats = store.shutdown().unwrap();
    assert_eq!(stats.pruned, 20);
    assert_eq!(count_rows(&path), 0);
    assert_eq!(scalar(&path, "SELECT count(*) FROM audit_chunks"), 0);
    assert_eq!(scalar(&path, "PRAGMA freelist_count"), 0, "space reclaimed");
    let pages_empty = scalar(&path, "PRAGMA page_count");
    drop(AuditStore::open(AuditStoreConfig::new(dir.path().join("fresh.db"))).unwrap());
    let pages_fresh = scalar(&dir.path().join("fresh.db"), "PRAGMA page_count");
    assert!(
        pages_empty <= pages_fresh + 1 && pages_fresh < pages_full,
        "pages {pages_full} -> {pages_empty} (a fresh file: {pages_fresh})"
    );
}

#[test]
fn pruning_some_records_keeps_chunks_the_rest_still_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let prefix = prose(8, 60_000);
    let body = |i: u64| format!("{prefix}{}", prose(i, 3_000));
    let store = AuditStore::open(AuditStoreConfig {
        retention_days: Some(30),
        ..config(&dir)
    })
    .unwrap();
    for i in 0..6 {
        let age = if i < 3 { 40 * DAY_MS } else { 0 };
        let mut r = record(&format!("r{i}"), now_ms() - age + i as i64);
        r.request_body = Some(body(i).into());
        store.submit(r);
    }
    store.flush().unwrap();
    store.prune().unwrap();
    store.shutdown().unwrap();
    let rows = all(&AuditReader::new(&path));
    assert_eq!(rows.len(), 3);
    for (r, i) in rows.iter().zip(3..) {
        assert_eq!(r.request_body.as_deref(), Some(body(i).as_bytes()));
    }
    // Every chunk left is listed by a remaining row (and they were swept:
    // the old rows' own tails are gone).
    let conn = Connection::open(&path).unwrap();
    let mut listed = std::collections::HashSet::new();
    let mut stmt = conn
        .prepare("SELECT request_body FROM audit_records")
        .unwrap();
    for list in stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap() {
        listed.extend(super::schema::decode_chunk_list(&list.unwrap()).collect::<Vec<_>>());
    }
    assert_eq!(
        scalar(&path, "SELECT count(*) FROM audit_chunks") as usize,
        listed.len()
    );
}

#[test]
fn growing_conversations_read_back_exact() {
    // Several conversations interleaved, each turn the previous body plus a
    // new exchange: every body exact.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = AuditStore::open(config(&dir)).unwrap();
    let tools = prose(60, 30_000);
    let mut convs: Vec<String> = (0..4)
        .map(|c| {
            format!(
                "{{\"system\":\"{tools}\",\"messages\":[\"{}\"",
                prose(61 + c, 2_000)
            )
        })
        .collect();
    let mut expected = Vec::new();
    for turn in 0..12u64 {
        for (c, conv) in convs.iter_mut().enumerate() {
            let body = format!("{conv}]}}");
            let mut r = record(&format!("c{c}t{turn}"), 1_000 + turn as i64);
            r.request_body = Some(body.clone().into());
            r.response_body = Some(prose(1_000 + turn * 10 + c as u64, 20_000).into());
            store.submit(r);
            expected.push(body);
            conv.push_str(&format!(
                ",\"{}\"",
                prose(2_000 + turn * 10 + c as u64, 2_000)
            ));
        }
        if turn % 4 == 3 {
            store.flush().unwrap();
        }
    }
    store.shutdown().unwrap();
    let rows = all(&AuditReader::new(&path));
    assert_eq!(rows.len(), expected.len());
    for (row, body) in rows.iter().zip(&expected) {
        assert_eq!(
            row.request_body.as_deref(),
            Some(body.as_bytes()),
            "{}",
            row.request_id
        );
    }
}

// === the record, the schema, errors ===

#[test]
fn record_json_uses_the_documented_keys_enums_and_rfc3339() {
    let mut r = full_record();
    r.cost_usd = None;
    let v = serde_json::to_value(&r).unwrap();
    for key in [
        "request_id",
        "timestamp",
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
    assert_eq!(v["timestamp"], "2023-11-14T22:13:20.123Z");
    assert_eq!(v["endpoint"], "messages");
    assert_eq!(v["outcome"], "incomplete");
    assert!(v["cost_usd"].is_null());
    assert_eq!(v["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(v["attempts"][0]["status"], 529);
    let back: AuditRecord = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.timestamp_ms(), Some(1_700_000_000_123));
    for (endpoint, text) in [
        (Endpoint::CountTokens, "count_tokens"),
        (Endpoint::Models, "models"),
    ] {
        assert_eq!(serde_json::to_value(endpoint).unwrap(), text);
    }
    for (outcome, text) in [
        (Outcome::Complete, "complete"),
        (Outcome::Error, "error"),
        (Outcome::ClientDisconnected, "client_disconnected"),
    ] {
        assert_eq!(serde_json::to_value(outcome).unwrap(), text);
    }
    assert!(serde_json::to_value(AuditRecord::default()).unwrap()["endpoint"].is_null());
}

#[test]
fn invalid_utf8_bodies_serialize_with_replacement_characters() {
    let mut r = record("u", 0);
    r.request_body = Some(bytes::Bytes::from_static(b"ok \xff\xfe end"));
    r.response_body = Some(bytes::Bytes::from_static(b"\xe2\x82"));
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["request_body"], "ok \u{FFFD}\u{FFFD} end");
    assert_eq!(v["response_body"], "\u{FFFD}");
    assert_eq!(r.request_body_text().unwrap(), "ok \u{FFFD}\u{FFFD} end");
    assert_eq!(r.body_bytes(), 9 + 2);
}

#[test]
fn a_resubmitted_record_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = AuditStore::open(config(&dir)).unwrap();
    let first = with_bodies("same", 1, 100, 100);
    store.submit(first.clone());
    store.flush().unwrap();
    // Again, in a later batch and in the same batch: the first one stays.
    let mut again = first.clone();
    again.status = 500;
    store.submit(again.clone());
    store.submit(again);
    store.submit(record("other", 2));
    let stats = store.shutdown().unwrap();
    assert_eq!((stats.written, stats.dropped), (4, 0));
    let rows = all(&AuditReader::new(&path));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0], first);
}

#[test]
fn a_file_of_another_schema_is_refused_by_name_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    {
        // What an older gateway left: version 2, inline bodies.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE audit_records (seq INTEGER PRIMARY KEY, request_id TEXT, \
             record_json TEXT, request_body TEXT); \
             INSERT INTO audit_records VALUES (1, 'old', '{}', 'body'); \
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    for error in [
        AuditStore::open(config(&dir)).unwrap_err(),
        AuditReader::new(&path).stats().unwrap_err(),
    ] {
        assert!(
            matches!(error, AuditError::WrongSchema { found: 2, .. }),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("move it aside"), "{text}");
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file is untouched"
    );
    // Another program's database (tables, version 0) is refused the same way.
    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t(x)")
        .unwrap();
    assert!(matches!(
        AuditStore::open(AuditStoreConfig::new(&other)),
        Err(AuditError::WrongSchema { found: 0, .. })
    ));
}

#[test]
fn a_fresh_file_gets_wal_full_sync_incremental_vacuum_and_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/audit.db");
    let conn = super::schema::open_writer(&path).unwrap();
    let pragma = |name: &str| -> String {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .unwrap()
    };
    assert_eq!(pragma("auto_vacuum"), "2", "INCREMENTAL");
    assert_eq!(pragma("journal_mode"), "wal");
    assert_eq!(pragma("synchronous"), "2", "FULL");
    assert_eq!(
        pragma("user_version"),
        super::schema::SCHEMA_VERSION.to_string()
    );
    drop(conn);
    // Opening again is idempotent.
    super::schema::open_writer(&path).unwrap();
}

#[cfg(unix)]
#[test]
fn audit_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = AuditStore::open(config(&dir)).unwrap();
    store.submit(record("a", 1));
    store.flush().unwrap();
    for name in ["audit.db", "audit.db-wal", "audit.db-shm"] {
        assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
    }
    drop(store);
    // A file left readable by others is narrowed.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = AuditStore::open(config(&dir)).unwrap();
    assert_eq!(mode(&path), 0o600);
    drop(store);
}

#[test]
fn reader_never_creates_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.db");
    assert!(matches!(
        AuditReader::new(&path).stats(),
        Err(AuditError::Missing(_))
    ));
    assert!(!path.exists());
}

#[test]
fn errors_display_and_source() {
    use std::error::Error as _;
    let e = AuditError::InvalidQuery("since: bad".into());
    assert_eq!(e.to_string(), "audit query: since: bad");
    assert!(e.source().is_none());
    let e: AuditError = std::io::Error::other("boom").into();
    assert!(e.to_string().contains("boom"));
    assert!(e.source().is_some());
}

// === query parsing ===

#[test]
fn since_accepts_unix_ms() {
    assert_eq!(parse_since("1700000000123").unwrap(), 1_700_000_000_123);
    assert_eq!(parse_since(" 0 ").unwrap(), 0);
    assert_eq!(parse_since("-5").unwrap(), -5);
    assert!(parse_since("99999999999999999999999").is_err());
}

#[test]
fn since_accepts_rfc3339() {
    assert_eq!(parse_since("1970-01-01T00:00:00Z").unwrap(), 0);
    // 2023-11-14T22:13:20Z is 1_700_000_000 s.
    assert_eq!(
        parse_since("2023-11-14T22:13:20Z").unwrap(),
        1_700_000_000_000
    );
    assert_eq!(
        parse_since("2023-11-14T22:13:20.123456789Z").unwrap(),
        1_700_000_000_123
    );
    assert_eq!(
        parse_since("2023-11-14T22:13:20.5z").unwrap(),
        1_700_000_000_500
    );
    assert_eq!(
        parse_since("2023-11-15t00:13:20+02:00").unwrap(),
        1_700_000_000_000
    );
    assert_eq!(
        parse_since("2023-11-14 20:13:20-02:00").unwrap(),
        1_700_000_000_000
    );
    assert_eq!(parse_since("2024-02-29").unwrap(), 19_782 * DAY_MS);
    assert_eq!(parse_since("1969-12-31T23:59:59Z").unwrap(), -1000);
    assert_eq!(
        parse_since("2000-03-01T00:00:00Z").unwrap(),
        951_868_800_000
    );
}

#[test]
fn since_rejects_garbage_without_panicking() {
    for bad in [
        "",
        "-",
        "yesterday",
        "2023-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2023-11-14T24:00:00Z",
        "2023-11-14T22:13:20",
        "2023-11-14T22:13:20.Z",
        "2023-11-14T22:13:20+0200",
        "2023-11-14T22:13:20+02:00junk",
        "2023-11-14T22:13",
        "2023-11-1",
        "２０２３-11-14",
        "2023-11-14Té",
        "1e9",
    ] {
        assert!(
            matches!(parse_since(bad), Err(AuditError::InvalidQuery(_))),
            "{bad:?} should be rejected"
        );
    }
}

#[test]
fn limit_defaults_and_clamps() {
    assert_eq!(AuditQuery::default().effective_limit(), DEFAULT_LIMIT);
    let q = AuditQuery {
        limit: Some(5000),
        ..Default::default()
    };
    assert_eq!(q.effective_limit(), MAX_LIMIT);
    let q = AuditQuery {
        limit: Some(3),
        ..Default::default()
    };
    assert_eq!(q.effective_limit(), 3);
}

#[test]
fn query_deserializes_from_a_query_string_shape() {
    let q: AuditQuery =
        serde_json::from_str(r#"{"limit":10,"model":"m","since":"2024-01-01"}"#).unwrap();
    assert_eq!(q.limit, Some(10));
    assert_eq!(q.model.as_deref(), Some("m"));
    assert!(q.provider.is_none());
}

#[test]
fn cursor_is_also_accepted_as_before_and_round_trips() {
    let q: AuditQuery = serde_json::from_str(r#"{"before":"17:4","bodies":true}"#).unwrap();
    assert_eq!(q.cursor.as_deref(), Some("17:4"));
    assert!(q.wants_bodies());
    assert_eq!(
        super::query::parse_cursor(&super::query::cursor_after(-5, 9)).unwrap(),
        (-5, 9)
    );
    for bad in ["", "1", "a:b", "1:2:3"] {
        assert!(super::query::parse_cursor(bad).is_err(), "{bad}");
    }
    let one = AuditQuery {
        request_id: Some("r".into()),
        ..Default::default()
    };
    assert!(one.wants_bodies());
    assert!(!AuditQuery::default().wants_bodies());
}

#[test]
fn reader_on_missing_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let r = AuditReader::new(dir.path().join("none.db"));
    assert!(matches!(
        r.query(&AuditQuery::default()),
        Err(AuditError::Missing(_))
    ));
    assert!(matches!(r.query_after(0, 10), Err(AuditError::Missing(_))));
}

#[test]
fn bad_since_is_reported_before_touching_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = AuditReader::new(dir.path().join("none.db"));
    let q = AuditQuery {
        since: Some("soon".into()),
        ..Default::default()
    };
    assert!(matches!(r.query(&q), Err(AuditError::InvalidQuery(_))));
}

#[test]
fn retention_keeps_what_the_shipper_has_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let cursor = dir.path().join("audit.db.pg-cursor");
    let now = now_ms();
    {
        let store = AuditStore::open(AuditStoreConfig::new(&path)).unwrap();
        for i in 0..300 {
            store.submit(with_bodies(
                &format!("old{i}"),
                now - 30 * DAY_MS + i,
                100,
                100,
            ));
        }
        assert_eq!(store.shutdown().unwrap().written, 300);
    }
    let open = |max_bytes: Option<u64>| {
        AuditStore::open(AuditStoreConfig {
            retention_days: Some(7),
            max_bytes,
            keep_unshipped: Some(cursor.clone()),
            ..AuditStoreConfig::new(&path)
        })
        .unwrap()
    };
    // No cursor yet: nothing is shipped, so nothing goes, old or not.
    let store = open(None);
    store.prune().unwrap();
    assert_eq!(store.reader().stats().unwrap().records, 300);
    // 100 shipped: only those may go.
    std::fs::write(&cursor, "100\n").unwrap();
    store.prune().unwrap();
    assert_eq!(store.reader().stats().unwrap().records, 200);
    drop(store);
    // A size cap below what is left does not reach past the cursor either.
    let store = open(Some(4096));
    store.prune().unwrap();
    assert_eq!(store.reader().stats().unwrap().records, 200);
    std::fs::write(&cursor, "300\n").unwrap();
    store.prune().unwrap();
    assert_eq!(store.reader().stats().unwrap().records, 0);
}
