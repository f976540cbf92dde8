//! The HTTP API through `app().oneshot(request)`, on SQLite and on
//! PostgreSQL, over a small synthetic city; workers are driven one claim
//! at a time so every step is observable.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failing unwrap is a failing test"
)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use polis_rebalance::snapshot::SnapshotOptions;
use polis_rebalance::synth::{self, CityOptions};
use polis_server::domains::{self, rebalance};
use polis_server::extract::Auth;
use polis_server::worker::{self, Outcome, WorkerConfig};
use polis_server::{AppState, Core, ServiceConfig};
use polis_store::{JobStatus as RunStatus, Store, StoreConfig, scratch};
use serde_json::{Value, json};
use tower::ServiceExt;

const READ: &str = "read-token";
/// A second reader, to tell submitters apart.
const OTHER: &str = "other-read-token";
const ADMIN: &str = "admin-token";
/// 09:30 on the synthetic city's first day.
const BUCKET: i64 = synth::START_TS + 9 * 3600 + 30 * 60;

async fn sqlite() -> Store {
    let dir = std::env::temp_dir().join(format!(
        "polis-api-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    Store::connect(&format!("sqlite://{}", dir.join("polis.db").display()), &StoreConfig::default()).await.unwrap()
}

async fn postgres() -> Option<Store> {
    let base = scratch::postgres_base_url();
    match scratch::postgres_schema(&base, "api").await {
        Ok(url) => Some(Store::connect(&url, &StoreConfig::default()).await.unwrap()),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI requires PostgreSQL at {base}: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no PostgreSQL at {base}: {e}");
            None
        }
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Api::new(super::sqlite().await).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(store) = super::postgres().await {
                    super::$name(super::Api::new(store).await).await;
                }
            }
        }
    )*};
}

on_both_backends!(
    config_lists_the_builtins_and_the_default_spec,
    a_run_is_pending_then_ready_with_the_same_run_id,
    moves_page_by_run_id_or_run_key,
    bad_requests_get_4xx_naming_the_field,
    a_plugin_disabled_for_a_system_is_refused_there_only,
    a_snapshot_ingested_here_is_visible_at_once,
    another_process_change_is_seen_within_the_lookup_ttl,
    a_failing_plugin_opens_its_breaker_in_plugin_health,
    tokens_grant_roles_and_no_token_gets_401,
    cancel_stops_a_pending_run,
    metrics_and_probes_answer,
    a_second_contract_runs_through_the_generic_run_path,
    every_route_states_its_role_and_refuses_a_caller_without_it,
    only_an_admin_or_the_submitter_cancels_a_run,
    a_token_over_its_run_rate_is_answered_429_with_retry_after,
    an_internal_error_answers_a_correlation_id_and_no_detail,
);

struct Api {
    state: AppState,
    system: String,
}

impl Api {
    async fn new(store: Store) -> Api {
        let city = synth::generate(CityOptions { stations: 40, days: 1, seed: 11 });
        let counts = rebalance::ingest::ingest_feed(&store, &city.feed, SnapshotOptions::default(), 1).await.unwrap();
        assert_eq!(counts.inserted as usize, city.feed.snapshots.len());
        let state =
            state(store, ServiceConfig { body_limit: 4096, ..ServiceConfig::default() }, Default::default()).await;
        Api { state, system: city.feed.system_id }
    }

    fn store(&self) -> &Store {
        &self.state.core.store
    }

    async fn call(&self, method: &str, uri: &str, token: Option<&str>, body: Option<String>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(body.map_or_else(Body::empty, Body::from)).unwrap();
        let response = polis_server::app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, Some(READ), None).await
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", uri, Some(READ), Some(body.to_string())).await
    }

    fn run_body(&self, policy: &str) -> Value {
        json!({"system_id": self.system, "decision_bucket_ts": BUCKET, "policy_version": policy})
    }

    async fn work(&self) -> Option<Outcome> {
        worker::process_one(&self.state, &WorkerConfig::named("test", 0)).await.unwrap()
    }
}

