//! Persistent worker processes speaking newline-delimited JSON-RPC 2.0.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polis_core::manifest::Manifest;
use polis_core::policy::{PolicyError, RunControl};
use serde::Deserialize;
use serde_json::Value;

use crate::sandbox::{self, SandboxConfig, SandboxReport};

/// Protocol versions this host speaks, newest first. The host offers them
/// in `initialize`; the plugin answers with the one it picked.
pub const PROTOCOL_VERSIONS: &[&str] = &["polis.process.v1"];

/// JSON-RPC error code a plugin uses to reject its input.
pub const CODE_REJECTED: i64 = -32001;
/// JSON-RPC error code a plugin uses when it broke.
pub const CODE_FAILED: i64 = -32002;

/// Where a worker's stderr lines go: `(plugin_id, line)`.
pub type LogSink = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// How to start a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The program, as an absolute path (no `PATH` lookup in the sandbox).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// The plugin's directory: the working directory, and readable.
    pub dir: PathBuf,
    /// Extra environment; the environment is otherwise cleared except for
    /// `PYTHONHASHSEED=0`, `PYTHONDONTWRITEBYTECODE=1`, `LC_ALL=C.UTF-8` and
    /// `MALLOC_ARENA_MAX=2`.
    pub env: Vec<(String, String)>,
}

/// Settings of the process tier.
#[derive(Clone)]
pub struct ProcessConfig {
    /// Budget of one `run`, from request to complete reply line. On expiry
    /// the worker is killed and restarted on the next call. By default 5 s.
    pub timeout: Duration,
    /// Budget of start-up plus `initialize`. By default 10 s.
    pub init_timeout: Duration,
    /// Longest reply line, in bytes. By default 16 MiB.
    pub max_reply_bytes: usize,
    /// The sandbox. By default every layer on.
    pub sandbox: SandboxConfig,
    /// Where stderr lines go. By default standard error, prefixed with the
    /// plugin id.
    pub log_sink: LogSink,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            timeout: Duration::from_secs(5),
            init_timeout: Duration::from_secs(10),
            max_reply_bytes: 16 << 20,
            sandbox: SandboxConfig::default(),
            log_sink: Arc::new(|plugin_id: &str, line: &str| eprintln!("[plugin {plugin_id}] {line}")),
        }
    }
}

/// Why a worker could not be started or initialised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// The program did not start.
    #[error("plugin `{plugin_id}`: worker `{program}` did not start: {message}")]
    Spawn {
        /// The plugin.
        plugin_id: String,
        /// The program.
        program: String,
        /// Why.
        message: String,
    },
    /// The `initialize` handshake failed.
    #[error("plugin `{plugin_id}`: initialize failed: {message}")]
    Handshake {
        /// The plugin.
        plugin_id: String,
        /// Why.
        message: String,
    },
}

impl ProcessError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ProcessError::Spawn { .. } => "process.spawn",
            ProcessError::Handshake { .. } => "process.handshake",
        }
    }
}

/// One line from the worker's stdout, or why there is none.
enum Line {
    Complete(Vec<u8>),
    TooLong,
    Closed,
}

/// A running worker.
struct Worker {
    child: Child,
    /// Requests go to a writer thread, so a worker that stops reading its
    /// stdin cannot block the host past the deadline.
    requests: SyncSender<Vec<u8>>,
    lines: Receiver<Line>,
    next_id: u64,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON-RPC response, with the result kept raw for typed decoding.
#[derive(Deserialize)]
struct Response<'a> {
    jsonrpc: &'a str,
    id: Option<u64>,
    #[serde(borrow, default)]
    result: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    error: Option<RpcError>,
}

#[derive(Deserialize)]
struct RpcError {
    code: i64,
    message: String,
}

/// Counters of one plugin's worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Workers started, including the first.
    pub starts: u64,
    /// Workers killed on timeout or found dead.
    pub restarts: u64,
}

/// A plugin served by a persistent worker process.
pub struct ProcessPlugin {
    manifest: Manifest,
    spec: ProcessSpec,
    config: ProcessConfig,
    worker: Mutex<(Option<Worker>, WorkerStats)>,
    report: SandboxReport,
    protocol_version: String,
}

