//! The built-in tier: a Rust plugin gets the `PluginContext` value, and
//! every surface works when its permission is granted and is denied cleanly,
//! naming plugin, capability and permission, when not; namespaces, clamps
//! and the locked registry hold.

#![expect(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::collections::BTreeMap;

use common::{PROBE, capabilities, denial, params_for, probe};
use polis_behavior::{ContextError, ContextHost, PluginContext};
use serde_json::{Map, Value, json};

/// Calls one capability through the typed surfaces a built-in uses.
fn typed(ctx: &PluginContext, method: &str) -> Result<Value, ContextError> {
    let p = params_for(method);
    let s = |k: &str| p[k].as_str().unwrap().to_owned();
    let obj = |k: &str| p.get(k).and_then(Value::as_object).cloned().unwrap_or_default();
    Ok(match method {
        "world.get" => ctx.world()?.summary(),
        "world.locations" => json!(ctx.world()?.locations()),
        "world.npcs" => json!(ctx.world()?.npcs()),
        "session.get_flag" => json!(ctx.session()?.flag(&s("key"))),
        "session.get_relationship" => json!(ctx.session()?.relationship(&s("npc_key"))),
        "session.set_flag" => {
            ctx.session_mut()?.set_flag(&s("key"), p["value"].clone())?;
            json!(true)
        }
        "session.update_relationship" => {
            let deltas: BTreeMap<String, f64> = serde_json::from_value(p["deltas"].clone()).unwrap();
            ctx.session_mut()?.update_relationship(&s("npc_key"), &deltas)?
        }
        "npc.get" => ctx.npc()?.get(&s("npc_id"))?,
        "npc.update_state" => ctx.npc_mut()?.update_state(&s("npc_id"), p["energy"].as_f64(), None)?,
        "behavior.register_condition" => json!(ctx.behavior().register_condition_evaluator(&s("name"), None)?),
        "behavior.register_effect" => {
            json!(ctx.behavior().register_effect_handler(&s("name"), None, obj("default_params"))?)
        }
        "behavior.register_simulation_config" => {
            json!(ctx.behavior().register_simulation_config(&s("name"), 5, obj("config"))?)
        }
        "generation.submit" => json!(ctx.generation()?.submit(&s("kind"), p["params"].clone())?),
        "log.emit" => {
            ctx.log()?.emit("info", &s("message"));
            json!(true)
        }
        "event.subscribe" => {
            ctx.subscriptions()?.subscribe(&s("pattern"))?;
            json!(true)
        }
        "event.emit" => {
            ctx.events()?.emit(&s("name"), json!({}))?;
            json!(true)
        }
        "admin.declare_route" => {
            ctx.admin_routes()?.declare(&s("method"), &s("path"))?;
            json!(true)
        }
        other => panic!("no typed call for `{other}`"),
    })
}

#[test]
fn every_capability_works_when_granted_and_is_denied_naming_the_permission_when_not() {
    for (method, permission) in capabilities() {
        let granted = probe(&[permission]);
        let value = typed(&granted.ctx, method).unwrap_or_else(|e| panic!("`{method}` granted: {e}"));
        assert_ne!(value, Value::Null, "`{method}` answered nothing");
        assert_eq!(granted.info.health().permission_denials, 0, "{method}");

        // Everything except this one permission.
        let others: Vec<&str> =
            capabilities().into_iter().map(|(_, p)| p).filter(|p| *p != permission).collect::<Vec<_>>();
        let denied = probe(&others);
        let error = typed(&denied.ctx, method).unwrap_err();
        let ContextError::Denied(d) = &error else { panic!("`{method}`: {error}") };
        assert_eq!((d.plugin_id.as_str(), d.permission.as_str()), (PROBE, permission), "{method}");
        assert!(error.to_string().contains(&format!("permission `{permission}` not granted")), "{error}");
        let health = denied.info.health();
        assert_eq!(health.permission_denials, 1, "{method}: the refusal is counted");
        assert_eq!(health.recent_errors.back().map(|e| e.kind), Some("permission"));
        let (log, _) = denied.services.log_lines();
        assert!(log.iter().any(|l| l.plugin_id == "polis" && l.message == d.to_string()), "{method}: logged");
    }
}

#[test]
fn the_host_api_answers_the_same_methods_and_names_the_method_in_its_denial() {
    for (method, permission) in capabilities() {
        let granted = probe(&[permission]);
        let host = ContextHost::shared(granted.ctx.clone());
        let params = serde_json::to_vec(&params_for(method)).unwrap();
        host.call(method, &params).unwrap_or_else(|e| panic!("`{method}`: {e}"));
        let denied = probe(&[]);
        let error = ContextHost::shared(denied.ctx.clone()).call(method, &params).unwrap_err();
        assert_eq!(error.to_string(), denial(method, permission));
        assert_eq!(error.code(), "permission.denied");
    }
}

