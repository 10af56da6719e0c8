//! berth-run's side of health checks: runs the [`Machine`]'s decisions.
//!
//! A check is a child process: `/proc/self/exe` in probe mode
//! ([`super::probe`]), which enters the container through the runtime's
//! exec with the payload's user. It runs in its own process group, with
//! stdout and stderr in `ctr/ID/health.out`, so the supervisor's poll loop
//! never blocks on it: the loop's timeout is [`Checker::poll_timeout`] and
//! each wake-up calls [`Checker::tick`]. After each check the [`State`] is
//! written atomically to `ctr/ID/health.json`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::poll::PollTimeout;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::machine::{Decision, Machine};
use super::{probe, Check, Config, State};
use crate::runtime::notify::Relay;
use crate::runtime::{Paths, RuntimeChoice};

/// berth-run's exit code when the health check stopped the container
/// (EX_UNAVAILABLE of sysexits.h; see docs/runtime.md).
pub const UNHEALTHY_EXIT: i32 = 69;
/// How much of a check's output the state keeps (its end).
pub const OUTPUT_LIMIT: usize = 4096;
/// Between SIGTERM and SIGKILL when an unhealthy container is stopped.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// The file that collects a running check's output, in `ctr/ID/`.
const OUTPUT_FILE: &str = "health.out";

/// One container's checks while berth-run supervises it.
#[derive(Debug)]
pub struct Checker {
    machine: Machine,
    args: Vec<String>,
    timeout: Duration,
    t0: Instant,
    ctr: PathBuf,
    state_path: PathBuf,
    child: Option<Child>,
    group: Option<Pid>,
    stopping: Option<Instant>,
    killed: bool,
    /// Set once the container is being stopped from outside: no check
    /// starts, and none that ends counts.
    quiet: bool,
}

impl Checker {
    /// The checker of container `id` started from `bundle`, if the bundle
    /// has a health check; writes the first state (`starting`). An
    /// unreadable `health.json` is logged and runs no checks.
    pub fn start(
        paths: &Paths,
        id: &str,
        runtime: &RuntimeChoice,
        bundle: &Path,
    ) -> Option<Checker> {
        let cfg: Config = match Config::read(bundle) {
            Ok(c) => c?,
            Err(e) => {
                tracing::warn!(
                    "{id}: {}: {e}; running without health checks",
                    Config::path(bundle).display()
                );
                return None;
            }
        };
        let mut args = probe::args(&paths.base, runtime, id);
        args.extend(cfg.command.argv());
        let c = Checker {
            machine: Machine::new(&cfg),
            args,
            timeout: cfg.timeout,
            t0: Instant::now(),
            ctr: paths.ctr(id),
            state_path: State::path(paths, id),
            child: None,
            group: None,
            stopping: None,
            killed: false,
            quiet: false,
        };
        c.save();
        Some(c)
    }

    /// True once the checks have declared the container unhealthy.
    pub fn unhealthy(&self) -> bool {
        self.stopping.is_some()
    }

    /// The container is being stopped from outside (a terminating signal
    /// was forwarded to it): a running check is killed, no other starts,
    /// and the state stands as it was. A check racing a payload that is
    /// shutting down would fail, and failures would turn the payload's own
    /// exit into [`UNHEALTHY_EXIT`].
    pub fn stop_checking(&mut self) {
        if self.quiet {
            return;
        }
        self.quiet = true;
        self.end();
    }

