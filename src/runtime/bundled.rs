//! The bundled runtime: youki's libcontainer inside berth's own process.
//!
//! create → start → (berth waits) → delete, with `with_systemd(false)` (the
//! cgroup path is a child of berth's own, see [`super::cgroup`]) and
//! `with_detach(false)`. The container's init is cloned with CLONE_PARENT, so
//! it is berth's child and berth waits for it directly.
//!
//! libcontainer leaves two things to its caller, and [`BerthExecutor`]
//! does them inside the init (and inside every `exec`'d process), just before
//! the workload runs:
//! - `PR_SET_PDEATHSIG(SIGKILL)`: when berth dies, even by SIGKILL, the kernel
//!   kills the init (and with it the container's pid namespace). It is set
//!   once before the init waits for `start` and again right before `execve`
//!   (after the last credential change, which would clear it).
//! - a clean signal state: berth's blocked signals are unblocked and SIGPIPE,
//!   which Rust programs ignore, is back to its default.

use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::error::LibcontainerError;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use super::{prepare, ExecUser, Paths, Result, RunRequest, Runtime, RuntimeError};

/// How often a state.json caught mid-write is read again (5 ms apart).
const STATE_READ_RETRIES: u32 = 20;

/// The executor of every process berth starts in a container.
#[derive(Clone, Debug, Default)]
pub struct BerthExecutor;

fn die_with_parent() -> nix::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
}

#[allow(unsafe_code)]
fn reset_signals() -> nix::Result<()> {
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    )?;
    // SAFETY: SIG_DFL installs no handler, so no Rust code can run in signal
    // context; this process is single-threaded here (a freshly cloned
    // container process about to execve) and nothing else touches SIGPIPE's
    // disposition concurrently.
    unsafe {
        nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl)?;
    }
    Ok(())
}

impl Executor for BerthExecutor {
    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        die_with_parent().map_err(|e| {
            ExecutorValidationError::ArgValidationError(format!("PR_SET_PDEATHSIG: {e}"))
        })?;
        DefaultExecutor {}.validate(spec)
    }

    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        die_with_parent().map_err(|e| ExecutorError::Other(format!("PR_SET_PDEATHSIG: {e}")))?;
        reset_signals().map_err(|e| ExecutorError::Other(format!("resetting signals: {e}")))?;
        DefaultExecutor {}.exec(spec)
    }
}

/// libcontainer in process.
pub struct Bundled {
    paths: Paths,
    container: Option<Container>,
}

impl Bundled {
    /// The bundled runtime with state under `paths`.
    pub fn new(paths: &Paths) -> Bundled {
        Bundled {
            paths: paths.clone(),
            container: None,
        }
    }

    fn state_dir(&self, id: &str) -> PathBuf {
        self.paths.libcontainer_root().join(id)
    }

    fn load(&self, id: &str) -> Result<Container> {
        let dir = self.state_dir(id);
        if !dir.join("state.json").exists() {
            return Err(RuntimeError::NotRunning {
                id: id.to_string(),
                path: dir,
            });
        }
        // libcontainer rewrites state.json in place (truncate, then write)
        // while the container starts and after every signal, so a reader
        // racing a write finds it empty or cut short: read it again.
        let mut tries = 0;
        loop {
            match Container::load(dir.clone()) {
                Ok(c) => return Ok(c),
                Err(_) if tries < STATE_READ_RETRIES && dir.join("state.json").exists() => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => return Err(lc(id, "loading state", e)),
            }
        }
    }

    fn builder(&self, id: &str, preserved: u32) -> Result<ContainerBuilder> {
        warm_procfs_handle();
        let root = self.paths.libcontainer_root();
        ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_executor(BerthExecutor)
            .with_root_path(root)
            .and_then(|b| b.with_preserved_fds(preserved as i32).validate_id())
            .map_err(|e| lc(id, "preparing", e))
    }
}

/// Creates pathrs' cached procfs handle in this process, before libcontainer
/// clones. libcgroups and libcontainer open `/proc/self/mountinfo` and
/// friends through it, and pathrs makes it once per process (a private
/// `subset=pid` procfs: `fsopen`, three `fsconfig`, `fsmount` and a check)
/// when first asked: made here, the intermediate process and the init
/// inherit it, and delete reuses it, instead of each mounting its own.
/// A failure is left for libcontainer to report where it needs procfs.
fn warm_procfs_handle() {
    if let Err(e) = pathrs::procfs::ProcfsHandle::new() {
        tracing::debug!("no cached procfs handle: {e}");
    }
}

