//! Attribution in the store: the client, team and session filters, and a file of the
//! schema before them opening (read as it is, then brought up to date by the writer).

use rusqlite::Connection;

use super::*;

fn attributed(
    id: &str,
    ts: i64,
    client: &str,
    team: Option<&str>,
    session: Option<&str>,
) -> AuditRecord {
    AuditRecord {
        client: Some(client.into()),
        team: team.map(str::to_owned),
        session: session.map(str::to_owned),
        ..AuditRecord::new(id, ts)
    }
}

fn ids(reader: &AuditReader, query: AuditQuery) -> Vec<String> {
    reader
        .query(&query)
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect()
}

fn by(client: Option<&str>, team: Option<&str>, session: Option<&str>) -> AuditQuery {
    AuditQuery {
        client: client.map(str::to_owned),
        team: team.map(str::to_owned),
        session: session.map(str::to_owned),
        ..AuditQuery::default()
    }
}

#[test]
fn filters_by_client_team_and_session_and_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(AuditStoreConfig::new(dir.path().join("audit.db"))).unwrap();
    let base = 1_700_000_000_000;
    store.submit(attributed(
        "a1",
        base + 1,
        "ci",
        Some("platform"),
        Some("s-1"),
    ));
    store.submit(attributed(
        "a2",
        base + 2,
        "ci",
        Some("platform"),
        Some("s-2"),
    ));
    store.submit(attributed(
        "a3",
        base + 3,
        "dev",
        Some("platform"),
        Some("s-1"),
    ));
    store.submit(attributed("a4", base + 4, "solo", None, None));
    store.flush().unwrap();
    let reader = store.reader().clone();
    assert_eq!(ids(&reader, by(Some("ci"), None, None)), ["a2", "a1"]);
    assert_eq!(
        ids(&reader, by(None, Some("platform"), None)),
        ["a3", "a2", "a1"]
    );
    assert_eq!(ids(&reader, by(None, None, Some("s-1"))), ["a3", "a1"]);
    assert_eq!(ids(&reader, by(Some("ci"), None, Some("s-1"))), ["a1"]);
    assert_eq!(
        ids(&reader, by(None, Some("nobody"), None)),
        Vec::<String>::new()
    );
    // Empty means no filter, as for the others.
    assert_eq!(ids(&reader, by(Some(""), Some(""), Some(""))).len(), 4);
    let got = reader.query(&by(None, None, Some("s-2"))).unwrap();
    assert_eq!(got[0].team.as_deref(), Some("platform"));
    assert_eq!(got[0].session.as_deref(), Some("s-2"));
    // The session filter is answered from its index, not by reading every row.
    let conn = Connection::open(dir.path().join("audit.db")).unwrap();
    let plan: Vec<String> = conn
        .prepare("EXPLAIN QUERY PLAN SELECT seq FROM audit_records WHERE json_extract(record_json, '$.session') = ?1 ORDER BY timestamp_ms DESC, seq DESC")
        .unwrap()
        .query_map(["s-1"], |r| r.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        plan.iter().any(|p| p.contains("audit_records_session")),
        "{plan:?}"
    );
    store.shutdown().unwrap();
}

/// What a gateway before the attribution indexes wrote: the same version 3 tables
/// without them, one record of key `ci`.
fn previous_schema_file(path: &std::path::Path) {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE audit_records (
             seq INTEGER PRIMARY KEY AUTOINCREMENT,
             request_id TEXT NOT NULL UNIQUE,
             timestamp_ms INTEGER NOT NULL,
             provider TEXT,
             requested_model TEXT,
             served_model TEXT,
             record_json TEXT NOT NULL,
             request_body BLOB,
             response_body BLOB
         );
         CREATE INDEX audit_records_time ON audit_records(timestamp_ms, seq);
         CREATE TABLE audit_chunks (
             id INTEGER PRIMARY KEY,
             hash BLOB NOT NULL UNIQUE,
             data BLOB NOT NULL
         );
         PRAGMA user_version = 3;",
    )
    .unwrap();
    // The JSON of that version: no `team`, no `session`.
    let json = r#"{"request_id":"old","timestamp":"2023-11-14T22:13:20.000Z","client":"ci","agent_type":null,"requested_model":"m","served_model":null,"provider":"anthropic","endpoint":"messages","attempts":[],"status":200,"stream":false,"ttft_ms":null,"latency_ms":3,"usage":{},"cost_usd":"0.5","price_table_version":null,"outcome":"complete","error":null,"request_body":null,"response_body":null}"#;
    conn.execute(
        "INSERT INTO audit_records (request_id, timestamp_ms, provider, requested_model, \
         served_model, record_json) VALUES ('old', 1700000000000, 'anthropic', 'm', NULL, ?1)",
        [json],
    )
    .unwrap();
}

fn index_names(path: &std::path::Path) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut statement = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'audit_records_%' ORDER BY name")
        .unwrap();
    let names = statement.query_map([], |r| r.get(0)).unwrap();
    names.map(Result::unwrap).collect()
}

#[test]
fn a_file_written_before_the_attribution_indexes_gets_them_and_keeps_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    previous_schema_file(&path);

    // A reader alone filters it as it is (reading the JSON), and changes nothing.
    let reader = AuditReader::new(&path);
    assert_eq!(ids(&reader, AuditQuery::default()), ["old"]);
    assert_eq!(ids(&reader, by(Some("ci"), None, None)), ["old"]);
    assert!(ids(&reader, by(None, Some("platform"), None)).is_empty());
    assert_eq!(index_names(&path), ["audit_records_time"]);

    // The store opens it, adds the indexes and writes new records beside the old.
    let store = AuditStore::open(AuditStoreConfig::new(&path)).unwrap();
    assert_eq!(
        index_names(&path),
        [
            "audit_records_client",
            "audit_records_session",
            "audit_records_team",
            "audit_records_time"
        ]
    );
    store.submit(attributed(
        "new",
        1_700_000_001_000,
        "ci",
        Some("platform"),
        Some("s"),
    ));
    store.flush().unwrap();
    assert_eq!(ids(&reader, by(Some("ci"), None, None)), ["new", "old"]);
    assert_eq!(ids(&reader, by(None, Some("platform"), None)), ["new"]);
    assert_eq!(ids(&reader, by(None, None, Some("s"))), ["new"]);
    let old = reader
        .query(&AuditQuery {
            request_id: Some("old".into()),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(old[0].cost_usd.as_deref(), Some("0.5"));
    store.shutdown().unwrap();
}