    /// How long the supervisor's `poll` may sleep.
    pub fn poll_timeout(&self) -> PollTimeout {
        let age = self.t0.elapsed();
        let stop = self
            .stopping
            .filter(|_| !self.killed)
            .map(|s| (s + STOP_GRACE).saturating_duration_since(Instant::now()));
        let next = self
            .machine
            .deadline()
            .filter(|_| !self.quiet)
            .map(|d| d.saturating_sub(age));
        let wait = match (stop, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Rounded up, so a wake-up is never a millisecond early and spins.
        wait.map_or(PollTimeout::NONE, |w| {
            let ms = w.as_millis().saturating_add(1).min(i32::MAX as u128);
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        })
    }

    /// Does what is due: reaps a finished check, starts or kills one, and
    /// returns a signal for the container when the checks stop it (SIGTERM,
    /// then SIGKILL after [`STOP_GRACE`]). `running` tells whether the
    /// container's init still runs: a check that failed after it ended
    /// does not count (the container is going, and its own exit stands).
    pub fn tick(&mut self, relay: Option<&Relay>, running: &dyn Fn() -> bool) -> Option<Signal> {
        if let Some(sig) = self.reap(relay, running) {
            return Some(sig);
        }
        if let Some(since) = self.stopping {
            if !self.killed && since.elapsed() >= STOP_GRACE {
                self.killed = true;
                return Some(Signal::SIGKILL);
            }
            return None;
        }
        if self.quiet {
            return None;
        }
        match self.machine.poll(self.t0.elapsed()) {
            Decision::Wait => None,
            Decision::Run => self.spawn(relay),
            Decision::Kill => {
                self.kill_check();
                None
            }
        }
    }

    /// Kills a check still running (the container has ended).
    pub fn end(&mut self) {
        self.kill_check();
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        self.group = None;
    }

    /// Starts a check; one that cannot start counts as failed (and may
    /// stop the container, as [`Checker::tick`] reports).
    fn spawn(&mut self, relay: Option<&Relay>) -> Option<Signal> {
        use std::os::unix::process::CommandExt;
        let out = self.ctr.join(OUTPUT_FILE);
        let spawned = std::fs::File::create(&out)
            .and_then(|f| Ok((f.try_clone()?, f)))
            .and_then(|(o, e)| {
                Command::new(probe::EXE)
                    .args(&self.args)
                    .stdin(Stdio::null())
                    .stdout(o)
                    .stderr(e)
                    .process_group(0)
                    .spawn()
            });
        match spawned {
            Ok(c) => {
                self.group = Some(Pid::from_raw(c.id() as i32));
                self.child = Some(c);
                None
            }
            Err(e) => {
                let check = Check {
                    at: epoch(),
                    exit: None,
                    output: format!("starting the check: {e}"),
                };
                self.finish(check, relay)
            }
        }
    }

    /// Kills the check's process group (the probe and whatever it left).
    fn kill_check(&mut self) {
        if let Some(pgid) = self.group {
            match killpg(pgid, Signal::SIGKILL) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => tracing::warn!("killing the health check {pgid}: {e}"),
            }
        }
    }

    fn reap(&mut self, relay: Option<&Relay>, running: &dyn Fn() -> bool) -> Option<Signal> {
        let status = match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(s))) => s,
            Some(Ok(None)) | None => return None,
            Some(Err(e)) => {
                tracing::warn!("waiting for the health check: {e}");
                return None;
            }
        };
        self.child = None;
        // Whatever the check left in its process group goes with it.
        self.kill_check();
        self.group = None;
        let mut output = tail(&self.ctr.join(OUTPUT_FILE));
        let exit = if self.machine.timed_out() {
            output = format!(
                "timed out after {}; {output}",
                humantime::format_duration(self.timeout)
            );
            None
        } else {
            status.code()
        };
        if exit != Some(0) && !running() {
            tracing::debug!(
                "{}: the container ended; its last check does not count",
                self.ctr.display()
            );
            self.quiet = true;
            return None;
        }
        let check = Check {
            at: epoch(),
            exit,
            output,
        };
        self.finish(check, relay)
    }

    fn finish(&mut self, check: Check, relay: Option<&Relay>) -> Option<Signal> {
        let out = self.machine.finished(self.t0.elapsed(), check);
        self.save();
        if out.first_pass {
            if let Some(r) = relay {
                r.release_ready();
            }
        }
        if out.stop {
            let last = self.machine.state().last.as_ref();
            tracing::error!(
                "health check failed {} times (last: exit {}, {:?}); stopping the container",
                self.machine.state().failing_streak,
                last.and_then(|c| c.exit)
                    .map_or("none".to_string(), |c| c.to_string()),
                last.map(|c| c.output.trim()).unwrap_or_default(),
            );
            self.stopping = Some(Instant::now());
            return Some(Signal::SIGTERM);
        }
        None
    }

    /// Writes the state atomically (temp file, rename).
    fn save(&self) {
        let tmp = self.state_path.with_extension("json.tmp");
        let written = serde_json::to_vec(self.machine.state())
            .map_err(std::io::Error::from)
            .and_then(|bytes| {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&bytes)?;
                std::fs::rename(&tmp, &self.state_path)
            });
        if let Err(e) = written {
            tracing::warn!("writing {}: {e}", self.state_path.display());
        }
    }
}

/// The last [`OUTPUT_LIMIT`] bytes of `path`, as text.
fn tail(path: &Path) -> String {
    let mut buf = Vec::new();
    let read = std::fs::File::open(path).and_then(|mut f| {
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(OUTPUT_LIMIT as u64)))?;
        f.read_to_end(&mut buf)
    });
    match read {
        Ok(_) => String::from_utf8_lossy(&buf).into_owned(),
        Err(e) => format!("(output unreadable: {e})"),
    }
}

fn epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
