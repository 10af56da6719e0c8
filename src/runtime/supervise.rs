//! berth's wait loop: forward signals, relay notifications, reap the child.
//!
//! [`Signals::block`] runs first, before any child exists: the forwarded
//! signals and SIGCHLD are blocked and read from a signalfd, so a signal that
//! arrives while the container is being created waits instead of killing
//! berth. Children must not inherit that mask: `std::process::Command`
//! resets it, and the bundled runtime's executor unblocks before `execve`.
//! One thread, no handlers: `poll` on the signalfd and the relay socket.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::health::checker::Checker;
use super::notify::Relay;
use super::{Exit, Result, RuntimeError};

/// Signals berth passes on to the container's init.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Forwarded signals that ask the container to stop (systemd's KillSignal
/// and the usual alternatives): once one arrives, health checks stop.
const STOPPING: &[Signal] = &[Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT];

/// Whether `pid` runs: it exists and is not a zombie (from
/// `/proc/PID/stat`, whose state follows the last `)`).
fn running(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| !matches!(state, "Z" | "X" | "x"))
    })
}

/// The blocked signals, read through a signalfd.
#[derive(Debug)]
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// The set berth blocks: [`FORWARDED`] plus SIGCHLD.
    pub fn set() -> SigSet {
        let mut s = SigSet::empty();
        for sig in FORWARDED {
            s.add(*sig);
        }
        s.add(Signal::SIGCHLD);
        s
    }

    /// Blocks the set in this thread (call before spawning anything).
    pub fn block() -> Result<Signals> {
        let set = Signals::set();
        set.thread_block()
            .map_err(|e| RuntimeError::sys("blocking signals", e))?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| RuntimeError::sys("creating a signalfd", e))?;
        Ok(Signals { fd })
    }

    /// The signalfd the blocked signals are read from (`berth run-once`
    /// polls it while its `berth run` child runs).
    pub fn fd(&self) -> &SignalFd {
        &self.fd
    }

    /// Unblocks the set again (after the child has been waited for).
    pub fn unblock(self) {
        let _ = Signals::set().thread_unblock();
    }

    /// Reads the signals waiting on the signalfd (SIGCHLD left out).
    pub fn take_pending(&self) -> Vec<Signal> {
        let mut out = Vec::new();
        while let Ok(Some(info)) = self.fd.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) | Err(_) => {}
                Ok(s) => out.push(s),
            }
        }
        out
    }

    /// Runs `f` with the set unblocked, for spawning a program that would
    /// otherwise inherit the mask (a Go runtime such as runc passes its
    /// starting mask on to the container). Signals already waiting are taken
    /// first and returned, for the caller to forward; one arriving while `f`
    /// runs (a spawn: well under a millisecond) gets its default action.
    pub fn with_unblocked<T>(&self, f: impl FnOnce() -> T) -> (T, Vec<Signal>) {
        let pending = self.take_pending();
        let set = Signals::set();
        let _ = set.thread_unblock();
        let r = f();
        let _ = set.thread_block();
        (r, pending)
    }
}

/// How often berth looks for the container's init while it holds a signal
/// that arrived before the runtime named it.
const HOLD_POLL: Duration = Duration::from_millis(5);

/// How long a signal is held at most: a runtime that has not named the init
/// by then (stuck creating the container) gets the signal itself.
const HOLD_MAX: Duration = Duration::from_secs(2);

/// Where a signal goes: `None` while the container's init is not known yet
/// (an external runtime that has not written its pid file). A signal then
/// is held, not sent to the runtime: crun killed by it before it forwards
/// anything would leave the exit to chance, and a forwarded SIGTERM to a
/// namespace init without a handler is dropped by the kernel, where berth
/// would have sent SIGKILL (see `forward`). After `HOLD_MAX` (2 s) the
/// runtime itself gets it.
pub type Target<'a> = &'a dyn Fn() -> Option<Pid>;

fn reap(pid: Pid) -> Result<Option<Exit>> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Some(Exit::Code(code))),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Some(Exit::Signal(sig as i32))),
            Ok(_) => return Ok(None),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(RuntimeError::sys("waiting for the container", e)),
        }
    }
}

/// Waits for `pid` (berth's child) to end, forwarding [`FORWARDED`] signals
/// to `target()`, relaying notifications and running `health`'s checks
/// (which may stop the container); returns how it ended.
pub fn wait(
    pid: Pid,
    target: Target<'_>,
    signals: &Signals,
    relay: Option<&Relay>,
    pending: &[Signal],
    mut health: Option<&mut Checker>,
) -> Result<Exit> {
    let mut pending = pending;
    loop {
        let waited = wait_until(
            pid,
            target,
            signals,
            relay,
            pending,
            None,
            health.as_deref_mut(),
        )?;
        if let Waited::Exited(exit) = waited {
            return Ok(exit);
        }
        pending = &[];
    }
}

/// How [`wait_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The child ended.
    Exited(Exit),
    /// The deadline passed first (the child runs on).
    Deadline,
}

