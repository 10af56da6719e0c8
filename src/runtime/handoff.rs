//! berth-run's hand-off: once its container has run a while, berth-run
//! re-executes itself into a lean supervisor.
//!
//! Creating a container touches most of berth-run's text and data (the
//! bundle checks, the spec parser, libcontainer, libcgroups, pathrs), and the
//! kernel keeps those pages mapped for as long as the process lives: 7 MiB
//! resident for a process that then only polls two fds. `execve` drops them
//! and keeps what the supervisor needs: the pid (the unit's MAINPID, so
//! systemd and the pid file still name it), its children (the container's
//! init stays berth-run's child), the blocked signal mask and the signals
//! pending in it, and every fd not marked close-on-exec. So berth-run clears
//! close-on-exec on the id lock and on the notify relay's socket, and passes
//! their numbers with the rest of what [`Handoff`] holds as arguments after
//! [`MARKER`]; the new image ([`resume`]) recreates its signalfd, polls as
//! before and cleans up as the first image would have.
//!
//! A container that ends before the hand-off (a `/bin/true`, a failing
//! start) never pays for it; a failed `execve` leaves berth-run supervising
//! as it was, with a warning.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::unistd::Pid;

use super::notify::Relay;
use super::supervise::{self, Signals};
use super::{open, prepare, Exit, Paths, Result, RuntimeChoice, RuntimeError};

/// The first argument that makes berth-run resume a hand-off instead of
/// parsing a command line.
pub const MARKER: &str = "--supervise-handoff";

/// How long a container runs before berth-run hands off: long enough that a
/// short-lived container (a one-shot unit, a benchmark's `/bin/true`) never
/// pays for the second `execve`, short enough that a service settles at its
/// small footprint right after it has started.
pub const AFTER: Duration = Duration::from_millis(500);

/// The notify relay as it crosses the `execve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayFd {
    /// The relay socket's fd number.
    pub fd: RawFd,
    /// systemd's `NOTIFY_SOCKET`.
    pub upstream: OsString,
    /// The directory holding the socket.
    pub dir: PathBuf,
}

/// Everything the supervisor needs after the `execve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// The runtime state directory ([`Paths::base`]).
    pub base: PathBuf,
    /// The container ID.
    pub id: String,
    /// The runtime that created it.
    pub runtime: RuntimeChoice,
    /// The child berth-run waits for (the init, or the external runtime).
    pub pid: i32,
    /// The held id lock's fd number.
    pub lock_fd: RawFd,
    /// `--pid-file`, removed at the end.
    pub pid_file: Option<PathBuf>,
    /// The container's cgroup (`cgroupsPath`), removed at the end if the
    /// runtime's delete left it (its state wiped under the container).
    pub cgroup: PathBuf,
    /// The notify relay, when there is one.
    pub relay: Option<RelayFd>,
    /// The log level berth-run was started with.
    pub log: tracing::Level,
}

/// Why the arguments after [`MARKER`] are refused (only berth-run writes
/// them, so this means a mismatched binary or a hand-typed command line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    /// An argument berth-run does not write.
    #[error("unknown hand-off argument {0:?}; {MARKER} is berth-run's own, not for use by hand")]
    Unknown(String),
    /// An argument without its value, or a value that does not parse.
    #[error("hand-off argument {name} has no valid value ({value:?})")]
    BadValue {
        /// The argument.
        name: String,
        /// What followed it.
        value: String,
    },
    /// A required argument is missing.
    #[error("hand-off argument {0} is missing")]
    Missing(&'static str),
}

