//! The OCI runtime boundary: `berth run`, `exec` and `kill`.
//!
//! berth is the unit's main process: it prepares the bundle, has a runtime
//! create and start the container, relays sd_notify, forwards signals, waits,
//! and exits with the container's status. Two runtimes sit side by side
//! behind [`Runtime`]: [`bundled`] (youki's libcontainer, in process) and
//! [`external`] (crun, runc or any binary with their CLI). What both need is
//! done here, once: [`prepare`] renders the spec, [`supervise`] runs the
//! wait loop, [`notify`] relays, [`activation`] hands over systemd's sockets,
//! [`cgroup`] places the container below berth's own cgroup.
//!
//! On-disk state, under `/run/berth/runtime` (or `ROOT/run/berth/runtime`
//! with `--root ROOT`, `$XDG_RUNTIME_DIR/berth/runtime` with `--user`; see
//! [`crate::layout`]): all of it is tmpfs and disappears at reboot.
//!
//! ```text
//! /run/berth/runtime/
//! ├── locks/ID               flock held by the berth that runs ID (never removed)
//! ├── ctr/ID/                berth's side of one running container
//! │   ├── runtime            which runtime started it: bundled | crun | runc | PATH
//! │   ├── bundle/config.json the rendered spec (root.path absolute)
//! │   └── notify/notify.sock the relay socket, bind-mounted at /run/notify
//! ├── state/ID/              libcontainer's state (state.json, youki_config.json)
//! └── crun/  runc/  ext/     --root of an external runtime
//! ```
//!
//! A berth killed with SIGKILL leaves `ctr/ID` and `state/ID` behind; the
//! next `berth run` of that ID finds the lock free, removes both (killing
//! anything still in the old container) and starts afresh.

// The runtime works on its own state (/run/berth, $XDG_RUNTIME_DIR) and on
// bundles berth made, not on the --root tree: plain std::fs is right here.
#![allow(clippy::disallowed_methods)]

pub mod activation;
pub mod bundled;
pub mod cgroup;
pub mod defaults;
pub mod direct;
pub mod external;
pub mod foreground;
pub mod handoff;
pub mod health;
pub mod legacy;
pub mod notify;
pub mod pid_file;
pub mod preflight;
pub mod prepare;
pub mod spec;
pub mod supervise;

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::Signal;

use crate::error::ErrorKind;
pub use spec::SpecError;