impl ProcessPlugin {
    /// Starts the worker, performs `initialize`, and checks that the
    /// manifest it returns is the one polis loaded.
    /// The manifest's `limits.timeout_ms` and `limits.memory_mb` tighten
    /// the configured timeout and address-space limit.
    pub fn start(manifest: Manifest, spec: ProcessSpec, config: ProcessConfig) -> Result<ProcessPlugin, ProcessError> {
        let mut config = config;
        if let Some(limits) = &manifest.limits {
            if let Some(ms) = limits.timeout_ms {
                config.timeout = config.timeout.min(Duration::from_millis(ms));
            }
            if let Some(mb) = limits.memory_mb {
                config.sandbox.address_space_bytes = config.sandbox.address_space_bytes.min(mb.saturating_mul(1 << 20));
            }
        }
        let report = sandbox::prepare(&config.sandbox, &spec.dir).report;
        let mut plugin = ProcessPlugin {
            manifest,
            spec,
            config,
            worker: Mutex::new((None, WorkerStats::default())),
            report,
            protocol_version: String::new(),
        };
        let (worker, version) = plugin.spawn()?;
        plugin.protocol_version = version;
        plugin.worker = Mutex::new((Some(worker), WorkerStats { starts: 1, restarts: 0 }));
        Ok(plugin)
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// What each sandbox layer does for this plugin's workers.
    pub fn sandbox_report(&self) -> &SandboxReport {
        &self.report
    }

    /// The protocol version the plugin picked.
    pub fn protocol_version(&self) -> &str {
        &self.protocol_version
    }

    /// Worker start and restart counts.
    pub fn stats(&self) -> WorkerStats {
        self.worker.lock().map(|w| w.1).unwrap_or_default()
    }

    fn spawn(&self) -> Result<(Worker, String), ProcessError> {
        let plugin_id = self.manifest.plugin_id.clone();
        let spawn_error = |message: String| ProcessError::Spawn {
            plugin_id: plugin_id.clone(),
            program: self.spec.program.display().to_string(),
            message,
        };
        let mut command = Command::new(&self.spec.program);
        command
            .args(&self.spec.args)
            .current_dir(&self.spec.dir)
            .env_clear()
            .env("PYTHONHASHSEED", "0")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("LC_ALL", "C.UTF-8")
            // glibc gives every thread its own malloc arena, each reserving
            // 64 MiB of address space; runtimes with helper threads (V8's
            // pool, numpy's BLAS) would hit the address-space limit long
            // before using the memory. Two arenas are plenty for a worker.
            .env("MALLOC_ARENA_MAX", "2")
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        sandbox::prepare(&self.config.sandbox, &self.spec.dir).apply_to(&mut command);
        let mut child = command.spawn().map_err(|e| spawn_error(e.to_string()))?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            return Err(spawn_error("stdio pipes were not created".to_owned()));
        };
        let lines = read_lines(stdout, self.config.max_reply_bytes);
        forward_stderr(stderr, plugin_id.clone(), Arc::clone(&self.config.log_sink));
        let requests = write_requests(stdin);
        let mut worker = Worker { child, requests, lines, next_id: 1 };

        let offered: Vec<&str> = PROTOCOL_VERSIONS.to_vec();
        let params = serde_json::json!({"protocol_versions": offered, "plugin_id": plugin_id});
        let handshake = |message: String| ProcessError::Handshake { plugin_id: plugin_id.clone(), message };
        let reply = exchange(
            &mut worker,
            "initialize",
            params.to_string().as_bytes(),
            self.config.init_timeout,
            &RunControl::new(),
        )
        .map_err(|e| handshake(e.to_string()))?;
        #[derive(Deserialize)]
        struct Initialized {
            protocol_version: String,
            manifest: Value,
        }
        let init: Initialized =
            serde_json::from_slice(&reply).map_err(|e| handshake(format!("result does not decode: {e}")))?;
        if !PROTOCOL_VERSIONS.contains(&init.protocol_version.as_str()) {
            return Err(handshake(format!(
                "plugin picked protocol `{}`, but this host offers {}",
                init.protocol_version,
                PROTOCOL_VERSIONS.join(", ")
            )));
        }
        let announced = Manifest::from_value(init.manifest).map_err(|e| handshake(format!("its manifest: {e}")))?;
        if announced.plugin_id != self.manifest.plugin_id || announced.policy_version != self.manifest.policy_version {
            return Err(handshake(format!(
                "it announces `{}` ({}), but its manifest file says `{}` ({})",
                announced.plugin_id, announced.policy_version, self.manifest.plugin_id, self.manifest.policy_version
            )));
        }
        Ok((worker, init.protocol_version))
    }

