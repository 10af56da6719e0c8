//! `berth-run --exec-runtime`: berth-run prepares the container, then
//! becomes crun (`execve`, same pid) instead of staying as its supervisor.
//!
//! A supervising berth-run costs a second process on every start (its own
//! exit, the fork of crun, the wait: ~1.5 ms of CPU per start on a 2-core
//! VM, see BENCHMARKS.md "Start path"), and it stays resident while the
//! container runs. When it has nothing to supervise, crun does what is left
//! itself: `crun run` in the foreground forwards signals to the container's
//! init, exits with its code (128 + N for signal N, as berth does), sends
//! `READY=1` to systemd from its own pid (the unit's main pid, which is the
//! pid systemd started), and removes its state and cgroup when the container
//! ends. berth's part is done before the exec and is the same as in the
//! supervised path: the bundle is checked, `ctr/ID/` rendered (capabilities
//! clamped, the cgroup below the unit's, activation environment), the id
//! lock taken (its fd crosses the exec, so the lock stays held until crun
//! exits) and stale state removed. The unit's `ExecStopPost=` (`berth-run
//! --cleanup`) removes `ctr/ID/` afterwards, as it does after a kill -9.
//!
//! berth-run stays (the flag is then only a permission) when the container
//! needs what only it does: a health check, a `--pid-file` written once the
//! container has started, a watchdog (crun relays only `READY=1`, so
//! `WATCHDOG=1` pings would be lost and systemd would kill the unit), or a
//! runtime other than crun (runc reports the container's init as `MAINPID`,
//! which makes systemd lose the exit status; docs/runtime.md, "sd_notify
//! relay and MAINPID"), or a notify socket path crun cannot bind (crun
//! before 1.27, Debian 12's 1.8.1 among them, fails with "bind socket to
//! `/proc/self/fd/N`: Address already in use" when `ROOT/ID/notify/notify`
//! does not fit a `sockaddr_un`; the default root always fits, a long
//! `--root` may not).

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;

use super::activation::Listen;
use super::external::External;
use super::notify::NotifyEnv;
use super::{prepare, Paths, RuntimeError};

/// berth-run's flag that allows it to become the runtime.
pub const FLAG: &str = "--exec-runtime";

/// PURE: whether a unit's `ExecStart=` command line lets berth-run become
/// the runtime (then the unit must run the `--cleanup` after it).
pub fn in_command(exec_start: &str) -> bool {
    exec_start.split_whitespace().any(|a| a == FLAG)
}

/// Why berth-run stays as the supervisor although `--exec-runtime` allows
/// it to become the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stays {
    /// The runtime is not crun.
    #[error("the runtime is not crun")]
    NotCrun,
    /// `--pid-file` is written by berth-run once the container has started.
    #[error("--pid-file is written once the container has started")]
    PidFile,
    /// The bundle has a health check, which berth-run runs.
    #[error("the container has a health check")]
    HealthCheck,
    /// systemd set `WATCHDOG_USEC`; crun would not relay `WATCHDOG=1`.
    #[error("the unit has a watchdog (crun relays only READY=1)")]
    Watchdog,
    /// The path crun would bind its notify socket at is too long for it.
    #[error("crun's notify socket path is {0} bytes, longer than a unix socket address holds")]
    NotifyPath(usize),
}

/// Longest path a `sockaddr_un` holds (`sun_path` is 108 bytes with the NUL).
pub const SOCKET_PATH_MAX: usize = 107;

/// What [`plan`] looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs {
    /// The external runtime is crun.
    pub crun: bool,
    /// A `--pid-file` was given.
    pub pid_file: bool,
    /// The bundle has a `health.json`.
    pub health_check: bool,
    /// systemd passed a watchdog interval.
    pub watchdog: bool,
    /// The length of the path crun binds its notify socket at, when
    /// systemd passed a `NOTIFY_SOCKET` (crun binds none without it).
    pub notify_path: Option<usize>,
}

