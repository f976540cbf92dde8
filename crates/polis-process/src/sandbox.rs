//! The sandbox a worker process starts in, built from independent Linux
//! layers (each described, with what it guarantees, in `docs/sandbox.md`):
//!
//! 1. **rlimits**: address space, CPU seconds over the worker's life, file
//!    size 0 (no file can be written), open files and processes. (The
//!    per-call CPU budget and the thread limit are watched by the host,
//!    see [`SandboxConfig::cpu_ms_per_call`].)
//! 2. **identity**: when polis runs as root, the worker drops to an
//!    unprivileged account (`nobody` by default) with no supplementary
//!    groups before anything else; an unprivileged polis keeps its uid,
//!    mapped to itself inside the user namespace.
//! 3. **namespaces**: a new user and network namespace, so the worker has
//!    no network interface and no host privileges.
//! 4. **pid namespace**: the worker is process 1 of its own PID namespace,
//!    in its own session; no process outside is visible to it, so none can
//!    be signalled, traced or read through `/proc/<pid>`. A tiny reaper
//!    (the forked parent, which runs no plugin code) waits for it and
//!    reports its CPU time; the worker dies with the reaper.
//! 5. **no_new_privs**: `PR_SET_NO_NEW_PRIVS`, so no set-uid program can
//!    give privileges back.
//! 6. **Landlock**: the file system is read-only and readable only beneath
//!    the paths the interpreter needs plus the plugin's directory; no file
//!    can be truncated. Where the kernel has Landlock ABI 6, the worker also
//!    cannot signal any process outside its sandbox (`signal_scope`).
//! 7. **seccomp**: no sockets, no new processes (`fork`, `vfork`, and
//!    `clone` without `CLONE_THREAD`; `clone3` reports `ENOSYS` so that
//!    libc falls back to `clone`), and no tracing, cross-process memory
//!    access, pidfds, namespace changes, mounts, keyrings, BPF, perf or
//!    io_uring.
//!
//! Each layer reports whether this kernel supports it ([`SandboxReport`]);
//! an unsupported layer is skipped and reported, never silently assumed.
//! Everything that allocates (the Landlock ruleset, the BPF programs, the
//! id maps, the account lookup) is prepared in the parent; the child only
//! makes system calls between `fork` and `exec`.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Sandbox settings of the process tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Apply resource limits. By default on.
    pub rlimits: bool,
    /// Address-space limit in bytes. By default 1 GiB.
    pub address_space_bytes: u64,
    /// CPU seconds over the worker's whole life (a persistent worker
    /// accumulates them; it is restarted when killed). By default 600.
    pub cpu_seconds: u64,
    /// CPU milliseconds one call may use, counting every thread, from the
    /// request until the next request: a watchdog thread of the host reads
    /// the worker's CPU time every 50 ms and kills it past what it had used
    /// when the call started plus this, so threads a plugin leaves
    /// spinning after it answers are killed at this budget rather than
    /// burning the cores between calls. By default 10 000.
    pub cpu_ms_per_call: u64,
    /// Most open file descriptors. By default 64.
    pub max_open_files: u64,
    /// Most processes (threads included) of the worker's user. By default
    /// 64. The kernel does not apply this to root; seccomp stops forks
    /// regardless, and [`SandboxConfig::max_threads`] is checked per worker.
    pub max_processes: u64,
    /// Most threads one worker may have, checked by the same watchdog
    /// and when a call starts or ends; a worker with more is killed. By
    /// default 16.
    pub max_threads: u64,
    /// The account workers run as when polis runs as root (looked up in
    /// the system's user database). `None` leaves root workers as root,
    /// which is reported. Ignored when polis is not root: the worker then
    /// keeps polis's uid. By default `nobody`.
    pub user: Option<String>,
    /// Enter a new user and network namespace. By default on.
    pub namespaces: bool,
    /// Run the worker as process 1 of its own PID namespace (needs
    /// `namespaces`). By default on.
    pub pid_namespace: bool,
    /// Restrict the file system with Landlock. By default on.
    pub landlock: bool,
    /// Paths readable beneath (the interpreter's prefix, shared libraries);
    /// the plugin directory is always added, and paths that do not exist
    /// are skipped. By default `/usr`, `/lib`, `/lib64`, `/etc/ld.so.cache`,
    /// `/etc/localtime`, `/etc/ssl/openssl.cnf` (OpenSSL's configuration:
    /// Node.js reads it at start-up and exits when it cannot), `/dev/null`
    /// and `/dev/urandom`: nothing else of `/etc`, and none of `/proc`.
    pub read_paths: Vec<PathBuf>,
    /// Also let workers read the system's TLS certificates
    /// (`/etc/ssl/certs`). By default off.
    pub ssl_certs: bool,
    /// Filter system calls with seccomp. By default on.
    pub seccomp: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            rlimits: true,
            address_space_bytes: 1 << 30,
            cpu_seconds: 600,
            cpu_ms_per_call: 10_000,
            max_open_files: 64,
            max_processes: 64,
            max_threads: 16,
            user: Some("nobody".to_owned()),
            namespaces: true,
            pid_namespace: true,
            landlock: true,
            read_paths: DEFAULT_READ_PATHS.iter().map(PathBuf::from).collect(),
            ssl_certs: false,
            seccomp: true,
        }
    }
}

