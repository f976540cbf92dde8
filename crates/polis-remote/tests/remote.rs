//! The remote tier against a real HTTP endpoint on loopback: parity of a
//! greedy endpoint with the built-in on a day of Bay Wheels, the context
//! sent only with `context:read`, and a hostile suite where every case is
//! contained, reported naming the plugin, and followed by a normal call.

#![expect(
    clippy::panic,
    clippy::unwrap_used,
    reason = "test helpers fail loudly; clippy allows this in #[test] functions but not in the helpers they share"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use polis_core::manifest::Manifest;
use polis_core::policy::{PolicyError, RunControl};
use polis_rebalance::builtins::{self, Builtin};
use polis_rebalance::contract::{PolicyInput, PolicyOutput, Rebalance, RebalanceParams};
use polis_rebalance::gbfs::Feed;
use polis_rebalance::host::{Decision, Host, HostError};
use polis_rebalance::network::Network;
use polis_rebalance::parity;
use polis_remote::{RemoteConfig, RemoteError, RemotePlugin};
use polis_runtime::{HostLimits, RunError, RunRecord};
use serde_json::{Value, json};

/// A one-thread-per-connection HTTP/1.1 endpoint whose path picks its
/// behaviour. Returns its base URL.
fn endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    base
}

fn serve(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut stream = stream;
    let reply = |stream: &mut TcpStream, status: &str, extra: &str, body: &[u8]| {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
    };
    match path.as_str() {
        "/greedy" => {
            let input: PolicyInput = serde_json::from_value(request["input"].clone()).unwrap();
            let params: RebalanceParams = serde_json::from_value(request["params"].clone()).unwrap();
            let output = Builtin::Greedy.decide(&Network::new(&input, &params).unwrap());
            reply(&mut stream, "200 OK", "", &serde_json::to_vec(&output).unwrap());
        }
        "/echo" => {
            let mut output = no_op();
            output.diagnostics = Some(
                [
                    ("request_members".to_owned(), json!(request.as_object().unwrap().keys().collect::<Vec<_>>())),
                    ("seed".to_owned(), request["context"]["seed"].clone()),
                ]
                .into(),
            );
            reply(&mut stream, "200 OK", "", &serde_json::to_vec(&output).unwrap());
        }
        "/sleep" => {
            std::thread::sleep(Duration::from_secs(5));
            reply(&mut stream, "200 OK", "", &serde_json::to_vec(&no_op()).unwrap());
        }
        "/huge" => {
            let size = 100 << 20;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(head.as_bytes());
            let chunk = vec![b' '; 1 << 16];
            for _ in 0..size / chunk.len() {
                if stream.write_all(&chunk).is_err() {
                    return;
                }
            }
        }
        "/trickle" => {
            // Headers at once, then the body one byte a second: a reply
            // that never stops arriving and never finishes.
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n");
            for _ in 0..100 {
                if stream.write_all(b" ").and_then(|()| stream.flush()).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        "/garbage" => reply(&mut stream, "200 OK", "", b"{\"moves\": [oops"),
        "/schema" => reply(&mut stream, "200 OK", "", br#"{"moves": "none", "summary": {}}"#),
        "/far" => {
            let mut output = no_op();
            output.moves = serde_json::from_value(json!([{"move_rank": 1, "from_station_key": "b",
                "to_station_key": "a", "bikes_moved": 1, "dist_m": 250.0, "budget_exhausted": false,
                "neighbor_exhausted": false, "reason_codes": []}]))
            .unwrap();
            output.summary.bikes_moved_total = 1;
            output.summary.stations_touched = 2;
            output.summary.no_op = false;
            reply(&mut stream, "200 OK", "", &serde_json::to_vec(&output).unwrap());
        }
        "/reject" => reply(&mut stream, "422 Unprocessable Entity", "", br#"{"error":"no stations I know"}"#),
        "/broken" => reply(&mut stream, "500 Internal Server Error", "", b"stack trace here"),
        "/redirect" => reply(&mut stream, "302 Found", "Location: /greedy\r\n", b""),
        _ => reply(&mut stream, "404 Not Found", "", b""),
    }
}

fn no_op() -> PolicyOutput {
    serde_json::from_value(json!({"moves": [], "summary": {"bikes_moved_total": 0, "stations_touched": 0,
        "no_op": true}}))
    .unwrap()
}

fn manifest(id: &str, url: &str, permissions: &[&str]) -> Manifest {
    Manifest::from_json(
        json!({
            "contract_version": "policy.plugin.v1",
            "plugin_id": format!("remote.{id}.v1"),
            "plugin_version": "1.0.0",
            "policy_version": format!("rebal.remote_{id}.v1"),
            "strategy": format!("{id}.v1"),
            "display_name": id,
            "deterministic": true,
            "requires_neighbor_graph": true,
            "input_schema_version": "policy.input.v1",
            "output_schema_version": "policy.output.v1",
            "runtime": {"tier": "remote", "entry": url},
            "permissions": permissions,
            "limits": {"timeout_ms": 1000, "max_output_bytes": 8_000_000},
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

/// The remote settings these tests run under: the endpoint is on
/// loopback, which the remote tier refuses unless allowlisted.
fn loopback() -> RemoteConfig {
    RemoteConfig::allowing(&["127.0.0.1"])
}

/// A remote plugin of the rebalancing contract behind the policy trait.
fn remote(manifest: Manifest, config: &RemoteConfig) -> Result<polis_core::EndpointPolicy<Rebalance>, RemoteError> {
    let catalog = polis_core::contract::permission_catalog::<Rebalance>();
    RemotePlugin::new(manifest, config, &catalog).map(|p| polis_core::EndpointPolicy::new(Arc::new(p)))
}

/// A host with the built-ins and one remote plugin per path.
fn host(base: &str, paths: &[&str]) -> Host {
    let mut registry = builtins::registry();
    for path in paths {
        let id = path.trim_start_matches('/');
        let permissions: &[&str] = if id == "echo" { &["context:read"] } else { &[] };
        let policy = remote(manifest(id, &format!("{base}{path}"), permissions), &loopback());
        registry.register(Arc::new(policy.unwrap()), None).unwrap();
    }
    Host::new(registry, HostLimits::default()).unwrap()
}

fn decide(host: &Host, id: &str, control: Option<&RunControl>) -> Result<RunRecord<Rebalance>, HostError> {
    let input = polis_rebalance::synth::tiny_input();
    let params = RebalanceParams::default();
    let decision = Decision {
        subject: &polis_rebalance::contract::DecisionSubject {
            system_id: "test".to_owned(),
            sv: "sv1".to_owned(),
            decision_bucket_ts: 1_678_090_200,
            horizon_steps: 0,
        },
        input: &input,
        params: &params,
        request_id: None,
        control,
        host: None,
    };
    host.decide(&format!("rebal.remote_{id}.v1"), &decision)
}

/// Runs the hostile `id`, checks the host then serves a normal remote
/// call, and returns the hostile call's error.
fn contained(host: &Host, id: &str) -> RunError {
    let error = match decide(host, id, None) {
        Ok(record) => panic!("{id} unexpectedly succeeded: {:?}", record.output),
        Err(HostError::Run(error)) => error,
        Err(other) => panic!("{id}: unexpected error {other}"),
    };
    assert!(decide(host, "greedy", None).unwrap().output.moves.len() == 1);
    error
}

fn policy_error(error: RunError) -> PolicyError {
    match error {
        RunError::Policy { plugin_id, error } => {
            assert!(plugin_id.starts_with("remote."), "{plugin_id}");
            error
        }
        other => panic!("expected a policy error, got {other}"),
    }
}

#[test]
fn remote_greedy_matches_the_builtin_on_every_snapshot_of_a_day() {
    let Some(week) = polis_testdata::require("baywheels-2023-03-06") else {
        return;
    };
    let host = host(&endpoint(), &["/greedy"]);
    let feed = Feed::open(&week).unwrap();
    let parity =
        parity::compare(&host, &feed, feed.snapshots[0].ts, 86_400, "rebal.greedy.v1", "rebal.remote_greedy.v1");
    parity.unwrap().assert_identical(100);
}

#[test]
fn the_context_is_sent_only_to_a_plugin_granted_context_read() {
    let base = endpoint();
    let host = host(&base, &["/echo", "/greedy"]);
    let record = decide(&host, "echo", None).unwrap();
    let diagnostics = record.output.diagnostics.unwrap();
    assert_eq!(diagnostics["request_members"], json!(["context", "input", "params"]));
    assert!(diagnostics["seed"].is_u64());

    let mut registry = builtins::registry();
    let bare = remote(manifest("echo", &format!("{base}/echo"), &[]), &loopback());
    registry.register(Arc::new(bare.unwrap()), None).unwrap();
    let host = Host::new(registry, HostLimits::default()).unwrap();
    let diagnostics = decide(&host, "echo", None).unwrap().output.diagnostics.unwrap();
    assert_eq!(diagnostics["request_members"], json!(["input", "params"]));
}

#[test]
fn a_slow_endpoint_times_out_at_the_manifest_limit() {
    let host = host(&endpoint(), &["/sleep", "/greedy"]);
    match policy_error(contained(&host, "sleep")) {
        PolicyError::LimitExceeded { limit, detail } => {
            assert_eq!(limit, "timeout");
            assert!(detail.contains("1000 ms"), "{detail}");
        }
        other => panic!("expected a timeout, got {other}"),
    }
}

#[test]
fn a_reply_trickling_a_byte_a_second_is_cut_at_the_deadline() {
    let host = host(&endpoint(), &["/trickle", "/greedy"]);
    let started = std::time::Instant::now();
    match policy_error(contained(&host, "trickle")) {
        PolicyError::LimitExceeded { limit, detail } => {
            assert_eq!(limit, "timeout");
            assert!(detail.contains("1000 ms"), "{detail}");
        }
        other => panic!("expected a timeout, got {other}"),
    }
    // The whole reply would take 100 s; the deadline is 1 s.
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
}

#[test]
fn a_cancelled_run_returns_without_waiting_for_the_endpoint() {
    let host = host(&endpoint(), &["/sleep", "/greedy"]);
    let control = RunControl::new();
    let canceller = {
        let control = control.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            control.cancel();
        })
    };
    let result = decide(&host, "sleep", Some(&control));
    canceller.join().unwrap();
    match result {
        Err(HostError::Run(RunError::Policy { error: PolicyError::Cancelled, .. })) => {}
        other => panic!("expected a cancellation, got {:?}", other.map(|r| r.output)),
    }
}

#[test]
fn a_100_mb_reply_is_cut_off_at_the_output_cap() {
    let host = host(&endpoint(), &["/huge", "/greedy"]);
    match policy_error(contained(&host, "huge")) {
        PolicyError::LimitExceeded { limit, .. } => assert_eq!(limit, "output_bytes"),
        other => panic!("expected the output cap, got {other}"),
    }
}

#[test]
fn malformed_and_failing_replies_are_reported_with_their_cause() {
    let host = host(&endpoint(), &["/garbage", "/schema", "/broken", "/redirect", "/greedy"]);
    let message = |id| match policy_error(contained(&host, id)) {
        PolicyError::Failed(message) => message,
        other => panic!("{id}: expected a failure, got {other}"),
    };
    assert!(message("garbage").contains("not valid JSON"));
    assert!(message("schema").contains("policy.output.v1` at `moves`"));
    assert!(message("broken").contains("HTTP 500: stack trace here"));
    // Redirects are refused: the input never goes anywhere but the URL.
    assert!(message("redirect").contains("HTTP 302"));
}

#[test]
fn a_rejection_is_a_rejection_and_a_non_neighbour_move_never_passes_the_guard() {
    let host = host(&endpoint(), &["/reject", "/far", "/greedy"]);
    assert_eq!(policy_error(contained(&host, "reject")), PolicyError::Rejected("no stations I know".into()));
    match contained(&host, "far") {
        RunError::InvalidOutput { violations, .. } => {
            assert!(violations.to_string().contains("neighbor"), "{violations}");
        }
        other => panic!("expected an invalid output, got {other}"),
    }
}

#[test]
fn an_unreachable_endpoint_fails_the_call_not_the_host() {
    // Bind and drop a listener: nothing listens on that port now.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = endpoint();
    let mut registry = builtins::registry();
    let gone = remote(manifest("gone", &format!("http://127.0.0.1:{port}/"), &[]), &loopback());
    registry.register(Arc::new(gone.unwrap()), None).unwrap();
    let greedy = remote(manifest("greedy", &format!("{base}/greedy"), &[]), &loopback());
    registry.register(Arc::new(greedy.unwrap()), None).unwrap();
    let host = Host::new(registry, HostLimits::default()).unwrap();
    match policy_error(contained(&host, "gone")) {
        PolicyError::Failed(message) => assert!(message.contains("request failed"), "{message}"),
        other => panic!("expected a failure, got {other}"),
    }
}

#[test]
fn only_http_urls_are_accepted_as_entries() {
    for entry in ["ftp://example.org/x", "example.org/decide", "http://", "http://a b"] {
        let error = remote(manifest("bad", entry, &[]), &RemoteConfig::default()).unwrap_err();
        assert!(matches!(error, RemoteError::BadUrl { .. }), "{entry}: {error}");
    }
}

#[test]
fn an_entry_on_a_loopback_private_or_link_local_address_is_refused_at_load() {
    for (entry, range) in [
        ("http://127.0.0.1:9/decide", "loopback"),
        ("http://[::1]:9/decide", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://10.0.0.7:8080/", "private"),
        ("http://[::ffff:192.168.0.1]/", "private"),
    ] {
        let error = remote(manifest("inward", entry, &[]), &RemoteConfig::default()).unwrap_err();
        let RemoteError::PrivateAddress { plugin_id, range: found, .. } = &error else {
            panic!("{entry}: expected a private-address refusal, got {error}");
        };
        assert_eq!(plugin_id, "remote.inward.v1");
        assert!(found.starts_with(range), "{entry}: {found}");
        assert!(error.to_string().contains("remote_allow_hosts"), "{error}");
    }
    let allowed = RemoteConfig::allowing(&["127.0.0.1", "::1"]);
    assert!(remote(manifest("inward", "http://127.0.0.1:9/decide", &[]), &allowed).is_ok());
    assert!(remote(manifest("inward", "http://[::1]:9/decide", &[]), &allowed).is_ok());
}

#[test]
fn a_name_that_resolves_to_loopback_is_refused_before_anything_connects() {
    // `localhost` resolves to loopback through /etc/hosts: a public-looking
    // name for an inward address, found only when it is resolved.
    let base = endpoint();
    let port = base.rsplit(':').next().unwrap();
    let witness = TcpListener::bind("127.0.0.1:0").unwrap();
    let witness_port = witness.local_addr().unwrap().port();
    let mut registry = builtins::registry();
    for (id, url) in
        [("named", format!("http://localhost:{witness_port}/")), ("greedy", format!("http://localhost:{port}/greedy"))]
    {
        let config = if id == "greedy" { RemoteConfig::allowing(&["localhost"]) } else { RemoteConfig::default() };
        let plugin = remote(manifest(id, &url, &[]), &config).expect("a name is checked at the call, not at load");
        registry.register(Arc::new(plugin), None).unwrap();
    }
    let host = Host::new(registry, HostLimits::default()).unwrap();
    match policy_error(contained(&host, "named")) {
        PolicyError::Failed(message) => {
            assert!(message.contains("`localhost` resolves to"), "{message}");
            assert!(message.contains("loopback"), "{message}");
        }
        other => panic!("expected a refusal, got {other}"),
    }
    witness.set_nonblocking(true).unwrap();
    let accepted = witness.accept();
    assert!(accepted.is_err(), "the refused plugin's request reached the endpoint");
}

/// A TLS endpoint on loopback presenting a self-signed certificate for
/// `localhost`, answering every request with an empty move list.
fn self_signed_endpoint() -> u16 {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let cert = CertificateDer::from(std::fs::read(fixtures.join("self-signed.crt.der")).unwrap());
    let key = PrivateKeyDer::try_from(std::fs::read(fixtures.join("self-signed.key.der")).unwrap()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let connection = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, tcp);
            let mut buffer = [0u8; 4096];
            if tls.read(&mut buffer).is_ok() {
                let body = r#"{"moves":[],"summary":{}}"#;
                let _ = write!(tls, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            }
        }
    });
    port
}

#[test]
fn an_https_endpoint_whose_certificate_is_not_trusted_is_refused() {
    let port = self_signed_endpoint();
    let base = endpoint();
    let mut registry = builtins::registry();
    let config = RemoteConfig::allowing(&["localhost", "127.0.0.1"]);
    let tls = remote(manifest("selfsigned", &format!("https://localhost:{port}/"), &[]), &config);
    registry.register(Arc::new(tls.unwrap()), None).unwrap();
    let greedy = remote(manifest("greedy", &format!("{base}/greedy"), &[]), &config);
    registry.register(Arc::new(greedy.unwrap()), None).unwrap();
    let host = Host::new(registry, HostLimits::default()).unwrap();
    match policy_error(contained(&host, "selfsigned")) {
        PolicyError::Failed(message) => {
            assert!(message.to_lowercase().contains("certificate"), "{message}");
            assert!(message.contains("UnknownIssuer"), "{message}");
        }
        other => panic!("expected a TLS failure, got {other}"),
    }
}