    /// Sends one `run` request (its `params` member is `params`, raw
    /// JSON) and returns the raw `result`. A dead worker is restarted
    /// first; a worker that times out, oversteps the reply cap or answers
    /// garbage is killed and restarted on the next call.
    pub fn call(&self, params: &[u8]) -> Result<Vec<u8>, PolicyError> {
        self.call_controlled(params, &RunControl::new())
    }

    /// Like [`ProcessPlugin::call`], stopping as soon as `control` is
    /// cancelled: the worker is killed (it may be mid-computation and
    /// cannot be interrupted otherwise) and restarted on the next call.
    pub fn call_controlled(&self, params: &[u8], control: &RunControl) -> Result<Vec<u8>, PolicyError> {
        let Ok(mut guard) = self.worker.lock() else {
            return Err(PolicyError::Failed("worker lock was poisoned".to_owned()));
        };
        let (slot, stats) = &mut *guard;
        let alive = slot.as_mut().is_some_and(|w| matches!(w.child.try_wait(), Ok(None)));
        if !alive {
            if slot.take().is_some() {
                stats.restarts += 1;
            }
            let (worker, _) = self.spawn().map_err(|e| PolicyError::Failed(e.to_string()))?;
            stats.starts += 1;
            *slot = Some(worker);
        }
        let Some(worker) = slot.as_mut() else {
            return Err(PolicyError::Failed("worker is not running".to_owned()));
        };
        match exchange(worker, "run", params, self.config.timeout, control) {
            Ok(result) => Ok(result),
            Err(error) => {
                if error.kills_worker() {
                    *slot = None;
                    stats.restarts += 1;
                }
                Err(error.into_policy_error(self.config.timeout, self.config.max_reply_bytes))
            }
        }
    }

    /// Asks the worker to shut down and waits briefly for it.
    pub fn shutdown(&self) {
        if let Ok(mut guard) = self.worker.lock()
            && let Some(mut worker) = guard.0.take()
        {
            let _ = exchange(&mut worker, "shutdown", b"null", Duration::from_millis(500), &RunControl::new());
        }
    }
}

impl Drop for ProcessPlugin {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Why an exchange failed.
#[derive(Debug)]
enum ExchangeError {
    Timeout,
    Cancelled,
    TooLong,
    Closed(String),
    Garbage(String),
    Rpc { code: i64, message: String },
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Timeout => f.write_str("no complete reply before the deadline"),
            ExchangeError::Cancelled => f.write_str("the run was cancelled"),
            ExchangeError::TooLong => f.write_str("reply line exceeds the cap"),
            ExchangeError::Closed(status) => write!(f, "worker exited mid-call ({status})"),
            ExchangeError::Garbage(why) => write!(f, "reply is not a JSON-RPC response: {why}"),
            ExchangeError::Rpc { code, message } => write!(f, "error {code}: {message}"),
        }
    }
}

impl ExchangeError {
    fn kills_worker(&self) -> bool {
        !matches!(self, ExchangeError::Rpc { .. })
    }

    fn into_policy_error(self, timeout: Duration, cap: usize) -> PolicyError {
        match self {
            ExchangeError::Timeout => PolicyError::LimitExceeded {
                limit: "timeout",
                detail: format!("no complete reply within {} ms; the worker was killed", timeout.as_millis()),
            },
            ExchangeError::TooLong => PolicyError::LimitExceeded {
                limit: "output_bytes",
                detail: format!("reply exceeds the cap of {cap} bytes; the worker was killed"),
            },
            ExchangeError::Cancelled => PolicyError::Cancelled,
            ExchangeError::Rpc { code: CODE_REJECTED, message } => PolicyError::Rejected(message),
            other => PolicyError::Failed(other.to_string()),
        }
    }
}

/// How often a waiting exchange looks at its [`RunControl`]. A reply that
/// arrives wakes the wait at once, so this bounds only how late a
/// cancellation is noticed.
const CANCEL_POLL: Duration = Duration::from_millis(10);