/// What a worker may read by default besides its own directory.
pub const DEFAULT_READ_PATHS: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/ssl/openssl.cnf",
    "/dev/null",
    "/dev/urandom",
];

/// Whether one layer is in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LayerState {
    /// Applied to every worker.
    Active,
    /// Turned off by configuration.
    Disabled,
    /// Asked for, but this kernel cannot do it.
    Unsupported {
        /// Why.
        reason: String,
    },
}

/// What each sandbox layer does on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxReport {
    /// Resource limits.
    pub rlimits: LayerState,
    /// The uid drop when polis is root (active also when polis is not
    /// root: the worker then has no privileges to drop).
    pub identity: LayerState,
    /// User and network namespaces.
    pub namespaces: LayerState,
    /// The worker's own PID namespace.
    pub pid_namespace: LayerState,
    /// `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: LayerState,
    /// Landlock file-system restriction.
    pub landlock: LayerState,
    /// Landlock's signal scoping (ABI 6).
    pub signal_scope: LayerState,
    /// seccomp system-call filter.
    pub seccomp: LayerState,
    /// The uid a worker runs as, on the host.
    pub worker_uid: u32,
    /// The gid a worker runs as, on the host.
    pub worker_gid: u32,
}

impl SandboxReport {
    /// `(layer, state)` pairs in a fixed order, for printing.
    pub fn layers(&self) -> Vec<(&'static str, &LayerState)> {
        vec![
            ("rlimits", &self.rlimits),
            ("identity", &self.identity),
            ("namespaces", &self.namespaces),
            ("pid_namespace", &self.pid_namespace),
            ("no_new_privs", &self.no_new_privs),
            ("landlock", &self.landlock),
            ("signal_scope", &self.signal_scope),
            ("seccomp", &self.seccomp),
        ]
    }
}

/// The account a worker runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerIdentity {
    /// Its uid on the host.
    pub uid: u32,
    /// Its gid on the host.
    pub gid: u32,
    /// Whether the worker changes to it from root.
    pub drops_root: bool,
}

/// The account workers run as under `config`: `config.user` when polis is
/// root, else polis's own uid and gid.
pub fn worker_identity(config: &SandboxConfig) -> Result<WorkerIdentity, String> {
    let (uid, gid) = kernel::own_ids();
    match (&config.user, uid) {
        (Some(name), 0) => {
            let (uid, gid) = kernel::lookup_user(name)?;
            Ok(WorkerIdentity { uid, gid, drops_root: uid != 0 })
        }
        _ => Ok(WorkerIdentity { uid, gid, drops_root: false }),
    }
}