impl Handoff {
    /// PURE: the arguments after [`MARKER`] that [`Handoff::parse`] reads back.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut put = |k: &str, v: OsString| {
            a.push(k.into());
            a.push(v);
        };
        put("--base", self.base.clone().into());
        put("--id", self.id.clone().into());
        put("--runtime", self.runtime.name().into());
        put("--pid", self.pid.to_string().into());
        put("--lock-fd", self.lock_fd.to_string().into());
        put("--log", self.log.to_string().into());
        put("--cgroup", self.cgroup.clone().into());
        if let Some(p) = &self.pid_file {
            put("--pid-file", p.clone().into());
        }
        if let Some(r) = &self.relay {
            put("--relay-fd", r.fd.to_string().into());
            put("--notify-socket", r.upstream.clone());
            put("--relay-dir", r.dir.clone().into());
        }
        a
    }

    /// PURE: reads the arguments [`Handoff::to_args`] wrote.
    pub fn parse(args: &[OsString]) -> std::result::Result<Handoff, HandoffError> {
        let mut get = std::collections::HashMap::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let k = k.to_string_lossy().into_owned();
            if !KEYS.contains(&k.as_str()) {
                return Err(HandoffError::Unknown(k));
            }
            let v = it.next().ok_or_else(|| HandoffError::BadValue {
                name: k.clone(),
                value: String::new(),
            })?;
            get.insert(k, v.clone());
        }
        let need = |k: &'static str| get.get(k).cloned().ok_or(HandoffError::Missing(k));
        let num = |k: &'static str| -> std::result::Result<i32, HandoffError> {
            let v = need(k)?;
            v.to_str()
                .and_then(|s| s.parse::<i32>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| HandoffError::BadValue {
                    name: k.into(),
                    value: v.to_string_lossy().into_owned(),
                })
        };
        let relay = match get.get("--relay-fd") {
            None => None,
            Some(_) => Some(RelayFd {
                fd: num("--relay-fd")?,
                upstream: need("--notify-socket")?,
                dir: need("--relay-dir")?.into(),
            }),
        };
        let log = need("--log")?;
        Ok(Handoff {
            base: need("--base")?.into(),
            id: need("--id")?.to_string_lossy().into_owned(),
            runtime: RuntimeChoice::parse(&need("--runtime")?.to_string_lossy()),
            pid: num("--pid")?,
            lock_fd: num("--lock-fd")?,
            pid_file: get.get("--pid-file").map(PathBuf::from),
            cgroup: need("--cgroup")?.into(),
            relay,
            log: log.to_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                HandoffError::BadValue {
                    name: "--log".into(),
                    value: log.to_string_lossy().into_owned(),
                }
            })?,
        })
    }

    /// Re-executes berth-run with these arguments; returns only on failure
    /// (the caller keeps supervising). `keep` are the fds that must cross.
    pub fn exec(&self, keep: &[BorrowedFd<'_>]) -> RuntimeError {
        for fd in keep {
            if let Err(e) = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty())) {
                return RuntimeError::sys("keeping an fd open across the hand-off", e);
            }
        }
        let mut argv = vec![CString::from(c"berth-run"), c(MARKER.as_ref())];
        argv.extend(self.to_args().iter().map(|a| c(a)));
        // nix's execv leaves the signal mask alone (std's Command::exec
        // would clear it, and a SIGTERM arriving in between would kill us).
        let Err(e) = nix::unistd::execv(c"/proc/self/exe", &argv);
        // Still the first image: later children must not inherit these.
        for fd in keep {
            let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
        }
        RuntimeError::sys("re-executing berth-run for the hand-off", e)
    }
}

const KEYS: &[&str] = &[
    "--base",
    "--id",
    "--runtime",
    "--pid",
    "--lock-fd",
    "--log",
    "--cgroup",
    "--pid-file",
    "--relay-fd",
    "--notify-socket",
    "--relay-dir",
];

/// An argument as a C string; berth's own arguments hold no NUL (paths and
/// socket names cannot), so one would be cut there.
fn c(s: &OsStr) -> CString {
    let bytes: Vec<u8> = s
        .as_bytes()
        .iter()
        .copied()
        .take_while(|b| *b != 0)
        .collect();
    CString::new(bytes).unwrap_or_default()
}

