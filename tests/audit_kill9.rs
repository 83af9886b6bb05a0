//! A real `kill -9`: a child process submits records and then hangs without
//! shutting the store down; the parent kills it with SIGKILL one second
//! after the last submit and counts what is in the file.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use llm_gateway::audit::{AuditRecord, AuditStore, AuditStoreConfig};

const CHILD_ENV: &str = "AUDIT_KILL9_CHILD_DB";
const N: usize = 1000;

/// The child's body. Does nothing unless started by the parent test.
#[test]
#[ignore = "run only as the child of killed_writer_loses_nothing"]
fn kill9_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = AuditStore::open(AuditStoreConfig::new(path)).unwrap();
    for i in 0..N {
        store.submit(AuditRecord {
            request_body: Some(format!("{i} {}", "b".repeat(2000)).into()),
            ..AuditRecord::new(format!("k{i}"), i as i64)
        });
    }
    println!("SUBMITTED");
    // Never shut down: the parent kills us.
    std::thread::sleep(Duration::from_secs(60));
    std::mem::forget(store);
}

#[test]
fn killed_writer_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "kill9_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    let mut ready = false;
    while let Some(Ok(line)) = lines.next() {
        if line.contains("SUBMITTED") {
            ready = true;
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "child never got ready"
        );
    }
    assert!(ready, "child exited before submitting");
    std::thread::sleep(Duration::from_millis(1000));
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success());

    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM audit_records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n as usize, N);
}