/// Errors of `berth run`, `exec` and `kill`.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The bundle directory, its config.json or its rootfs is missing.
    #[error("bundle {bundle}: {what} {path} does not exist")]
    BundleMissing {
        /// The bundle directory.
        bundle: PathBuf,
        /// What is missing ("config.json", "rootfs", "directory").
        what: &'static str,
        /// The missing path.
        path: PathBuf,
    },
    /// config.json is invalid or asks for something berth cannot do.
    #[error("bundle {path}: {source}")]
    BadSpec {
        /// The config.json.
        path: PathBuf,
        /// What is wrong, naming the field.
        #[source]
        source: SpecError,
    },
    /// A container ID berth refuses.
    #[error("invalid container ID {id:?}: use 1-64 characters of A-Z a-z 0-9 _ . - starting with a letter or digit")]
    BadId {
        /// The ID given.
        id: String,
    },
    /// No installed container of that name.
    #[error("no container {name}: {path} does not exist (install it first, or give --bundle DIR)")]
    NoContainer {
        /// The name.
        name: String,
        /// Where its bundle would be.
        path: PathBuf,
    },
    /// exec/kill of a container that is not running.
    #[error("container {id} is not running (no state in {path})")]
    NotRunning {
        /// The container ID.
        id: String,
        /// The state directory looked at.
        path: PathBuf,
    },
    /// Another berth runs a container with this ID.
    #[error("container {id} is already running under another berth (lock {lock} is held)")]
    Busy {
        /// The container ID.
        id: String,
        /// The lock file.
        lock: PathBuf,
    },
    /// An unknown signal name or number.
    #[error("unknown signal {0:?}: use a name (TERM, SIGHUP) or a number")]
    BadSignal(String),
    /// The external runtime binary is not there.
    #[error("runtime {0:?} not found on PATH; install it or use --runtime bundled")]
    NoRuntime(String),
    /// The external runtime failed.
    #[error("{runtime} {what} failed: {detail}")]
    External {
        /// The binary.
        runtime: String,
        /// The verb (`delete`, `kill`, …).
        what: String,
        /// Exit status and the end of its stderr.
        detail: String,
    },
    /// libcontainer refused or failed.
    #[error("container {id}: {what}: {source}")]
    Libcontainer {
        /// The container ID.
        id: String,
        /// The step (`create`, `start`, `delete`, …).
        what: &'static str,
        /// libcontainer's error.
        #[source]
        source: Box<libcontainer::error::LibcontainerError>,
    },
    /// A system call or file operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What berth was doing.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A rootless container whose cgroup berth may not create.
    #[error(
        "a rootless container's cgroup goes below {}, which you may not write to; \
         run it from a user unit with Delegate=yes on a cgroup v2 host (systemd \
         delegates no cgroup to users on hybrid or v1 hosts)",
        path.display()
    )]
    CgroupNotDelegated {
        /// The cgroup directory.
        path: PathBuf,
    },
    /// `--user` without the directories it needs.
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
    /// A system call without a path failed.
    #[error("{what}: {source}")]
    Sys {
        /// What berth was doing.
        what: &'static str,
        /// The errno.
        #[source]
        source: nix::Error,
    },
}

impl RuntimeError {
    /// The exit-code kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::BundleMissing { .. }
            | RuntimeError::BadSpec { .. }
            | RuntimeError::BadId { .. }
            | RuntimeError::BadSignal(_)
            | RuntimeError::Layout(_) => ErrorKind::Usage,
            RuntimeError::Libcontainer { source, .. } if is_spec_error(source) => ErrorKind::Usage,
            RuntimeError::NoContainer { .. } | RuntimeError::NotRunning { .. } => {
                ErrorKind::NotFound
            }
            RuntimeError::Busy { .. } => ErrorKind::Conflict,
            _ => ErrorKind::Failed,
        }
    }

    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> RuntimeError {
        RuntimeError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn sys(what: &'static str, source: nix::Error) -> RuntimeError {
        RuntimeError::Sys { what, source }
    }
}

fn is_spec_error(e: &libcontainer::error::LibcontainerError) -> bool {
    use libcontainer::error::LibcontainerError as L;
    matches!(e, L::InvalidSpec(_) | L::MissingSpec(_) | L::InvalidID(_))
}

/// Result with [`RuntimeError`].
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Which runtime creates containers (`--runtime`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RuntimeChoice {
    /// libcontainer, inside berth (the default).
    #[default]
    Bundled,
    /// An external binary with runc's command line: `crun`, `runc` or a path.
    External(String),
}

impl RuntimeChoice {
    /// Parses `--runtime`: `bundled`, `crun`, `runc` or a path.
    pub fn parse(s: &str) -> RuntimeChoice {
        match s {
            "bundled" | "" => RuntimeChoice::Bundled,
            other => RuntimeChoice::External(other.to_string()),
        }
    }

    /// The name recorded in the state directory.
    pub fn name(&self) -> &str {
        match self {
            RuntimeChoice::Bundled => "bundled",
            RuntimeChoice::External(s) => s,
        }
    }
}

/// Checks a container ID: 1-64 of `[A-Za-z0-9_.-]`, starting alphanumeric.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::BadId { id: id.into() })
    }
}

/// Parses a signal name (`TERM`, `SIGTERM`) or number.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let bad = || RuntimeError::BadSignal(s.to_string());
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>().map_err(|_| bad())
}

