//! Policy packs over HTTP against the real `polis serve`, on SQLite and on
//! PostgreSQL: a project under `enterprise-compliance` in block mode is
//! blocked until its five blocking clarifications are answered and its
//! defects are fixed or waived, and blocked again when the waiver expires;
//! every change is audited; a hostile repo-local file is refused by name
//! and the stored policy is unchanged; every admin route refuses a read
//! token; and the seed's published payloads POST and evaluate unchanged.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failing unwrap is a failing test"
)]

#[path = "../../polis-packs/tests/common/mod.rs"]
mod fixture;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{ADMIN, READ, Server, browser_dir, browser_ready, postgres_url, scratch_dir};

fn codes(findings: &Value) -> Vec<String> {
    findings.as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_owned()).collect()
}

fn rfc3339_in(seconds: i64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds);
    at.format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// The gate of `protocol` until it says `allowed`, or the deadline.
fn gate(server: &Server, protocol: &str, phase: &str) -> Value {
    let (status, body) =
        server.call("POST", &format!("/protocols/{protocol}/gate"), READ, Some(&json!({"phase": phase})));
    assert_eq!(status, 200, "{body}");
    body
}

fn enterprise_compliance_blocks_until_answered_and_fixed(database_url: &str) {
    let repo = scratch_dir("repo");
    fixture::defective_repo(&repo);
    let server = Server::start(database_url, &[]);

    let packs = server.get("/policy_packs");
    let keys: Vec<&str> = packs.as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["beginner-guided", "default", "enterprise-compliance", "startup-fast", "team-standard"]);
    let pack = server.get("/policy_packs/enterprise-compliance");
    assert_eq!(pack["latest_active"], "1.0");

    let (status, project) = server.admin("POST", "/projects", &json!({"name": "payments", "repo_path": repo}));
    assert_eq!(status, 201, "{project}");
    let id = project["project_id"].as_str().unwrap().to_owned();
    let (status, body) = server.admin(
        "PUT",
        &format!("/projects/{id}/policy"),
        &json!({"pack_key": "enterprise-compliance", "enforcement_mode": "block"}),
    );
    assert_eq!(status, 200, "{body}");
    let hash = body["effective_hash"].as_str().unwrap().to_owned();
    assert!(hash.starts_with("sha256:"));

    let effective = server.get(&format!("/projects/{id}/policy/effective"));
    assert_eq!(effective["effective_hash"], hash.as_str());
    assert_eq!(effective["mode"], "block");
    assert_eq!(effective["provenance"]["/enforcement/mode"], "project");
    assert_eq!(effective["provenance"]["/requirements/protocol_files/0"], "pack");

    let findings = server.get(&format!("/projects/{id}/policy/findings"));
    assert_eq!(findings["blocked"], true);
    assert_eq!(findings["effective_hash"], hash.as_str());
    let found = codes(&findings["findings"]);
    for code in [
        "policy.protocol.missing_file",
        "policy.step.file_missing",
        "policy.step.missing_section",
        "policy.ci.required_check_missing",
        "policy.ci.required_check_not_executable",
        "policy.clarification.unanswered",
    ] {
        assert!(found.iter().any(|c| c == code), "{code} missing from {found:?}");
    }

    let protocols = server.get(&format!("/projects/{id}/protocols"));
    let feature = protocols.as_array().unwrap().iter().find(|p| p["run_name"] == "0001-feature").unwrap();
    let protocol = feature["protocol_id"].as_str().unwrap().to_owned();
    let step = feature["steps"].as_array().unwrap().iter().find(|s| s["step_name"] == "02-implement.md").unwrap();
    let step_id = step["step_id"].as_str().unwrap().to_owned();
    // Ids are stable: a second scan gives the same ones.
    server.get(&format!("/projects/{id}/policy/findings"));
    assert_eq!(server.get(&format!("/projects/{id}/protocols")), protocols);
    let step_findings = server.get(&format!("/steps/{step_id}/policy/findings"));
    assert!(
        step_findings["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["scope"] != "step" || f["step_id"] == step_id.as_str()),
        "{step_findings}"
    );
    assert!(codes(&step_findings["findings"]).contains(&"policy.step.missing_section".to_owned()));

    let blocked = gate(&server, &protocol, "qa");
    assert_eq!(blocked["allowed"], false);
    let blocking_questions = |gate: &Value| {
        gate["blocking"].as_array().unwrap().iter().filter(|f| f["code"] == "policy.clarification.unanswered").count()
    };
    assert_eq!(blocking_questions(&blocked), 5, "{blocked}");

    // Answer the five blocking questions; a value outside the options is refused.
    let clarifications = server.get(&format!("/projects/{id}/clarifications"));
    let blocking: Vec<Value> = clarifications["clarifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["blocking"] == true)
        .cloned()
        .collect();
    assert_eq!(blocking.len(), 5);
    for c in &blocking {
        let key = c["key"].as_str().unwrap();
        assert_eq!(c["answered"], false);
        if c["options"].is_array() {
            let (status, body) = server.admin(
                "POST",
                &format!("/projects/{id}/clarifications/{key}"),
                &json!({"value": "not-an-option", "answered_by": "lead"}),
            );
            assert_eq!(status, 422, "{body}");
        }
        let value = c["options"]
            .get(0)
            .cloned()
            .or_else(|| c["recommended"].clone().into())
            .filter(|v| !v.is_null())
            .unwrap_or(json!("yes"));
        let (status, body) = server.admin(
            "POST",
            &format!("/projects/{id}/clarifications/{key}"),
            &json!({"value": value, "answered_by": "lead"}),
        );
        assert_eq!(status, 200, "{key}: {body}");
    }
    let answered = gate(&server, &protocol, "qa");
    assert_eq!(answered["allowed"], false, "the file defects still block");
    assert_eq!(blocking_questions(&answered), 0, "{answered}");

    // Fix every defect but the non-executable lint script, and waive that one briefly.
    fixture::fix_repo(&repo);
    fixture::executable(&repo, "scripts/ci/lint.sh", false);
    let still = gate(&server, &protocol, "qa");
    assert_eq!(codes(&still["blocking"]), ["policy.ci.required_check_not_executable"], "{still}");
    let expires_at = rfc3339_in(4);
    let (status, body) = server.admin(
        "POST",
        &format!("/projects/{id}/waivers"),
        &json!({"code": "policy.ci.required_check_not_executable", "path": "scripts/ci/lint.sh",
                "reason": "CI image fix lands Monday", "granted_by": "security", "expires_at": expires_at}),
    );
    assert_eq!(status, 201, "{body}");
    let allowed = gate(&server, &protocol, "qa");
    assert_eq!(allowed["allowed"], true, "{allowed}");

    // The waiver expires: blocked again, saying when it expired.
    let deadline = Instant::now() + Duration::from_secs(30);
    let again = loop {
        std::thread::sleep(Duration::from_millis(250));
        let decision = gate(&server, &protocol, "qa");
        if decision["allowed"] == false {
            break decision;
        }
        assert!(Instant::now() < deadline, "the waiver never expired: {decision}");
    };
    assert_eq!(again["blocking"][0]["metadata"]["waiver_expired_at"], expires_at.as_str(), "{again}");

    // Every change is audited with who and the hashes before and after.
    let audit = server.get(&format!("/projects/{id}/policy/audit"));
    let actions: Vec<&str> = audit.as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions[..2], ["project.create", "policy.set"]);
    assert_eq!(actions.iter().filter(|a| **a == "clarification.answer").count(), 5);
    assert_eq!(actions.last(), Some(&"waiver.grant"));
    let set = &audit[1];
    assert!(set["actor"].as_str().unwrap().starts_with("token:"), "{set}");
    assert!(!set.to_string().contains(ADMIN), "the audit never holds a token");
    assert_eq!(set["hash_after"], hash.as_str());
    assert!(set["hash_before"].as_str().unwrap().starts_with("sha256:") && set["hash_before"] != set["hash_after"]);

    hostile_repo_local_files_are_refused_and_nothing_changes(&server, &id, &repo);
    admin_routes_refuse_a_read_token(&server, &id);
}

