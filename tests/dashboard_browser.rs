//! The dashboard in a real headless Chromium, over WebDriver (chromedriver): against a
//! gateway that served known traffic, log in with the admin token, read the charts'
//! data and the totals, filter the requests table, open a request and read its
//! conversation, watch a new request arrive in the live tail, create and revoke a key;
//! a prompt holding `<script>` stays text. Screenshots of each view go to
//! `target/dashboard-screenshots/`.
//!
//! Needs chromedriver and chromium (`apt-get install -y chromium chromium-driver`):
//! `LLM_GATEWAY_TEST_CHROMEDRIVER` (default `/usr/bin/chromedriver`) and
//! `LLM_GATEWAY_TEST_CHROMIUM` (default `/usr/bin/chromium`); skipped with one line
//! when chromedriver is absent.

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use llm_gateway::config::{AuthConfig, ClientKey, Secret, SecretRef};
use llm_gateway::pricing::Money;
use llm_gateway::{Config, Gateway};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const ADMIN_TOKEN: &str = "adm-dashboard-77f3c2";
const CLIENT_KEY: &str = "gk-dashboard-client-4e1b9d";
/// A prompt that would set `window.__pwned` if the page ever rendered it as HTML.
const HOSTILE: &str =
    "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">";

/// chromedriver on a port of its own, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver_path() -> Option<PathBuf> {
    let path = std::env::var_os("LLM_GATEWAY_TEST_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    path.exists().then_some(path)
}

async fn start_driver(path: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let status = format!("{url}/status");
    eventually("chromedriver to listen", || async {
        match client().get(&status).send().await {
            Ok(response) if response.status() == 200 => Ok(()),
            other => Err(other.map(|r| r.status()).map_err(|e| e.to_string())),
        }
    })
    .await;
    Driver { child, url }
}