/// The runtime state paths for one `--root`.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `/run/berth/runtime` or `ROOT/run/berth/runtime`.
    pub base: PathBuf,
}

impl Paths {
    /// The paths for `--root ROOT` (made absolute: external runtimes change
    /// directory before they write their files).
    pub fn new(root: &Path) -> Paths {
        Paths {
            base: crate::layout::Layout::system(root)
                .runtime_dir()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        }
    }

    /// The paths of a layout (`--user`: below `$XDG_RUNTIME_DIR`, which
    /// must be set).
    pub fn for_layout(layout: &crate::layout::Layout) -> Result<Paths> {
        Ok(Paths {
            base: layout.runtime_dir()?.to_path_buf(),
        })
    }

    /// libcontainer's root.
    pub fn libcontainer_root(&self) -> PathBuf {
        self.base.join("state")
    }

    /// berth's own directory for `id`.
    pub fn ctr(&self, id: &str) -> PathBuf {
        self.base.join("ctr").join(id)
    }

    /// The lock file for `id`.
    pub fn lock(&self, id: &str) -> PathBuf {
        self.base.join("locks").join(id)
    }

    /// `--root` for an external runtime.
    pub fn external_root(&self, runtime: &str) -> PathBuf {
        let name = Path::new(runtime)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ext".into());
        match name.as_str() {
            "crun" | "runc" => self.base.join(name),
            _ => self.base.join("ext"),
        }
    }

    /// The runtime recorded for a running `id`, if any.
    pub fn recorded_runtime(&self, id: &str) -> Option<RuntimeChoice> {
        std::fs::read_to_string(self.ctr(id).join("runtime"))
            .ok()
            .map(|s| RuntimeChoice::parse(s.trim()))
    }
}

/// The exclusive right to run container `id`; released when berth exits,
/// however it exits.
#[derive(Debug)]
pub struct IdLock {
    _lock: Flock<File>,
}

impl IdLock {
    /// The lock file's fd (kept open across berth-run's hand-off, so the
    /// lock stays held).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self._lock.as_fd()
    }

    /// Takes the lock without waiting; [`RuntimeError::Busy`] if held.
    pub fn take(paths: &Paths, id: &str) -> Result<IdLock> {
        let path = paths.lock(id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io("creating", dir, e))?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| RuntimeError::io("opening", &path, e))?;
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(IdLock { _lock: l }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(RuntimeError::Busy {
                id: id.to_string(),
                lock: path,
            }),
            Err((_, e)) => Err(RuntimeError::io("locking", &path, e.into())),
        }
    }
}

/// How the container ended, as berth's exit code shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl Exit {
    /// The exit code berth returns: the code, or 128+N for signal N.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Everything a runtime needs to run one container in the foreground.
#[derive(Debug)]
pub struct RunRequest {
    /// The container ID.
    pub id: String,
    /// The bundle as given (config.json + rootfs).
    pub bundle: PathBuf,
    /// The rendered bundle berth wrote (`ctr/ID/bundle`).
    pub rendered: PathBuf,
    /// Socket-activation fds at 3.. to hand over.
    pub listen_fds: u32,
}

/// Who a process started in a running container runs as (the payload's
/// `process.user`, for health checks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecUser {
    /// The uid.
    pub uid: u32,
    /// The gid.
    pub gid: u32,
    /// Supplementary gids.
    pub additional_gids: Vec<u32>,
}

