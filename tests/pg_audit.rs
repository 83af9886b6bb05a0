//! The audit trail in PostgreSQL: records from real gateways reach one database exactly
//! once through each replica's SQLite spool, `/gateway/audit` reads them from there, an
//! outage or a restart loses nothing, and retention drops whole partitions.
//!
//! Needs `LLM_GATEWAY_TEST_POSTGRES` (e.g. `postgres://root@127.0.0.1:5432/test`); each
//! test works in a schema of its own, dropped at the end.

mod common;

use common::tcp_proxy::{target_of, Proxy};
use common::*;
use llm_gateway::audit::{AuditQuery, AuditRecord};
use llm_gateway::config::{Config, Secret, SecretRef};
use llm_gateway::ship::PgAudit;
use llm_gateway::Gateway;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;

const ENV: &str = "LLM_GATEWAY_TEST_POSTGRES";

/// The database URL, or `None` (and one line said) when the tests are to be skipped.
fn pg_url() -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: {ENV} is not set");
            None
        }
    }
}

/// A schema of this test's own, dropped (with everything in it) when this is dropped.
struct TestSchema {
    url: String,
    name: String,
    /// One connection of the test's own, opened on first use (polling opens no more).
    conn: tokio::sync::OnceCell<tokio_postgres::Client>,
}

impl TestSchema {
    fn new(url: &str) -> TestSchema {
        let id = uuid::Uuid::now_v7().simple().to_string();
        TestSchema {
            url: url.to_owned(),
            name: format!("t_{id}"),
            conn: tokio::sync::OnceCell::new(),
        }
    }

