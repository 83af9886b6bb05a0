//! Client keys through the real gateway: created, used, listed, changed, revoked and
//! expired through the API; kept across a restart; `/gateway/me`; and a key's value
//! never shown after the answer that created it.

mod common;

use common::*;
use llm_gateway::budget::{
    Admission, Budget, Ledger, Limits, MemoryLedger, Period, Scope, Settlement, DEFAULT_LEASE,
};
use llm_gateway::config::{AuthConfig, ClientKey, Secret, SecretRef};
use llm_gateway::pricing::Money;
use llm_gateway::{Config, Gateway};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const ADMIN_TOKEN: &str = "adm-keys-5c1e7a";
const CI_KEY: &str = "gk-config-ci-93a1f0";

/// A gateway with `[auth]` (one config key `ci` of team `platform`), an admin token, the
/// key store and audit in `dir`, and a ledger the test can also write.
struct Rig {
    url: String,
    upstream: MockUpstream,
    ledger: Arc<MemoryLedger>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn config(upstream: &MockUpstream, dir: &Path) -> Config {
    let mut config = config_for(upstream);
    let mut ci = ClientKey::new("ci", SecretRef::Literal(Secret::new(CI_KEY)));
    ci.team = Some("platform".into());
    let mut auth = AuthConfig::new(vec![ci]);
    auth.store_path = dir.join("keys.db");
    config.auth = Some(auth);
    config.teams = Config::from_toml_str(
        "[teams.platform]\nbudget_usd = 500.0\nbudget_period = \"month\"\nrpm = 600\n",
    )
    .unwrap()
    .teams;
    config.admin_token = Some(SecretRef::Literal(Secret::new(ADMIN_TOKEN)));
    config.audit.path = dir.join("audit.db");
    config
}

async fn start(upstream: &MockUpstream, dir: &Path) -> Rig {
    let ledger = Arc::new(MemoryLedger::new());
    let gateway = Gateway::builder(config(upstream, dir))
        .metrics_recorder(prometheus_recorder())
        .ledger(ledger.clone())
        .build()
        .expect("gateway builds");
    let (url, task) = serve_gateway(gateway).await;
    Rig {
        url,
        upstream: upstream.clone(),
        ledger,
        task,
    }
}

impl Rig {
    /// An admin request: status and JSON body.
    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = client()
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("{method} {path}: {e}: {}", String::from_utf8_lossy(&bytes))
        });
        (status, value)
    }

    /// The raw text of an admin GET.
    async fn admin_text(&self, path: &str) -> String {
        client()
            .get(format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Create a key; its object (with `key`).
    async fn create(&self, body: Value) -> Value {
        let (status, created) = self.admin("POST", "/gateway/keys", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created
    }

    /// POST /v1/messages with `key` (the mock answers 200 when `answer` is set).
    async fn call(&self, key: &str, answer: bool) -> (u16, Value) {
        if answer {
            self.upstream.push(Reply::json(200, message_json(10, 5)));
        }
        let response = client()
            .post(format!("{}/v1/messages", self.url))
            .header("x-api-key", key)
            .body(messages_body(false))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap(),
        )
    }

    /// Charge `cost` to `scopes` through the ledger, as a finished request would.
    async fn spend(&self, id: &str, scopes: Vec<(Scope, Limits)>, cost: Money) {
        let admitted = self
            .ledger
            .admit(Admission {
                request_id: id.into(),
                scopes,
                cost_bound: cost,
                token_bound: 15,
                lease: DEFAULT_LEASE,
            })
            .await
            .unwrap();
        assert!(admitted.is_ok(), "{admitted:?}");
        self.ledger.settle(id, Settlement { cost, tokens: 15 });
    }
}

fn refused_because(body: &Value, word: &str) {
    assert_eq!(body["error"]["type"], "authentication_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(word), "{message}");
}

fn key_named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {list}"))
}

#[tokio::test]
async fn a_created_key_works_is_listed_without_its_value_and_is_refused_once_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().await;
    let rig = start(&upstream, dir.path()).await;
    let created = rig
        .create(
            json!({"name": "bot", "team": "platform", "budget_usd": "5", "rpm": 60,
                       "models": ["claude-*"]}),
        )
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("gk-") && key.len() >= 3 + 32, "{key}");
    assert_eq!(created["source"], "api");
    assert_eq!(created["budget_usd"], "5");
    assert_eq!(created["budget_period"], "day");
    assert_eq!(created["remaining_usd"], "5");
    assert_eq!(created["revoked_at"], Value::Null);

    let (status, answer) = rig.call(&key, true).await;
    assert_eq!(status, 200, "{answer}");
    let sent = &upstream.requests()[0];
    assert!(
        sent.header("x-api-key").is_none_or(|v| v != key),
        "never forwarded"
    );

    let list = rig.admin_text("/gateway/keys").await;
    assert!(!list.contains(&key), "the list never shows the key: {list}");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert!(key_named(&list, "bot").get("key").is_none());
    assert_eq!(key_named(&list, "ci")["source"], "config");
    let one = rig.admin_text("/gateway/keys/bot").await;
    assert!(!one.contains(&key) && one.contains("\"bot\""), "{one}");

    let (status, revoked) = rig.admin("DELETE", "/gateway/keys/bot", None).await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let (status, refused) = rig.call(&key, false).await;
    assert_eq!(status, 401);
    refused_because(&refused, "revoked");
    assert!(!refused.to_string().contains(&key));
    assert_eq!(upstream.requests().len(), 1, "nothing more went upstream");
    let (_, list) = rig.admin("GET", "/gateway/keys", None).await;
    assert!(
        key_named(&list, "bot")["revoked_at"].is_string(),
        "still listed"
    );

    // The audit names the key, never shows it.
    let audit = eventually("the audit record of bot's request", || async {
        let text = rig.admin_text("/gateway/audit?bodies=true").await;
        if text.contains("\"bot\"") {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .await;
    assert!(!audit.contains(&key), "{audit}");
}

#[tokio::test]
async fn an_expired_key_is_refused_and_expiry_can_be_moved() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().await;
    let rig = start(&upstream, dir.path()).await;
    let past = rig
        .create(json!({"name": "old", "expires_at": "2020-01-01T00:00:00Z"}))
        .await;
    assert_eq!(past["expires_at"], "2020-01-01T00:00:00.000Z");
    let (status, refused) = rig.call(past["key"].as_str().unwrap(), false).await;
    assert_eq!(status, 401);
    refused_because(&refused, "expired");

    let later = rig
        .create(json!({"name": "soon", "expires_at": "2999-01-01T00:00:00Z"}))
        .await;
    let key = later["key"].as_str().unwrap();
    assert_eq!(rig.call(key, true).await.0, 200);
    let (status, patched) = rig
        .admin(
            "PATCH",
            "/gateway/keys/soon",
            Some(json!({"expires_at": "2021-06-01T12:00:00Z"})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    let (status, refused) = rig.call(key, false).await;
    assert_eq!(status, 401);
    refused_because(&refused, "expired");
    let (status, patched) = rig
        .admin(
            "PATCH",
            "/gateway/keys/soon",
            Some(json!({"expires_at": null})),
        )
        .await;
    assert_eq!((status, &patched["expires_at"]), (200, &Value::Null));
    assert_eq!(rig.call(key, true).await.0, 200);
    assert_eq!(
        upstream.requests().len(),
        2,
        "refused requests never went upstream"
    );
}

#[tokio::test]
async fn api_keys_and_their_revocation_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().await;
    let first = start(&upstream, dir.path()).await;
    let kept = first.create(json!({"name": "kept", "tpm": 1000})).await;
    let gone = first.create(json!({"name": "gone"})).await;
    assert_eq!(
        first.admin("DELETE", "/gateway/keys/gone", None).await.0,
        200
    );
    drop(first);

    let store = std::fs::read(dir.path().join("keys.db")).unwrap();
    for key in [&kept["key"], &gone["key"]] {
        let key = key.as_str().unwrap().as_bytes();
        assert!(
            !store.windows(key.len()).any(|w| w == key),
            "the store never holds a key"
        );
    }

    let second = start(&upstream, dir.path()).await;
    assert_eq!(
        second.call(kept["key"].as_str().unwrap(), true).await.0,
        200
    );
    let (status, refused) = second.call(gone["key"].as_str().unwrap(), false).await;
    assert_eq!(status, 401);
    refused_because(&refused, "revoked");
    let (_, list) = second.admin("GET", "/gateway/keys", None).await;
    assert_eq!(key_named(&list, "kept")["tpm"], 1000);
    assert_eq!(key_named(&list, "kept")["created_at"], kept["created_at"]);
    assert!(key_named(&list, "gone")["revoked_at"].is_string());
    assert_eq!(
        second.call(CI_KEY, true).await.0,
        200,
        "config keys still work"
    );
}

#[tokio::test]
async fn taken_names_are_409_config_keys_are_read_only_and_unknown_names_404() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().await;
    let rig = start(&upstream, dir.path()).await;
    let (status, body) = rig
        .admin("POST", "/gateway/keys", Some(json!({"name": "ci"})))
        .await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (409, Some("invalid_request_error"))
    );
    rig.create(json!({"name": "bot"})).await;
    let (status, _) = rig
        .admin("POST", "/gateway/keys", Some(json!({"name": "bot"})))
        .await;
    assert_eq!(status, 409);
    for (method, body) in [("PATCH", Some(json!({"rpm": 5}))), ("DELETE", None)] {
        let (status, answer) = rig.admin(method, "/gateway/keys/ci", body).await;
        assert_eq!(status, 409, "{method}: {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("defined in the config file"), "{message}");
    }
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"rpm": 5}))),
        ("DELETE", None),
    ] {
        let (status, answer) = rig.admin(method, "/gateway/keys/nobody", body).await;
        assert_eq!(status, 404, "{method}: {answer}");
        assert_eq!(answer["error"]["type"], "not_found_error");
    }
    assert_eq!(
        rig.call(CI_KEY, true).await.0,
        200,
        "the config key is untouched"
    );
}