fn exchange(
    worker: &mut Worker,
    method: &str,
    params: &[u8],
    timeout: Duration,
    control: &RunControl,
) -> Result<Vec<u8>, ExchangeError> {
    let deadline = Instant::now() + timeout;
    let id = worker.next_id;
    worker.next_id += 1;
    let mut request = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":"#).into_bytes();
    request.extend_from_slice(params);
    request.extend_from_slice(b"}\n");
    if worker.requests.send(request).is_err() {
        return Err(ExchangeError::Closed(exit_status(worker, "stdin closed")));
    }
    let line = loop {
        if control.is_cancelled() {
            return Err(ExchangeError::Cancelled);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match worker.lines.recv_timeout(left.min(CANCEL_POLL)) {
            Ok(Line::Complete(line)) => break line,
            Ok(Line::TooLong) => return Err(ExchangeError::TooLong),
            Ok(Line::Closed) | Err(RecvTimeoutError::Disconnected) => {
                return Err(ExchangeError::Closed(exit_status(worker, "stdout closed")));
            }
            Err(RecvTimeoutError::Timeout) if left <= CANCEL_POLL => return Err(ExchangeError::Timeout),
            Err(RecvTimeoutError::Timeout) => {}
        }
    };
    let response: Response<'_> = serde_json::from_slice(&line).map_err(|e| ExchangeError::Garbage(e.to_string()))?;
    if response.jsonrpc != "2.0" {
        return Err(ExchangeError::Garbage(format!("`jsonrpc` is `{}`, not `2.0`", response.jsonrpc)));
    }
    if response.id != Some(id) {
        // A late reply to an earlier, timed-out request cannot happen (that
        // worker was killed); anything else is a protocol error.
        return Err(ExchangeError::Garbage(format!("reply id {:?} does not match request id {id}", response.id)));
    }
    match (response.result, response.error) {
        (Some(result), None) => Ok(result.get().as_bytes().to_vec()),
        (None, Some(error)) => Err(ExchangeError::Rpc { code: error.code, message: error.message }),
        _ => Err(ExchangeError::Garbage("reply must hold exactly one of `result` and `error`".to_owned())),
    }
}

fn exit_status(worker: &mut Worker, fallback: &str) -> String {
    // Give the kernel a moment to reap a worker that just closed its pipes.
    for _ in 0..50 {
        if let Ok(Some(status)) = worker.child.try_wait() {
            return status.to_string();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    fallback.to_owned()
}

/// Writes each request to the worker's stdin on a thread; the thread ends
/// when the worker's stdin closes or the worker is dropped.
fn write_requests(mut stdin: ChildStdin) -> SyncSender<Vec<u8>> {
    let (sender, receiver) = sync_channel::<Vec<u8>>(1);
    std::thread::spawn(move || {
        for request in receiver {
            if stdin.write_all(&request).and_then(|()| stdin.flush()).is_err() {
                return;
            }
        }
    });
    sender
}

/// Reads newline-terminated lines of at most `cap` bytes on a thread.
fn read_lines(stdout: impl Read + Send + 'static, cap: usize) -> Receiver<Line> {
    let (sender, receiver) = sync_channel(4);
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(1 << 16, stdout);
        loop {
            let mut line = Vec::new();
            let mut limited = (&mut reader).take(cap as u64 + 1);
            match limited.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => {
                    let _ = sender.send(Line::Closed);
                    return;
                }
                Ok(_) if line.last() != Some(&b'\n') => {
                    let _ = sender.send(if line.len() > cap { Line::TooLong } else { Line::Closed });
                    return;
                }
                Ok(_) => {
                    line.pop();
                    if sender.send(Line::Complete(line)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    receiver
}

/// Forwards stderr lines to the log sink, tagged with the plugin id.
fn forward_stderr(stderr: impl Read + Send + 'static, plugin_id: String, sink: LogSink) {
    std::thread::spawn(move || {
        let reader = BufReader::new(stderr.take(64 << 20));
        for line in reader.split(b'\n') {
            let Ok(line) = line else { return };
            let text = String::from_utf8_lossy(&line[..line.len().min(4096)]);
            sink(&plugin_id, &text);
        }
    });
}
