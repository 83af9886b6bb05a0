//! Three example daemons as real processes on one Redis and one PostgreSQL behave as one
//! gateway: one budget never overshot and one `rpm` counted across all of them under
//! 300 concurrent streams; a key created on one works on the others within a second and
//! a revoked one is refused by all; a provider cooled down by one is skipped by the
//! others; `/gateway/audit` and `/gateway/keys` answer the same everywhere; a replica
//! killed with SIGKILL mid-load and restarted on its spool ships every record it had
//! spooled exactly once; a PostgreSQL outage (a TCP proxy the test cuts) keeps every
//! response moving and every record arrives once when it is back.
//!
//! Needs `LLM_GATEWAY_TEST_POSTGRES` and `LLM_GATEWAY_TEST_REDIS`; each test works in a
//! schema and under a Redis key prefix of its own.

mod common;

use common::tcp_proxy::{target_of, Proxy};
use common::*;
use llm_gateway::pricing::Money;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Both services' URLs, or `None` after one line saying why the test is skipped.
fn services() -> Option<(String, String)> {
    let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (
        get("LLM_GATEWAY_TEST_POSTGRES"),
        get("LLM_GATEWAY_TEST_REDIS"),
    ) {
        (Some(pg), Some(redis)) => Some((pg, redis)),
        _ => {
            println!(
                "skipped: LLM_GATEWAY_TEST_POSTGRES and LLM_GATEWAY_TEST_REDIS must both be set"
            );
            None
        }
    }
}

fn unique() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// A config for one replica: two providers (`primary`, falling back to `backup`), a key
/// with a total budget, a key with an `rpm`, one without limits.
fn config_text(pg: &str, redis: &str, run: &str, primary: &str, backup: &str) -> String {
    format!(
        r#"
[state]
redis_url = "{redis}"
key_prefix = "t-{run}"

[audit]
path = "audit.db"
postgres_url = "{pg}"
postgres_schema = "t_{run}"

[auth]
store_path = "keys.db"
[[auth.client_keys]]
name = "budget"
key = "gk-budget-{run}"
budget_usd = 0.01
budget_period = "total"
[[auth.client_keys]]
name = "rpm"
key = "gk-rpm-{run}"
rpm = 40
[[auth.client_keys]]
name = "free"
key = "gk-free-{run}"

[providers.primary]
kind = "anthropic"
base_url = "{primary}"
[providers.backup]
kind = "anthropic"
base_url = "{backup}"

[routing]
default_provider = "primary"
fallback_chain = ["primary", "backup"]
"#
    )
}