#[tokio::test]
async fn a_bad_field_is_400_naming_it_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().await;
    let rig = start(&upstream, dir.path()).await;
    rig.create(json!({"name": "bot"})).await;
    let cases = [
        ("POST", json!({"name": "x", "rpm": 0}), "`rpm`"),
        ("POST", json!({"name": "x", "tpm": 1.5}), "`tpm`"),
        (
            "POST",
            json!({"name": "x", "max_concurrent": -2}),
            "`max_concurrent`",
        ),
        (
            "POST",
            json!({"name": "x", "budget_usd": -1}),
            "`budget_usd`",
        ),
        (
            "POST",
            json!({"name": "x", "budget_usd": "ten"}),
            "`budget_usd`",
        ),
        (
            "POST",
            json!({"name": "x", "budget_usd": 1, "budget_period": "fortnight"}),
            "`budget_period`",
        ),
        (
            "POST",
            json!({"name": "x", "budget_period": "week"}),
            "`budget_period`",
        ),
        (
            "POST",
            json!({"name": "x", "models": ["claude-*", "["]}),
            "`models[1]`",
        ),
        (
            "POST",
            json!({"name": "x", "models": "claude-*"}),
            "`models`",
        ),
        (
            "POST",
            json!({"name": "x", "expires_at": "tomorrow"}),
            "`expires_at`",
        ),
        ("POST", json!({"name": "x", "team": 7}), "`team`"),
        ("POST", json!({"name": "a/b"}), "`name`"),
        ("POST", json!({"rpm": 5}), "`name`"),
        ("POST", json!({"name": "x", "colour": "red"}), "`colour`"),
        ("POST", json!(["name"]), "`body`"),
        ("PATCH", json!({"name": "renamed"}), "`name`"),
        ("PATCH", json!({"rpm": 0}), "`rpm`"),
    ];
    for (method, body, field) in cases {
        let path = if method == "POST" {
            "/gateway/keys"
        } else {
            "/gateway/keys/bot"
        };
        let (status, answer) = rig.admin(method, path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error", "{body}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
    let response = client()
        .post(format!("{}/gateway/keys", rig.url))
        .bearer_auth(ADMIN_TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let (_, list) = rig.admin("GET", "/gateway/keys", None).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 2, "{list}");
    assert_eq!(
        key_named(&list, "bot")["rpm"],
        Value::Null,
        "the bad patch changed nothing"
    );
}

#[tokio::test]
async fn patch_sets_and_clears_limits() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().await;
    let rig = start(&upstream, dir.path()).await;
    rig.create(json!({"name": "bot", "budget_usd": 2.5, "budget_period": "week", "rpm": 10}))
        .await;
    let (status, key) = rig
        .admin(
            "PATCH",
            "/gateway/keys/bot",
            Some(json!({"rpm": null, "tpm": 5000, "team": "research", "budget_usd": "0.1"})),
        )
        .await;
    assert_eq!(status, 200, "{key}");
    assert_eq!(key["rpm"], Value::Null);
    assert_eq!(key["tpm"], 5000);
    assert_eq!(key["team"], "research");
    assert_eq!(
        (key["budget_usd"].as_str(), key["budget_period"].as_str()),
        (Some("0.1"), Some("week"))
    );
    let (_, key) = rig
        .admin(
            "PATCH",
            "/gateway/keys/bot",
            Some(json!({"budget_usd": null})),
        )
        .await;
    assert_eq!(
        (
            &key["budget_usd"],
            &key["budget_period"],
            &key["remaining_usd"]
        ),
        (&Value::Null, &Value::Null, &Value::Null)
    );
}