/// Takes ownership of an fd the first image passed by number.
#[allow(unsafe_code)]
fn adopt(fd: RawFd) -> Result<OwnedFd> {
    // Check that the number is open before claiming it.
    fcntl(fd, FcntlArg::F_GETFD).map_err(|e| RuntimeError::sys("the handed-off relay fd", e))?;
    // SAFETY: the fd is open (checked above) and was made by the previous
    // image of this process, which passed its number for this one purpose;
    // nothing else in this image owns or closes it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// The second image: supervises the handed-off container to its end and
/// cleans up as [`super::foreground::run`] would have; returns how it ended.
pub fn resume(h: &Handoff) -> Result<Exit> {
    // Executed as /proc/self/exe, this image is named `exe`: give it back
    // the name `ps -C`, `pgrep -x` and `top` know it by.
    if let Err(e) = nix::sys::prctl::set_name(c"berth-run") {
        tracing::debug!("naming the process berth-run: {e}");
    }
    let paths = Paths {
        base: h.base.clone(),
    };
    let signals = Signals::block()?;
    let relay = match &h.relay {
        Some(r) => {
            let sock = UnixDatagram::from(adopt(r.fd)?);
            let _ = fcntl(
                sock.as_fd().as_raw_fd(),
                FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC),
            );
            Some(
                Relay::adopt(sock, r.dir.clone(), &r.upstream)
                    .map_err(|e| RuntimeError::io("adopting the notify socket in", &r.dir, e))?,
            )
        }
        None => None,
    };
    let _ = fcntl(h.lock_fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    let pid = Pid::from_raw(h.pid);
    let rt = open(&h.runtime, &paths);
    let r = match &rt {
        Ok(rt) => supervise::wait(
            pid,
            &|| rt.signal_target(&h.id, pid),
            &signals,
            relay.as_ref(),
            &[],
            None,
        ),
        Err(_) => supervise::wait(pid, &|| Some(pid), &signals, relay.as_ref(), &[], None),
    };
    let unlinked = h
        .pid_file
        .as_deref()
        .map_or(Ok(()), super::pid_file::remove_pid_file);
    let deleted = rt.and_then(|mut rt| rt.delete(&h.id));
    if deleted.is_ok() {
        super::cgroup::remove_leftover_of(&h.id, &h.cgroup);
    }
    let removed = prepare::remove_ctr(&paths, &h.id);
    signals.unblock();
    let exit = r?;
    deleted?;
    removed?;
    unlinked?;
    Ok(exit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn sample() -> Handoff {
        Handoff {
            base: "/run/berth/runtime".into(),
            id: "etcd".into(),
            runtime: RuntimeChoice::Bundled,
            pid: 4242,
            lock_fd: 5,
            pid_file: Some("/run/container-etcd.pid".into()),
            cgroup: "/system.slice/etcd.service/berth-etcd".into(),
            relay: Some(RelayFd {
                fd: 7,
                upstream: "@/org/freedesktop/systemd1/notify/123".into(),
                dir: "/run/berth/runtime/ctr/etcd/notify".into(),
            }),
            log: tracing::Level::INFO,
        }
    }

    #[test]
    fn arguments_round_trip() {
        let h = sample();
        assert_eq!(Handoff::parse(&h.to_args()), Ok(h.clone()));
        let bare = Handoff {
            runtime: RuntimeChoice::External("/usr/bin/crun".into()),
            pid_file: None,
            relay: None,
            ..h
        };
        assert_eq!(Handoff::parse(&bare.to_args()), Ok(bare));
    }

    #[test]
    fn bad_arguments_are_named() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let mut a = sample().to_args();
        a.push("--bogus".into());
        a.push("1".into());
        assert_eq!(
            Handoff::parse(&a),
            Err(HandoffError::Unknown("--bogus".into()))
        );
        assert_eq!(
            Handoff::parse(&args(&["--id", "x"])),
            Err(HandoffError::Missing("--log"))
        );
        let mut a = sample().to_args();
        let at = a.iter().position(|x| x == "--pid").unwrap_or(0) + 1;
        a[at] = "-3".into();
        assert!(matches!(
            Handoff::parse(&a),
            Err(HandoffError::BadValue { name, .. }) if name == "--pid"
        ));
        assert!(matches!(
            Handoff::parse(&args(&["--id"])),
            Err(HandoffError::BadValue { .. })
        ));
    }

    #[test]
    fn c_strings_stop_at_a_nul() {
        assert_eq!(c(OsStr::new("a\0b")).as_bytes(), b"a");
        let raw = OsString::from_vec(b"/x/\xff".to_vec());
        assert_eq!(c(&raw).as_bytes(), b"/x/\xff");
    }
}