#[test]
fn a_session_write_outside_the_plugins_namespace_is_refused() {
    let p = probe(&["session:write", "session:read"]);
    let write = p.ctx.session_mut().unwrap();
    for key in ["quest", "plugin:other.plugin:seen", "plugin:test.probe", "plugin:test.probe:"] {
        let error = write.set_flag(key, json!(1)).unwrap_err();
        assert!(matches!(error, ContextError::Refused { .. }), "{key}: {error}");
        assert!(error.to_string().contains("may only write keys under `plugin:test.probe:`"), "{error}");
    }
    assert_eq!(p.session.lock().unwrap().flags["quest"], json!({"stage": 2}), "nothing was written");
    write.set_flag("plugin:test.probe:seen", json!(true)).unwrap();
    assert_eq!(p.ctx.session().unwrap().flag("plugin:test.probe:seen"), Some(json!(true)));
}

#[test]
fn hostile_writes_are_refused_by_size_key_and_axis() {
    let p = probe(&["session:write", "npc:write", "event:emit", "generation:submit"]);
    let write = p.ctx.session_mut().unwrap();
    let big = json!("x".repeat(70 << 10));
    assert!(write.set_flag("plugin:test.probe:big", big.clone()).unwrap_err().to_string().contains("over the limit"));
    let long_key = format!("plugin:test.probe:{}", "k".repeat(300));
    assert!(write.set_flag(&long_key, json!(1)).unwrap_err().to_string().contains("longer than 256"));
    let odd = BTreeMap::from([("lust".to_owned(), 5.0)]);
    assert!(write.update_relationship("npc:ann", &odd).unwrap_err().to_string().contains("unknown relationship axis"));
    let nan = BTreeMap::from([("trust".to_owned(), f64::NAN)]);
    assert!(write.update_relationship("npc:ann", &nan).is_err());
    assert!(p.ctx.npc_mut().unwrap().update_state("nobody", Some(1.0), None).is_err());
    let error = p.ctx.events().unwrap().emit("session:created", json!({})).unwrap_err();
    assert!(error.to_string().contains("(a core event)"), "{error}");
    assert!(p.ctx.generation().unwrap().submit("a b", json!({})).is_err());
}

#[test]
fn relationships_and_npc_state_are_clamped_and_carry_provenance() {
    let p = probe(&["session:write", "npc:write", "npc:read"]);
    let up = BTreeMap::from([("affinity".to_owned(), 500.0), ("tension".to_owned(), -3.0)]);
    let value = p.ctx.session_mut().unwrap().update_relationship("npc:ann", &up).unwrap();
    assert_eq!(value, json!({"affinity": 100.0, "trust": 10, "tension": 0.0, "meta": {"last_modified_by": PROBE}}));
    let npc = p.ctx.npc_mut().unwrap();
    npc.update_state("ann", Some(-250.0), Some(-400.0)).unwrap();
    let state = npc.update_state("ann", Some(30.0), Some(20.0)).unwrap();
    assert_eq!(state, json!({"energy": 30.0, "moodState": {"valence": -80.0}}));
    assert_eq!(p.ctx.npc().unwrap().get("ann").unwrap()["state"], state);
}

#[test]
fn extensions_are_namespaced_by_plugin_and_duplicates_and_forged_names_are_refused() {
    let p = probe(&["behavior:extend_conditions", "behavior:extend_effects"]);
    let api = p.ctx.behavior();
    assert_eq!(api.register_condition_evaluator("has_key", None).unwrap(), "plugin:test.probe:has_key");
    let defaults: Map<String, Value> = json!({"amount": 1}).as_object().cloned().unwrap();
    assert_eq!(api.register_effect_handler("boost", None, defaults).unwrap(), "effect:plugin:test.probe:boost");
    let again = api.register_condition_evaluator("has_key", None).unwrap_err();
    assert!(again.to_string().contains("already registered by plugin `test.probe`"), "{again}");
    assert!(api.register_condition_evaluator("other:has_key", None).is_err(), "a name cannot forge a namespace");
    let registry = p.registry.lock().unwrap();
    assert_eq!(registry.condition("plugin:test.probe:has_key").map(|c| c.plugin_id.as_str()), Some(PROBE));
}

#[test]
fn nothing_registers_once_loading_is_over() {
    let p = probe(&["behavior:extend_conditions"]);
    let after = PluginContext::new(
        std::sync::Arc::clone(&p.info),
        polis_behavior::Scene::default(),
        std::sync::Arc::clone(&p.services),
    );
    let error = after.behavior().register_condition_evaluator("late", None).unwrap_err();
    assert!(error.to_string().contains("only while the plugin loads"), "{error}");
    p.registry.lock().unwrap().lock();
    let error = p.ctx.behavior().register_condition_evaluator("late", None).unwrap_err();
    assert!(error.to_string().contains("registry is locked"), "{error}");
}

#[test]
fn a_call_without_a_session_says_so_rather_than_inventing_one() {
    let p = probe(&["session:read"]);
    let loading = PluginContext::new(std::sync::Arc::clone(&p.info), polis_behavior::Scene::default(), p.services);
    let error = loading.session().unwrap_err();
    assert!(matches!(error, ContextError::Unavailable { .. }), "{error}");
}