/// A runtime: creates and starts a container whose main process berth then
/// waits for, removes its state afterwards, and enters or signals it.
pub trait Runtime {
    /// Removes whatever a dead berth left for `id` (killing leftovers).
    fn remove_stale(&self, id: &str) -> Result<()>;
    /// Creates and starts the container; returns the pid berth waits for and
    /// forwards signals to (berth's child).
    fn start(&mut self, req: &RunRequest) -> Result<nix::unistd::Pid>;
    /// True if the process [`Runtime::start`] spawns would keep berth's
    /// blocked signals (an exec'd binary does; the bundled executor resets them).
    fn inherits_signal_mask(&self) -> bool {
        false
    }
    /// Where forwarded signals go while berth waits for `waited`: the
    /// container's init; `None` while it is not known yet (signals are held
    /// until it is).
    fn signal_target(&self, _id: &str, waited: nix::unistd::Pid) -> Option<nix::unistd::Pid> {
        Some(waited)
    }
    /// After the waited process ended: removes the container's state.
    fn delete(&mut self, id: &str) -> Result<()>;
    /// Starts `args` inside running container `id` (as `user`, or root);
    /// returns the pid to wait for.
    fn exec(
        &mut self,
        id: &str,
        args: &[String],
        env: &[(String, String)],
        user: Option<&ExecUser>,
    ) -> Result<nix::unistd::Pid>;
    /// Sends `signal` to the init of running container `id`.
    fn kill(&self, id: &str, signal: Signal) -> Result<()>;

    /// The external runtime this is, if it is one (for
    /// [`direct`]: berth-run becoming it).
    fn as_external(&self) -> Option<&external::External> {
        None
    }
}

/// The runtime for a choice.
pub fn open(choice: &RuntimeChoice, paths: &Paths) -> Result<Box<dyn Runtime>> {
    Ok(match choice {
        RuntimeChoice::Bundled => Box::new(bundled::Bundled::new(paths)),
        RuntimeChoice::External(bin) => Box::new(external::External::new(bin, paths)?),
    })
}

/// `ExecStart=` for an installed container: `berth [--runtime R] run NAME`.
pub fn exec_start_argv(berth: &Path, name: &str, runtime: &RuntimeChoice) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec![berth.into()];
    if *runtime != RuntimeChoice::Bundled {
        v.push("--runtime".into());
        v.push(runtime.name().into());
    }
    v.push("run".into());
    v.push(name.into());
    v
}

/// `ExecStop=` for an installed container: `berth kill NAME TERM` (the
/// default stop is systemd's own SIGTERM to berth, which forwards it; this is
/// for templates that want an explicit stop command).
pub fn exec_stop_argv(berth: &Path, name: &str, signal: &str) -> Vec<OsString> {
    vec![berth.into(), "kill".into(), name.into(), signal.into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "etcd", "web-1.2_x", &"a".repeat(64)] {
            check_id(ok).unwrap();
        }
        for bad in ["", "-a", ".", "..", "a/b", "a b", &"a".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sighup").unwrap(), Signal::SIGHUP);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }

    #[test]
    fn exit_codes_mirror_the_container() {
        assert_eq!(Exit::Code(7).code(), 7);
        assert_eq!(Exit::Signal(15).code(), 143);
    }

    #[test]
    fn exec_start() {
        let a = exec_start_argv(Path::new("/usr/bin/berth"), "etcd", &RuntimeChoice::Bundled);
        assert_eq!(a, ["/usr/bin/berth", "run", "etcd"].map(OsString::from));
        let a = exec_start_argv(
            Path::new("/usr/bin/berth"),
            "etcd",
            &RuntimeChoice::parse("crun"),
        );
        assert_eq!(
            a,
            ["/usr/bin/berth", "--runtime", "crun", "run", "etcd"].map(OsString::from)
        );
    }

    #[test]
    fn state_paths() {
        let p = Paths::new(Path::new("/"));
        assert_eq!(p.ctr("x"), PathBuf::from("/run/berth/runtime/ctr/x"));
        assert_eq!(
            p.external_root("/usr/bin/crun"),
            PathBuf::from("/run/berth/runtime/crun")
        );
        let p = Paths::new(Path::new("/tmp/r"));
        assert_eq!(
            p.libcontainer_root(),
            PathBuf::from("/tmp/r/run/berth/runtime/state")
        );
    }
}