/// Whether the worker's account can reach `path` (every ancestor
/// directory searchable) and open it with `want` (`0o4` read, `0o1`
/// execute, or both), by its mode bits. Errors name the first component
/// that stops it.
pub fn worker_can_access(identity: &WorkerIdentity, path: &Path, want: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let bits = |meta: &std::fs::Metadata| {
        if identity.uid == 0 {
            return 0o7;
        }
        let mode = meta.mode();
        if meta.uid() == identity.uid {
            (mode >> 6) & 0o7
        } else if meta.gid() == identity.gid {
            (mode >> 3) & 0o7
        } else {
            mode & 0o7
        }
    };
    let path = path.canonicalize().map_err(|e| format!("`{}` cannot be resolved: {e}", path.display()))?;
    for dir in path.ancestors().skip(1) {
        let meta = std::fs::metadata(dir).map_err(|e| format!("`{}`: {e}", dir.display()))?;
        if bits(&meta) & 0o1 == 0 {
            return Err(format!("uid {} cannot enter `{}`", identity.uid, dir.display()));
        }
    }
    let meta = std::fs::metadata(&path).map_err(|e| format!("`{}`: {e}", path.display()))?;
    let want = if meta.is_dir() { want | 0o1 } else { want };
    if bits(&meta) & want != want {
        return Err(format!("uid {} cannot open `{}` (mode {:o})", identity.uid, path.display(), meta.mode() & 0o777));
    }
    Ok(())
}

/// Resolves a program named in a process plugin's `runtime.entry` to an
/// absolute path the worker's account can execute. A program named with a
/// `/` is relative to the plugin directory; otherwise `PATH` is searched in
/// order and the first candidate the worker can run wins. A Python found
/// through a version-manager shim (pyenv) is asked where its real
/// interpreter lives, since a shim forks, which the sandbox forbids; an
/// interpreter the worker cannot reach (pyenv's under `/root`, when the
/// worker drops to `nobody`) is passed over for the next on `PATH`.
pub fn resolve_program(dir: &Path, program: &str, config: &SandboxConfig) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = dir.join(program);
        return path.canonicalize().map_err(|e| format!("program `{}` cannot be resolved: {e}", path.display()));
    }
    let identity = worker_identity(config)?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut passed_over = Vec::new();
    for found in std::env::split_paths(&path).map(|d| d.join(program)).filter(|p| p.is_file()) {
        let Ok(found) = found.canonicalize() else { continue };
        let real = if program.starts_with("python") { python_executable(&found).unwrap_or(found) } else { found };
        match worker_can_access(&identity, &real, 0o5) {
            Ok(()) => return Ok(real),
            Err(why) => passed_over.push(why),
        }
    }
    if passed_over.is_empty() {
        Err(format!("program `{program}` is not on PATH"))
    } else {
        Err(format!("no `{program}` on PATH that the worker can run: {}", passed_over.join("; ")))
    }
}

/// The real interpreter behind `python`, as it reports itself.
fn python_executable(python: &Path) -> Option<PathBuf> {
    let out = std::process::Command::new(python)
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let real = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !real.is_empty()).then(|| PathBuf::from(real).canonicalize().ok()).flatten()
}

/// The id changes a child makes as root.
#[derive(Clone, Copy)]
struct IdDrop {
    uid: libc::uid_t,
    gid: libc::gid_t,
}