/// The service over `store` with the test tokens and every domain.
async fn state(store: Store, config: ServiceConfig, rebalance: rebalance::Settings) -> AppState {
    let auth =
        Auth { read_tokens: vec![READ.into(), OTHER.into()], admin_tokens: vec![ADMIN.into()], insecure_local: false };
    let core = Core::new(store, auth, config);
    let settings = domains::Settings { rebalance, ..domains::Settings::default() };
    let domains = domains::all(&core, &settings).unwrap();
    AppState::start(core, domains).await.unwrap()
}

fn field(body: &Value) -> &str {
    body["error"]["field"].as_str().unwrap_or("<none>")
}

async fn config_lists_the_builtins_and_the_default_spec(api: Api) {
    let (status, body) = api.get("/api/policy/config").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["available_policy_versions"], json!(["rebal.global.v1", "rebal.greedy.v1"]));
    assert_eq!(body["available_strategies"], json!(["global.v1", "greedy.v1"]));
    assert_eq!(body["default_spec"]["policy_version"], "rebal.global.v1");
    assert_eq!(body["systems"][0]["system_id"], api.system.as_str());
}

async fn a_run_is_pending_then_ready_with_the_same_run_id(api: Api) {
    let (status, first) = api.post("/api/policy/run", api.run_body("rebal.global.v1")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["status"], "pending");
    let run_id = first["run_id"].as_str().unwrap().to_owned();
    let (_, again) = api.post("/api/policy/run", api.run_body("rebal.global.v1")).await;
    assert_eq!((again["status"].as_str(), again["run_id"].as_str()), (Some("pending"), Some(run_id.as_str())));
    assert_eq!(api.store().queue_depth().await.unwrap(), 1, "asking twice enqueues once");

    assert_eq!(api.work().await, Some(Outcome::Stored(RunStatus::Ready)));
    assert_eq!(api.work().await, None);

    let (status, ready) = api.post("/api/policy/run", api.run_body("rebal.global.v1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["run_id"], run_id.as_str());
    assert_eq!(ready["run_key"]["decision_bucket_ts"], BUCKET);
    let result = &ready["result"];
    assert!(result["summary"]["bikes_moved_total"].as_u64().unwrap() > 0, "the morning rush needs moves: {result}");
    let provenance = &ready["provenance"];
    assert_eq!(provenance["plugin_id"], "polis.rebal.global.v1");
    for hash in ["manifest_sha256", "input_sha256", "output_sha256", "view_snapshot_sha256", "run_key_sha256"] {
        assert_eq!(provenance[hash].as_str().map(str::len), Some(64), "{hash}");
    }
    // The cached answer is the stored answer.
    let (_, cached) = api.post("/api/policy/run", api.run_body("rebal.global.v1")).await;
    assert_eq!(cached, ready);
    let (_, status_body) = api.get(&format!("/api/policy/status?run_id={run_id}")).await;
    assert_eq!(status_body["status"], "ready");
    assert_eq!(status_body["result"], ready["result"]);

    // Within a bucket any time maps to the same run.
    // JSON Schema's `integer` admits an integral float, and so does the API.
    let mut integral = api.run_body("rebal.global.v1");
    integral["decision_bucket_ts"] = json!(BUCKET as f64);
    integral["horizon_steps"] = json!(0.0);
    let (_, same) = api.post("/api/policy/run", integral).await;
    assert_eq!(same["run_id"], run_id.as_str(), "{same}");
    let mut inside = api.run_body("rebal.global.v1");
    inside["decision_bucket_ts"] = json!(BUCKET + 299);
    let (_, same) = api.post("/api/policy/run", inside).await;
    assert_eq!(same["run_id"], run_id.as_str());
}

async fn moves_page_by_run_id_or_run_key(api: Api) {
    let (_, first) = api.post("/api/policy/run", api.run_body("rebal.greedy.v1")).await;
    api.work().await.unwrap();
    let run_id = first["run_id"].as_str().unwrap();
    let run_key = first["provenance"]["run_key_sha256"].as_str().unwrap();
    let (status, all) = api.get(&format!("/api/policy/moves?run_id={run_id}")).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let total = all["total"].as_i64().unwrap();
    assert!(total >= 2, "{all}");
    assert_eq!(all["moves"].as_array().unwrap().len() as i64, total);
    let (_, page) = api.get(&format!("/api/policy/moves?run_key={run_key}&offset=1&limit=1")).await;
    assert_eq!(page["moves"].as_array().unwrap().len(), 1);
    assert_eq!(page["moves"][0], all["moves"][1]);
    assert_eq!(page["moves"][0]["move_rank"], 2);
    let (_, ready) = api.post("/api/policy/run", api.run_body("rebal.greedy.v1")).await;
    assert_eq!(ready["result"]["moves"][1]["from_station_key"], all["moves"][1]["from_station_key"]);
}

async fn bad_requests_get_4xx_naming_the_field(api: Api) {
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        ("malformed json", "{\"system_id\": ".to_owned(), StatusCode::BAD_REQUEST, "system_id"),
        ("wrong type", json!({"system_id": api.system, "decision_bucket_ts": "soon", "policy_version": "rebal.global.v1"}).to_string(), StatusCode::BAD_REQUEST, "decision_bucket_ts"),
        ("missing field", json!({"system_id": api.system, "policy_version": "rebal.global.v1"}).to_string(), StatusCode::BAD_REQUEST, "body"),
        ("unknown field", json!({"system_id": api.system, "decision_bucket_ts": BUCKET, "policy_version": "rebal.global.v1", "colour": 1}).to_string(), StatusCode::BAD_REQUEST, "body"),
        ("unknown policy", api.run_body("rebal.nope.v1").to_string(), StatusCode::UNPROCESSABLE_ENTITY, "policy_version"),
        ("negative bucket", json!({"system_id": api.system, "decision_bucket_ts": -300, "policy_version": "rebal.global.v1"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "decision_bucket_ts"),
        ("no snapshot", json!({"system_id": api.system, "decision_bucket_ts": 1_000_000, "policy_version": "rebal.global.v1"}).to_string(), StatusCode::NOT_FOUND, "decision_bucket_ts"),
        ("unknown sv", json!({"system_id": api.system, "decision_bucket_ts": BUCKET, "policy_version": "rebal.global.v1", "sv": "sv1-0"}).to_string(), StatusCode::NOT_FOUND, "sv"),
        ("bad params", json!({"system_id": api.system, "decision_bucket_ts": BUCKET, "policy_version": "rebal.global.v1", "params": {"allowed_bucket_quality": 3}}).to_string(), StatusCode::BAD_REQUEST, "params.allowed_bucket_quality"),
        ("oversize body", json!({"system_id": "x".repeat(5000), "decision_bucket_ts": BUCKET, "policy_version": "rebal.global.v1"}).to_string(), StatusCode::PAYLOAD_TOO_LARGE, "body"),
    ];
    for (what, body, expected, expected_field) in cases {
        let (status, answer) = api.call("POST", "/api/policy/run", Some(READ), Some(body)).await;
        assert_eq!(status, expected, "{what}: {answer}");
        assert_eq!(answer["status"], "error", "{what}: {answer}");
        assert!(answer["error"]["code"].as_str().is_some_and(|c| !c.is_empty()), "{what}: {answer}");
        if expected_field == "body" && what != "oversize body" {
            // serde names the missing or unknown field in the message.
            assert!(answer["error"]["message"].as_str().unwrap().contains('`'), "{what}: {answer}");
        } else {
            assert_eq!(field(&answer), expected_field, "{what}: {answer}");
        }
    }
    let (status, answer) = api.get("/api/policy/moves?run_id=run-nope").await;
    assert_eq!((status, field(&answer)), (StatusCode::NOT_FOUND, "run_id"));
    let (status, answer) = api.get("/api/policy/moves?run_id=x&limit=0").await;
    assert_eq!((status, field(&answer)), (StatusCode::BAD_REQUEST, "limit"));
    let (status, answer) = api.get("/api/policy/moves?run_id=x&offset=minus").await;
    assert_eq!((status, field(&answer)), (StatusCode::BAD_REQUEST, "offset"));
    let (status, answer) = api.get("/api/policy/status").await;
    assert_eq!((status, field(&answer)), (StatusCode::BAD_REQUEST, "run_id"));
    let (status, answer) = api.post("/api/policy/cancel", json!({"run_id": "run-nope"})).await;
    assert_eq!((status, field(&answer)), (StatusCode::NOT_FOUND, "run_id"));
}

async fn a_plugin_disabled_for_a_system_is_refused_there_only(api: Api) {
    // Asking first fills the allow-list cache; the admin call must still
    // take effect for the very next request.
    let (status, body) = api.post("/api/policy/run", api.run_body("rebal.greedy.v1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let uri = format!("/api/admin/plugins/polis.rebal.greedy.v1/systems/{}", api.system);
    let (status, body) = api.call("POST", &uri, Some(ADMIN), Some(json!({"enabled": false}).to_string())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, refused) = api.post("/api/policy/run", api.run_body("rebal.greedy.v1")).await;
    assert_eq!((status, field(&refused)), (StatusCode::UNPROCESSABLE_ENTITY, "system_id"), "{refused}");
    assert_eq!(refused["error"]["code"], "policy.not_enabled");
    let (_, config) = api.get(&format!("/api/policy/config?system_id={}", api.system)).await;
    assert_eq!(config["available_policy_versions"], json!(["rebal.global.v1"]));
    let (status, _) = api.post("/api/policy/run", api.run_body("rebal.global.v1")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, plugins) = api.get("/api/plugins").await;
    let greedy =
        plugins["plugins"].as_array().unwrap().iter().find(|p| p["plugin_id"] == "polis.rebal.greedy.v1").unwrap();
    assert_eq!(
        greedy["systems"],
        json!([{"system_id": "*", "enabled": true}, {"system_id": api.system, "enabled": false}])
    );
    assert_eq!(greedy["activation"], "active");
    let (status, body) = api
        .call("POST", "/api/admin/plugins/nope/systems/x", Some(ADMIN), Some(json!({"enabled": true}).to_string()))
        .await;
    assert_eq!((status, field(&body)), (StatusCode::NOT_FOUND, "plugin_id"));
    let (status, _) = api.call("POST", &uri, Some(ADMIN), Some(json!({"enabled": true}).to_string())).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.post("/api/policy/run", api.run_body("rebal.greedy.v1")).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("pending")), "re-enabled at once: {body}");
}

async fn a_snapshot_ingested_here_is_visible_at_once(api: Api) {
    let dir = std::env::temp_dir()
        .join(format!("polis-api-ingest-{}-{:?}", std::process::id(), api.store().backend()))
        .join("elsewhere");
    synth::write(&synth::generate(CityOptions { stations: 12, days: 1, seed: 5 }), &dir).unwrap();
    let body = json!({"system_id": "elsewhere", "decision_bucket_ts": BUCKET, "policy_version": "rebal.global.v1"});
    // The miss is cached; the ingest below must forget it.
    let (status, missing) = api.post("/api/policy/run", body.clone()).await;
    assert_eq!((status, field(&missing)), (StatusCode::NOT_FOUND, "decision_bucket_ts"), "{missing}");
    let (status, ingested) = api
        .call("POST", "/api/ingest/gbfs", Some(ADMIN), Some(json!({"path": dir.display().to_string()}).to_string()))
        .await;
    assert_eq!(status, StatusCode::OK, "{ingested}");
    assert!(ingested["inserted"].as_u64().unwrap() > 0, "{ingested}");
    let (status, nothing) =
        api.call("POST", "/api/ingest/gbfs", Some(ADMIN), Some(json!({"path": "/nonexistent/feed"}).to_string())).await;
    assert_eq!((status, field(&nothing)), (StatusCode::NOT_FOUND, "path"), "{nothing}");
    let (status, found) = api.post("/api/policy/run", body).await;
    assert_eq!((status, found["status"].as_str()), (StatusCode::OK, Some("pending")), "{found}");
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

async fn another_process_change_is_seen_within_the_lookup_ttl(api: Api) {
    let ttl = std::time::Duration::from_millis(200);
    let other = Api {
        state: state(
            api.store().clone(),
            ServiceConfig::default(),
            rebalance::Settings { lookup_ttl: ttl, ..rebalance::Settings::default() },
        )
        .await,
        system: api.system.clone(),
    };
    let (status, _) = other.post("/api/policy/run", other.run_body("rebal.greedy.v1")).await;
    assert_eq!(status, StatusCode::OK);
    let uri = format!("/api/admin/plugins/polis.rebal.greedy.v1/systems/{}", api.system);
    let (status, _) = api.call("POST", &uri, Some(ADMIN), Some(json!({"enabled": false}).to_string())).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(ttl + std::time::Duration::from_millis(50)).await;
    let (status, refused) = other.post("/api/policy/run", other.run_body("rebal.greedy.v1")).await;
    assert_eq!((status, field(&refused)), (StatusCode::UNPROCESSABLE_ENTITY, "system_id"), "{refused}");
}

async fn tokens_grant_roles_and_no_token_gets_401(api: Api) {
    let (status, body) = api.call("GET", "/api/policy/config", None, None).await;
    assert_eq!((status, field(&body)), (StatusCode::UNAUTHORIZED, "authorization"));
    let (status, _) = api.call("GET", "/api/policy/config", Some("guess"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api.call("GET", "/api/policy/config", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK, "admin may read");
    let uri = "/api/admin/plugins/polis.rebal.greedy.v1/systems/x";
    let (status, body) = api.call("POST", uri, Some(READ), Some(json!({"enabled": false}).to_string())).await;
    assert_eq!((status, field(&body)), (StatusCode::FORBIDDEN, "authorization"));
    let (status, _) =
        api.call("POST", "/api/policy/run", None, Some(api.run_body("rebal.global.v1").to_string())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api.call("GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "probes need no token");
}

async fn cancel_stops_a_pending_run(api: Api) {
    let (_, pending) = api.post("/api/policy/run", api.run_body("rebal.global.v1")).await;
    let run_id = pending["run_id"].as_str().unwrap();
    let (status, cancelled) = api.post("/api/policy/cancel", json!({"run_id": run_id})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(api.work().await, None, "nothing left to claim");
    let (_, moves) = api.get(&format!("/api/policy/moves?run_id={run_id}")).await;
    assert_eq!((moves["status"].as_str(), moves["total"].as_i64()), (Some("cancelled"), Some(0)));
    let (_, again) = api.post("/api/policy/run", api.run_body("rebal.global.v1")).await;
    assert_eq!(
        (again["status"].as_str(), again["run_id"].as_str()),
        (Some("pending"), Some(run_id)),
        "asking again requeues"
    );
}

async fn metrics_and_probes_answer(api: Api) {
    api.post("/api/policy/run", api.run_body("rebal.global.v1")).await;
    api.post("/api/policy/run", api.run_body("rebal.greedy.v1")).await;
    api.work().await.unwrap();
    // Plugin health carries each plugin's breaker and counters.
    let (status, plugins) = api.get("/api/plugins").await;
    assert_eq!(status, StatusCode::OK, "{plugins}");
    let runtime = |id: &str| {
        plugins["plugins"].as_array().unwrap().iter().find(|p| p["plugin_id"] == id).unwrap()["runtime"].clone()
    };
    let global = runtime("polis.rebal.global.v1");
    assert_eq!(
        (global["breaker"].as_str(), global["calls"].as_u64(), global["successes"].as_u64()),
        (Some("closed"), Some(1), Some(1)),
        "{global}"
    );
    assert_eq!(runtime("polis.rebal.greedy.v1")["calls"], 0);
    let (status, text) = api.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap();
    assert!(text.contains("polis_queue_depth 1"), "{text}");
    assert!(text.contains(r#"polis_runs{policy_version="rebal.global.v1",status="ready"} 1"#), "{text}");
    assert!(text.contains(r#"polis_runs{policy_version="rebal.greedy.v1",status="pending"} 1"#), "{text}");
    assert!(text.contains("polis_plugin_latency_seconds_bucket{plugin_id=\"polis.rebal.global.v1\""), "{text}");
    assert!(text.contains(r#"polis_run_requests_total{answer="pending"} 2"#), "{text}");
    let (status, _) = api.call("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, doc) = api.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    for path in [
        "/api/policy/config",
        "/api/policy/run",
        "/api/policy/moves",
        "/api/policy/status",
        "/api/policy/cancel",
        "/api/plugins",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    // The document admits only what the handlers accept.
    let run = &doc["components"]["schemas"]["RunRequest"]["properties"];
    assert_eq!(run["system_id"]["minLength"], 1);
    assert_eq!(run["decision_bucket_ts"]["minimum"], 0);
    assert_eq!(run["policy_version"]["enum"], json!(["rebal.global.v1", "rebal.greedy.v1"]));
    assert_eq!(run["params"]["oneOf"][1]["additionalProperties"], false, "{}", run["params"]);
    for path in ["/api/policy/moves", "/api/policy/status"] {
        let names: Vec<&str> = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(names.contains(&"selector") && !names.contains(&"run_id"), "{path}: {names:?}");
    }
}

async fn a_failing_plugin_opens_its_breaker_in_plugin_health(api: Api) {
    // A guard whose output cap every plan breaks and whose breaker opens
    // at the first failure: the run fails and the breaker shows open.
    let host = polis_rebalance::host::Host::with_breaker(
        polis_rebalance::builtins::registry(),
        polis_runtime::HostLimits { max_output_items: 10_000, max_output_bytes: 16 },
        polis_runtime::BreakerConfig { error_budget: 1, ..polis_runtime::BreakerConfig::default() },
    )
    .unwrap();
    let settings = rebalance::Settings { host: Some(std::sync::Arc::new(host)), ..rebalance::Settings::default() };
    let failing =
        Api { state: state(api.store().clone(), ServiceConfig::default(), settings).await, system: api.system.clone() };
    let (_, pending) = failing.post("/api/policy/run", failing.run_body("rebal.global.v1")).await;
    assert_eq!(failing.work().await, Some(Outcome::Stored(RunStatus::Error)));
    let (_, failed) = failing.get(&format!("/api/policy/status?run_id={}", pending["run_id"].as_str().unwrap())).await;
    let code = failed["error"]["code"].as_str().unwrap().to_owned();
    let (status, plugins) = failing.get("/api/plugins").await;
    assert_eq!(status, StatusCode::OK, "{plugins}");
    let global =
        plugins["plugins"].as_array().unwrap().iter().find(|p| p["plugin_id"] == "polis.rebal.global.v1").unwrap();
    let runtime = &global["runtime"];
    assert_eq!((runtime["breaker"].as_str(), runtime["breaker_opened"].as_u64()), (Some("open"), Some(1)), "{global}");
    // Open for the default 30 s cooldown, so a trial call is some seconds away.
    let retry = runtime["breaker_retry_after_ms"].as_u64().unwrap();
    assert!(retry > 0 && retry <= 30_000, "{global}");
    assert_eq!(runtime["errors"][code.as_str()], 1, "{global}");
    assert_eq!(global["recent_errors"][0]["code"], code.as_str(), "{global}");
    let (status, page) = failing.call("GET", "/console", Some(READ), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("breaker-open"), "the console shows the open breaker");
}

/// `echo.v1` needs no routes of its own: `POST /api/runs` checks the
/// submission against its contract, stores the input by digest, and a
/// worker decides it through the same queue as rebalancing.
async fn a_second_contract_runs_through_the_generic_run_path(api: Api) {
    let submission = json!({
        "contract": "echo.v1",
        "policy_version": "echo.scale.v1",
        "subject": {"label": "api"},
        "input": {"values": [1, 2, 3]},
        "params": {"scale": 5},
    });
    let (status, pending) = api.post("/api/runs", submission.clone()).await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    assert_eq!((pending["status"].as_str(), pending["kind"].as_str()), (Some("pending"), Some("run")), "{pending}");
    let job_id = pending["job_id"].as_str().unwrap().to_owned();
    assert_eq!(pending["key"]["label"], "api", "the run key holds the contract's subject");
    let (_, again) = api.post("/api/runs", submission.clone()).await;
    assert_eq!(again["job_id"], job_id.as_str(), "the same run is the same job");
    assert_eq!(api.work().await, Some(Outcome::Stored(RunStatus::Ready)));
    let (status, ready) = api.get(&format!("/api/runs/{job_id}")).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["result"], json!({"values": [5, 10, 15], "sum": 30, "notes": []}));
    assert_eq!(ready["plugin_id"], "polis.echo.scale.v1");
    let input = api.store().input(ready["input_sha256"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(input.body_json, r#"{"values":[1,2,3]}"#, "the input is stored canonical, under its digest");

    let bad = json!({"contract": "echo.v1", "policy_version": "echo.scale.v1", "subject": {"label": "x"},
        "input": {"values": [1, "two"]}, "params": {"scale": 1}});
    let (status, refused) = api.post("/api/runs", bad).await;
    assert_eq!((status, field(&refused)), (StatusCode::UNPROCESSABLE_ENTITY, "input.values[1]"), "{refused}");
    let unknown = json!({"contract": "nope.v1", "policy_version": "x", "subject": {}, "input": {}, "params": {}});
    let (status, refused) = api.post("/api/runs", unknown).await;
    assert_eq!((status, field(&refused)), (StatusCode::UNPROCESSABLE_ENTITY, "contract"), "{refused}");
    let (_, plugins) = api.get("/api/plugins").await;
    assert!(
        plugins["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["plugin_id"] == "polis.echo.scale.v1" && p["contract"] == "echo.v1"),
        "{plugins}"
    );
}

/// Walks the served OpenAPI document: every operation says which role it
/// needs (`Role: none|read|admin`, or admin-or-submitter), no mutating
/// route is open, and each refuses a caller without its role: a read
/// token gets 403 from an admin route, no token 401 from the others.
async fn every_route_states_its_role_and_refuses_a_caller_without_it(api: Api) {
    let (status, document) = api.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let description = op["description"].as_str().unwrap_or_else(|| panic!("{method} {path}: no description"));
            let role = description
                .split("Role: ")
                .nth(1)
                .unwrap_or_else(|| panic!("{method} {path} does not state its role: {description}"));
            let mutating = method != "GET";
            let uri: String = path
                .split('/')
                .map(|segment| if segment.starts_with('{') { "x" } else { segment })
                .collect::<Vec<_>>()
                .join("/");
            let body = mutating.then(|| "{}".to_owned());
            if role.starts_with("none") {
                assert!(!mutating, "{method} {path} changes something with no role");
                let (status, _) = api.call(&method, &uri, None, None).await;
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path} is open");
            } else if role.starts_with("admin.") {
                let (status, body) = api.call(&method, &uri, Some(READ), body).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} with a read token: {body}");
            } else {
                assert!(role.starts_with("read") || role.starts_with("admin, or"), "{method} {path}: `{role}`");
                let (status, body) = api.call(&method, &uri, None, body).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} without a token: {body}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} operations");
}

async fn only_an_admin_or_the_submitter_cancels_a_run(api: Api) {
    let (_, pending) = api.post("/api/policy/run", api.run_body("rebal.global.v1")).await;
    let run_id = pending["run_id"].as_str().unwrap();
    let cancel = json!({"run_id": run_id}).to_string();
    let (status, body) = api.call("POST", "/api/policy/cancel", Some(OTHER), Some(cancel.clone())).await;
    assert_eq!((status, field(&body)), (StatusCode::FORBIDDEN, "authorization"), "{body}");
    let (_, still) = api.get(&format!("/api/policy/status?run_id={run_id}")).await;
    assert_eq!(still["status"], "pending", "a refused cancel changes nothing");
    let (status, body) = api.call("POST", "/api/policy/cancel", Some(READ), Some(cancel)).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("cancelled")), "{body}");

    let submission = json!({"contract": "echo.v1", "policy_version": "echo.scale.v1", "subject": {"label": "cancel"},
        "input": {"values": [1]}, "params": {"scale": 2}});
    let (_, pending) = api.call("POST", "/api/runs", Some(OTHER), Some(submission.to_string())).await;
    let job_id = pending["job_id"].as_str().unwrap();
    let uri = format!("/api/jobs/{job_id}/cancel");
    let (status, _) = api.call("POST", &uri, Some(READ), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = api.call("POST", &uri, Some(ADMIN), None).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("cancelled")), "an admin cancels any run");
}

async fn a_token_over_its_run_rate_is_answered_429_with_retry_after(api: Api) {
    let limited = state(
        api.store().clone(),
        ServiceConfig { run_rate_per_minute: Some(2), ..ServiceConfig::default() },
        Default::default(),
    )
    .await;
    let send = |token: &str, label: usize| {
        let body = json!({"contract": "echo.v1", "policy_version": "echo.scale.v1", "subject": {"label": format!("rate-{label}")},
            "input": {"values": [1]}, "params": {"scale": 1}});
        Request::builder()
            .method("POST")
            .uri("/api/runs")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    for label in 0..2 {
        let response = polis_server::app(limited.clone()).oneshot(send(READ, label)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = polis_server::app(limited.clone()).oneshot(send(READ, 2)).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    let body: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "request.rate_limited");
    let other = polis_server::app(limited.clone()).oneshot(send(OTHER, 3)).await.unwrap();
    assert_eq!(other.status(), StatusCode::OK, "each token has its own budget");
}

async fn an_internal_error_answers_a_correlation_id_and_no_detail(api: Api) {
    let job = polis_store::NewJob {
        job_id: "job-corrupt".into(),
        kind: "run".into(),
        contract: None,
        key_sha256: "c0".repeat(32),
        key_json: None,
        payload_json: None,
        policy_version: None,
        input_sha256: None,
        submitted_by: None,
    };
    let store = api.store();
    store.enqueue_job(&job, 1).await.unwrap();
    let claimed = store.claim_job("test", &["run"], 2, 60_000, 3).await.unwrap().unwrap();
    assert_eq!(claimed.job.job_id, "job-corrupt");
    let result = polis_store::JobResult { result_json: "{not json".into(), ..polis_store::JobResult::default() };
    assert!(store.complete_job("job-corrupt", "test", &result, 3).await.unwrap());
    let (status, body) = api.get("/api/jobs/job-corrupt").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["code"], "internal");
    let id = body["error"]["correlation_id"].as_str().unwrap();
    assert!(id.starts_with("err-"), "{id}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(id), "{message}");
    assert!(!message.contains("key must be a string") && !message.contains("line 1"), "{message}");
}
