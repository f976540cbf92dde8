//! Resource limits the host enforces on a running worker, beside the
//! kernel's: what was broken ([`Breach`]), a worker's CPU time and threads
//! ([`Watchdog`]), its stderr volume ([`StderrMeter`]) and a plugin's
//! reply volume ([`Window`]).
//!
//! The windows measure elapsed time with `Instant`; they bound resource
//! use and never decide a policy's output.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::sync::Arc;

use polis_core::policy::PolicyError;

use crate::sandbox::{self, Killer};

/// The length of every rate window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// A limit a worker broke; the worker is killed for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Breach {
    /// It used more CPU time than one call's budget.
    CpuTime {
        /// CPU time it had used since the call started, all threads.
        used_ms: u64,
        /// The budget.
        budget_ms: u64,
    },
    /// It had more threads than allowed.
    Threads {
        /// Threads seen.
        threads: u64,
        /// The most allowed.
        max: u64,
    },
    /// It wrote more to stderr in a minute than allowed.
    StderrBytes {
        /// The most allowed per minute.
        max: u64,
    },
    /// The plugin's replies of the last minute were too large together.
    ReplyBytesPerMinute {
        /// Bytes in this window, the last reply included.
        bytes: u64,
        /// The most allowed.
        max: u64,
    },
}

impl Breach {
    /// The limit's name, as `PolicyError::LimitExceeded` reports it.
    pub fn limit(&self) -> &'static str {
        match self {
            Breach::CpuTime { .. } => "cpu_time",
            Breach::Threads { .. } => "threads",
            Breach::StderrBytes { .. } => "stderr_bytes",
            Breach::ReplyBytesPerMinute { .. } => "reply_bytes_per_minute",
        }
    }

    /// The error a caller sees.
    pub fn into_policy_error(self) -> PolicyError {
        PolicyError::LimitExceeded { limit: self.limit(), detail: self.to_string() }
    }
}

impl std::fmt::Display for Breach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Breach::CpuTime { used_ms, budget_ms } => write!(
                f,
                "the worker used {used_ms} ms of CPU time since its call started, over the budget of \
                 {budget_ms} ms; the worker was killed"
            ),
            Breach::Threads { threads, max } => {
                write!(f, "the worker had {threads} threads, more than the {max} allowed; the worker was killed")
            }
            Breach::StderrBytes { max } => {
                write!(f, "the worker wrote more than {max} bytes to stderr in a minute; the worker was killed")
            }
            Breach::ReplyBytesPerMinute { bytes, max } => write!(
                f,
                "the plugin's replies came to {bytes} bytes this minute, more than the {max} allowed; \
                 the worker was killed"
            ),
        }
    }
}

/// Bytes counted in the current window of [`WINDOW`], which starts at the
/// first count after the previous one ended.
#[derive(Debug, Default)]
pub struct Window {
    started: Option<Instant>,
    total: u64,
}

impl Window {
    /// Counts `bytes` and returns the window's total.
    pub fn add(&mut self, bytes: u64) -> u64 {
        let now = Instant::now();
        if self.started.is_none_or(|s| now.saturating_duration_since(s) >= WINDOW) {
            self.started = Some(now);
            self.total = 0;
        }
        self.total = self.total.saturating_add(bytes);
        self.total
    }
}

/// What to do with one stderr line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Forward it to the log sink.
    Forward,
    /// Drop it, and forward this notice instead (once per window and cause).
    DropWithNotice(String),
    /// Drop it silently.
    Drop,
}

/// One worker's stderr volume against its per-minute budgets.
#[derive(Debug)]
pub struct StderrMeter {
    max_bytes: u64,
    max_lines: u64,
    tripped: AtomicBool,
    window: Mutex<(Option<Instant>, u64, u64)>,
    dropped: AtomicU64,
}

impl StderrMeter {
    /// A meter allowing `max_bytes` and `max_lines` a minute.
    pub fn new(max_bytes: u64, max_lines: u64) -> StderrMeter {
        StderrMeter {
            max_bytes,
            max_lines,
            tripped: AtomicBool::new(false),
            window: Mutex::new((None, 0, 0)),
            dropped: AtomicU64::new(0),
        }
    }

    /// Counts one line of `bytes` bytes.
    pub fn admit(&self, bytes: u64) -> Admit {
        if self.tripped.load(Ordering::Relaxed) {
            return Admit::Drop;
        }
        let Ok(mut window) = self.window.lock() else { return Admit::Drop };
        let now = Instant::now();
        if window.0.is_none_or(|s| now.saturating_duration_since(s) >= WINDOW) {
            *window = (Some(now), 0, 0);
        }
        window.1 = window.1.saturating_add(bytes);
        window.2 += 1;
        if window.1 > self.max_bytes {
            self.tripped.store(true, Ordering::Relaxed);
            return Admit::DropWithNotice(format!(
                "[polis] stderr exceeds {} bytes a minute; the worker is killed",
                self.max_bytes
            ));
        }
        if window.2 > self.max_lines {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return if window.2 == self.max_lines + 1 {
                Admit::DropWithNotice(format!(
                    "[polis] more than {} stderr lines this minute; the rest of the minute's lines are dropped",
                    self.max_lines
                ))
            } else {
                Admit::Drop
            };
        }
        Admit::Forward
    }

