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
use super::handoff::{self, Handoff, RelayFd};
use super::health::checker::{Checker, UNHEALTHY_EXIT};
use super::notify::NotifyEnv;
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
}

/// Why a `--pid-file` path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PidFileError {
    /// Not starting with `/`.
    #[error("{path:?} is not an absolute path")]
    NotAbsolute {
        /// The path given.
        path: String,
    },
    /// A `.`, `..` or empty component, or nothing after the last `/`.
    #[error("{path:?} is not a normalised file path (no ., .., // or trailing /)")]
    NotNormal {
        /// The path given.
        path: String,
    },
    /// A character a unit's command line or a reader would split or expand.
    #[error(
        "{path:?} contains {character:?}; use a path without spaces, quotes, \\, $, % or control characters"
    )]
    BadCharacter {
        /// The path given.
        path: String,
        /// The first offending character.
        character: char,
    },
}

/// PURE: checks a pid file path: absolute, normalised, and one word of
/// plain characters, so that it names exactly the file the operator wrote
/// and survives a unit's `ExecStart=` line unchanged.
pub fn check_pid_file(path: &str) -> std::result::Result<(), PidFileError> {
    let owned = || path.to_string();
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PidFileError::NotAbsolute { path: owned() });
    };
    if let Some(character) = path.chars().find(|c| {
        c.is_control()
            || c.is_whitespace()
            || matches!(c, '"' | '\'' | '\\' | '$' | '%' | '`' | ';')
    }) {
        return Err(PidFileError::BadCharacter {
            path: owned(),
            character,
        });
    }
    if rest
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(PidFileError::NotNormal { path: owned() });
    }
    Ok(())
}

/// Writes `pid` to `path` atomically: a temporary file beside it, renamed
/// over it, so a reader sees the old content or the whole new one and a
/// symlink at `path` is replaced, not followed.
fn write_pid_file(path: &Path, pid: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{pid}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(|e| RuntimeError::io("creating the pid file", &tmp, e))?;
    let written = f
        .write_all(format!("{pid}\n").as_bytes())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(RuntimeError::io("writing the pid file", path, e));
    }
    Ok(())
}

/// Removes the pid file if it is there.
pub(crate) fn remove_pid_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("removing the pid file", path, e)),
    }
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
    let signals = Signals::block()?;
    let mut cgroup = None;
    let r = (|| {
        let rendered = prepare::render(&paths, &o.id, bundle, &listen, &notify, o.runtime.name())?;
        cgroup = Some(rendered.cgroup.clone());
        if !rendered.hardening.dropped_capabilities.is_empty() {
            tracing::warn!(
                "{}: dropping capabilities outside berth's bounding set: {}",
                o.id,
                rendered.hardening.dropped_capabilities.join(", ")
            );
        }
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
    if deleted.is_ok() {
        for (dir, e) in cgroup
            .as_deref()
            .map(cgroup::remove_leftover)
            .unwrap_or_default()
        {
            tracing::warn!("{}: removing its cgroup {}: {e}", o.id, dir.display());
        }
    }
    let removed = prepare::remove_ctr(&paths, &o.id);
    signals.unblock();
    let exit = r?;
    deleted?;
    removed?;
    unlinked?;
    Ok(exit)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_paths_must_be_absolute_normal_plain() {
        for ok in ["/run/container-etcd.pid", "/run/user/1000/x.pid", "/a"] {
            assert_eq!(check_pid_file(ok), Ok(()), "{ok}");
        }
        for bad in ["run/x.pid", "", "x", "./x"] {
            assert!(
                matches!(check_pid_file(bad), Err(PidFileError::NotAbsolute { .. })),
                "{bad}"
            );
        }
        for bad in ["/", "/run/", "/run//x", "/run/./x", "/run/../etc/x", "/.."] {
            assert!(
                matches!(check_pid_file(bad), Err(PidFileError::NotNormal { .. })),
                "{bad}"
            );
        }
        for (bad, c) in [
            ("/run/a b", ' '),
            ("/run/a\nb", '\n'),
            ("/run/$X", '$'),
            ("/run/%n.pid", '%'),
            ("/run/\"x", '"'),
            ("/run/a\\b", '\\'),
        ] {
            assert_eq!(
                check_pid_file(bad),
                Err(PidFileError::BadCharacter {
                    path: bad.into(),
                    character: c
                }),
                "{bad}"
            );
        }
    }

    #[test]
    fn pid_file_is_replaced_atomically_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pid");
        std::os::unix::fs::symlink("/nonexistent/target", &p).unwrap();
        write_pid_file(&p, 42).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "42\n");
        assert!(!std::fs::symlink_metadata(&p).unwrap().is_symlink());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        remove_pid_file(&p).unwrap();
        remove_pid_file(&p).unwrap();
        assert!(!p.exists());
    }
}