/// Removes a container's state directory if it is still there, trying a few
/// times: a concurrent `berth kill` may be writing state.json into it.
fn remove_state_dir(dir: &Path) -> std::io::Result<()> {
    let mut last = Ok(());
    for _ in 0..3 {
        last = match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Ok(()) => return Ok(()),
            Err(e) => Err(e),
        };
        std::thread::yield_now();
    }
    last
}

fn lc(id: &str, what: &'static str, e: LibcontainerError) -> RuntimeError {
    RuntimeError::Libcontainer {
        id: id.to_string(),
        what,
        source: Box::new(e),
    }
}

impl Runtime for Bundled {
    fn remove_stale(&self, id: &str) -> Result<()> {
        let dir = self.state_dir(id);
        if dir.exists() {
            tracing::info!(
                "{id}: removing the state a previous berth left in {}",
                dir.display()
            );
            match Container::load(dir.clone()) {
                Ok(mut c) => {
                    if let Err(e) = c.delete(true) {
                        tracing::warn!("{id}: deleting the stale container: {e}");
                    }
                }
                Err(e) => tracing::warn!("{id}: stale state unreadable ({e}); removing it"),
            }
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| RuntimeError::io("removing", &dir, e))?;
            }
        }
        prepare::remove_ctr(&self.paths, id)
    }

    fn start(&mut self, req: &RunRequest) -> Result<Pid> {
        let id = req.id.as_str();
        let mut c = self
            .builder(id, req.listen_fds)?
            .as_init(&req.rendered)
            .with_systemd(false)
            .with_detach(false)
            .build()
            .map_err(|e| lc(id, "create", e))?;
        let started = c.start().map_err(|e| lc(id, "start", e));
        let pid = c.pid();
        self.container = Some(c);
        started?;
        pid.ok_or_else(|| RuntimeError::NotRunning {
            id: id.to_string(),
            path: self.state_dir(id),
        })
    }

    fn delete(&mut self, id: &str) -> Result<()> {
        // Without the container built here (berth-run's hand-off: the
        // image that created it is gone), its state says what to delete.
        let r = match self.container.take() {
            Some(mut c) => c.delete(true),
            None => match self.load(id) {
                Ok(mut c) => c.delete(true),
                Err(_) => Ok(()),
            },
        };
        let dir = self.state_dir(id);
        let leftover = remove_state_dir(&dir);
        match r {
            // libcontainer's kill saves the state again after signalling, so
            // a `berth kill` beside this berth can write state.json while the
            // last step of delete empties the directory: that removal fails
            // with ENOTEMPTY although the container and its cgroup are gone.
            // The directory removed on a later try is a deleted container.
            Err(LibcontainerError::OtherIO(e))
                if e.raw_os_error() == Some(nix::libc::ENOTEMPTY) && leftover.is_ok() =>
            {
                Ok(())
            }
            r => r.map_err(|e| lc(id, "delete", e)),
        }
    }

    fn exec(
        &mut self,
        id: &str,
        args: &[String],
        env: &[(String, String)],
        user: Option<&ExecUser>,
    ) -> Result<Pid> {
        self.load(id)?;
        let mut b = self
            .builder(id, 0)?
            .as_tenant()
            .with_container_args(args.to_vec())
            .with_env(env.iter().cloned().collect())
            .with_detach(false);
        if let Some(u) = user {
            b = b
                .with_user(Some(u.uid))
                .with_group(Some(u.gid))
                .with_additional_gids(u.additional_gids.clone());
        }
        b.build().map_err(|e| lc(id, "exec", e))
    }

    fn kill(&self, id: &str, signal: Signal) -> Result<()> {
        let mut c = self.load(id)?;
        // libcontainer signals, then saves the state again; a container
        // that exits on the signal may have had its state removed by its
        // supervisor in between. Gone after the signal is a delivered signal.
        match c.kill(signal, false) {
            Err(_) if !self.state_dir(id).join("state.json").exists() => Ok(()),
            r => r.map_err(|e| lc(id, "kill", e)),
        }
    }
}
