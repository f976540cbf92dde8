//! The runtime's guard on a contract that is not rebalancing: every output
//! is capped, schema-checked and semantically validated, a panicking
//! plugin is contained, a failing one opens its breaker, and a contract
//! whose schema does not compile cannot be guarded at all.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers fail loudly")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use polis_core::contract::{Contract, Violations};
use polis_core::manifest::Manifest;
use polis_core::policy::{Call, Policy, PolicyError};
use polis_core::registry::Registry;
use polis_echo::{Echo, EchoInput, EchoOutput, EchoParams, EchoSubject};
use polis_runtime::{BreakerConfig, BreakerState, Decision, Host, HostError, HostLimits, RunError};

/// A plugin whose behaviour the test picks per call.
struct Scripted {
    manifest: Manifest,
    behaviour: fn(&Call<'_, Echo>) -> Result<EchoOutput, PolicyError>,
    calls: AtomicUsize,
}

fn scripted(id: &str, behaviour: fn(&Call<'_, Echo>) -> Result<EchoOutput, PolicyError>) -> Arc<Scripted> {
    let mut manifest = polis_echo::builtins::Scale::default().manifest().clone();
    manifest.plugin_id = format!("test.{id}.v1");
    manifest.policy_version = format!("echo.{id}.v1");
    Arc::new(Scripted { manifest, behaviour, calls: AtomicUsize::new(0) })
}

impl Policy<Echo> for Scripted {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn run(&self, call: &Call<'_, Echo>) -> Result<EchoOutput, PolicyError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        (self.behaviour)(call)
    }
}

fn host_with(plugins: &[Arc<Scripted>], limits: HostLimits, breaker: BreakerConfig) -> Host<Echo> {
    let mut registry: Registry<Echo> = polis_echo::builtins::registry();
    for plugin in plugins {
        registry.register(Arc::clone(plugin) as Arc<dyn Policy<Echo>>, None).unwrap();
    }
    Host::with_breaker(registry, limits, breaker).unwrap()
}

fn decide(host: &Host<Echo>, version: &str, values: Vec<i64>) -> Result<EchoOutput, HostError> {
    let subject = EchoSubject { label: "guard".into() };
    let input = EchoInput { values };
    let params = EchoParams { scale: 2 };
    host.decide(version, &Decision::new(&subject, &input, &params)).map(|r| r.output)
}

fn run_error(result: Result<EchoOutput, HostError>) -> RunError {
    match result {
        Err(HostError::Run(e)) => e,
        other => panic!("expected a run error, got {other:?}"),
    }
}

#[test]
fn a_panicking_plugin_is_contained_and_the_host_serves_the_next_call() {
    let boom = scripted("boom", |_| panic!("the plugin fell over"));
    let host = host_with(&[boom], HostLimits::default(), BreakerConfig::default());
    let error = run_error(decide(&host, "echo.boom.v1", vec![1]));
    assert!(
        matches!(&error, RunError::Panicked { plugin_id, message } if plugin_id == "test.boom.v1" && message.contains("fell over")),
        "{error}"
    );
    assert_eq!(decide(&host, "echo.scale.v1", vec![1, 2]).unwrap().sum, 6);
}

#[test]
fn outputs_over_the_item_and_byte_caps_are_refused_naming_the_cap() {
    let host = host_with(&[], HostLimits { max_output_items: 3, max_output_bytes: 16 << 20 }, BreakerConfig::default());
    let error = run_error(decide(&host, "echo.scale.v1", vec![1, 2, 3, 4]));
    assert!(
        matches!(&error, RunError::InvalidOutput { violations, .. } if violations.first_code() == "output.too_many_items"),
        "{error}"
    );
    let host = host_with(&[], HostLimits { max_output_items: 100, max_output_bytes: 20 }, BreakerConfig::default());
    let error = run_error(decide(&host, "echo.scale.v1", vec![123_456_789, 987_654_321]));
    assert!(
        matches!(&error, RunError::InvalidOutput { violations, .. } if violations.first_code() == "output.too_large"),
        "{error}"
    );
}

#[test]
fn a_wrong_output_is_refused_by_the_contracts_rules_with_the_path() {
    let liar = scripted("liar", |call| Ok(EchoOutput { values: call.input.values.clone(), sum: 0, notes: vec![] }));
    let host = host_with(&[liar], HostLimits::default(), BreakerConfig::default());
    let error = run_error(decide(&host, "echo.liar.v1", vec![1, 2]));
    let RunError::InvalidOutput { plugin_id, violations } = &error else { panic!("{error}") };
    assert_eq!(plugin_id, "test.liar.v1");
    let paths: Vec<&str> = violations.0.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(paths, ["values[0]", "values[1]", "sum"]);
}

#[test]
fn an_invalid_input_reaches_no_plugin() {
    let counted =
        scripted("counted", |call| Ok(EchoOutput { values: vec![], sum: 0, notes: vec![call.context.label.clone()] }));
    let host = host_with(&[Arc::clone(&counted)], HostLimits::default(), BreakerConfig::default());
    let error = run_error(decide(&host, "echo.counted.v1", vec![i64::MAX]));
    assert!(matches!(error, RunError::InvalidInput(_)), "{error}");
    assert_eq!(counted.calls.load(Ordering::Relaxed), 0);
}

#[test]
fn a_plugin_that_keeps_failing_opens_its_breaker_and_is_then_not_called() {
    let flaky = scripted("flaky", |_| Err(PolicyError::Failed("always".into())));
    let breaker = BreakerConfig { error_budget: 2, ..BreakerConfig::default() };
    let host = host_with(&[Arc::clone(&flaky)], HostLimits::default(), breaker);
    for _ in 0..2 {
        assert!(matches!(run_error(decide(&host, "echo.flaky.v1", vec![1])), RunError::Policy { .. }));
    }
    assert!(matches!(run_error(decide(&host, "echo.flaky.v1", vec![1])), RunError::CircuitOpen { .. }));
    assert_eq!(flaky.calls.load(Ordering::Relaxed), 2, "an open breaker does not call the plugin");
    assert_eq!(host.guard().metrics("test.flaky.v1").unwrap().breaker, Some(BreakerState::Open));
    assert_eq!(decide(&host, "echo.scale.v1", vec![1]).unwrap().values, [2], "other plugins are untouched");
}

#[test]
fn the_run_key_seed_and_context_are_the_contracts_and_stable() {
    let seen = scripted("seen", |call| {
        Ok(EchoOutput { values: vec![], sum: 0, notes: vec![call.context.request_id.clone(), call.seed.to_string()] })
    });
    let host = host_with(&[seen], HostLimits::default(), BreakerConfig::default());
    let subject = EchoSubject { label: "a".into() };
    let input = EchoInput { values: vec![] };
    let params = EchoParams { scale: 1 };
    let first = host.decide("echo.seen.v1", &Decision::new(&subject, &input, &params)).unwrap();
    let again = host.decide("echo.seen.v1", &Decision::new(&subject, &input, &params)).unwrap();
    assert_eq!(first.output_sha256, again.output_sha256);
    assert_eq!(first.output.notes[0], format!("echo-{}", &first.run_key_sha256.to_hex()[..16]));
    let key = serde_json::to_value(&first.run_key).unwrap();
    assert_eq!(key["label"], "a", "the subject's fields sit in the key");
    assert_eq!(key["policy_version"], "echo.seen.v1");
    let other = EchoSubject { label: "b".into() };
    let moved = host.decide("echo.seen.v1", &Decision::new(&other, &input, &params)).unwrap();
    assert_ne!(moved.output.notes[1], first.output.notes[1], "another key seeds another run");
}

/// A contract whose output schema is not a schema.
struct Broken;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Nothing;

impl schemars::JsonSchema for Nothing {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Nothing".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "not-a-type", "minimum": "zero"})
    }
}

impl Contract for Broken {
    const ID: &'static str = "broken.v1";
    type Input = EchoInput;
    type Output = Nothing;
    type Params = EchoParams;
    type Subject = EchoSubject;
    type Context = EchoSubject;
    type ManifestFields = polis_echo::EchoManifest;

    fn context(key: &polis_core::run::RunKey<EchoSubject>, _: &polis_core::Digest, _: Option<&str>) -> EchoSubject {
        key.subject.clone()
    }

    type Checked = ();

    fn check_input(_: &EchoInput, _: &EchoParams) -> Result<(), Violations> {
        Ok(())
    }

    fn validate_output(_: &EchoInput, _: &EchoParams, (): &(), _: &Nothing) -> Result<(), Violations> {
        Ok(())
    }

    fn output_items(_: &Nothing) -> usize {
        0
    }
}

#[test]
fn a_contract_whose_output_schema_does_not_compile_cannot_be_guarded() {
    let Err(error) = Host::<Broken>::new(Registry::new(), HostLimits::default()) else {
        panic!("a guard over an invalid schema was built");
    };
    assert_eq!((error.contract.as_str(), error.part, error.code()), ("broken.v1", "output", "contract.schema_invalid"));
}
