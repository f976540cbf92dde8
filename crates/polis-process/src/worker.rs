//! Persistent worker processes speaking newline-delimited JSON-RPC 2.0.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polis_core::manifest::Manifest;
use polis_core::permission::{Grants, PermissionCatalog, PermissionDenied};
use polis_core::policy::{CallEnv, HostApi, PluginEndpoint, PolicyError, RunControl, no_host};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::limits::{Breach, StderrMeter, Watchdog, Window};
use crate::sandbox::{self, SandboxConfig, SandboxReport};

/// Protocol versions this host speaks, newest first. The host offers them
/// in `initialize`; the plugin answers with the one it picked.
pub const PROTOCOL_VERSIONS: &[&str] = &["polis.process.v1"];

/// JSON-RPC error code a plugin uses to reject its input.
pub const CODE_REJECTED: i64 = -32001;
/// JSON-RPC error code a plugin uses when it broke.
pub const CODE_FAILED: i64 = -32002;
/// JSON-RPC error code the host answers a plugin's call with when the
/// plugin lacks the capability's permission.
pub const CODE_PERMISSION_DENIED: i64 = -32003;
/// JSON-RPC error code the host answers a plugin's call with when the host
/// refused it (bad params, a write outside the plugin's namespace).
pub const CODE_HOST_REFUSED: i64 = -32004;
/// JSON-RPC error code for a plugin's call beyond the per-call limit.
pub const CODE_HOST_LIMIT: i64 = -32005;
/// Standard JSON-RPC code for an unknown method.
pub const CODE_METHOD_NOT_FOUND: i64 = -32601;

/// Most host calls a plugin may make while answering one request; later
/// ones are refused with [`CODE_HOST_LIMIT`].
pub const MAX_HOST_CALLS_PER_REQUEST: usize = 10_000;

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
    /// Most reply bytes one plugin may return in a minute, all calls
    /// together; past it the worker is killed. By default 256 MiB.
    pub max_reply_bytes_per_minute: u64,
    /// Most stderr bytes a worker may write in a minute; past it further
    /// lines are dropped and the worker is killed. By default 1 MiB.
    pub max_stderr_bytes_per_minute: u64,
    /// Most stderr lines forwarded to the log sink in a minute; later ones
    /// are dropped and counted in one notice. By default 600.
    pub max_log_lines_per_minute: u64,
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
            max_reply_bytes_per_minute: 256 << 20,
            max_stderr_bytes_per_minute: 1 << 20,
            max_log_lines_per_minute: 600,
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
    /// The process polis started: the worker itself, or its reaper when
    /// the worker has a PID namespace of its own.
    child: Child,
    /// Kills it past a call's CPU budget or its thread limit.
    watchdog: Watchdog,
    /// Its stderr volume.
    stderr: Arc<StderrMeter>,
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

/// One line from a worker: a response to the host's request, or a request
/// of its own to the host (it has a `method`). Results and params are kept
/// raw.
#[derive(Deserialize)]
struct Incoming<'a> {
    jsonrpc: &'a str,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    method: Option<String>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
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
    /// Workers killed for breaking a resource limit (CPU time, threads,
    /// stderr or reply volume).
    pub limit_kills: u64,
}

/// A plugin served by a persistent worker process, started on its first
/// call (or by [`PluginEndpoint::probe`]) and restarted after a crash.
pub struct ProcessPlugin {
    manifest: Manifest,
    spec: ProcessSpec,
    config: ProcessConfig,
    grants: Grants,
    catalog: PermissionCatalog,
    worker: Mutex<(Option<Worker>, WorkerStats)>,
    report: SandboxReport,
    protocol_version: Mutex<String>,
    replies: Mutex<Window>,
}

impl ProcessPlugin {
    /// Starts the worker, performs `initialize`, and checks that the
    /// manifest it returns is the one polis loaded; only the platform's
    /// permissions are known. The manifest's `limits.timeout_ms` and
    /// `limits.memory_mb` tighten the configured timeout and address-space
    /// limit.
    pub fn start(manifest: Manifest, spec: ProcessSpec, config: ProcessConfig) -> Result<ProcessPlugin, ProcessError> {
        let plugin = ProcessPlugin::new(manifest, spec, config, PermissionCatalog::platform());
        plugin.start_worker()?;
        Ok(plugin)
    }