/// `/proc/self/{uid,gid}_map` contents mapping the worker's ids to
/// themselves inside its user namespace.
#[derive(Clone)]
struct IdMaps {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

/// What a child applies between `fork` and `exec`.
pub(crate) struct Prepared {
    pub(crate) report: SandboxReport,
    rlimits: Vec<(RlimitResource, u64)>,
    drop: Option<IdDrop>,
    unshare: libc::c_int,
    id_maps: Option<IdMaps>,
    landlock: Arc<Mutex<Option<landlock::RulesetCreated>>>,
    seccomp: Vec<seccompiler::BpfProgram>,
}

#[cfg(target_env = "gnu")]
type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type RlimitResource = libc::c_int;

/// Builds everything a child needs, and the report of what will be active.
pub(crate) fn prepare(config: &SandboxConfig, plugin_dir: &Path) -> Prepared {
    let rlimits = if config.rlimits {
        vec![
            (libc::RLIMIT_AS, config.address_space_bytes),
            (libc::RLIMIT_CPU, config.cpu_seconds),
            (libc::RLIMIT_FSIZE, 0),
            (libc::RLIMIT_NOFILE, config.max_open_files),
            (libc::RLIMIT_NPROC, config.max_processes),
        ]
    } else {
        Vec::new()
    };
    let (own_uid, own_gid) = kernel::own_ids();
    let (identity_state, identity) = match worker_identity(config) {
        Err(reason) => (LayerState::Unsupported { reason }, None),
        Ok(identity) if own_uid == 0 && !identity.drops_root => (LayerState::Disabled, Some(identity)),
        Ok(identity) => (LayerState::Active, Some(identity)),
    };
    let (uid, gid) = identity.map_or((own_uid, own_gid), |i| (i.uid, i.gid));
    let drop = identity.filter(|i| i.drops_root).map(|i| IdDrop { uid: i.uid, gid: i.gid });
    let as_ids = drop.map(|d| (d.uid, d.gid));
    let namespaces = if !config.namespaces { LayerState::Disabled } else { kernel::user_namespaces(as_ids) };
    let pid_namespace = match (&namespaces, config.pid_namespace) {
        (_, false) => LayerState::Disabled,
        (LayerState::Active, true) => kernel::pid_namespaces(as_ids),
        (_, true) => LayerState::Unsupported { reason: "needs the user namespace layer".to_owned() },
    };
    let mut unshare = 0;
    if namespaces == LayerState::Active {
        unshare |= libc::CLONE_NEWUSER | libc::CLONE_NEWNET;
    }
    if pid_namespace == LayerState::Active {
        unshare |= libc::CLONE_NEWPID;
    }
    let id_maps = (unshare != 0).then(|| IdMaps {
        uid_map: format!("{uid} {uid} 1\n").into_bytes(),
        gid_map: format!("{gid} {gid} 1\n").into_bytes(),
    });
    let abi = kernel::landlock_abi();
    let (landlock_state, ruleset) = if !config.landlock {
        (LayerState::Disabled, None)
    } else {
        match &abi {
            Err(reason) => (LayerState::Unsupported { reason: reason.clone() }, None),
            Ok(_) => {
                let mut paths = config.read_paths.clone();
                if config.ssl_certs {
                    paths.push(PathBuf::from("/etc/ssl/certs"));
                }
                paths.push(plugin_dir.to_path_buf());
                match landlock_ruleset(&paths) {
                    Ok(ruleset) => (LayerState::Active, Some(ruleset)),
                    Err(reason) => (LayerState::Unsupported { reason }, None),
                }
            }
        }
    };
    let signal_scope = match (&landlock_state, &abi) {
        (LayerState::Active, Ok(version)) if *version >= 6 => LayerState::Active,
        (LayerState::Active, Ok(version)) => {
            LayerState::Unsupported { reason: format!("Landlock ABI {version} predates signal scoping (ABI 6)") }
        }
        (LayerState::Disabled, _) => LayerState::Disabled,
        _ => LayerState::Unsupported { reason: "needs the landlock layer".to_owned() },
    };
    let (seccomp_state, seccomp) = if !config.seccomp {
        (LayerState::Disabled, Vec::new())
    } else {
        match kernel::seccomp().and_then(|()| seccomp_programs()) {
            Ok(programs) => (LayerState::Active, programs),
            Err(reason) => (LayerState::Unsupported { reason }, Vec::new()),
        }
    };
    Prepared {
        report: SandboxReport {
            rlimits: if config.rlimits { LayerState::Active } else { LayerState::Disabled },
            identity: identity_state,
            namespaces,
            pid_namespace,
            no_new_privs: LayerState::Active,
            landlock: landlock_state,
            signal_scope,
            seccomp: seccomp_state,
            worker_uid: uid,
            worker_gid: gid,
        },
        rlimits,
        drop,
        unshare,
        id_maps,
        landlock: Arc::new(Mutex::new(ruleset)),
        seccomp,
    }
}

fn landlock_ruleset(paths: &[PathBuf]) -> Result<landlock::RulesetCreated, String> {
    use landlock::{ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope, path_beneath_rules};
    // Best effort (the crate's default): every access right up to ABI 5
    // (truncation and device ioctls included) that this kernel knows is
    // handled, and signals are scoped where ABI 6 exists.
    let abi = ABI::V5;
    Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.scope(Scope::Signal | Scope::AbstractUnixSocket))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(paths, AccessFs::from_read(abi))))
        .map_err(|e| format!("landlock ruleset could not be built: {e}"))
}

