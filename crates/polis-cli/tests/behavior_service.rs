//! NPC behaviour over HTTP against the real `polis serve`, on SQLite and on
//! PostgreSQL, with process plugins: the example `example.tired`, a plugin
//! that fails every call, and route plugins.
//!
//! - a world is stored by an admin (a read token may not), a session of it
//!   starts with `session:created` delivered, and a short advance answers
//!   at once with the timeline, the digest `polis behavior simulate` prints
//!   for the same world and session, and an RFC 6902 patch;
//! - 10,000 ticks go through the job queue; the healthy plugin's effects
//!   apply, the failing plugin shows unhealthy in `/api/plugins/health`
//!   (admin), and the service keeps serving;
//! - a route plugin's routes answer under `/api/plugins/{id}/…`; the
//!   world-scoped route of a world that does not enable it is a 404; the
//!   routes of a plugin holding `admin:routes` need the admin role.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test code: a failing unwrap is a failing test")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{ADMIN, READ, Server, postgres_url, scratch_dir};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const FAULTY: &str = r#"import polis_plugin

def register(params):
    return {"conditions": [{"name": "boom"}], "effects": [{"name": "boom"}]}

def fail(request):
    raise polis_plugin.Rejected("boom: this plugin fails every call")

if __name__ == "__main__":
    polis_plugin.serve(None, methods={"register": register, "evaluate_condition": fail, "apply_effect": fail})
"#;

const ROUTES: &str = r#"import polis_plugin

def register(params):
    return {"routes": [{"method": "GET", "path": "/hello"}, {"method": "POST", "path": "/echo/{name}"},
                       {"method": "GET", "path": "/events"}],
            "subscriptions": ["session:created", "location:changed", "interaction:executed"]}

SEEN = []

def handle_route(request):
    if request["route"] == "/events":
        return {"body": SEEN}
    if request["route"] == "/hello":
        if request.get("world_id"):
            world = polis_plugin.call_host("world.get", {})
            npcs = polis_plugin.call_host("world.npcs", {})
            return {"body": {"world": world["id"], "npcs": len(npcs)}}
        return {"body": {"hello": "world"}}
    return {"status": 201, "body": {"name": request["params"]["name"], "sent": request["body"], "query": request["query"]}}

def on_event(request):
    SEEN.append(request["event"])
    return {}

if __name__ == "__main__":
    polis_plugin.serve(None, methods={"register": register, "handle_route": handle_route, "on_event": on_event})
"#;

const ADMIN_ROUTES: &str = r#"import polis_plugin

def register(params):
    return {"routes": [{"method": "GET", "path": "/stats"}]}

def handle_route(request):
    return {"body": {"stats": "for admins"}}

if __name__ == "__main__":
    polis_plugin.serve(None, methods={"register": register, "handle_route": handle_route})
"#;

fn manifest(id: &str, kind: &str, permissions: &[&str]) -> Value {
    json!({
        "contract_version": "policy.plugin.v1", "plugin_id": id, "plugin_version": "1.0.0",
        "policy_version": format!("behavior.{}", id.replace('.', "_")), "strategy": "test",
        "display_name": id, "deterministic": true, "contract": "behavior.v1", "kind": kind,
        "runtime": {"tier": "process", "entry": "python3 plugin.py"},
        "permissions": permissions, "limits": {"timeout_ms": 2000, "memory_mb": 256}
    })
}

/// A plugin root: the example `tired` plugin, the failing one and two
/// route plugins, each with the SDK beside it.
fn plugin_root() -> PathBuf {
    let root = scratch_dir("behavior-plugins");
    let sdk = repo().join("sdk/python/polis_plugin.py");
    let tired = root.join("tired");
    std::fs::create_dir_all(&tired).unwrap();
    for file in ["manifest.json", "plugin.py"] {
        std::fs::copy(repo().join("examples/behavior/plugins/tired-python").join(file), tired.join(file)).unwrap();
    }
    std::fs::copy(&sdk, tired.join("polis_plugin.py")).unwrap();
    for (dir, id, kind, permissions, code) in [
        ("faulty", "test.faulty", "feature", vec!["group:behavior"], FAULTY),
        ("routes", "test.routes", "route", vec!["world:read", "event:subscribe"], ROUTES),
        ("admin", "test.admin", "route", vec!["admin:routes"], ADMIN_ROUTES),
    ] {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("manifest.json"), manifest(id, kind, &permissions).to_string()).unwrap();
        std::fs::write(dir.join("plugin.py"), code).unwrap();
        std::fs::copy(&sdk, dir.join("polis_plugin.py")).unwrap();
    }
    root
}