fn hostile_repo_local_files_are_refused_and_nothing_changes(server: &Server, id: &str, repo: &Path) {
    let policy = server.get(&format!("/projects/{id}/policy"));
    let audit = server.get(&format!("/projects/{id}/policy/audit")).as_array().unwrap().len();
    let deep = format!("{}{}", "{\"defaults\":".repeat(10_000), "1".to_owned() + &"}".repeat(10_000));
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n\
                g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n\
                i: [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
    let cases: [(&str, String); 6] = [
        ("policy.json", format!("{{\"defaults\": {{\"note\": \"{}\"}}}}", "x".repeat(10 << 20))),
        ("policy.json", deep),
        ("policy.yml", bomb.to_owned()),
        ("policy.json", "{\"defaults\": {}, \"defaults\": {}}".to_owned()),
        ("policy.json", "{\"surprise\": true}".to_owned()),
        (
            "policy.json",
            "{\"defaults\": {\"git\": {\"token\": \"ghp_abcdefghijklmnopqrstuvwxyz0123456789\"}}}".to_owned(),
        ),
    ];
    for (name, text) in cases {
        let dir = repo.join(".polis");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), &text).unwrap();
        let (status, body) = server.call("GET", &format!("/projects/{id}/policy/effective"), READ, None);
        assert_eq!(status, 422, "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!(".polis/{name}")), "the error names the file: {message}");
        assert!(!message.contains("ghp_"), "the error never quotes the file: {message}");
        let (status, body) = server.admin(
            "PUT",
            &format!("/projects/{id}/policy"),
            &json!({"pack_key": "team-standard", "enforcement_mode": "warn"}),
        );
        assert_eq!(status, 422, "{name}: {body}");
        assert_eq!(server.get(&format!("/projects/{id}/policy")), policy, "the stored policy is unchanged");
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    assert_eq!(server.get(&format!("/projects/{id}/policy/audit")).as_array().unwrap().len(), audit);
}

/// Walks the OpenAPI document: every route of this domain that says it
/// needs the admin role refuses a read token with 403.
fn admin_routes_refuse_a_read_token(server: &Server, id: &str) {
    let document = server.get("/openapi.json");
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        if !(path.starts_with("/policy_packs") || path.starts_with("/projects")) {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            let description = operation["description"].as_str().unwrap_or("");
            assert!(description.contains("Role: "), "{method} {path} states no role");
            if !description.contains("Role: admin") {
                continue;
            }
            let uri = path.replace("{id}", id).replace("{key}", "default");
            let (status, body) = server.call(&method.to_uppercase(), &uri, READ, Some(&json!({})));
            assert_eq!(status, 403, "{method} {path} with a read token: {body}");
            checked += 1;
        }
    }
    // Publish, deprecate, create a project, set its policy, answer, waive.
    assert_eq!(checked, 6, "admin routes found");
}

