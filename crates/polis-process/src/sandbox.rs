//! The sandbox a worker process starts in, built from four independent,
//! unprivileged Linux layers:
//!
//! 1. **rlimits**: address space, CPU seconds, file size 0 (no file can be
//!    written), open files and processes.
//! 2. **namespaces**: a new user and network namespace, so the worker has
//!    no network interface but loopback-less isolation and no host
//!    privileges.
//! 3. **Landlock**: the file system is read-only, and only beneath the
//!    paths the interpreter needs plus the plugin's directory.
//! 4. **seccomp**: no sockets, and no new processes (`fork`, `vfork`, and
//!    `clone` without `CLONE_THREAD`); threads still work (`clone3` reports
//!    `ENOSYS` so that libc falls back to `clone`).
//!
//! Each layer reports whether this kernel supports it ([`SandboxReport`]);
//! an unsupported layer is skipped and reported, never silently assumed.
//! Everything that allocates (the Landlock ruleset, the BPF programs) is
//! prepared in the parent; the child only makes system calls between
//! `fork` and `exec`.

use std::path::PathBuf;
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
    /// Most open file descriptors. By default 64.
    pub max_open_files: u64,
    /// Most processes of the worker's user. By default 64. The kernel does
    /// not apply this to root; seccomp stops forks regardless.
    pub max_processes: u64,
    /// Enter a new user and network namespace. By default on.
    pub namespaces: bool,
    /// Restrict the file system with Landlock. By default on.
    pub landlock: bool,
    /// Paths readable beneath (the interpreter's prefix, shared libraries);
    /// the plugin directory is always added. By default `/usr`, `/lib`,
    /// `/lib64`, `/etc`, `/dev/null` and `/dev/urandom`.
    pub read_paths: Vec<PathBuf>,
    /// Filter system calls with seccomp. By default on.
    pub seccomp: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            rlimits: true,
            address_space_bytes: 1 << 30,
            cpu_seconds: 600,
            max_open_files: 64,
            max_processes: 64,
            namespaces: true,
            landlock: true,
            read_paths: ["/usr", "/lib", "/lib64", "/etc", "/dev/null", "/dev/urandom"]
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            seccomp: true,
        }
    }
}

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
    /// User and network namespaces.
    pub namespaces: LayerState,
    /// Landlock file-system restriction.
    pub landlock: LayerState,
    /// seccomp system-call filter.
    pub seccomp: LayerState,
}

impl SandboxReport {
    /// `(layer, state)` pairs in a fixed order, for printing.
    pub fn layers(&self) -> [(&'static str, &LayerState); 4] {
        [
            ("rlimits", &self.rlimits),
            ("namespaces", &self.namespaces),
            ("landlock", &self.landlock),
            ("seccomp", &self.seccomp),
        ]
    }
}

/// What a child applies between `fork` and `exec`.
pub(crate) struct Prepared {
    pub(crate) report: SandboxReport,
    rlimits: Vec<(RlimitResource, u64)>,
    unshare: bool,
    landlock: Arc<Mutex<Option<landlock::RulesetCreated>>>,
    seccomp: Vec<seccompiler::BpfProgram>,
}

#[cfg(target_env = "gnu")]
type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type RlimitResource = libc::c_int;

/// Builds everything a child needs, and the report of what will be active.
pub(crate) fn prepare(config: &SandboxConfig, plugin_dir: &std::path::Path) -> Prepared {
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
    let namespaces = if !config.namespaces { LayerState::Disabled } else { kernel::user_namespaces() };
    let (landlock_state, ruleset) = if !config.landlock {
        (LayerState::Disabled, None)
    } else {
        match kernel::landlock_abi() {
            Err(reason) => (LayerState::Unsupported { reason }, None),
            Ok(_) => {
                let mut paths = config.read_paths.clone();
                paths.push(plugin_dir.to_path_buf());
                match landlock_ruleset(&paths) {
                    Ok(ruleset) => (LayerState::Active, Some(ruleset)),
                    Err(reason) => (LayerState::Unsupported { reason }, None),
                }
            }
        }
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
            namespaces: namespaces.clone(),
            landlock: landlock_state,
            seccomp: seccomp_state,
        },
        rlimits,
        unshare: namespaces == LayerState::Active,
        landlock: Arc::new(Mutex::new(ruleset)),
        seccomp,
    }
}

fn landlock_ruleset(paths: &[PathBuf]) -> Result<landlock::RulesetCreated, String> {
    use landlock::{ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, path_beneath_rules};
    let abi = ABI::V1;
    Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
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
    for call in [libc::SYS_socket, libc::SYS_socketpair, libc::SYS_fork, libc::SYS_vfork] {
        denied.insert(call, Vec::new());
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

impl Prepared {
    /// Arranges for `command`'s child to enter the sandbox before `exec`.
    pub(crate) fn apply_to(&self, command: &mut std::process::Command) {
        let rlimits = self.rlimits.clone();
        let unshare = self.unshare;
        let landlock = Arc::clone(&self.landlock);
        let seccomp = self.seccomp.clone();
        let in_child = move || -> std::io::Result<()> {
            for &(resource, value) in &rlimits {
                kernel::set_rlimit(resource, value)?;
            }
            if unshare {
                kernel::unshare_user_and_network()?;
            }
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
    }
}

/// The system calls, each behind a safe function.
#[expect(unsafe_code, reason = "rlimits, namespaces and pre-exec hooks are raw system calls")]
mod kernel {
    use super::{LayerState, RlimitResource};

    /// Runs `hook` in the child between `fork` and `exec`.
    pub(super) fn pre_exec(
        command: &mut std::process::Command,
        hook: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
    ) {
        use std::os::unix::process::CommandExt;
        // SAFETY: the hook runs in the forked child before exec. It makes
        // system calls (setrlimit, unshare, prctl, landlock_restrict_self,
        // seccomp) on data prepared in the parent, and takes an uncontended
        // lock that only this child's copy of the closure touches; it does
        // not allocate in the common path, so the fork-safety rules of
        // `pre_exec` hold.
        unsafe {
            command.pre_exec(hook);
        }
    }

    pub(super) fn set_rlimit(resource: RlimitResource, value: u64) -> std::io::Result<()> {
        let limit = libc::rlimit { rlim_cur: value as libc::rlim_t, rlim_max: value as libc::rlim_t };
        // SAFETY: `limit` is a valid, initialised rlimit that lives across
        // the call; setrlimit only reads it.
        let rc = unsafe { libc::setrlimit(resource, &limit) };
        if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
    }

    pub(super) fn unshare_user_and_network() -> std::io::Result<()> {
        // SAFETY: unshare takes only flags; in a freshly forked,
        // single-threaded child it affects nothing but this process.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) };
        if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
    }

    /// Whether unprivileged user namespaces work here: a probe child
    /// tries to enter one, once per process.
    pub(super) fn user_namespaces() -> LayerState {
        static PROBE: std::sync::OnceLock<LayerState> = std::sync::OnceLock::new();
        PROBE
            .get_or_init(|| {
                let mut probe = std::process::Command::new("/bin/true");
                probe.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
                pre_exec(&mut probe, unshare_user_and_network);
                match probe.status() {
                    Ok(status) if status.success() => LayerState::Active,
                    Ok(status) => LayerState::Unsupported { reason: format!("probe exited with {status}") },
                    Err(e) => {
                        LayerState::Unsupported { reason: format!("unshare(CLONE_NEWUSER | CLONE_NEWNET) failed: {e}") }
                    }
                }
            })
            .clone()
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
    prepare(config, std::path::Path::new("/")).report
}