/// The example village, enabling the built-in, `example.tired` and the
/// failing plugin, whose condition and effect every meal and walk uses.
fn village() -> Value {
    let text = std::fs::read_to_string(repo().join("examples/behavior/village.world.json")).unwrap();
    let mut world: Value = serde_json::from_str(&text).unwrap();
    let behavior = &mut world["meta"]["behavior"];
    behavior["enabledPlugins"] = json!(["polis.behavior.moody", "example.tired", "test.faulty"]);
    for activity in ["breakfast", "lunch", "supper", "walk"] {
        let effects = &mut behavior["activities"][activity]["effects"];
        let mut custom = effects["customEffects"].as_array().cloned().unwrap_or_default();
        custom.push(json!({"type": "effect:plugin:test.faulty:boom"}));
        effects["customEffects"] = json!(custom);
    }
    behavior["activities"]["gossip"]["requirements"]["conditions"] =
        json!([{"type": "custom", "evaluatorId": "plugin:test.faulty:boom"}]);
    world
}

fn wait_job(server: &Server, job_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let body = server.get(&format!("/api/jobs/{job_id}"));
        match body["status"].as_str() {
            Some("ready") => return body,
            Some("pending") if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            _ => panic!("job {job_id}: {body}"),
        }
    }
}

fn report<'a>(health: &'a Value, plugin_id: &str) -> &'a Value {
    health["plugins"].as_array().unwrap().iter().find(|p| p["plugin_id"] == plugin_id).unwrap()
}