#[test]
fn enterprise_compliance_blocks_until_answered_and_fixed_on_sqlite() {
    let dir = scratch_dir("sqlite");
    enterprise_compliance_blocks_until_answered_and_fixed(&format!("sqlite://{}", dir.join("polis.db").display()));
}

#[test]
fn enterprise_compliance_blocks_until_answered_and_fixed_on_postgres() {
    if let Some(url) = postgres_url("packs") {
        enterprise_compliance_blocks_until_answered_and_fixed(&url);
    }
}

/// The seed's five payloads POST unchanged to a store without polis's own
/// packs (`--no-builtin-packs`) and evaluate a project; on a seeded store
/// the same key and version with other content is a conflict, never an
/// edit.
#[test]
fn the_seed_payloads_post_and_evaluate_unchanged() {
    let Some(dir) = polis_testdata::require("packs") else { return };
    let repo = scratch_dir("seed-repo");
    fixture::defective_repo(&repo);
    let db = scratch_dir("seed-db");
    let server = Server::start(&format!("sqlite://{}", db.join("polis.db").display()), &["--no-builtin-packs"]);
    assert_eq!(server.get("/policy_packs"), json!([]));
    let (_, project) = server.admin("POST", "/projects", &json!({"name": "seed", "repo_path": repo}));
    let id = project["project_id"].as_str().unwrap().to_owned();
    for key in ["default", "beginner-guided", "startup-fast", "team-standard", "enterprise-compliance"] {
        let text = std::fs::read_to_string(dir.join(format!("{key}.json"))).unwrap();
        let payload: Value = serde_json::from_str(&text).unwrap();
        let (status, body) = server.admin("POST", "/policy_packs", &payload);
        assert_eq!(status, 201, "{key}: {body}");
        let (status, body) = server.admin("POST", "/policy_packs", &payload);
        assert_eq!((status, body["status"].as_str()), (200, Some("unchanged")), "{key}: publishing is idempotent");
        let (status, body) = server.admin("PUT", &format!("/projects/{id}/policy"), &json!({"pack_key": key}));
        assert_eq!(status, 200, "{key}: {body}");
        let findings = server.get(&format!("/projects/{id}/policy/findings"));
        let found = codes(&findings["findings"]);
        assert!(found.contains(&"policy.clarification.unanswered".to_owned()), "{key}: {findings}");
        if key != "default" {
            // Every pack but `default` requires step sections, so the
            // step the plan names without a file is found.
            assert!(found.contains(&"policy.step.file_missing".to_owned()), "{key}: {findings}");
        }
    }
    let (status, body) = server.admin("POST", "/policy_packs/startup-fast/deprecate", &json!({}));
    assert_eq!((status, &body["deprecated"]), (200, &json!(["1.0"])), "{body}");
    assert_eq!(server.get("/policy_packs/startup-fast")["latest_active"], Value::Null);

    let seeded_db = scratch_dir("seeded-db");
    let seeded = Server::start(&format!("sqlite://{}", seeded_db.join("polis.db").display()), &[]);
    let payload: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("default.json")).unwrap()).unwrap();
    let (status, body) = seeded.admin("POST", "/policy_packs", &payload);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "pack.conflict");
}