/// One daemon process in its own directory (its spool and key file live there).
struct Replica {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Replica {
    fn start(dir: &Path, config: &str) -> Replica {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("gateway.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(gateway_binary())
            .args([
                "--config",
                path.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .current_dir(dir)
            .env_remove("LLM_GATEWAY_CONFIG")
            .env_remove("ANTHROPIC_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the daemon starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("no address line: {line:?}"))
            .to_owned();
        Replica {
            child,
            url,
            dir: dir.to_owned(),
        }
    }

    fn kill_dash_nine(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    async fn send(&self, key: &str) -> Result<(u16, String, String), reqwest::Error> {
        send(&self.url, key).await
    }

    async fn status_of(&self, key: &str) -> u16 {
        let response = client()
            .get(format!("{}/gateway/me", self.url))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = client().request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> Value {
        self.json(reqwest::Method::GET, path, None).await.1
    }

    /// The request ids in this replica's spool.
    fn spooled(&self) -> Vec<String> {
        let conn = rusqlite::Connection::open(self.dir.join("audit.db")).unwrap();
        let mut statement = conn
            .prepare("SELECT request_id FROM audit_records")
            .unwrap();
        let ids = statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<Vec<String>, _>>()
            .unwrap();
        ids
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One streamed request to the gateway at `url` with `key`: its status, request id and
/// whole body.
async fn send(url: &str, key: &str) -> Result<(u16, String, String), reqwest::Error> {
    let response = client()
        .post(format!("{url}/v1/messages"))
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(messages_body(true))
        .send()
        .await?;
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("x-gateway-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await?;
    Ok((status, id, text))
}

/// The test's own connection to its schema, dropped with everything in it at the end.
struct Schema {
    client: tokio_postgres::Client,
    name: String,
}

impl Schema {
    async fn new(url: &str, run: &str) -> Schema {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        Schema {
            client,
            name: format!("t_{run}"),
        }
    }

    /// Every stored request id with how often it is stored, and the costs' sum.
    async fn stored(&self) -> (HashMap<String, i64>, Money) {
        let sql = format!(
            "SELECT request_id, count(*), coalesce(sum(cost_usd), 0)::text \
             FROM {}.audit_records GROUP BY request_id",
            self.name
        );
        let Ok(rows) = self.client.query(&sql, &[]).await else {
            return (HashMap::new(), Money::ZERO);
        };
        let mut total = Money::ZERO;
        let mut ids = HashMap::new();
        for row in rows {
            ids.insert(row.get(0), row.get(1));
            let cost: String = row.get(2);
            total += money(&cost);
        }
        (ids, total)
    }

    async fn drop_schema(&self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .await;
    }
}

/// Exact money from a decimal string.
fn money(text: &str) -> Money {
    llm_gateway::keys::parse_usd(text).unwrap()
}

/// Wait (at most `within`) until `check` holds; how long it took.
async fn within<F, Fut>(what: &str, within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < within, "{what} took over {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_behave_as_one_gateway() {
    let Some((pg, redis)) = services() else {
        return;
    };
    let run = unique();
    let schema = Schema::new(&pg, &run).await;
    let (primary, backup) = (MockUpstream::start().await, MockUpstream::start().await);
    let config = config_text(&pg, &redis, &run, &primary.url(), &backup.url());
    let home = tempfile::tempdir().unwrap();
    let mut replicas: Vec<Replica> = (0..3)
        .map(|i| Replica::start(&home.path().join(format!("r{i}")), &config))
        .collect();
    let free = format!("gk-free-{run}");

    // A key created on one replica works on the others within a second.
    let (status, created) = replicas[0]
        .json(
            reqwest::Method::POST,
            "/gateway/keys",
            Some(json!({"name": "made", "team": "ops"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let made = created["key"].as_str().unwrap().to_owned();
    let took = within(
        "a new key reaching the others",
        Duration::from_secs(1),
        || async {
            replicas[1].status_of(&made).await == 200 && replicas[2].status_of(&made).await == 200
        },
    )
    .await;
    println!("a created key worked on every replica after {took:?}");
    // Its name is taken everywhere.
    let (status, _) = replicas[2]
        .json(
            reqwest::Method::POST,
            "/gateway/keys",
            Some(json!({"name": "made"})),
        )
        .await;
    assert_eq!(status, 409);
    // Revoked on another: refused by all within a second.
    let (status, revoked) = replicas[1]
        .json(reqwest::Method::DELETE, "/gateway/keys/made", None)
        .await;
    assert_eq!(status, 200, "{revoked}");
    let took = within(
        "a revocation reaching the others",
        Duration::from_secs(1),
        || async {
            replicas[0].status_of(&made).await == 401 && replicas[2].status_of(&made).await == 401
        },
    )
    .await;
    println!("a revoked key was refused by every replica after {took:?}");
    let lists = answers(&replicas, "/gateway/keys").await;
    assert_eq!(lists[0], lists[1]);
    assert_eq!(lists[0], lists[2]);
    assert_eq!(
        lists[0]["keys"].as_array().unwrap().len(),
        4,
        "{}",
        lists[0]
    );

    // 300 concurrent streams, 150 on the budget key and 150 on the rpm key, spread over
    // the three; the third replica is killed with SIGKILL once 100 have answered.
    const STREAMS: usize = 300;
    for _ in 0..STREAMS {
        primary.push(Reply::sse_events(&fixture("text_basic.sse")));
    }
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..STREAMS)
        .map(|i| {
            let url = urls[i % 3].clone();
            let key = if i % 2 == 0 {
                format!("gk-budget-{run}")
            } else {
                format!("gk-rpm-{run}")
            };
            let answered = answered.clone();
            tokio::spawn(async move {
                let result = send(&url, &key).await;
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                (i, result.ok())
            })
        })
        .collect();
    within("100 answers", Duration::from_secs(30), || async {
        answered.load(std::sync::atomic::Ordering::SeqCst) >= 100
    })
    .await;
    replicas[2].kill_dash_nine();
    let mut by_key: HashMap<&str, Vec<u16>> = HashMap::new();
    for task in tasks {
        let (i, result) = task.await.unwrap();
        let Some((status, _, text)) = result else {
            assert_eq!(i % 3, 2, "only the killed replica's requests may fail");
            continue;
        };
        if status == 200 {
            assert!(text.contains("message_stop"), "{text}");
        }
        by_key
            .entry(if i % 2 == 0 { "budget" } else { "rpm" })
            .or_default()
            .push(status);
    }
    let count = |key: &str, status: u16| by_key[key].iter().filter(|s| **s == status).count();
    println!(
        "rpm key: {} admitted, {} refused; budget key: {} admitted, {} refused",
        count("rpm", 200),
        count("rpm", 429),
        count("budget", 200),
        count("budget", 402)
    );
    assert!(count("rpm", 200) <= 40, "{:?}", by_key["rpm"]);
    assert!(count("rpm", 429) > 0, "{:?}", by_key["rpm"]);
    assert!(
        count("budget", 200) > 0 && count("budget", 402) > 0,
        "{:?}",
        by_key["budget"]
    );

    // Restart the killed one on the same directory (spool and cursor).
    let dir = replicas[2].dir.clone();
    replicas[2] = Replica::start(&dir, &config);

    // Every record of every spool reaches PostgreSQL exactly once.
    let spooled: HashSet<String> = replicas.iter().flat_map(Replica::spooled).collect();
    let (stored, cost) = {
        let mut last = (HashMap::new(), Money::ZERO);
        let seen = |stored: &HashMap<String, i64>| stored.keys().cloned().collect::<HashSet<_>>();
        let deadline = Instant::now() + HANG_GUARD;
        while seen(&last.0) != spooled {
            assert!(
                Instant::now() < deadline,
                "spooled records missing from PostgreSQL"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            last = schema.stored().await;
        }
        last
    };
    assert!(stored.values().all(|n| *n == 1), "each record once");
    // The budget was never overshot across all three: every audited cost (the budget key's
    // and the rpm key's together are within it, since only the budget key had one, so
    // check the budget key's own spend as Redis settled it).
    let budget = replicas[0].get("/gateway/keys/budget").await;
    let spent = money(budget["spent_usd"].as_str().unwrap());
    assert!(spent <= money("0.01"), "{budget}");
    let budget_cost = budget_key_cost(&schema).await;
    // Both are within the limit. They need not be equal: a request the killed replica
    // had spooled but not yet settled in Redis (settlement is sent after the record is
    // queued) is audited and not charged, and one settled but not yet spooled the
    // other way round.
    assert!(budget_cost <= money("0.01"), "{budget_cost} vs {spent}");
    assert!(cost >= budget_cost);
    // rpm counted across all: exactly 40 admitted in the minute.
    let rpm = replicas[1].get("/gateway/keys/rpm").await;
    assert_eq!(rpm["requests_last_minute"], 40, "{rpm}");

    // A provider cooled down by one replica is skipped by the others. First take the
    // answers no refused request used off the mock's queue.
    for _ in primary.requests().len()..STREAMS {
        send(&primary.url(), "-").await.unwrap();
    }
    primary.push(
        Reply::json(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
        )
        .with_header("retry-after", "30"),
    );
    for _ in 0..3 {
        backup.push(Reply::sse_events(&fixture("text_basic.sse")));
    }
    let before = primary.requests().len();
    let (status, _, _) = replicas[0].send(&free).await.unwrap();
    assert_eq!(status, 200, "served by the backup");
    assert_eq!(primary.requests().len(), before + 1);
    tokio::time::sleep(llm_gateway::fallback::COOL_DOWN_POLL * 3).await;
    for replica in &replicas[1..] {
        let health = replica.get("/gateway/health").await;
        assert_eq!(health["providers"]["primary"], false, "{health}");
        let (status, _, _) = replica.send(&free).await.unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!(
        primary.requests().len(),
        before + 1,
        "the others skipped it"
    );
    assert_eq!(backup.requests().len(), 3);

    // `/gateway/audit` and `/gateway/keys` answer the same on all three.
    let total = spooled.len() + 3;
    within("the last records shipped", HANG_GUARD, || async {
        schema.stored().await.0.len() == total
    })
    .await;
    for path in ["/gateway/audit?limit=1000", "/gateway/keys"] {
        let answers = answers(&replicas, path).await;
        assert_eq!(answers[0], answers[1], "{path}");
        assert_eq!(answers[0], answers[2], "{path}");
    }
    let page = replicas[0].get("/gateway/audit?limit=1000").await;
    assert_eq!(page["records"].as_array().unwrap().len(), total);
    schema.drop_schema().await;
}

/// What every replica answers to `GET path`, at once. A config key's `created_at` is
/// when that replica read its config, so it is left out.
async fn answers(replicas: &[Replica], path: &str) -> Vec<Value> {
    let mut answers = futures_util::future::join_all(replicas.iter().map(|r| r.get(path))).await;
    for answer in &mut answers {
        for key in answer["keys"].as_array_mut().into_iter().flatten() {
            if key["source"] == "config" {
                key.as_object_mut().unwrap().remove("created_at");
            }
        }
    }
    answers
}

/// The budget key's audited cost.
async fn budget_key_cost(schema: &Schema) -> Money {
    let sql = format!(
        "SELECT coalesce(sum(cost_usd), 0)::text FROM {}.audit_records WHERE client = 'budget'",
        schema.name
    );
    let cost: String = schema.client.query_one(&sql, &[]).await.unwrap().get(0);
    money(&cost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_delays_no_response_and_loses_no_record() {
    let Some((pg, redis)) = services() else {
        return;
    };
    let run = unique();
    let schema = Schema::new(&pg, &run).await;
    let proxy = Proxy::start(target_of(&pg), true).await;
    let (primary, backup) = (MockUpstream::start().await, MockUpstream::start().await);
    let config = config_text(&proxy.url(&pg), &redis, &run, &primary.url(), &backup.url());
    let home = tempfile::tempdir().unwrap();
    let replica = Replica::start(home.path(), &config);
    let free = format!("gk-free-{run}");
    let admin = |body| replica.json(reqwest::Method::POST, "/gateway/keys", Some(body));
    assert_eq!(admin(json!({"name": "before"})).await.0, 201);

    proxy.cut();
    const N: usize = 20;
    for _ in 0..N {
        primary.push(Reply::sse_events(&fixture("text_basic.sse")));
    }
    let mut ids = Vec::new();
    for _ in 0..N {
        let started = Instant::now();
        let (status, id, text) = replica.send(&free).await.unwrap();
        assert_eq!(status, 200);
        assert!(text.contains("message_stop"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a response waited"
        );
        ids.push(id);
    }
    // Creating a key needs PostgreSQL: 503 naming the cause; known keys keep working.
    let (status, error) = admin(json!({"name": "during"})).await;
    assert_eq!(status, 503, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("key database is unavailable"), "{message}");
    assert!(
        !message.contains(&pg) && !message.contains("postgres://"),
        "{message}"
    );
    assert_eq!(replica.status_of(&free).await, 200);
    let health = replica.get("/gateway/health").await;
    assert_eq!(health["keys"]["healthy"], false, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");

    proxy.restore();
    within("every record shipped once", HANG_GUARD, || async {
        let stored = schema.stored().await.0;
        ids.iter().all(|id| stored.get(id) == Some(&1)) && stored.len() == N
    })
    .await;
    within("the key store back", HANG_GUARD, || async {
        replica.get("/gateway/health").await["keys"]["healthy"] == true
    })
    .await;
    assert_eq!(admin(json!({"name": "during"})).await.0, 201);
    schema.drop_schema().await;
}