#[tokio::test]
async fn spend_comes_from_the_ledger_for_keys_and_teams() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().await;
    let rig = start(&upstream, dir.path()).await;
    rig.create(json!({"name": "bot", "team": "platform", "budget_usd": "1"}))
        .await;
    rig.create(json!({"name": "solo", "team": "ad-hoc"})).await;
    let bot_limits = Limits {
        budget: Some(Budget {
            limit: Money::from_picos(1_000_000_000_000),
            period: Period::Day,
        }),
        ..Limits::default()
    };
    let team_limits = Limits {
        budget: Some(Budget {
            limit: Money::from_picos(500_000_000_000_000),
            period: Period::Month,
        }),
        rpm: Some(600),
        ..Limits::default()
    };
    let cost = Money::from_picos(1_234_567);
    rig.spend(
        "r1",
        vec![
            (Scope::key("bot"), bot_limits),
            (Scope::team("platform"), team_limits),
        ],
        cost,
    )
    .await;
    let (_, list) = rig.admin("GET", "/gateway/keys", None).await;
    let bot = key_named(&list, "bot");
    assert_eq!(bot["spent_usd"], "0.000001234567");
    assert_eq!(bot["reserved_usd"], "0");
    assert_eq!(bot["remaining_usd"], "0.999998765433");
    assert!(
        bot["resets_at"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00.000Z"),
        "{bot}"
    );
    assert_eq!(bot["requests_last_minute"], 1);
    assert_eq!(bot["open_requests"], 0);

    let (status, teams) = rig.admin("GET", "/gateway/teams", None).await;
    assert_eq!(status, 200);
    let teams = teams["teams"].as_array().unwrap();
    let platform = teams.iter().find(|t| t["name"] == "platform").unwrap();
    assert_eq!(platform["budget_usd"], "500");
    assert_eq!(platform["budget_period"], "month");
    assert_eq!(platform["spent_usd"], "0.000001234567");
    assert_eq!(platform["keys"], json!(["bot", "ci"]));
    let ad_hoc = teams
        .iter()
        .find(|t| t["name"] == "ad-hoc")
        .expect("a team only keys name");
    assert_eq!(
        (&ad_hoc["budget_usd"], &ad_hoc["keys"]),
        (&Value::Null, &json!(["solo"]))
    );
}