/// In Chromium (`tests/browser/packs.mjs`): the project page shows the
/// effective policy with each value's layer, and answering a clarification
/// through its form makes its finding disappear.
#[test]
fn answering_a_clarification_in_the_console_removes_its_finding() {
    if !browser_ready() {
        return;
    }
    let repo = scratch_dir("console-repo");
    fixture::defective_repo(&repo);
    let db = scratch_dir("console-db");
    let server = Server::start(&format!("sqlite://{}", db.join("polis.db").display()), &["--insecure-local"]);
    let (_, project) = server.admin("POST", "/projects", &json!({"name": "console", "repo_path": repo}));
    let id = project["project_id"].as_str().unwrap().to_owned();
    let (status, body) = server.admin(
        "PUT",
        &format!("/projects/{id}/policy"),
        &json!({"pack_key": "team-standard", "overrides": {"enforcement": {"mode": "block"}}}),
    );
    assert_eq!(status, 200, "{body}");
    let screenshot = db.join("project.png");
    let url = format!("{}/console/projects/{id}", server.base);
    let out = Command::new("node")
        .current_dir(browser_dir())
        .arg("packs.mjs")
        .arg(&url)
        .arg("review_policy")
        .arg(&screenshot)
        .output()
        .unwrap();
    assert!(out.status.success(), "browser failed: {}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((seen["before"].as_u64(), seen["after"].as_u64()), (Some(1), Some(0)), "{seen}");
    assert_eq!(seen["answered_by_shown"], true, "{seen}");
    assert_eq!(seen["layers"], json!(["pack", "project"]), "{seen}");
    assert_eq!(seen["hash"], body["effective_hash"], "{seen}");
    assert_eq!(seen["external"], json!([]), "the console needs no network: {seen}");
    assert_eq!(seen["errors"], json!([]), "{seen}");
    let answers = server.get(&format!("/projects/{id}/clarifications"));
    let answered = answers["clarifications"].as_array().unwrap().iter().find(|c| c["key"] == "review_policy").unwrap();
    assert_eq!(answered["answered"], true, "{answered}");
    eprintln!("screenshot: {}", screenshot.display());
}