fn behaviour_over_http(database_url: &str, dir: &Path) {
    let root = plugin_root();
    let server = Server::start(
        database_url,
        &["--timeout-seconds", "300", "--enable-admin-plugins", "--plugin-dir", root.to_str().unwrap()],
    );
    let world = village();

    // Worlds are the admin's; a read token may not store one.
    let (status, body) = server.call("POST", "/api/worlds", READ, Some(&world));
    assert_eq!(status, 403, "{body}");
    let (status, body) = server.admin("POST", "/api/worlds", &world);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["npcs"], 12);
    let (status, _) = server.admin("POST", "/api/worlds", &world);
    assert_eq!(status, 200, "the same world again changes nothing");
    let mut other = world.clone();
    other["name"] = json!("another village");
    let (status, body) = server.admin("POST", "/api/worlds", &other);
    assert_eq!(status, 409, "{body}");
    let mut bad = world.clone();
    bad["id"] = json!("bad");
    bad["meta"]["behavior"]["routines"] = json!(7);
    let (status, body) = server.admin("POST", "/api/worlds", &bad);
    assert_eq!(status, 422, "{body}");

    // A session, and a day answered inline: the digest is the CLI's.
    let (status, created) =
        server.call("POST", "/api/worlds/village/sessions", READ, Some(&json!({"session_id": "day-one"})));
    assert_eq!(status, 201, "{created}");
    let (status, advanced) =
        server.call("POST", "/api/sessions/day-one/advance", READ, Some(&json!({"seconds": 86_400, "seed": 7})));
    assert_eq!(status, 200, "{advanced}");
    assert_eq!((advanced["ticks"].as_u64(), advanced["version"].as_i64()), (Some(96), Some(1)));
    assert_eq!(advanced["world_time_after"], 86_400, "the session resumes at the next tick");
    assert!(
        advanced["patch"].as_array().unwrap().iter().any(|op| op["path"] == "/world_time"),
        "{}",
        advanced["patch"]
    );
    let world_file = dir.join("village.world.json");
    std::fs::write(&world_file, world.to_string()).unwrap();
    let session_file = dir.join("day-one.session.json");
    std::fs::write(&session_file, created["session"].to_string()).unwrap();
    let cli = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["behavior", "simulate", "--world", world_file.to_str().unwrap(), "--session"])
        .args([session_file.to_str().unwrap(), "--ticks", "96", "--seed", "7", "--json"])
        .args(["--plugin-dir", root.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(advanced["digest"], cli["digest"], "the service and the CLI agree");
    let stored = server.get("/api/sessions/day-one");
    assert_eq!(stored["version"], 1);
    let timeline = server.get("/api/sessions/day-one/timeline");
    assert_eq!(timeline["entries"].as_array().unwrap().len(), advanced["timeline"].as_array().unwrap().len());

    // 10,000 ticks through the job queue, with one plugin failing every call.
    let (status, accepted) =
        server.call("POST", "/api/sessions/day-one/advance", READ, Some(&json!({"seconds": 10_000 * 900})));
    assert_eq!(status, 202, "{accepted}");
    let job = wait_job(&server, accepted["job_id"].as_str().unwrap());
    let result = &job["result"];
    assert_eq!(result["ticks"], 10_000, "{job}");
    assert!(result["stats"]["effects_applied"].as_u64().unwrap() > 0, "{}", result["stats"]);
    let (status, body) = server.call("GET", "/api/plugins/health", READ, None);
    assert_eq!(status, 403, "health is the admin's: {body}");
    let (status, health) = server.call("GET", "/api/plugins/health", ADMIN, None);
    assert_eq!(status, 200, "{health}");
    let faulty = report(&health, "test.faulty");
    assert_eq!(faulty["healthy"], false, "{faulty}");
    assert_eq!(faulty["health"]["recent_errors"].as_array().unwrap().len(), 10, "{faulty}");
    let tired = report(&health, "example.tired");
    assert_eq!(tired["healthy"], true, "{tired}");
    assert!(tired["health"]["effects"]["total"].as_u64().unwrap() > 0, "{tired}");
    assert_eq!(tired["health"]["effects"]["failures"], 0, "{tired}");
    assert_eq!(server.get("/api/sessions/day-one")["version"], 2);

    // Routes: unscoped, world-scoped where enabled, 404 where not.
    assert_eq!(server.get("/api/plugins/test.routes/hello"), json!({"hello": "world"}));
    let (status, body) = server.call("POST", "/api/plugins/test.routes/echo/ann?x=1", READ, Some(&json!({"n": 2})));
    assert_eq!((status, body), (201, json!({"name": "ann", "sent": {"n": 2}, "query": {"x": "1"}})));
    let (status, body) = server.call("GET", "/api/plugins/test.routes/nowhere", READ, None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = server.call("GET", "/api/worlds/village/plugins/test.routes/hello", READ, None);
    assert_eq!(status, 404, "the village does not enable test.routes: {body}");
    assert!(body.to_string().contains("not enabled in world `village`"), "{body}");
    let mut open = world.clone();
    open["id"] = json!("open");
    open["meta"]["behavior"].as_object_mut().unwrap().remove("enabledPlugins");
    open["locations"][1]["meta"] = json!({"position": {"x": 5, "y": 0}});
    let (status, body) = server.admin("POST", "/api/worlds", &open);
    assert_eq!(status, 201, "{body}");
    assert_eq!(server.get("/api/worlds/open/plugins/test.routes/hello"), json!({"world": "open", "npcs": 12}));
    let (status, created) = server.call("POST", "/api/worlds/open/sessions", READ, Some(&json!({})));
    assert_eq!(status, 201, "{created}");
    assert!(created["handled_by"].as_array().unwrap().contains(&json!("test.routes")), "{created}");
    play(&server, created["session_id"].as_str().unwrap());

    // A plugin holding `admin:routes` serves admins only.
    let (status, body) = server.call("GET", "/api/plugins/test.admin/stats", READ, None);
    assert_eq!(status, 403, "{body}");
    let (status, body) = server.call("GET", "/api/plugins/test.admin/stats", ADMIN, None);
    assert_eq!((status, body), (200, json!({"stats": "for admins"})));

    // The console draws the session's timeline.
    let (status, page) = server.call("GET", "/console/behavior?session=day-one", READ, None);
    assert_eq!(status, 200);
    let page = page.as_str().unwrap();
    assert!(page.contains("<svg id=\"npc-timeline\""), "{page}");
    assert!(page.contains("unhealthy"), "the failing plugin is shown unhealthy");
}

/// The player moves and interacts in `session_id` (of the world `open`,
/// which enables `test.routes`), and the plugin receives the events.
fn play(server: &Server, session_id: &str) {
    let location = format!("/api/sessions/{session_id}/location");
    let (status, moved) = server.call("POST", &location, READ, Some(&json!({"location_id": "inn"})));
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["event"]["type"], "location:changed", "{moved}");
    assert_eq!((&moved["event"]["data"]["from"], &moved["event"]["data"]["to"]), (&json!(null), &json!("inn")));
    assert_eq!(moved["session"]["flags"]["player"]["current_location"], "inn");
    assert_eq!(moved["session"]["flags"]["player"]["position"], json!({"x": 5, "y": 0}), "the inn's position");
    assert_eq!((moved["version"].as_i64(), moved["handled_by"].clone()), (Some(1), json!(["test.routes"])));
    let (status, again) = server.call("POST", &location, READ, Some(&json!({"location_id": "inn"})));
    assert_eq!((status, again["event"].clone()), (200, json!(null)), "staying put raises nothing: {again}");
    let (status, body) = server.call("POST", &location, READ, Some(&json!({"location_id": "moon"})));
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("location_id") && body.to_string().contains("no location `moon`"), "{body}");

    let interactions = format!("/api/sessions/{session_id}/interactions");
    let talk = json!({"npc_id": "ann", "interaction_id": "talk", "relationship_deltas": {"affinity": 30, "trust": -5},
        "data": {"line": "good morning"}});
    let (status, talked) = server.call("POST", &interactions, READ, Some(&talk));
    assert_eq!(status, 200, "{talked}");
    let relationship = &talked["session"]["relationships"]["npc:ann"];
    assert_eq!((relationship["affinity"].as_f64(), relationship["trust"].as_f64()), (Some(30.0), Some(0.0)), "clamped");
    assert_eq!(talked["event"]["type"], "interaction:executed");
    assert_eq!(talked["event"]["data"]["relationship"]["affinity"].as_f64(), Some(30.0), "{talked}");
    assert_eq!((talked["version"].as_i64(), talked["handled_by"].clone()), (Some(3), json!(["test.routes"])));
    for (bad, field) in [
        (json!({"npc_id": "nobody", "interaction_id": "talk"}), "npc_id"),
        (json!({"npc_id": "ann", "interaction_id": "talk", "relationship_deltas": {"love": 1}}), "relationship_deltas"),
        (json!({"npc_id": "ann", "interaction_id": ""}), "interaction_id"),
    ] {
        let (status, body) = server.call("POST", &interactions, READ, Some(&bad));
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body.to_string().contains(field), "{bad}: {body}");
    }
    let seen = server.get("/api/plugins/test.routes/events");
    let types: Vec<&str> = seen.as_array().unwrap().iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(
        types.ends_with(&["session:created", "location:changed", "interaction:executed"]),
        "the plugin got each event once: {types:?}"
    );
    assert_eq!(seen.as_array().unwrap().last().unwrap()["data"]["data"], json!({"line": "good morning"}));
}

#[test]
fn behaviour_on_sqlite_serves_worlds_sessions_health_and_routes() {
    let dir = scratch_dir("behavior-sqlite");
    behaviour_over_http(&format!("sqlite://{}", dir.join("polis.db").display()), &dir);
}

#[test]
fn behaviour_on_postgres_serves_worlds_sessions_health_and_routes() {
    let Some(url) = postgres_url("behavior") else { return };
    behaviour_over_http(&url, &scratch_dir("behavior-postgres"));
}