#[tokio::test]
async fn me_shows_the_callers_own_key_and_team_with_no_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().await;
    let rig = start(&upstream, dir.path()).await;
    let other = rig
        .create(json!({"name": "other-bot", "budget_usd": 3}))
        .await;
    let team_limits = Limits {
        budget: Some(Budget {
            limit: Money::from_picos(500_000_000_000_000),
            period: Period::Month,
        }),
        rpm: Some(600),
        ..Limits::default()
    };
    rig.spend(
        "r1",
        vec![
            (Scope::key("ci"), Limits::default()),
            (Scope::team("platform"), team_limits),
        ],
        Money::from_picos(20_000_000_000),
    )
    .await;
    let me = |key: Option<&str>| {
        let mut request = client().get(format!("{}/gateway/me", rig.url));
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, text) = me(Some(CI_KEY)).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        !text.contains("other-bot") && !text.contains(CI_KEY),
        "{text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["name"], "ci");
    assert_eq!(body["team"], "platform");
    assert_eq!(body["limits"]["budget_usd"], Value::Null);
    assert_eq!(body["remaining_usd"], Value::Null);
    assert_eq!(body["spent_usd"], "0.02");
    assert_eq!(body["team_usage"]["name"], "platform");
    assert_eq!(body["team_usage"]["limits"]["budget_usd"], "500");
    assert_eq!(body["team_usage"]["limits"]["rpm"], 600);
    assert_eq!(body["team_usage"]["remaining_usd"], "499.98");

    let (status, text) = me(other["key"].as_str()).await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((status, body["name"].as_str()), (200, Some("other-bot")));
    assert_eq!(body["limits"]["budget_usd"], "3");
    assert_eq!(body["team_usage"], Value::Null);

    for key in [None, Some(ADMIN_TOKEN), Some("gk-nobody")] {
        let (status, text) = me(key).await;
        assert_eq!(status, 401, "{key:?}: {text}");
        assert!(text.contains("authentication_error"));
    }
    // The key endpoints themselves need the admin token, not a client key.
    for key in [CI_KEY, other["key"].as_str().unwrap()] {
        let response = client()
            .get(format!("{}/gateway/keys", rig.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
    }
}

#[tokio::test]
async fn without_auth_there_are_no_keys_to_create() {
    let upstream = MockUpstream::start().await;
    let gateway = start_gateway(config_for(&upstream)).await;
    let response = client()
        .post(gateway.url("/gateway/keys"))
        .body(r#"{"name":"bot"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("[auth]"));
    assert_eq!(gateway.get_json("/gateway/keys").await, json!({"keys": []}));
}

#[test]
fn a_store_holding_a_config_keys_name_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store: PathBuf = dir.path().join("keys.db");
    let registry = llm_gateway::keys::KeyRegistry::from_named_keys(Vec::new())
        .with_store(&store)
        .unwrap();
    registry
        .create(llm_gateway::keys::NewKey {
            name: "ci".into(),
            ..Default::default()
        })
        .unwrap();
    let mut config = Config::default();
    let mut auth = AuthConfig::new(vec![ClientKey::new(
        "ci",
        SecretRef::Literal(Secret::new(CI_KEY)),
    )]);
    auth.store_path = store;
    config.auth = Some(auth);
    let error = Gateway::new(config).err().expect("refused").to_string();
    assert!(
        error.contains("auth.store_path") && error.contains("\"ci\""),
        "{error}"
    );
}