async fn browser(driver: &Driver) -> Client {
    let chromium =
        std::env::var("LLM_GATEWAY_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1100", "--no-proxy-server"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

fn config(upstream: &MockUpstream, dir: &Path) -> Config {
    let mut config = config_for(upstream);
    let mut key = ClientKey::new("alice", SecretRef::Literal(Secret::new(CLIENT_KEY)));
    key.team = Some("platform".into());
    let mut auth = AuthConfig::new(vec![key]);
    auth.store_path = dir.join("keys.db");
    config.auth = Some(auth);
    config.teams =
        Config::from_toml_str("[teams.platform]\nbudget_usd = 5.0\nbudget_period = \"month\"\n")
            .unwrap()
            .teams;
    config.admin_token = Some(SecretRef::Literal(Secret::new(ADMIN_TOKEN)));
    config.audit.path = dir.join("audit.db");
    config
}

/// One request as the client `alice`, asking for `model` with `prompt`; its request id.
async fn send(
    url: &str,
    upstream: &MockUpstream,
    model: &str,
    prompt: &str,
    usage: (u64, u64),
) -> String {
    upstream.push(Reply::json(200, message_json(usage.0, usage.1)));
    let body = json!({"model": model, "max_tokens": 64, "system": "You are terse.",
                      "messages": [{"role": "user", "content": prompt}]});
    let response = client()
        .post(format!("{url}/v1/messages"))
        .header("x-api-key", CLIENT_KEY)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-gateway-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    response.bytes().await.unwrap();
    id
}

async fn admin_json(url: &str, path: &str) -> Value {
    let response = client()
        .get(format!("{url}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

/// Run `script` in the page until it returns something other than null/false.
async fn until_js(c: &Client, what: &str, script: &str) -> Value {
    eventually(what, || async {
        let value = c.execute(script, vec![]).await.unwrap();
        if value.is_null() || value == Value::Bool(false) {
            Err(value)
        } else {
            Ok(value)
        }
    })
    .await
}

async fn click(c: &Client, css: &str) {
    let element = c.find(Locator::Css(css)).await.unwrap();
    element.click().await.unwrap();
}

async fn screenshot(c: &Client, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, c.screenshot().await.unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let Some(driver_path) = driver_path() else {
        println!("skipped: no chromedriver (set LLM_GATEWAY_TEST_CHROMEDRIVER or install chromium-driver)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().await;
    let gateway = Gateway::builder(config(&upstream, dir.path()))
        .metrics_recorder(prometheus_recorder())
        .build()
        .expect("gateway builds");
    let (url, _task) = serve_gateway(gateway).await;

    // Known traffic: three requests, one of them hostile.
    send(
        &url,
        &upstream,
        "claude-sonnet-4-5",
        "Summarise the design doc.",
        (1200, 300),
    )
    .await;
    send(&url, &upstream, "claude-haiku-4-5", "What is 2+2?", (40, 8)).await;
    let hostile_id = send(&url, &upstream, "claude-sonnet-4-5", HOSTILE, (77, 11)).await;
    let records = eventually("three audit records", || async {
        let page = admin_json(&url, "/gateway/audit").await;
        let records = page["records"].as_array().cloned().unwrap_or_default();
        if records.len() == 3 {
            Ok(records)
        } else {
            Err(records.len())
        }
    })
    .await;
    let cost: Money = records
        .iter()
        .map(|r| llm_gateway::keys::parse_usd(r["cost_usd"].as_str().unwrap()).unwrap())
        .sum();

    let driver = start_driver(&driver_path).await;
    let c = browser(&driver).await;
    c.goto(&format!("{url}/gateway/ui")).await.unwrap();

    // Log in: the page asks for the token, and keeps it out of the URL.
    let token = c.wait().for_element(Locator::Css("#token")).await.unwrap();
    token.send_keys(ADMIN_TOKEN).await.unwrap();
    click(&c, "#login-submit").await;
    let totals = until_js(
        &c,
        "the overview",
        "return window.gwDashboard.ready && window.gwDashboard.totals",
    )
    .await;
    assert!(!c
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains(ADMIN_TOKEN));
    assert_eq!(totals["requests"], 3);
    assert_eq!(totals["cost_usd"], cost.to_string());
    assert_eq!(totals["input_tokens"], 1200 + 40 + 77);
    assert_eq!(totals["output_tokens"], 300 + 8 + 11);
    let shown = c
        .find(Locator::Css("#total-cost"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(shown, cost.to_string());
    // The requests chart plots the same three requests (grouped by model by default).
    let charted = c
        .execute(
            "const d = window.gwDashboard.charts['chart-requests']; \
             return [d.names, d.columns.flat().reduce((a, b) => a + b, 0), \
                     document.querySelectorAll('#chart-requests canvas').length];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(charted[1], 3, "{charted}");
    assert_eq!(charted[2], 1, "a uPlot canvas is drawn: {charted}");
    screenshot(&c, "overview").await;

    // Requests: the table, filtered on the server by model.
    click(&c, "button[data-view=requests]").await;
    until_js(
        &c,
        "three rows",
        "return document.querySelectorAll('#requests tbody tr').length === 3",
    )
    .await;
    let model = c
        .find(Locator::Css("#filters input[name=model]"))
        .await
        .unwrap();
    model.send_keys("claude-haiku-4-5").await.unwrap();
    click(&c, "#apply-filters").await;
    until_js(
        &c,
        "one filtered row",
        "return document.querySelectorAll('#requests tbody tr').length === 1",
    )
    .await;
    model.clear().await.unwrap();
    click(&c, "#apply-filters").await;
    until_js(
        &c,
        "three rows again",
        "return document.querySelectorAll('#requests tbody tr').length === 3",
    )
    .await;

    // Open the hostile request: its conversation is shown as text, nothing runs.
    click(&c, &format!("#requests tr[data-id='{hostile_id}']")).await;
    let conversation = until_js(&c, "the conversation", "const t = document.getElementById('conversation').textContent; return t.includes('window.__pwned') && t").await;
    let conversation = conversation.as_str().unwrap();
    assert!(
        conversation.contains("You are terse.") && conversation.contains(HOSTILE),
        "{conversation}"
    );
    let answer = c
        .find(Locator::Css("#answer"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(answer.contains("Hello! How can I help?"), "{answer}");
    let attempts = c
        .find(Locator::Css("#detail-attempts tbody"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(attempts.contains("anthropic"), "{attempts}");
    let ran = c
        .execute(
            "return [window.__pwned === undefined, document.querySelectorAll('#detail script, #detail img').length];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(ran, json!([true, 0]), "the hostile prompt stayed text");
    screenshot(&c, "request").await;

    // Live tail: a request sent now appears at the top without a reload.
    click(&c, "#live-tail").await;
    until_js(
        &c,
        "the tail to connect",
        "return document.getElementById('tail-status').textContent === 'live tail: on'",
    )
    .await;
    let fresh = send(
        &url,
        &upstream,
        "claude-sonnet-4-5",
        "A new question",
        (5, 5),
    )
    .await;
    until_js(
        &c,
        "the new request in the tail",
        &format!("const r = document.querySelector('#requests tbody tr'); return r && r.dataset.id === '{fresh}'"),
    )
    .await;
    screenshot(&c, "live-tail").await;

    // Providers.
    click(&c, "button[data-view=providers]").await;
    let providers = until_js(
        &c,
        "the providers table",
        "const r = document.querySelector('#providers tbody tr'); return r && r.textContent",
    )
    .await;
    assert!(
        providers
            .as_str()
            .unwrap()
            .starts_with("anthropicavailable"),
        "{providers}"
    );
    screenshot(&c, "providers").await;

    // Keys: create one (its value shown once), then revoke it.
    click(&c, "button[data-view=keys]").await;
    until_js(
        &c,
        "the keys table",
        "return document.querySelector('#keys tbody tr[data-name=alice]') !== null",
    )
    .await;
    c.find(Locator::Css("#create-key input[name=name]"))
        .await
        .unwrap()
        .send_keys("browser-key")
        .await
        .unwrap();
    c.find(Locator::Css("#create-key input[name=budget_usd]"))
        .await
        .unwrap()
        .send_keys("2.5")
        .await
        .unwrap();
    click(
        &c,
        "#create-key select[name=budget_period] option[value=day]",
    )
    .await;
    click(&c, "#create-submit").await;
    let new_key = until_js(
        &c,
        "the new key",
        "const k = document.getElementById('new-key-value').textContent; return k.length > 0 && k",
    )
    .await;
    until_js(
        &c,
        "the new key's row",
        "return document.querySelector('#keys tr[data-name=browser-key]') !== null",
    )
    .await;
    screenshot(&c, "keys").await;
    let created = admin_json(&url, "/gateway/keys/browser-key").await;
    assert_eq!(created["budget_usd"], "2.5");
    assert!(created.get("key").is_none(), "the value is not shown again");
    assert!(new_key.as_str().unwrap().len() > 16);
    for _ in 0..2 {
        click(&c, "#keys tr[data-name=browser-key] button.revoke").await;
        until_js(&c, "the revoke button to react", "return true").await;
    }
    until_js(&c, "the key revoked", "const r = document.querySelector('#keys tr[data-name=browser-key]'); return r && r.textContent.includes('revoked')").await;
    let revoked = admin_json(&url, "/gateway/keys/browser-key").await;
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    assert_eq!(
        c.execute("return window.__pwned === undefined", vec![])
            .await
            .unwrap(),
        json!(true)
    );
    c.close().await.unwrap();
}