fn seccomp_programs() -> Result<Vec<seccompiler::BpfProgram>, String> {
    use std::collections::BTreeMap;

    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
        TargetArch,
    };
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| format!("seccomp: {e}"))?;
    let clone_thread = u64::try_from(libc::CLONE_THREAD).unwrap_or(0);
    let not_a_thread = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(clone_thread), 0)
        .and_then(|c| SeccompRule::new(vec![c]))
        .map_err(|e| format!("seccomp: {e}"))?;
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for call in DENIED_CALLS {
        denied.insert(*call, Vec::new());
    }
    denied.insert(libc::SYS_clone, vec![not_a_thread]);
    let deny = SeccompFilter::new(denied, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)
        .and_then(BpfProgram::try_from)
        .map_err(|e| format!("seccomp: {e}"))?;
    // clone3 passes its flags in memory, where a filter cannot look; say
    // it does not exist so that libc falls back to clone, filtered above.
    let no_clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .and_then(BpfProgram::try_from)
    .map_err(|e| format!("seccomp: {e}"))?;
    Ok(vec![deny, no_clone3])
}

/// System calls a worker may never make (`EPERM`): sockets, new
/// processes, reaching into other processes, and changing the sandbox.
const DENIED_CALLS: &[i64] = &[
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_fork,
    libc::SYS_vfork,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_getfd,
    libc::SYS_pidfd_send_signal,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
];

/// The host's side of one started worker: where its reaper reports.
pub(crate) struct Launch {
    /// Reads the reaper's report of the worker's pid, when the worker has
    /// a PID namespace of its own.
    reports: Option<File>,
    /// The reaper's end, closed once the child is spawned.
    reaper_end: Option<OwnedFd>,
}

impl Launch {
    /// Called once the child is spawned: the host's copy of the reaper's
    /// end is closed and the worker's pid (in the host's PID namespace) is
    /// read; without a reaper the worker is the child itself.
    pub(crate) fn worker_pid(&mut self, child_pid: u32) -> std::io::Result<i32> {
        self.reaper_end = None;
        let Some(reports) = self.reports.as_mut() else {
            return Ok(i32::try_from(child_pid).unwrap_or(i32::MAX));
        };
        let mut pid = [0u8; 4];
        std::io::Read::read_exact(reports, &mut pid)?;
        self.reports = None;
        Ok(i32::from_ne_bytes(pid))
    }
}

