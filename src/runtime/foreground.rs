//! The verbs as library calls: run a container in the foreground, exec
//! into one, signal one, clean up after one.
//!
//! With `--pid-file P`, `berth run` writes its **own** pid to P once the
//! container has started and removes P when it ends. atomic's runc wrote the
//! container init's pid there, but berth-run is the unit's main process and
//! forwards signals to the init, so `kill -HUP $(cat P)` reaches the
//! container the same way, and systemd reading `PIDFile=` sees the MAINPID
//! berth reports anyway (docs/runtime.md, "sd_notify relay and MAINPID").

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use super::activation::{self, Listen};
use super::cgroup;
use super::direct;
use super::handoff::{self, Handoff, RelayFd};
use super::health::checker::{Checker, UNHEALTHY_EXIT};
use super::notify::NotifyEnv;
pub use super::pid_file::{check_pid_file, PidFileError};
use super::pid_file::{remove_pid_file, write_pid_file};
use super::supervise::{self, Signals, Waited};
use super::{
    check_id, open, prepare, ExecUser, Exit, IdLock, Paths, Result, Runtime, RuntimeChoice,
    RuntimeError,
};
use crate::layout::Layout;

/// Where `berth run NAME` finds an installed container's bundle.
pub fn installed_bundle(layout: &Layout, name: &str) -> Result<PathBuf> {
    check_id(name)?;
    let path = layout.containers().join(name);
    if path.is_dir() {
        Ok(path)
    } else {
        Err(RuntimeError::NoContainer {
            name: name.to_string(),
            path,
        })
    }
}

/// One `berth run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `--root` or `--user`.
    pub layout: Layout,
    /// The container ID.
    pub id: String,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// Which runtime creates the container.
    pub runtime: RuntimeChoice,
    /// Where to write berth's pid while the container runs (checked with
    /// [`check_pid_file`] by the caller).
    pub pid_file: Option<PathBuf>,
    /// Re-execute into the lean supervisor once the container has run
    /// [`handoff::AFTER`] (berth-run, whose [`handoff::MARKER`] mode resumes
    /// it; `berth` itself has no such mode).
    pub hand_off: bool,
    /// May become the runtime once the container is prepared, when there
    /// is nothing to supervise (`berth-run --exec-runtime`; see
    /// [`super::direct`]). The caller must remove `ctr/ID/` afterwards
    /// (`--cleanup`).
    pub exec_runtime: bool,
}

/// Removes what a dead berth left for `id` (held lock required): the state of
/// the runtime it recorded, if another, then that of `rt`, the runtime
/// `runtime` opened.
fn remove_stale(paths: &Paths, runtime: &RuntimeChoice, rt: &dyn Runtime, id: &str) -> Result<()> {
    if let Some(prev) = paths.recorded_runtime(id).filter(|p| p != runtime) {
        match open(&prev, paths) {
            Ok(old) => old.remove_stale(id)?,
            Err(e) => tracing::warn!("{id}: stale state of runtime {}: {e}", prev.name()),
        }
    }
    rt.remove_stale(id)
}

/// What [`cleanup`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// No berth ran the container: its stale state (if any) is gone.
    Removed,
    /// A berth holds the container's lock: nothing was touched.
    Running,
}

/// `berth run --cleanup` (a unit's `ExecStopPost=`): if no berth runs `id`,
/// removes the runtime state and the pid file a killed berth left; while
/// one runs, does nothing.
pub fn cleanup(
    layout: &Layout,
    runtime: &RuntimeChoice,
    id: &str,
    pid_file: Option<&Path>,
) -> Result<Cleanup> {
    check_id(id)?;
    let paths = Paths::for_layout(layout)?;
    let _lock = match IdLock::take(&paths, id) {
        Ok(l) => l,
        Err(RuntimeError::Busy { .. }) => return Ok(Cleanup::Running),
        Err(e) => return Err(e),
    };
    remove_stale(&paths, runtime, open(runtime, &paths)?.as_ref(), id)?;
    if let Some(p) = pid_file {
        remove_pid_file(p)?;
    }
    Ok(Cleanup::Removed)
}

