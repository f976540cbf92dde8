//! `polis behavior simulate` on the example village, as the README runs
//! it: text, `--json`, `--out` then `--verify`, and a tampered timeline
//! reported as drift.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly; clippy allows this in #[test] functions but not in the helpers they share"
)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn here(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path).display().to_string()
}

fn polis(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_polis")).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

fn village_args() -> Vec<String> {
    let mut args: Vec<String> = ["behavior", "simulate", "--world"].map(str::to_owned).to_vec();
    args.push(here("../../examples/behavior/village.world.json"));
    args.extend(["--ticks", "96", "--plugin-dir"].map(str::to_owned));
    args.push(here("../../examples/behavior/plugins"));
    args
}

fn run(extra: &[&str]) -> (i32, String, String) {
    let mut args = village_args();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    polis(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn the_village_simulates_a_day_in_text_and_json_with_one_digest() {
    let (code, text, stderr) = run(&[]);
    assert_eq!(code, 0, "{text}{stderr}");
    for expected in ["ann (baker)", "d1 00:00  sleep", "bake", "patrol", "schedule_only", "simplified"] {
        assert!(text.contains(expected), "`{expected}` missing:\n{text}");
    }
    assert!(text.contains("  nap "), "a tired NPC naps through the custom condition:\n{text}");
    assert!(text.contains("plugin example.tired (process): healthy"), "{text}");
    let rested = text.lines().find(|l| l.contains("plugin effects:")).unwrap();
    assert!(!rested.contains(" 0 applied"), "the custom effect applied: {rested}");
    let digest = text.lines().last().unwrap().strip_prefix("digest ").unwrap().to_owned();
    assert_eq!(digest.len(), 64);

    let (code, json, stderr) = run(&["--json"]);
    assert_eq!(code, 0, "{stderr}");
    let body: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(body["digest"], Value::String(digest), "text and JSON agree, and runs repeat");
    let npcs = body["npcs"].as_object().unwrap();
    assert_eq!(npcs.len(), 12);
    assert_eq!(npcs["ann"][0]["activityId"], "sleep");
}

#[test]
fn out_then_verify_passes_and_a_tampered_timeline_is_drift() {
    let dir = std::env::temp_dir().join(format!("polis-behavior-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.display().to_string();
    let (code, _, stderr) = run(&["--seed", "3", "--out", &out]);
    assert_eq!(code, 0, "{stderr}");
    for file in ["timeline.jsonl", "digest", "world.json", "session.json", "run.json"] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let plugins = here("../../examples/behavior/plugins");
    let (code, text, stderr) = polis(&["behavior", "simulate", "--verify", &out, "--plugin-dir", &plugins]);
    assert_eq!(code, 0, "{text}{stderr}");
    assert!(text.contains("no drift"), "{text}");

    let timeline = std::fs::read_to_string(dir.join("timeline.jsonl")).unwrap();
    let tampered = timeline.replacen("\"activityId\":\"sleep\"", "\"activityId\":\"walk\"", 1);
    assert_ne!(tampered, timeline);
    std::fs::write(dir.join("timeline.jsonl"), tampered).unwrap();
    let (code, text, _) = polis(&["behavior", "simulate", "--verify", &out, "--plugin-dir", &plugins]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("drift in"), "{text}");
    assert!(text.contains("timeline.jsonl: NPC `"), "the first differing entry is named: {text}");

    let (code, text, _) = polis(&["behavior", "simulate", "--verify", &out]);
    assert_eq!(code, 1, "without the plugins the run drifts: {text}");
    assert!(text.contains("plugins differ"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_world_is_refused_naming_the_file_and_field() {
    let dir = std::env::temp_dir().join(format!("polis-behavior-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(here("../../examples/behavior/village.world.json")).unwrap();
    let bad = text.replacen("\"activityId\": \"sleep\"", "\"activityId\": \"slep\"", 1);
    let path = dir.join("bad.world.json");
    std::fs::write(&path, bad).unwrap();
    let (code, _, stderr) = polis(&["behavior", "simulate", "--world", path.to_str().unwrap(), "--ticks", "4"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "`meta.behavior.routines.villager.nodes[0].preferredActivities[0].activityId`: no activity `slep`"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = polis(&["behavior", "simulate", "--world", "/nonexistent.json", "--ticks", "4"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read `/nonexistent.json`"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn permissions_lists_every_permission_and_what_each_group_expands_to() {
    let (code, json, stderr) = polis(&["behavior", "permissions", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let body: Value = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = body["permissions"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    for name in ["world:read", "session:write", "behavior:configure_simulation", "event:emit", "admin:routes"] {
        assert!(names.contains(&name), "{name} missing: {names:?}");
    }
    let groups = body["groups"].as_array().unwrap();
    let handler = groups.iter().find(|g| g["name"] == "group:event_handler").unwrap();
    assert_eq!(handler["members"], serde_json::json!(["event:subscribe", "log:emit"]));
    let (code, text, _) = polis(&["behavior", "permissions"]);
    assert_eq!(code, 0);
    assert!(text.contains("group `group:readonly` = world:read + session:read + npc:read + log:emit"), "{text}");
    assert!(
        text.contains("host method `session.set_flag` (wasm import `polis.session_set_flag`) needs `session:write`")
    );
}

#[test]
fn plugins_shows_grants_and_registrations_and_a_plugin_that_fails_to_register() {
    let (code, text, stderr) =
        polis(&["behavior", "plugins", "--plugin-dir", &here("../../examples/behavior/plugins")]);
    assert_eq!(code, 0, "{text}{stderr}");
    for expected in [
        "example.tired  process  feature",
        "condition plugin:example.tired:low_energy",
        "effect effect:plugin:example.nosy:gossip",
    ] {
        assert!(text.contains(expected), "`{expected}` missing:\n{text}");
    }
    let root = tempfile::tempdir().unwrap();
    let broken = root.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    let tired = here("../../examples/behavior/plugins/tired-python");
    let manifest =
        std::fs::read_to_string(format!("{tired}/manifest.json")).unwrap().replace("example.tired", "test.broken");
    std::fs::write(broken.join("manifest.json"), manifest).unwrap();
    std::fs::copy(format!("{tired}/polis_plugin.py"), broken.join("polis_plugin.py")).unwrap();
    let code_py = "import polis_plugin\n\ndef register(params):\n    raise polis_plugin.Rejected('no world for me')\n\n\
        if __name__ == '__main__':\n    polis_plugin.serve(None, methods={'register': register})\n";
    std::fs::write(broken.join("plugin.py"), code_py).unwrap();
    let (code, json, stderr) = polis(&["behavior", "plugins", "--json", "--plugin-dir", root.path().to_str().unwrap()]);
    assert_eq!(code, 1, "a disabled plugin is a finding: {json}{stderr}");
    let body: Value = serde_json::from_str(&json).unwrap();
    let report = body["plugins"].as_array().unwrap().iter().find(|p| p["plugin_id"] == "test.broken").unwrap();
    assert!(report["disabled"].as_str().unwrap().contains("no world for me"), "{report}");
}
