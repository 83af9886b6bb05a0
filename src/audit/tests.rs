//! End-to-end tests of the store: writer, queue, spill, retention and the
//! read side together, against real SQLite files.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use super::*;

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    super::writer::now_ms()
}

fn record(id: &str, ts: i64) -> AuditRecord {
    AuditRecord {
        request_id: id.into(),
        timestamp_ms: ts,
        endpoint: "messages".into(),
        status: 200,
        outcome: "complete".into(),
        latency_ms: 5,
        ..Default::default()
    }
}

fn with_bodies(id: &str, ts: i64, req: usize, resp: usize) -> AuditRecord {
    AuditRecord {
        request_body: Some(format!(
            "{{\"p\":\"{}\"}}",
            "q".repeat(req.saturating_sub(8))
        )),
        response_body: Some("event: x\ndata: {\"a\":1}\n\n".repeat(resp / 24 + 1)),
        ..record(id, ts)
    }
}

fn full_record() -> AuditRecord {
    AuditRecord {
        request_id: "req_full".into(),
        timestamp_ms: 1_700_000_000_123,
        client: Some("team-α".into()),
        agent_type: Some("reviewer".into()),
        requested_model: Some("claude-sonnet-4-5".into()),
        served_model: Some("gpt-4o-mini".into()),
        provider: Some("openai".into()),
        endpoint: "messages".into(),
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
        status: 200,
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
        outcome: "incomplete".into(),
        error: Some("upstream stream ended early".into()),
        request_body: Some(format!(
            "{{\"model\":\"claude-sonnet-4-5\",\"messages\":[{{\"role\":\"user\",\"content\":\"héllo \\\"quoted\\\" \\n {}\"}}]}}",
            "z".repeat(200_000)
        )),
        response_body: Some(
            "event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: error\ndata: {\"x\":\"\u{1F600}\\u0000\"}\n\n"
                .into(),
        ),
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
    let got = store.query(&q).unwrap();
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
        store.query(&bad),
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
    let got = store.query_after(0, 100).unwrap();
    let seqs: Vec<i64> = got.iter().map(|(s, _)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let ids: Vec<&str> = got.iter().map(|(_, r)| r.request_id.as_str()).collect();
    assert_eq!(ids, (0..10).map(|i| format!("f{i}")).collect::<Vec<_>>());

    // Paging with the last seq seen returns each record exactly once.
    let mut after = 0;
    let mut paged = Vec::new();
    loop {
        let page = store.query_after(after, 3).unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = last.0;
        paged.extend(page.into_iter().map(|(_, r)| r.request_id));
    }
    assert_eq!(paged, ids);
    assert!(store.query_after(after, 10).unwrap().is_empty());
    assert!(store.query_after(0, 0).unwrap().is_empty());

    // A follower sees only what came after.
    store.submit(record("late", 0));
    store.flush().unwrap();
    let tail = store.query_after(after, 10).unwrap();
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
    assert_eq!(stats.spilled, 0);
    assert_eq!(stats.queue_depth, 0);
    assert_eq!(stats.queued_body_bytes, 0);
    assert_eq!(count_rows(&dir.path().join("audit.db")), 2000);
    let rows = all(&AuditReader::new(dir.path().join("audit.db")));
    let mut ids: Vec<String> = rows.into_iter().map(|r| r.request_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2000);
}

#[test]
fn records_are_durable_within_a_second_without_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    // Default settings: 200 ms flush interval, 256-record batches.
    let store = AuditStore::open(config(&dir)).unwrap();
    let n = 300;
    for i in 0..n {
        store.submit(with_bodies(&format!("d{i}"), now_ms(), 1000, 1000));
    }
    std::thread::sleep(Duration::from_millis(1200));
    // A brand-new connection sees every record while the store still runs:
    // what `kill -9` would leave behind.
    assert_eq!(count_rows(&dir.path().join("audit.db")), n);
    assert_eq!(store.queue_depth(), 0);
    assert_eq!(store.stats().written, n as u64);
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
fn full_queue_spills_then_drops_and_counts_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = AuditStore::open(AuditStoreConfig {
        queue_capacity: 4,
        spill_capacity: 4,
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
    assert!(mid.spilled > 0, "{mid:?}");
    assert!(mid.dropped > 0, "{mid:?}");
    assert_eq!(mid.written, 0);
    assert_eq!(mid.queue_depth as u64 + mid.dropped, submitted);
    assert!(store.last_error().is_some());

    // Keep the lock past the writer's busy timeout: its commit fails and is
    // retried, nothing is lost in the meantime.
    std::thread::sleep(Duration::from_millis(1200));
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let end = store.shutdown().unwrap();

    assert_eq!(end.queue_depth, 0);
    assert_eq!(end.dropped, mid.dropped, "drops happen only at submit here");
    assert_eq!(end.written + end.dropped, submitted);
    assert_eq!(
        end.bodies_shed, end.spilled,
        "only spilled records were shed"
    );
    assert_eq!(count_rows(&path) as u64, end.written);
    let rows = all(&AuditReader::new(&path));
    let shed = rows
        .iter()
        .filter(|r| {
            r.request_body.as_deref() == Some(BODY_SHED_MARKER)
                && r.response_body.as_deref() == Some(BODY_SHED_MARKER)
        })
        .count() as u64;
    assert_eq!(shed, end.spilled);
    let intact = rows
        .iter()
        .filter(|r| r.request_body.as_ref().is_some_and(|b| b.len() == 500))
        .count() as u64;
    assert_eq!(intact, end.written - end.spilled);
}

#[test]
fn shutdown_with_a_dead_disk_is_bounded_and_counts_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = AuditStore::open(AuditStoreConfig {
        queue_capacity: 4,
        spill_capacity: 4,
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
    // Shutdown gives up on a disk that never recovers (it would otherwise never return)
    // and counts what it could not write.
    let end = store.shutdown().unwrap();
    assert_eq!(end.written, 0);
    assert_eq!(end.dropped, 20, "{end:?}");
    assert_eq!(end.queue_depth, 0);
    assert_eq!(end.queued_body_bytes, 0);
    lock.execute_batch("ROLLBACK").unwrap();
    assert_eq!(count_rows(&path), 0);
}

#[test]
fn body_budget_sheds_bodies_but_keeps_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = AuditStore::open(AuditStoreConfig {
        queue_max_bytes: 1500,
        ..AuditStoreConfig::new(&path)
    })
    .unwrap();
    let lock = lock_db(&path);
    for i in 0..5 {
        // 500 + ~500 body bytes each: only the first fits the budget.
        store.submit(with_bodies(&format!("b{i}"), i, 500, 480));
    }
    let mid = store.stats();
    assert_eq!(mid.bodies_shed, 4, "{mid:?}");
    assert_eq!(mid.spilled, 0);
    assert!(mid.queued_body_bytes <= 1500);
    drop(lock);
    let end = store.shutdown().unwrap();
    assert_eq!(end.written, 5);
    assert_eq!(end.dropped, 0);
    assert_eq!(end.queued_body_bytes, 0);
    let rows = all(&AuditReader::new(&path));
    assert_eq!(rows[0].request_body.as_ref().map(String::len), Some(500));
    for r in &rows[1..] {
        assert_eq!(r.request_body.as_deref(), Some(BODY_SHED_MARKER));
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
    assert!(
        after.page_count * 5 < before.page_count,
        "pages {} -> {}",
        before.page_count,
        after.page_count
    );
    let left = store
        .query(&AuditQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap();
    assert!(left.iter().all(|r| r.request_id.starts_with("new")));
    // The file on disk shrank too, not just the page accounting.
    let size_after = std::fs::metadata(&path).unwrap().len();
    assert!(
        size_after * 5 < size_before,
        "{size_before} -> {size_after}"
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
            store.submit(with_bodies(&format!("m{round}-{i}"), now_ms(), 6000, 2000));
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
    let newest = store.query(&AuditQuery::default()).unwrap();
    assert!(newest.iter().any(|r| r.request_id == "m3-99"));
    drop(store);
}

#[test]
fn store_adds_nothing_to_what_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let secret = "sk-ant-api03-NOT-A-REAL-KEY-4f9c2e";
    let store = AuditStore::open(AuditStoreConfig::new(&path)).unwrap();
    let mut with_secret = record("has-secret", 1);
    with_secret.request_body = Some(format!("{{\"note\":\"{secret}\"}}"));
    store.submit(with_secret);
    let mut plain = record("plain", 2);
    plain.client = Some("team-a".into());
    store.submit(plain.clone());
    store.shutdown().unwrap();

    // The body is stored once, in its column, not also inside the JSON.
    let bytes = std::fs::read(&path).unwrap();
    let hits = bytes
        .windows(secret.len())
        .filter(|w| *w == secret.as_bytes())
        .count();
    assert_eq!(hits, 1);
    // A record without bodies comes back exactly as given: no added fields.
    let conn = Connection::open(&path).unwrap();
    let (json, req, resp): (String, Option<String>, Option<String>) = conn
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