    /// A plugin whose worker starts on the first call, for a contract whose
    /// permissions and capabilities are `catalog`: the plugin may call a
    /// capability's method back on the host only when it holds the
    /// capability's permission.
    pub fn new(
        manifest: Manifest,
        spec: ProcessSpec,
        config: ProcessConfig,
        catalog: PermissionCatalog,
    ) -> ProcessPlugin {
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
        let grants = Grants::resolve(&manifest.permissions, &catalog);
        ProcessPlugin {
            manifest,
            spec,
            config,
            grants,
            catalog,
            worker: Mutex::new((None, WorkerStats::default())),
            report,
            protocol_version: Mutex::new(String::new()),
            replies: Mutex::new(Window::default()),
        }
    }

    /// Starts the worker now unless one is running.
    pub fn start_worker(&self) -> Result<(), ProcessError> {
        let Ok(mut guard) = self.worker.lock() else {
            return Err(ProcessError::Spawn {
                plugin_id: self.manifest.plugin_id.clone(),
                program: self.spec.program.display().to_string(),
                message: "worker lock was poisoned".to_owned(),
            });
        };
        let (slot, stats) = &mut *guard;
        if slot.as_mut().is_some_and(|w| matches!(w.child.try_wait(), Ok(None))) {
            return Ok(());
        }
        if slot.take().is_some() {
            stats.restarts += 1;
        }
        *slot = Some(self.spawn()?);
        stats.starts += 1;
        Ok(())
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// What each sandbox layer does for this plugin's workers.
    pub fn sandbox_report(&self) -> &SandboxReport {
        &self.report
    }

    /// The protocol version the plugin picked at its last start; empty
    /// before the first.
    pub fn protocol_version(&self) -> String {
        self.protocol_version.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Whether a worker process is running now (a call is not under way:
    /// this waits for the worker's lock).
    pub fn worker_running(&self) -> bool {
        self.worker
            .lock()
            .map(|mut w| w.0.as_mut().is_some_and(|w| matches!(w.child.try_wait(), Ok(None))))
            .unwrap_or(false)
    }

    /// Worker start and restart counts.
    pub fn stats(&self) -> WorkerStats {
        self.worker.lock().map(|w| w.1).unwrap_or_default()
    }

    fn spawn(&self) -> Result<Worker, ProcessError> {
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
        let identity = sandbox::worker_identity(&self.config.sandbox).map_err(&spawn_error)?;
        sandbox::worker_can_access(&identity, &self.spec.dir, 0o5)
            .map_err(|why| spawn_error(format!("the worker cannot read its plugin directory: {why}")))?;
        let mut launch = sandbox::prepare(&self.config.sandbox, &self.spec.dir)
            .apply_to(&mut command)
            .map_err(|e| spawn_error(e.to_string()))?;
        let mut child = command.spawn().map_err(|e| spawn_error(e.to_string()))?;
        let killer = sandbox::Killer::new(&child);
        let pid = match launch.worker_pid(child.id()) {
            Ok(pid) => pid,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(spawn_error(format!("the sandbox's reaper did not report the worker: {e}")));
            }
        };
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            return Err(spawn_error("stdio pipes were not created".to_owned()));
        };
        let lines = read_lines(stdout, self.config.max_reply_bytes);
        let meter =
            Arc::new(StderrMeter::new(self.config.max_stderr_bytes_per_minute, self.config.max_log_lines_per_minute));
        forward_stderr(stderr, plugin_id.clone(), Arc::clone(&self.config.log_sink), Arc::clone(&meter));
        let requests = write_requests(stdin);
        let sandbox = &self.config.sandbox;
        let watchdog = Watchdog::start(pid, killer, sandbox.cpu_ms_per_call, sandbox.max_threads);
        let mut worker = Worker { child, watchdog, stderr: meter, requests, lines, next_id: 1 };

        let offered: Vec<&str> = PROTOCOL_VERSIONS.to_vec();
        let params = serde_json::json!({"protocol_versions": offered, "plugin_id": plugin_id});
        let handshake = |message: String| ProcessError::Handshake { plugin_id: plugin_id.clone(), message };
        let reply = self
            .exchange(
                &mut worker,
                "initialize",
                params.to_string().as_bytes(),
                self.config.init_timeout,
                &RunControl::new(),
                &no_host(),
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
        if let Ok(mut version) = self.protocol_version.lock() {
            *version = init.protocol_version;
        }
        Ok(worker)
    }

    /// Sends one `run` request (its `params` member is `params`, raw
    /// JSON) and returns the raw `result`, with no host capabilities.
    pub fn call(&self, params: &[u8]) -> Result<Vec<u8>, PolicyError> {
        self.request("run", params, &RunControl::new(), &no_host())
    }

    /// Sends one request to `method` and returns the raw `result`. A dead
    /// worker is restarted first; a worker that times out, oversteps the
    /// reply cap or answers garbage is killed and restarted on the next
    /// call; a cancelled `control` kills the worker at once (it may be
    /// mid-computation and cannot be interrupted otherwise). While the
    /// request is outstanding the plugin may call the host's capabilities
    /// (answered by `host`), under the same deadline.
    pub fn request(
        &self,
        method: &str,
        params: &[u8],
        control: &RunControl,
        host: &Arc<dyn HostApi>,
    ) -> Result<Vec<u8>, PolicyError> {
        let Ok(mut guard) = self.worker.lock() else {
            return Err(PolicyError::Failed("worker lock was poisoned".to_owned()));
        };
        let (slot, stats) = &mut *guard;
        let alive = slot.as_mut().is_some_and(|w| matches!(w.child.try_wait(), Ok(None)));
        if !alive {
            if let Some(dead) = slot.take() {
                stats.restarts += 1;
                // A worker the kernel killed at a limit between calls (a
                // thread left spinning after it answered) is reported on
                // this call, so that its breaker counts it; the next call
                // starts a fresh worker.
                if let Some(breach) = self.breach_of_dead(&dead) {
                    stats.limit_kills += 1;
                    return Err(breach.into_policy_error());
                }
            }
            let worker = self.spawn().map_err(|e| PolicyError::Failed(e.to_string()))?;
            stats.starts += 1;
            *slot = Some(worker);
        }
        let Some(worker) = slot.as_mut() else {
            return Err(PolicyError::Failed("worker is not running".to_owned()));
        };
        let outcome = self
            .arm(worker)
            .and_then(|()| self.exchange(worker, method, params, self.config.timeout, control, host))
            .and_then(|result| self.after_reply(worker, result));
        match outcome {
            Ok(result) => Ok(result),
            Err(error) => {
                let error = match error {
                    ExchangeError::Closed(status) => match self.breach_of_dead(worker) {
                        Some(breach) => ExchangeError::Limit(breach),
                        None => ExchangeError::Closed(status),
                    },
                    other => other,
                };
                if matches!(error, ExchangeError::Limit(_)) {
                    stats.limit_kills += 1;
                }
                if error.kills_worker() {
                    *slot = None;
                    stats.restarts += 1;
                }
                Err(error.into_policy_error(method, self.config.timeout, self.config.max_reply_bytes))
            }
        }
    }

    /// Before a call: the worker's stderr is within its limit, and its
    /// watchdog's CPU budget starts afresh. (The watchdog itself checks
    /// CPU time and threads; the request path makes no extra system call.)
    fn arm(&self, worker: &mut Worker) -> Result<(), ExchangeError> {
        self.check_running(worker)?;
        worker.watchdog.arm();
        Ok(())
    }

    /// The limit a running worker can break at any moment that the
    /// watchdog does not watch: its stderr volume.
    fn check_running(&self, worker: &Worker) -> Result<(), ExchangeError> {
        match worker.stderr.breach() {
            Some(breach) => Err(ExchangeError::Limit(breach)),
            None => Ok(()),
        }
    }

    /// After a reply: the running limits still hold, and the plugin's
    /// replies of the last minute stay within their budget.
    fn after_reply(&self, worker: &Worker, result: Vec<u8>) -> Result<Vec<u8>, ExchangeError> {
        self.check_running(worker)?;
        let max = self.config.max_reply_bytes_per_minute;
        let total = self.replies.lock().map(|mut w| w.add(result.len() as u64)).unwrap_or(0);
        if total > max {
            return Err(ExchangeError::Limit(Breach::ReplyBytesPerMinute { bytes: total, max }));
        }
        Ok(result)
    }

    /// Which limit, if any, a dead worker was killed for.
    fn breach_of_dead(&self, worker: &Worker) -> Option<Breach> {
        worker.watchdog.breach().or_else(|| worker.stderr.breach())
    }

    /// Sends one request and waits for its response, answering the
    /// plugin's own requests to the host meanwhile.
    fn exchange(
        &self,
        worker: &mut Worker,
        method: &str,
        params: &[u8],
        timeout: Duration,
        control: &RunControl,
        host: &Arc<dyn HostApi>,
    ) -> Result<Vec<u8>, ExchangeError> {
        let deadline = Instant::now() + timeout;
        let id = worker.next_id;
        worker.next_id += 1;
        let method_json = serde_json::to_string(method).map_err(|e| ExchangeError::Garbage(e.to_string()))?;
        let mut request = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":{method_json},"params":"#).into_bytes();
        request.extend_from_slice(params);
        request.extend_from_slice(b"}\n");
        if worker.requests.send(request).is_err() {
            return Err(ExchangeError::Closed(exit_status(worker, "stdin closed")));
        }
        let mut host_calls = 0usize;
        loop {
            let line = next_line(worker, deadline, control)?;
            if let Some(breach) = worker.stderr.breach() {
                return Err(ExchangeError::Limit(breach));
            }
            let incoming: Incoming<'_> =
                serde_json::from_slice(&line).map_err(|e| ExchangeError::Garbage(e.to_string()))?;
            if incoming.jsonrpc != "2.0" {
                return Err(ExchangeError::Garbage(format!("`jsonrpc` is `{}`, not `2.0`", incoming.jsonrpc)));
            }
            if let Some(called) = &incoming.method {
                host_calls += 1;
                let answer = self.answer_host_call(called, incoming.params, host, host_calls);
                // A call without an id is a notification: it gets no answer.
                if let Some(call_id) = incoming.id {
                    let mut reply = format!(r#"{{"jsonrpc":"2.0","id":{},"#, call_id.get()).into_bytes();
                    reply.extend_from_slice(&answer);
                    reply.extend_from_slice(b"}\n");
                    if worker.requests.send(reply).is_err() {
                        return Err(ExchangeError::Closed(exit_status(worker, "stdin closed")));
                    }
                }
                continue;
            }
            let reply_id = incoming.id.and_then(|raw| raw.get().parse::<u64>().ok());
            if reply_id != Some(id) {
                // A late reply to an earlier, timed-out request cannot happen
                // (that worker was killed); anything else is a protocol error.
                return Err(ExchangeError::Garbage(format!(
                    "reply id {} does not match request id {id}",
                    incoming.id.map_or("null", |raw| raw.get())
                )));
            }
            return match (incoming.result, incoming.error) {
                (Some(result), None) => Ok(result.get().as_bytes().to_vec()),
                (None, Some(error)) => Err(ExchangeError::Rpc { code: error.code, message: error.message }),
                _ => Err(ExchangeError::Garbage("reply must hold exactly one of `result` and `error`".to_owned())),
            };
        }
    }

    /// The `"result": …` or `"error": …` member answering a plugin's call
    /// of host method `method`: refused unless the contract offers the
    /// method and the plugin holds its permission.
    fn answer_host_call(
        &self,
        method: &str,
        params: Option<&RawValue>,
        host: &Arc<dyn HostApi>,
        count: usize,
    ) -> Vec<u8> {
        let error = |code: i64, message: String| {
            let body = serde_json::json!({"code": code, "message": message});
            format!(r#""error":{body}"#).into_bytes()
        };
        if count > MAX_HOST_CALLS_PER_REQUEST {
            return error(CODE_HOST_LIMIT, format!("more than {MAX_HOST_CALLS_PER_REQUEST} host calls in one request"));
        }
        let Some(capability) = self.catalog.capability(method) else {
            return error(CODE_METHOD_NOT_FOUND, format!("the host has no method `{method}`"));
        };
        if !self.grants.allows(capability.permission) {
            let denied = PermissionDenied {
                plugin_id: self.manifest.plugin_id.clone(),
                capability: method.to_owned(),
                permission: capability.permission.to_owned(),
            };
            // Denied calls are logged, so an operator sees what a plugin tried.
            (self.config.log_sink)(&self.manifest.plugin_id, &format!("[polis] {denied}"));
            return error(CODE_PERMISSION_DENIED, denied.to_string());
        }
        let params = params.map_or("null", RawValue::get);
        match host.call(method, params.as_bytes()) {
            Ok(result) => {
                let mut out = b"\"result\":".to_vec();
                out.extend_from_slice(&result);
                out
            }
            Err(e) => error(CODE_HOST_REFUSED, e.to_string()),
        }
    }

    /// Asks the worker to shut down and waits briefly for it.
    pub fn shutdown(&self) {
        if let Ok(mut guard) = self.worker.lock()
            && let Some(mut worker) = guard.0.take()
        {
            let _ = self.exchange(
                &mut worker,
                "shutdown",
                b"null",
                Duration::from_millis(500),
                &RunControl::new(),
                &no_host(),
            );
        }
    }
}

impl PluginEndpoint for ProcessPlugin {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn grants(&self) -> &Grants {
        &self.grants
    }

    fn call(&self, method: &str, request: &[u8], env: &CallEnv<'_>) -> Result<Vec<u8>, PolicyError> {
        self.request(method, request, env.control, env.host)
    }

    fn probe(&self) -> Result<(), PolicyError> {
        self.start_worker().map_err(|e| PolicyError::Failed(e.to_string()))
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
    Limit(Breach),
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
            ExchangeError::Limit(breach) => write!(f, "{breach}"),
        }
    }
}

impl ExchangeError {
    fn kills_worker(&self) -> bool {
        !matches!(self, ExchangeError::Rpc { .. })
    }

    fn into_policy_error(self, method: &str, timeout: Duration, cap: usize) -> PolicyError {
        match self {
            ExchangeError::Rpc { code: CODE_METHOD_NOT_FOUND, .. } => PolicyError::NoSuchMethod(method.to_owned()),
            ExchangeError::Timeout => PolicyError::LimitExceeded {
                limit: "timeout",
                detail: format!("no complete reply within {} ms; the worker was killed", timeout.as_millis()),
            },
            ExchangeError::TooLong => PolicyError::LimitExceeded {
                limit: "output_bytes",
                detail: format!("reply exceeds the cap of {cap} bytes; the worker was killed"),
            },
            ExchangeError::Cancelled => PolicyError::Cancelled,
            ExchangeError::Limit(breach) => breach.into_policy_error(),
            ExchangeError::Rpc { code: CODE_REJECTED, message } => PolicyError::Rejected(message),
            other => PolicyError::Failed(other.to_string()),
        }
    }
}

/// How often a waiting exchange looks at its [`RunControl`]. A reply that
/// arrives wakes the wait at once, so this bounds only how late a
/// cancellation is noticed.
const CANCEL_POLL: Duration = Duration::from_millis(10);

/// The next complete line from the worker, before the deadline and unless
/// cancelled.
fn next_line(worker: &mut Worker, deadline: Instant, control: &RunControl) -> Result<Vec<u8>, ExchangeError> {
    loop {
        if control.is_cancelled() {
            return Err(ExchangeError::Cancelled);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match worker.lines.recv_timeout(left.min(CANCEL_POLL)) {
            Ok(Line::Complete(line)) => return Ok(line),
            Ok(Line::TooLong) => return Err(ExchangeError::TooLong),
            Ok(Line::Closed) | Err(RecvTimeoutError::Disconnected) => {
                return Err(ExchangeError::Closed(exit_status(worker, "stdout closed")));
            }
            Err(RecvTimeoutError::Timeout) if left <= CANCEL_POLL => return Err(ExchangeError::Timeout),
            Err(RecvTimeoutError::Timeout) => {
                if let Some(breach) = worker.stderr.breach() {
                    return Err(ExchangeError::Limit(breach));
                }
            }
        }
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

/// Forwards stderr lines to the log sink, tagged with the plugin id, each
/// cut to 4 KiB and metered: lines past the per-minute line budget are
/// dropped (one notice says how many), and past the byte budget the meter
/// trips, which kills the worker at the host's next look. The pipe is
/// drained to the end either way, so a flooding worker never blocks on it.
fn forward_stderr(stderr: impl Read + Send + 'static, plugin_id: String, sink: LogSink, meter: Arc<StderrMeter>) {
    std::thread::spawn(move || {
        let reader = BufReader::new(stderr);
        for line in reader.split(b'\n') {
            let Ok(line) = line else { return };
            match meter.admit(line.len() as u64 + 1) {
                crate::limits::Admit::Forward => {
                    let text = String::from_utf8_lossy(&line[..line.len().min(4096)]);
                    sink(&plugin_id, &text);
                }
                crate::limits::Admit::DropWithNotice(notice) => sink(&plugin_id, &notice),
                crate::limits::Admit::Drop => {}
            }
        }
    });
}