impl Prepared {
    /// Arranges for `command`'s child to enter the sandbox before `exec`.
    pub(crate) fn apply_to(&self, command: &mut std::process::Command) -> std::io::Result<Launch> {
        let (reports, reaper_end) = if self.unshare & libc::CLONE_NEWPID != 0 {
            let (read, write) = kernel::pipe()?;
            (Some(File::from(read)), Some(write))
        } else {
            (None, None)
        };
        let reaper_fd = reaper_end.as_ref().map(AsRawFd::as_raw_fd);
        let rlimits = self.rlimits.clone();
        let drop = self.drop;
        let unshare = self.unshare;
        let id_maps = self.id_maps.clone();
        let landlock = Arc::clone(&self.landlock);
        let seccomp = self.seccomp.clone();
        let in_child = move || -> std::io::Result<()> {
            for &(resource, value) in &rlimits {
                kernel::set_rlimit(resource, value)?;
            }
            if let Some(drop) = drop {
                kernel::drop_to(drop.uid, drop.gid)?;
            }
            if unshare != 0 {
                kernel::unshare(unshare)?;
                if let Some(maps) = &id_maps {
                    kernel::write_id_maps(&maps.uid_map, &maps.gid_map)?;
                }
            }
            if let Some(fd) = reaper_fd {
                // Returns only in the worker; the reaper never comes back.
                kernel::fork_reaper(fd)?;
            }
            kernel::no_new_privs()?;
            // The parent prepared the ruleset; only this child uses it.
            let ruleset = landlock.lock().ok().and_then(|mut slot| slot.take());
            if let Some(ruleset) = ruleset {
                ruleset.restrict_self().map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            for program in &seccomp {
                seccompiler::apply_filter(program).map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            Ok(())
        };
        kernel::pre_exec(command, in_child);
        Ok(Launch { reports, reaper_end })
    }
}

/// Kills the process polis started for a worker (the worker, or its
/// reaper, whose death kills the worker), through a pidfd where the kernel
/// has them, so that a recycled pid is never hit.
pub(crate) struct Killer {
    pidfd: Option<OwnedFd>,
    pid: i32,
}

impl Killer {
    /// For `child`, which polis has not reaped yet.
    pub(crate) fn new(child: &std::process::Child) -> Killer {
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        Killer { pidfd: kernel::pidfd_open(pid), pid }
    }

    /// Sends `SIGKILL`.
    pub(crate) fn kill(&self) {
        match &self.pidfd {
            Some(fd) => kernel::pidfd_kill(fd),
            None => kernel::kill(self.pid),
        }
    }
}

/// A worker's CPU time so far (all threads, milliseconds) and its thread
/// count, from `/proc/<pid>/stat`.
pub(crate) fn usage(pid: i32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is parenthesised and may hold
    // spaces: state is field 3, utime 14, stime 15, num_threads 20.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
    let per_second = kernel::clock_ticks();
    let cpu_ms = (ticks(14)? + ticks(15)?).saturating_mul(1000) / per_second.max(1);
    Some((cpu_ms, ticks(20)?))
}

/// The system calls, each behind a safe function.
#[expect(unsafe_code, reason = "rlimits, namespaces, ids and pre-exec hooks are raw system calls")]
mod kernel {
    use std::os::fd::{FromRawFd, OwnedFd};

    use super::{LayerState, RlimitResource};

    /// Runs `hook` in the child between `fork` and `exec`.
    pub(super) fn pre_exec(
        command: &mut std::process::Command,
        hook: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
    ) {
        use std::os::unix::process::CommandExt;
        // SAFETY: the hook runs in the forked child before exec. It makes
        // system calls (setrlimit, setgroups/setgid/setuid, unshare, open/
        // write on /proc/self, fork, wait4, prctl, landlock_restrict_self,
        // seccomp) on data prepared in the parent, and takes an uncontended
        // lock that only this child's copy of the closure touches; it does
        // not allocate in the common path, so the fork-safety rules of
        // `pre_exec` hold.
        unsafe {
            command.pre_exec(hook);
        }
    }

    fn check(rc: libc::c_long) -> std::io::Result<()> {
        if rc >= 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
    }

    pub(super) fn set_rlimit(resource: RlimitResource, value: u64) -> std::io::Result<()> {
        let limit = libc::rlimit { rlim_cur: value as libc::rlim_t, rlim_max: value as libc::rlim_t };
        // SAFETY: `limit` is a valid, initialised rlimit that lives across
        // the call; setrlimit only reads it.
        check(unsafe { libc::setrlimit(resource, &limit) }.into())
    }

    pub(super) fn pidfd_open(pid: i32) -> Option<OwnedFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        // SAFETY: a non-negative result is a fresh descriptor we own.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
    }

    pub(super) fn pidfd_kill(fd: &OwnedFd) {
        use std::os::fd::AsRawFd;
        // SAFETY: the fd is a live pidfd; a null siginfo is allowed.
        unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), libc::SIGKILL, std::ptr::null::<u8>(), 0);
        }
    }

    pub(super) fn kill(pid: i32) {
        // SAFETY: kill takes integers; a stale pid at worst gets ESRCH.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }

    pub(super) fn own_ids() -> (u32, u32) {
        // SAFETY: geteuid and getegid take nothing and cannot fail.
        unsafe { (libc::geteuid(), libc::getegid()) }
    }

    pub(super) fn clock_ticks() -> u64 {
        // SAFETY: sysconf takes a constant and only returns a number.
        u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100)
    }

    /// The uid and gid of account `name`, from the user database.
    pub(super) fn lookup_user(name: &str) -> Result<(u32, u32), String> {
        let c_name = std::ffi::CString::new(name).map_err(|_| format!("user name `{name}` holds a NUL byte"))?;
        let mut buffer = vec![0 as libc::c_char; 16 << 10];
        // SAFETY: an all-zero passwd is a valid value for getpwnam_r to fill.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: the name is a
        // NUL-terminated string, `entry` and `found` are live locals, and
        // the buffer's length is passed with it.
        let rc =
            unsafe { libc::getpwnam_r(c_name.as_ptr(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found) };
        if rc != 0 {
            return Err(format!("user `{name}` could not be looked up: {}", std::io::Error::from_raw_os_error(rc)));
        }
        if found.is_null() {
            return Err(format!("user `{name}` does not exist"));
        }
        Ok((entry.pw_uid, entry.pw_gid))
    }

    /// Root becomes `uid`/`gid` with no supplementary groups, for good:
    /// setuid from root to another uid clears every capability. The
    /// process is made dumpable again so that it can write its own id maps
    /// (exec resets the flag anyway).
    pub(super) fn drop_to(uid: libc::uid_t, gid: libc::gid_t) -> std::io::Result<()> {
        // SAFETY: setgroups with a zero count reads no memory; setgid,
        // setuid and prctl take plain integers.
        unsafe {
            check(libc::setgroups(0, std::ptr::null()).into())?;
            check(libc::setgid(gid).into())?;
            check(libc::setuid(uid).into())?;
            check(libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0).into())?;
        }
        // There is no way back.
        // SAFETY: setuid takes an integer; it must fail now.
        if unsafe { libc::setuid(0) } == 0 {
            return Err(std::io::Error::other("uid drop did not hold: setuid(0) succeeded"));
        }
        Ok(())
    }

    pub(super) fn unshare(flags: libc::c_int) -> std::io::Result<()> {
        // SAFETY: unshare takes only flags; in a freshly forked,
        // single-threaded child it affects nothing but this process.
        check(unsafe { libc::unshare(flags) }.into())
    }

    /// Writes `deny` to setgroups and the prepared maps, so that inside the
    /// namespace the worker has the ids it has outside.
    pub(super) fn write_id_maps(uid_map: &[u8], gid_map: &[u8]) -> std::io::Result<()> {
        write_file(c"/proc/self/uid_map", uid_map)?;
        write_file(c"/proc/self/setgroups", b"deny")?;
        write_file(c"/proc/self/gid_map", gid_map)
    }

    fn write_file(path: &std::ffi::CStr, bytes: &[u8]) -> std::io::Result<()> {
        // SAFETY: the path is NUL-terminated; the fd is ours and closed
        // below; write reads `bytes` within its length.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            check(fd.into())?;
            let written = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
            let error = std::io::Error::last_os_error();
            libc::close(fd);
            if written != bytes.len() as isize {
                return Err(error);
            }
        }
        Ok(())
    }

    /// Forks: the child (process 1 of the new PID namespace) returns and
    /// goes on to exec the worker; the parent becomes its reaper and never
    /// returns. The reaper closes every descriptor but `report`, writes
    /// the worker's pid to it, closes that too, waits, and exits as the
    /// worker did.
    pub(super) fn fork_reaper(report: libc::c_int) -> std::io::Result<()> {
        // SAFETY: fork in a single-threaded child; the parent branch makes
        // only async-signal-safe system calls on stack data and ends in
        // `_exit`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: plain integer arguments.
            unsafe {
                // Its own session: no signal to a process group reaches polis.
                libc::setsid();
                // Dies with the reaper, which dies when polis kills it.
                check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0).into())?;
            }
            return Ok(());
        }
        // SAFETY: as above; every buffer is a local that outlives its call.
        unsafe {
            let fd = report as libc::c_uint;
            if fd > 0 {
                libc::close_range(0, fd - 1, 0);
            }
            libc::close_range(fd + 1, libc::c_uint::MAX, 0);
            let pid_bytes = pid.to_ne_bytes();
            libc::write(report, pid_bytes.as_ptr().cast(), pid_bytes.len());
            libc::close(report);
            let mut status: libc::c_int = 0;
            while libc::waitpid(pid, &mut status, 0) < 0 {
                if *libc::__errno_location() != libc::EINTR {
                    libc::_exit(127);
                }
            }
            if libc::WIFSIGNALED(status) {
                let signal = libc::WTERMSIG(status);
                libc::signal(signal, libc::SIG_DFL);
                libc::kill(libc::getpid(), signal);
                libc::_exit(128 + signal);
            }
            libc::_exit(libc::WEXITSTATUS(status));
        }
    }

    pub(super) fn no_new_privs() -> std::io::Result<()> {
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }.into())
    }

    pub(super) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }.into())?;
        // SAFETY: pipe2 succeeded, so both are fresh descriptors we own.
        Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
    }

    /// Whether user and network namespaces work here for the worker's
    /// account: a probe child tries to enter them, once per process.
    pub(super) fn user_namespaces(drop: Option<(u32, u32)>) -> LayerState {
        probe(libc::CLONE_NEWUSER | libc::CLONE_NEWNET, drop)
    }

    /// Whether a PID namespace can be entered beside them.
    pub(super) fn pid_namespaces(drop: Option<(u32, u32)>) -> LayerState {
        probe(libc::CLONE_NEWUSER | libc::CLONE_NEWNET | libc::CLONE_NEWPID, drop)
    }

    /// Runs `/bin/true` after unsharing `flags`, as the worker's account
    /// would (after dropping to `drop`), once per process for each.
    fn probe(flags: libc::c_int, drop: Option<(u32, u32)>) -> LayerState {
        type Probes = std::sync::Mutex<std::collections::BTreeMap<(libc::c_int, Option<(u32, u32)>), LayerState>>;
        static PROBES: std::sync::OnceLock<Probes> = std::sync::OnceLock::new();
        let probes = PROBES.get_or_init(Probes::default);
        if let Some(known) = probes.lock().ok().and_then(|p| p.get(&(flags, drop)).cloned()) {
            return known;
        }
        let state = run_probe(flags, drop);
        if let Ok(mut p) = probes.lock() {
            p.insert((flags, drop), state.clone());
        }
        state
    }

    fn run_probe(flags: libc::c_int, drop: Option<(u32, u32)>) -> LayerState {
        let mut probe = std::process::Command::new("/bin/true");
        probe.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
        pre_exec(&mut probe, move || {
            if let Some((uid, gid)) = drop {
                drop_to(uid, gid)?;
            }
            unshare(flags)
        });
        match probe.status() {
            Ok(status) if status.success() => LayerState::Active,
            Ok(status) => LayerState::Unsupported { reason: format!("probe exited with {status}") },
            Err(e) => LayerState::Unsupported { reason: format!("unshare({flags:#x}) failed: {e}") },
        }
    }

    /// The kernel's Landlock ABI version.
    pub(super) fn landlock_abi() -> Result<i64, String> {
        const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
        // SAFETY: with a null attribute pointer, size 0 and the VERSION
        // flag, landlock_create_ruleset only returns the ABI version.
        let version = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                LANDLOCK_CREATE_RULESET_VERSION,
            )
        };
        if version >= 1 {
            Ok(version)
        } else {
            Err(format!("landlock is not enabled in this kernel ({})", std::io::Error::last_os_error()))
        }
    }

    /// Whether seccomp filters are available.
    pub(super) fn seccomp() -> Result<(), String> {
        // SAFETY: PR_GET_SECCOMP takes no pointers and only reports this
        // process's seccomp mode.
        let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
        if mode >= 0 { Ok(()) } else { Err(format!("seccomp is not available ({})", std::io::Error::last_os_error())) }
    }
}

/// The report for `config` on this machine, without starting anything.
pub fn report(config: &SandboxConfig) -> SandboxReport {
    prepare(config, Path::new("/")).report
}