/// [`wait`], returning at `deadline` if the child still runs then.
pub fn wait_until(
    pid: Pid,
    target: Target<'_>,
    signals: &Signals,
    relay: Option<&Relay>,
    pending: &[Signal],
    deadline: Option<Instant>,
    mut health: Option<&mut Checker>,
) -> Result<Waited> {
    let mut held = Held::new(pending);
    loop {
        held.deliver(pid, target);
        if let Some(exit) = reap(pid)? {
            if let Some(r) = relay {
                r.pump();
            }
            return Ok(Waited::Exited(exit));
        }
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => {
                    PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
                }
                // A held signal is delivered before the deadline counts
                // (polled every HOLD_POLL, below).
                _ if !held.signals.is_empty() => PollTimeout::NONE,
                _ => return Ok(Waited::Deadline),
            },
        };
        let timeout = if held.signals.is_empty() {
            timeout
        } else {
            let hold = PollTimeout::try_from(HOLD_POLL).unwrap_or(PollTimeout::MAX);
            if timeout == PollTimeout::NONE || hold < timeout {
                hold
            } else {
                timeout
            }
        };
        let mut fds = vec![PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN)];
        if let Some(r) = relay {
            fds.push(PollFd::new(r.fd(), PollFlags::POLLIN));
        }
        // The earlier of the deadline and the health checker's next step.
        let timeout = match health.as_ref().map(|h| h.poll_timeout()) {
            Some(h) if h != PollTimeout::NONE && (timeout == PollTimeout::NONE || h < timeout) => h,
            _ => timeout,
        };
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(RuntimeError::sys("polling", e)),
        }
        let relay_ready = fds
            .get(1)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty());
        if relay_ready {
            if let Some(r) = relay {
                r.pump();
            }
        }
        while let Ok(Some(info)) = signals.fd.read_signal() {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            if sig == Signal::SIGCHLD {
                continue;
            }
            if STOPPING.contains(&sig) {
                if let Some(h) = health.as_deref_mut() {
                    h.stop_checking();
                }
            }
            held.push(sig);
        }
        let init_runs = || target().is_none_or(running);
        if let Some(sig) = health
            .as_deref_mut()
            .and_then(|h| h.tick(relay, &init_runs))
        {
            held.push(sig);
        }
        held.deliver(pid, target);
    }
}

/// Signals read but not yet forwarded, and since when.
struct Held {
    signals: Vec<Signal>,
    since: Option<Instant>,
}

impl Held {
    fn new(pending: &[Signal]) -> Held {
        Held {
            signals: pending.to_vec(),
            since: (!pending.is_empty()).then(Instant::now),
        }
    }

    fn push(&mut self, sig: Signal) {
        self.signals.push(sig);
        self.since.get_or_insert_with(Instant::now);
    }

    /// Forwards what is held to the container's init once it is known, or
    /// to `runtime` (berth's child) once [`HOLD_MAX`] has passed.
    fn deliver(&mut self, runtime: Pid, target: Target<'_>) {
        if self.signals.is_empty() {
            return;
        }
        let to = target().or_else(|| {
            self.since
                .is_some_and(|t| t.elapsed() >= HOLD_MAX)
                .then_some(runtime)
        });
        if let Some(to) = to {
            for sig in self.signals.drain(..) {
                forward(to, sig);
            }
            self.since = None;
        }
    }
}

fn forward(target: Pid, sig: Signal) {
    // The kernel drops a signal sent to a PID-namespace init that neither
    // handles nor ignores it, so `systemctl stop` of e.g. busybox httpd would
    // wait out TimeoutStopSec. Such a signal would have ended any other
    // process: deliver SIGKILL instead, as its default action would.
    let status = std::fs::read_to_string(format!("/proc/{target}/status")).unwrap_or_default();
    let sig = if default_kill_dropped(&status, sig) {
        tracing::info!("{target} is a namespace init without a {sig} handler; sending SIGKILL");
        Signal::SIGKILL
    } else {
        sig
    };
    tracing::debug!("forwarding {sig} to {target}");
    match kill(target, sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!("forwarding {sig} to {target}: {e}"),
    }
}

/// PURE: whether `sig` sent to the process whose `/proc/PID/status` is
/// `status` would be dropped although its default action ends a process:
/// the process is PID 1 of its namespace and neither catches nor ignores it.
fn default_kill_dropped(status: &str, sig: Signal) -> bool {
    if !matches!(
        sig,
        Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP | Signal::SIGQUIT
    ) {
        return false;
    }
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let is_ns_init = field("NSpid:")
        .and_then(|v| v.split_whitespace().last())
        .is_some_and(|inner| inner == "1");
    let mask = |name: &str| field(name).and_then(|v| u64::from_str_radix(v, 16).ok());
    let bit = 1u64 << (sig as i32 - 1);
    match (mask("SigCgt:"), mask("SigIgn:")) {
        (Some(cgt), Some(ign)) => is_ns_init && cgt & bit == 0 && ign & bit == 0,
        _ => false,
    }
}

#[cfg(test)]
mod default_kill_tests {
    use super::*;

    fn status(nspid: &str, cgt: &str, ign: &str) -> String {
        format!("Name:\thttpd\nNSpid:\t{nspid}\nSigIgn:\t{ign}\nSigCgt:\t{cgt}\n")
    }

    #[test]
    fn escalates_only_for_unhandled_terminating_signals_of_a_namespace_init() {
        let bare = status("4242\t1", "0000000000000000", "0000000000000000");
        assert!(default_kill_dropped(&bare, Signal::SIGTERM));
        assert!(default_kill_dropped(&bare, Signal::SIGINT));
        assert!(!default_kill_dropped(&bare, Signal::SIGUSR1));
        assert!(!default_kill_dropped(&bare, Signal::SIGWINCH));
        // SIGTERM (15) caught: bit 14.
        let handles = status("4242\t1", "0000000000004000", "0000000000000000");
        assert!(!default_kill_dropped(&handles, Signal::SIGTERM));
        let ignores = status("4242\t1", "0000000000000000", "0000000000004000");
        assert!(!default_kill_dropped(&ignores, Signal::SIGTERM));
        // Not an init of its namespace: the kernel applies the default action itself.
        let child = status("4243\t7", "0000000000000000", "0000000000000000");
        assert!(!default_kill_dropped(&child, Signal::SIGTERM));
        assert!(!default_kill_dropped("", Signal::SIGTERM));
    }
}