/// Runs a container in the foreground and returns how it ended. Call it
/// before berth starts any thread: it edits the process environment.
pub fn run(o: &RunOptions) -> Result<Exit> {
    check_id(&o.id)?;
    let listen = Listen::take();
    let notify = NotifyEnv::take();
    let bundle = prepare::load(&o.bundle)?;
    let paths = Paths::for_layout(&o.layout)?;
    let mut rt = open(&o.runtime, &paths)?;
    let lock = IdLock::take(&paths, &o.id)?;
    remove_stale(&paths, &o.runtime, rt.as_ref(), &o.id)?;
    activation::cloexec_from(listen.fds).map_err(|e| {
        RuntimeError::io(
            "marking fds close-on-exec in",
            Path::new("/proc/self/fd"),
            e,
        )
    })?;
    if let Some(ext) = runtime_to_become(o, rt.as_ref(), &notify) {
        let e = direct::exec(&paths, &o.id, bundle, &listen, &notify, ext, lock.fd());
        return Err(e);
    }
    let signals = Signals::block()?;
    let mut cgroup = None;
    let r = (|| {
        let rendered = prepare::render(&paths, &o.id, bundle, &listen, &notify, o.runtime.name())?;
        cgroup = Some(rendered.cgroup.clone());
        prepare::warn_dropped(&o.id, &rendered.hardening);
        let (pid, pending) = if rt.inherits_signal_mask() {
            signals.with_unblocked(|| rt.start(&rendered.req))
        } else {
            (rt.start(&rendered.req), Vec::new())
        };
        let pid = pid?;
        if let Some(p) = &o.pid_file {
            write_pid_file(p, std::process::id())?;
        }
        let mut health = Checker::start(&paths, &o.id, &o.runtime, &o.bundle);
        if let (Some(_), Some(relay)) = (&health, &rendered.relay) {
            relay.hold_ready();
        }
        let target = || rt.signal_target(&o.id, pid);
        let relay = rendered.relay.as_ref();
        // A container with a health check stays supervised by this image:
        // the checker's schedule, a running check and a held READY=1 do not
        // cross the exec of the hand-off.
        if !o.hand_off || health.is_some() {
            let exit = supervise::wait(pid, &target, &signals, relay, &pending, health.as_mut());
            return match health.as_mut() {
                Some(h) => {
                    h.end();
                    exit.map(|e| {
                        if h.unhealthy() {
                            Exit::Code(UNHEALTHY_EXIT)
                        } else {
                            e
                        }
                    })
                }
                None => exit,
            };
        }
        let deadline = std::time::Instant::now() + handoff::AFTER;
        match supervise::wait_until(
            pid,
            &target,
            &signals,
            relay,
            &pending,
            Some(deadline),
            None,
        )? {
            Waited::Exited(exit) => return Ok(exit),
            Waited::Deadline => {}
        }
        let h = Handoff {
            base: paths.base.clone(),
            id: o.id.clone(),
            runtime: o.runtime.clone(),
            pid: pid.as_raw(),
            lock_fd: lock.fd().as_raw_fd(),
            pid_file: o.pid_file.clone(),
            cgroup: rendered.cgroup.clone(),
            relay: relay.zip(notify.socket.as_ref()).map(|(r, up)| RelayFd {
                fd: r.fd().as_raw_fd(),
                upstream: up.clone(),
                dir: r.dir().to_path_buf(),
            }),
            log: tracing::level_filters::LevelFilter::current()
                .into_level()
                .unwrap_or(tracing::Level::ERROR),
        };
        let mut keep = vec![lock.fd()];
        keep.extend(relay.map(|r| r.fd()));
        let e = h.exec(&keep);
        tracing::warn!("{}: supervising without the hand-off: {e}", o.id);
        supervise::wait(pid, &target, &signals, relay, &[], None)
    })();
    let unlinked = o.pid_file.as_deref().map_or(Ok(()), remove_pid_file);
    let deleted = rt.delete(&o.id);
    if let (Ok(()), Some(c)) = (&deleted, &cgroup) {
        cgroup::remove_leftover_of(&o.id, c);
    }
    let removed = prepare::remove_ctr(&paths, &o.id);
    signals.unblock();
    let exit = r?;
    deleted?;
    removed?;
    unlinked?;
    Ok(exit)
}

/// The external runtime berth-run becomes (`--exec-runtime`), when
/// [`direct::plan`] allows it; `None` keeps berth-run as the supervisor.
fn runtime_to_become<'a>(
    o: &RunOptions,
    rt: &'a dyn Runtime,
    notify: &NotifyEnv,
) -> Option<&'a super::external::External> {
    let ext = rt.as_external().filter(|_| o.exec_runtime)?;
    let inputs = direct::Inputs {
        crun: ext.is_crun(),
        pid_file: o.pid_file.is_some(),
        health_check: direct::has_health_check(&o.bundle),
        watchdog: notify.watchdog_usec.is_some(),
        notify_path: notify
            .socket
            .as_ref()
            .map(|_| ext.notify_socket_path(&o.id).as_os_str().len()),
    };
    match direct::plan(inputs) {
        Ok(()) => Some(ext),
        Err(why) => {
            tracing::debug!("{}: berth-run stays as the supervisor: {why}", o.id);
            None
        }
    }
}

/// Runs `args` inside running container `id`; returns how it ended.
pub fn exec(layout: &Layout, runtime: &RuntimeChoice, id: &str, args: &[String]) -> Result<Exit> {
    check_id(id)?;
    let paths = Paths::for_layout(layout)?;
    exec_in(&paths, runtime, id, args, None)
}

/// Runs `args` inside running container `id` (state under `paths`, as
/// `user` or root), forwarding signals to it; returns how it ended.
pub fn exec_in(
    paths: &Paths,
    runtime: &RuntimeChoice,
    id: &str,
    args: &[String],
    user: Option<&ExecUser>,
) -> Result<Exit> {
    check_id(id)?;
    let choice = paths
        .recorded_runtime(id)
        .unwrap_or_else(|| runtime.clone());
    let mut rt = open(&choice, paths)?;
    let signals = Signals::block()?;
    let (started, pending) = if rt.inherits_signal_mask() {
        signals.with_unblocked(|| rt.exec(id, args, &[], user))
    } else {
        (rt.exec(id, args, &[], user), Vec::new())
    };
    let r =
        started.and_then(|pid| supervise::wait(pid, &|| Some(pid), &signals, None, &pending, None));
    signals.unblock();
    r
}

/// Sends `signal` to the init of running container `id`.
pub fn kill(layout: &Layout, runtime: &RuntimeChoice, id: &str, signal: Signal) -> Result<()> {
    check_id(id)?;
    let paths = Paths::for_layout(layout)?;
    let choice = paths
        .recorded_runtime(id)
        .unwrap_or_else(|| runtime.clone());
    open(&choice, &paths)?.kill(id, signal)
}