    /// The breach, once the byte budget was exceeded.
    pub fn breach(&self) -> Option<Breach> {
        self.tripped.load(Ordering::Relaxed).then_some(Breach::StderrBytes { max: self.max_bytes })
    }

    /// Lines dropped for the line budget so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// How often the watchdog looks at its worker.
pub const WATCH_EVERY: Duration = Duration::from_millis(50);

/// A thread that reads one worker's CPU time and thread count every
/// [`WATCH_EVERY`] and kills it when it passes its call's CPU ceiling or
/// its thread limit, recording why. It stops when the worker is gone or
/// the watchdog is dropped.
pub(crate) struct Watchdog {
    state: Arc<Watch>,
}

struct Watch {
    /// Kill at this much CPU time since the worker started.
    ceiling_ms: AtomicU64,
    /// Where the current call's budget started.
    base_ms: AtomicU64,
    /// The CPU time seen at the last look.
    seen_ms: AtomicU64,
    budget_ms: u64,
    max_threads: u64,
    breach: Mutex<Option<Breach>>,
    stop: AtomicBool,
}

impl Watchdog {
    /// Watches the worker `pid`, killing it through `killer`.
    pub(crate) fn start(pid: i32, killer: Killer, budget_ms: u64, max_threads: u64) -> Watchdog {
        let state = Arc::new(Watch {
            ceiling_ms: AtomicU64::new(budget_ms),
            base_ms: AtomicU64::new(0),
            seen_ms: AtomicU64::new(0),
            budget_ms,
            max_threads,
            breach: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let watch = Arc::clone(&state);
        std::thread::spawn(move || {
            while !watch.stop.load(Ordering::Relaxed) {
                std::thread::sleep(WATCH_EVERY);
                let Some((cpu_ms, threads)) = sandbox::usage(pid) else { return };
                watch.seen_ms.store(cpu_ms, Ordering::Relaxed);
                let breach = if cpu_ms > watch.ceiling_ms.load(Ordering::Relaxed) {
                    let used_ms = cpu_ms.saturating_sub(watch.base_ms.load(Ordering::Relaxed));
                    Some(Breach::CpuTime { used_ms, budget_ms: watch.budget_ms })
                } else if threads > watch.max_threads {
                    Some(Breach::Threads { threads, max: watch.max_threads })
                } else {
                    None
                };
                if let Some(breach) = breach {
                    if watch.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Ok(mut slot) = watch.breach.lock() {
                        *slot = Some(breach);
                    }
                    killer.kill();
                    return;
                }
            }
        });
        Watchdog { state }
    }

    /// Starts a call's budget: the worker may use `budget_ms` more than
    /// it had used at the watchdog's last look (at most one period ago, so
    /// the budget can only be stricter than stated, by what the worker
    /// burned since). This makes no system call, keeping the round trip
    /// as cheap as before the watchdog.
    pub(crate) fn arm(&self) {
        let used_ms = self.state.seen_ms.load(Ordering::Relaxed);
        self.state.base_ms.store(used_ms, Ordering::Relaxed);
        self.state.ceiling_ms.store(used_ms.saturating_add(self.state.budget_ms), Ordering::Relaxed);
    }

    /// Why the watchdog killed the worker, if it did.
    pub(crate) fn breach(&self) -> Option<Breach> {
        self.state.breach.lock().ok().and_then(|b| b.clone())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_line_budget_are_dropped_with_one_notice() {
        let meter = StderrMeter::new(1 << 20, 2);
        assert_eq!(meter.admit(10), Admit::Forward);
        assert_eq!(meter.admit(10), Admit::Forward);
        assert!(matches!(meter.admit(10), Admit::DropWithNotice(n) if n.contains("more than 2 stderr lines")));
        assert_eq!(meter.admit(10), Admit::Drop);
        assert_eq!(meter.dropped(), 2);
        assert_eq!(meter.breach(), None);
    }

    #[test]
    fn bytes_past_the_byte_budget_trip_the_meter() {
        let meter = StderrMeter::new(100, 1000);
        assert_eq!(meter.admit(60), Admit::Forward);
        assert!(matches!(meter.admit(60), Admit::DropWithNotice(n) if n.contains("exceeds 100 bytes")));
        assert_eq!(meter.admit(1), Admit::Drop);
        assert_eq!(meter.breach(), Some(Breach::StderrBytes { max: 100 }));
    }

    #[test]
    fn a_window_sums_within_a_minute() {
        let mut window = Window::default();
        assert_eq!(window.add(5), 5);
        assert_eq!(window.add(7), 12);
    }
}