/// PURE: whether berth-run may become the runtime.
pub fn plan(i: Inputs) -> Result<(), Stays> {
    if !i.crun {
        Err(Stays::NotCrun)
    } else if i.pid_file {
        Err(Stays::PidFile)
    } else if i.health_check {
        Err(Stays::HealthCheck)
    } else if i.watchdog {
        Err(Stays::Watchdog)
    } else if let Some(n) = i.notify_path.filter(|&n| n > SOCKET_PATH_MAX) {
        Err(Stays::NotifyPath(n))
    } else {
        Ok(())
    }
}

/// True if `bundle` has a health check file (of any kind: a broken one is
/// the supervisor's to report).
pub fn has_health_check(bundle: &Path) -> bool {
    std::fs::symlink_metadata(super::health::Config::path(bundle)).is_ok()
}

/// Renders `ctr/ID/` for `bundle` and `execve`s `runtime run` on it with
/// systemd's `NOTIFY_SOCKET` (crun's own relay) and the lock fd `lock`
/// kept open. Returns only on failure, with `ctr/ID/` removed again.
pub fn exec(
    paths: &Paths,
    id: &str,
    bundle: prepare::Bundle,
    listen: &Listen,
    notify: &NotifyEnv,
    runtime: &External,
    lock: BorrowedFd<'_>,
) -> RuntimeError {
    // No relay: crun binds its own notify socket into the container.
    let quiet = NotifyEnv {
        socket: None,
        watchdog_usec: None,
    };
    let rendered = match prepare::render(paths, id, bundle, listen, &quiet, &runtime.name()) {
        Ok(r) => r,
        Err(e) => return undo(paths, id, e),
    };
    prepare::warn_dropped(id, &rendered.hardening);
    if let Err(e) = keep_open(lock) {
        return undo(
            paths,
            id,
            RuntimeError::io("keeping the lock open in", &paths.lock(id), e),
        );
    }
    let mut cmd = match runtime.run_command(&rendered.req, false) {
        Ok(c) => c,
        Err(e) => return undo(paths, id, e),
    };
    if let Some(sock) = &notify.socket {
        cmd.env("NOTIFY_SOCKET", sock);
    }
    tracing::debug!("{id}: berth-run becomes {}", runtime.name());
    let e = cmd.exec();
    undo(
        paths,
        id,
        RuntimeError::io("executing", Path::new(&runtime.name()), e),
    )
}

fn undo(paths: &Paths, id: &str, e: RuntimeError) -> RuntimeError {
    if let Err(r) = prepare::remove_ctr(paths, id) {
        tracing::warn!("{id}: {r}");
    }
    e
}

/// Clears close-on-exec on `fd`, so the runtime berth-run becomes holds it.
fn keep_open(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty()))
        .map(drop)
        .map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berth_run_becomes_crun_only_when_nothing_needs_it() {
        let crun = Inputs {
            crun: true,
            ..Inputs::default()
        };
        assert_eq!(plan(crun), Ok(()));
        assert_eq!(plan(Inputs::default()), Err(Stays::NotCrun));
        let cases = [
            (
                Inputs {
                    pid_file: true,
                    ..crun
                },
                Stays::PidFile,
            ),
            (
                Inputs {
                    health_check: true,
                    ..crun
                },
                Stays::HealthCheck,
            ),
            (
                Inputs {
                    watchdog: true,
                    ..crun
                },
                Stays::Watchdog,
            ),
            (
                Inputs {
                    notify_path: Some(SOCKET_PATH_MAX + 1),
                    ..crun
                },
                Stays::NotifyPath(SOCKET_PATH_MAX + 1),
            ),
        ];
        let fits = Inputs {
            notify_path: Some(SOCKET_PATH_MAX),
            ..crun
        };
        assert_eq!(plan(fits), Ok(()), "107 bytes and the NUL fit");
        for (i, want) in cases {
            assert_eq!(plan(i), Err(want), "{i:?}");
        }
    }

    #[test]
    fn a_health_check_of_any_kind_keeps_the_supervisor() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_health_check(dir.path()));
        std::os::unix::fs::symlink(
            "/nonexistent",
            super::super::health::Config::path(dir.path()),
        )
        .unwrap();
        assert!(has_health_check(dir.path()));
    }
}