    /// The test's own client, its `search_path` on the schema.
    async fn client(&self) -> &tokio_postgres::Client {
        self.conn
            .get_or_init(|| async {
                let (client, connection) =
                    tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                        .await
                        .unwrap();
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("SET search_path TO {}", self.name))
                    .await
                    .unwrap();
                client
            })
            .await
    }

    /// The request ids in `audit_records`, each as often as it is stored.
    async fn stored_ids(&self) -> Vec<String> {
        let client = self.client().await;
        match client
            .query(
                "SELECT request_id FROM audit_records ORDER BY request_id",
                &[],
            )
            .await
        {
            Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
            Err(_) => Vec::new(), // the schema is not created yet
        }
    }

    /// Wait until exactly `ids` are stored, each once.
    async fn wait_for(&self, ids: &[String]) {
        let mut want: Vec<String> = ids.to_vec();
        want.sort();
        eventually(&format!("{} records in PostgreSQL", ids.len()), || async {
            let stored = self.stored_ids().await;
            if stored == want {
                Ok(())
            } else {
                Err(stored)
            }
        })
        .await;
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: do it on a thread with one of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A gateway in front of `upstream`, spooling at `spool`, shipping to `url` in `schema`.
fn pg_config(upstream: &MockUpstream, spool: &Path, url: &str, schema: &TestSchema) -> Config {
    let mut config = config_for(upstream);
    config.audit.path = spool.to_owned();
    config.audit.postgres_url = Some(SecretRef::Literal(Secret::new(url)));
    config.audit.postgres_schema = schema.name.clone();
    config
}

/// Build and serve; the gateway (to read its shipper), its URL and its serving task.
async fn start(config: Config) -> (Gateway, String, tokio::task::JoinHandle<()>) {
    let gateway = Gateway::builder(config)
        .metrics_recorder(prometheus_recorder())
        .build()
        .expect("gateway builds");
    let (url, task) = serve_gateway(gateway.clone()).await;
    (gateway, url, task)
}

/// Send `n` requests (each answered 200 by `upstream`); their request ids.
async fn send(upstream: &MockUpstream, url: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        upstream.push(Reply::json(200, message_json(7, 3)));
        let response = client()
            .post(format!("{url}/v1/messages"))
            .body(messages_body(false))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "the response does not wait on the audit"
        );
        ids.push(
            response.headers()["x-gateway-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        let _ = response.bytes().await.unwrap();
    }
    ids
}

async fn audit_page(url: &str, query: &str) -> Value {
    let response = client()
        .get(format!("{url}/gateway/audit?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

fn ids_of(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn records_reach_postgres_once_and_the_audit_endpoint_reads_them_there() {
    let Some(url) = pg_url() else { return };
    let schema = TestSchema::new(&url);
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("audit.db");
    let (gateway, gw, _task) = start(pg_config(&upstream, &spool, &url, &schema)).await;
    let ids = send(&upstream, &gw, 3).await;
    schema.wait_for(&ids).await;

    // Columns and bodies are filled in from the record.
    let client = schema.client().await;
    let row = client
        .query_one(
            "SELECT r.status, r.provider, r.record->>'request_id', b.request_body \
             FROM audit_records r JOIN audit_bodies b USING (request_id, ts) \
             WHERE r.request_id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 200);
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("anthropic")
    );
    assert_eq!(row.get::<_, String>(2), ids[0]);
    assert_eq!(row.get::<_, Vec<u8>>(3), messages_body(false).into_bytes());
    let json: String = client
        .query_one(
            "SELECT record::text FROM audit_records WHERE request_id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        !json.contains("\"messages\":["),
        "no body in the record JSON: {json}"
    );

    // A record only PostgreSQL has shows up: the endpoint reads from there.
    let pg = PgAudit::new(&Secret::new(&url), &schema.name).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut only_pg = AuditRecord::new("req_only_in_postgres", now - 60_000);
    only_pg.provider = Some("elsewhere".into());
    assert_eq!(pg.ship(&[only_pg.clone()]).await.unwrap(), 1);
    assert_eq!(
        pg.ship(&[only_pg]).await.unwrap(),
        0,
        "a re-sent record adds nothing"
    );
    let page = audit_page(&gw, "").await;
    let listed = ids_of(&page);
    assert_eq!(listed.len(), 4, "{page}");
    assert_eq!(listed[3], "req_only_in_postgres", "oldest last");
    assert_eq!(
        listed[..3].iter().collect::<HashSet<_>>(),
        ids.iter().collect::<HashSet<_>>()
    );
    assert!(
        page["records"][0]["request_body"].is_null(),
        "listing without bodies"
    );

    // Filters, one record with its bodies, and cursor paging.
    assert_eq!(
        ids_of(&audit_page(&gw, "provider=elsewhere").await),
        ["req_only_in_postgres"]
    );
    let one = audit_page(&gw, &format!("request_id={}", ids[1])).await;
    assert_eq!(ids_of(&one), [ids[1].clone()]);
    assert_eq!(one["records"][0]["request_body"], messages_body(false));
    let first = audit_page(&gw, "limit=3").await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = audit_page(&gw, &format!("limit=3&cursor={cursor}")).await;
    assert_eq!(ids_of(&second), ["req_only_in_postgres"]);
    assert!(second["next_cursor"].is_null());
    let bad = client_get_status(&gw, "cursor=nonsense").await;
    assert_eq!(bad, 400);

    let status = gateway.audit_shipper().expect("a shipper runs");
    assert!(status.shipped_seq() >= 3);
    assert!(!status.failing());

    // The page query is the library's too.
    let page = pg
        .page(&AuditQuery {
            request_id: Some(ids[2].clone()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    assert!(page.bodies);
}

async fn client_get_status(url: &str, query: &str) -> u16 {
    client()
        .get(format!("{url}/gateway/audit?{query}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn two_gateways_with_their_own_spools_see_all_records() {
    let Some(url) = pg_url() else { return };
    let schema = TestSchema::new(&url);
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_a, gw_a, _ta) = start(pg_config(
        &upstream,
        &dir.path().join("a.db"),
        &url,
        &schema,
    ))
    .await;
    let (_b, gw_b, _tb) = start(pg_config(
        &upstream,
        &dir.path().join("b.db"),
        &url,
        &schema,
    ))
    .await;
    let mut ids = send(&upstream, &gw_a, 2).await;
    ids.extend(send(&upstream, &gw_b, 3).await);
    schema.wait_for(&ids).await;
    let want: HashSet<String> = ids.iter().cloned().collect();
    for gw in [&gw_a, &gw_b] {
        let listed = ids_of(&audit_page(gw, "").await);
        assert_eq!(listed.len(), 5);
        assert_eq!(listed.into_iter().collect::<HashSet<_>>(), want);
    }
}

#[tokio::test]
async fn an_outage_delays_records_but_loses_none_and_ships_each_once() {
    let Some(url) = pg_url() else { return };
    let schema = TestSchema::new(&url);
    let proxy = Proxy::start(target_of(&url), true).await;
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(
        &upstream,
        &dir.path().join("audit.db"),
        &proxy.url(&url),
        &schema,
    );
    let (gateway, gw, _task) = start(config).await;
    let mut ids = send(&upstream, &gw, 1).await;
    schema.wait_for(&ids).await;

    proxy.cut();
    let during = send(&upstream, &gw, 3).await;
    let status = gateway.audit_shipper().unwrap();
    eventually("the shipper to notice the outage", || async {
        if status.failing() {
            Ok(())
        } else {
            Err(status.shipped_seq())
        }
    })
    .await;
    assert_eq!(schema.stored_ids().await, ids, "nothing arrives while cut");
    let error = status.last_error().unwrap();
    assert!(
        !error.contains(&url) && !error.contains(&proxy.url(&url)),
        "{error}"
    );
    // The endpoint says the database is unavailable instead of answering from elsewhere.
    assert_eq!(client_get_status(&gw, "").await, 503);

    proxy.restore();
    ids.extend(during);
    schema.wait_for(&ids).await;
    eventually("the shipper to recover", || async {
        if status.failing() {
            Err(status.last_error())
        } else {
            Ok(())
        }
    })
    .await;
    assert_eq!(ids_of(&audit_page(&gw, "").await).len(), 4);
}

#[tokio::test]
async fn a_gateway_dropped_unshipped_is_shipped_by_the_next_one_on_its_spool() {
    let Some(url) = pg_url() else { return };
    let schema = TestSchema::new(&url);
    // PostgreSQL unreachable for the first gateway from the start.
    let proxy = Proxy::start(target_of(&url), false).await;
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("audit.db");
    let config = pg_config(&upstream, &spool, &proxy.url(&url), &schema);
    let (gateway, gw, task) = start(config).await;
    let ids = send(&upstream, &gw, 3).await;
    gateway.flush_audit().await; // spooled: committed to the SQLite file
                                 // Gone without a shutdown: the serving task aborted, the gateway dropped.
    task.abort();
    let _ = task.await;
    drop(gateway);
    assert!(schema.stored_ids().await.is_empty());

    // The next process on the same spool, with PostgreSQL reachable.
    let (gateway, _gw, _task) = start(pg_config(&upstream, &spool, &url, &schema)).await;
    schema.wait_for(&ids).await;
    let status = gateway.audit_shipper().unwrap();
    eventually("the cursor to reach the spool's end", || async {
        if status.shipped_seq() >= 3 {
            Ok(())
        } else {
            Err(status.shipped_seq())
        }
    })
    .await;
    let cursor = std::fs::read_to_string(dir.path().join("audit.db.pg-cursor")).unwrap();
    assert_eq!(cursor.trim().parse::<i64>().unwrap(), status.shipped_seq());
    drop(gateway);

    // A third start re-reads from the cursor and adds nothing.
    let (_gateway, gw, _task) = start(pg_config(&upstream, &spool, &url, &schema)).await;
    let more = send(&upstream, &gw, 1).await;
    let mut all = ids.clone();
    all.extend(more);
    schema.wait_for(&all).await;
}

#[tokio::test]
async fn retention_drops_whole_old_partitions() {
    let Some(url) = pg_url() else { return };
    let schema = TestSchema::new(&url);
    let pg = PgAudit::new(&Secret::new(&url), &schema.name).unwrap();
    let old = AuditRecord::new("req_old", 1_579_046_400_000); // 2020-01-15
    let mut with_body = AuditRecord::new("req_old_body", 1_579_046_400_000);
    with_body.request_body = Some(bytes::Bytes::from_static(b"{\"old\":true}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let fresh = AuditRecord::new("req_fresh", now);
    assert_eq!(pg.ship(&[old, with_body, fresh]).await.unwrap(), 3);

    let dropped = pg
        .drop_partitions_before(now - 30 * 86_400_000)
        .await
        .unwrap();
    assert_eq!(dropped, ["audit_bodies_p202001", "audit_records_p202001"]);
    assert_eq!(schema.stored_ids().await, ["req_fresh"]);
    let client = schema.client().await;
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname LIKE '%p202001'",
            &[&schema.name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    assert!(pg
        .drop_partitions_before(now - 30 * 86_400_000)
        .await
        .unwrap()
        .is_empty());
    assert!(
        PgAudit::new(&Secret::new(&url), "Bad-Name").is_err(),
        "a schema name that is not a plain identifier is refused"
    );
}

const CHILD_SPOOL: &str = "PG_AUDIT_KILL9_SPOOL";
const CHILD_SCHEMA: &str = "PG_AUDIT_KILL9_SCHEMA";
/// Requests the child serves before it is killed.
const KILLED_REQUESTS: usize = 150;

/// The child's body: a gateway shipping to PostgreSQL serves requests, its spool is
/// flushed, it says so and waits to be killed. Does nothing unless started by
/// `a_killed_gateway_loses_no_spooled_record`.
#[tokio::test]
#[ignore = "run only as the child of a_killed_gateway_loses_no_spooled_record"]
async fn kill9_child() {
    let (Some(spool), Ok(name), Some(url)) = (
        std::env::var_os(CHILD_SPOOL),
        std::env::var(CHILD_SCHEMA),
        pg_url(),
    ) else {
        return;
    };
    let schema = TestSchema {
        url: url.clone(),
        name,
        conn: tokio::sync::OnceCell::new(),
    };
    let upstream = MockUpstream::start().await;
    let config = pg_config(&upstream, Path::new(&spool), &url, &schema);
    std::mem::forget(schema); // the parent drops it
    let (gateway, gw, _task) = start(config).await;
    send(&upstream, &gw, KILLED_REQUESTS).await;
    gateway.flush_audit().await;
    println!("SPOOLED");
    // Never shut down: the parent kills us, likely in the middle of shipping.
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
}

#[tokio::test]
async fn a_killed_gateway_loses_no_spooled_record() {
    use std::io::{BufRead, BufReader};
    let Some(url) = pg_url() else { return };
    let schema = TestSchema::new(&url);
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("audit.db");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill9_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_SPOOL, &spool)
        .env(CHILD_SCHEMA, &schema.name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let spooled = tokio::task::spawn_blocking(move || {
        lines
            .map_while(Result::ok)
            .any(|line| line.contains("SPOOLED"))
    })
    .await
    .unwrap();
    child.kill().unwrap(); // SIGKILL
    assert!(!child.wait().unwrap().success());
    assert!(spooled, "the child exited before spooling");

    let before = schema.stored_ids().await.len();
    // A restart on the same spool (its store recovers the WAL the kill left) ships
    // what was left, each record once.
    let upstream = MockUpstream::start().await;
    let (_gateway, _gw, _task) = start(pg_config(&upstream, &spool, &url, &schema)).await;
    let in_spool: Vec<String> = llm_gateway::audit::AuditReader::new(&spool)
        .query_after(0, 1000)
        .unwrap()
        .into_iter()
        .map(|(_, record)| record.request_id)
        .collect();
    assert_eq!(in_spool.len(), KILLED_REQUESTS, "every record was spooled");
    println!("{before} of {KILLED_REQUESTS} records had reached PostgreSQL at the kill");
    schema.wait_for(&in_spool).await;
}

#[tokio::test]
async fn postgres_settings_are_read_and_bad_ones_named() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[providers.anthropic]\nkind = \"anthropic\"\nbase_url = \"{}\"\n\
         [audit]\npath = \"{}\"\npostgres_url = \"env:PG_AUDIT_TEST_UNSET_URL\"\n\
         postgres_schema = \"audit_a\"\n",
        upstream.url(),
        dir.path().join("audit.db").display()
    );
    let config = Config::from_toml_str(&toml).unwrap();
    assert_eq!(config.audit.postgres_schema, "audit_a");
    let error = Gateway::new(config)
        .err()
        .expect("the variable is not set")
        .to_string();
    assert!(error.contains("audit.postgres_url"), "{error}");

    let secret = "postgres://u:hunter2-secret@127.0.0.1:1/db";
    let mut config = config_for(&upstream);
    config.audit.path = dir.path().join("b.db");
    config.audit.postgres_url = Some(SecretRef::Literal(Secret::new(secret)));
    config.audit.postgres_schema = "Bad-Name".into();
    let error = Gateway::new(config.clone())
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("audit.postgres_schema"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
    assert!(!format!("{config:?}").contains("hunter2"));

    config.audit.postgres_url = Some(SecretRef::Literal(Secret::new("mysql://hunter2@x")));
    config.audit.postgres_schema = "llm_gateway".into();
    let error = Gateway::new(config).err().expect("refused").to_string();
    assert!(
        error.contains("audit.postgres_url") && !error.contains("hunter2"),
        "{error}"
    );
}
