//! External runtimes with runc's command line: crun, runc, or a path.
//!
//! berth stays the main process and runs `RUNTIME --root R run --bundle
//! RENDERED [--preserve-fds=N] ID` as its child, on the same rendered bundle
//! the bundled runtime gets: the notify mount and `NOTIFY_SOCKET` are in the
//! spec (so the runtime's own notify handling never starts: berth removed
//! `NOTIFY_SOCKET` from its environment), the activation fds go through
//! `--preserve-fds` with `LISTEN_*` set in the spec (crun 1.8 would not set
//! `LISTEN_FDS` itself, runc insists on `LISTEN_PID`), and berth forwards
//! signals to the runtime, which passes them to the container's init.
//!
//! crun 1.8 on a hybrid cgroup host refuses to run while the cgroup2
//! hierarchy has controllers (`cgroups in hybrid mode not supported`); moving
//! them to v1 (`mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb`)
//! fixes it. See docs/runtime.md.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{prepare, ExecUser, Paths, Result, RunRequest, Runtime, RuntimeError};

/// An external runtime binary.
pub struct External {
    bin: PathBuf,
    root: PathBuf,
    paths: Paths,
    child: Option<Child>,
}

fn find(bin: &str) -> Option<PathBuf> {
    if bin.contains('/') {
        let p = PathBuf::from(bin);
        return p.is_file().then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

impl External {
    /// `bin` (a name on PATH or a path) with state under `paths`.
    pub fn new(bin: &str, paths: &Paths) -> Result<External> {
        let path = find(bin).ok_or_else(|| RuntimeError::NoRuntime(bin.to_string()))?;
        Ok(External {
            root: paths.external_root(bin),
            bin: path,
            paths: paths.clone(),
            child: None,
        })
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root);
        c
    }

    /// The runtime's path, as messages name it.
    pub fn name(&self) -> String {
        self.bin.display().to_string()
    }

    /// Where crun binds the notify socket of container `id` when it runs
    /// with a `NOTIFY_SOCKET` (its state directory's `notify/notify`).
    pub fn notify_socket_path(&self, id: &str) -> PathBuf {
        self.root.join(id).join("notify/notify")
    }

    /// True if the binary is crun (by its file name).
    pub fn is_crun(&self) -> bool {
        self.bin.file_name().is_some_and(|n| n == "crun")
    }

    /// `RUNTIME --root R run --bundle RENDERED [--pid-file P]
    /// [--preserve-fds=N] ID`, its state root created.
    pub fn run_command(&self, req: &RunRequest, pid_file: bool) -> Result<Command> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| RuntimeError::io("creating", &self.root, e))?;
        let mut cmd = self.command();
        cmd.arg("run").arg("--bundle").arg(&req.rendered);
        if pid_file {
            cmd.arg("--pid-file").arg(self.pid_file(&req.id));
        }
        if req.listen_fds > 0 {
            cmd.arg(format!("--preserve-fds={}", req.listen_fds));
        }
        cmd.arg(&req.id);
        Ok(cmd)
    }

    fn pid_file(&self, id: &str) -> PathBuf {
        self.paths.ctr(id).join("pid")
    }

    fn has_state(&self, id: &str) -> bool {
        self.root.join(id).exists()
    }

    /// Runs `args` to completion; an error carries the end of its stderr.
    fn run(&self, what: &str, args: &[&str]) -> Result<()> {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| RuntimeError::io("running", &self.bin, e))?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        Err(RuntimeError::External {
            runtime: self.name(),
            what: what.to_string(),
            detail: format!(
                "{}: {}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ),
        })
    }

    fn spawn(&mut self, mut cmd: Command) -> Result<Pid> {
        let child = cmd
            .spawn()
            .map_err(|e| RuntimeError::io("starting", &self.bin, e))?;
        let pid = Pid::from_raw(child.id() as i32);
        self.child = Some(child);
        Ok(pid)
    }
}

impl Runtime for External {
    fn remove_stale(&self, id: &str) -> Result<()> {
        if self.has_state(id) {
            tracing::info!(
                "{id}: removing the state a previous berth left in {}",
                self.root.display()
            );
            if let Err(e) = self.run("delete", &["delete", "--force", id]) {
                tracing::warn!("{id}: {e}");
            }
        }
        prepare::remove_ctr(&self.paths, id)
    }

    fn start(&mut self, req: &RunRequest) -> Result<Pid> {
        let cmd = self.run_command(req, true)?;
        self.spawn(cmd)
    }

    fn inherits_signal_mask(&self) -> bool {
        true
    }

    /// The container's init from `--pid-file`, so every signal reaches it
    /// the same way (runc, for one, keeps SIGWINCH for its terminal);
    /// nothing until the file is written (the signal waits: see
    /// [`super::supervise::Target`]).
    fn signal_target(&self, id: &str, _waited: Pid) -> Option<Pid> {
        std::fs::read_to_string(self.pid_file(id))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|p| *p > 0)
            .map(Pid::from_raw)
    }

    fn delete(&mut self, id: &str) -> Result<()> {
        // `run` deletes the container when it ends; only a runtime that died
        // on the way leaves state.
        self.child = None;
        if self.has_state(id) {
            self.run("delete", &["delete", "--force", id])?;
        }
        Ok(())
    }

    fn exec(
        &mut self,
        id: &str,
        args: &[String],
        env: &[(String, String)],
        user: Option<&ExecUser>,
    ) -> Result<Pid> {
        if !self.has_state(id) {
            return Err(RuntimeError::NotRunning {
                id: id.to_string(),
                path: self.root.join(id),
            });
        }
        let mut cmd = self.command();
        cmd.arg("exec");
        for (k, v) in env {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        if let Some(u) = user {
            cmd.arg("--user").arg(format!("{}:{}", u.uid, u.gid));
            for g in &u.additional_gids {
                cmd.arg("--additional-gids").arg(g.to_string());
            }
        }
        cmd.arg(id).args(args);
        self.spawn(cmd)
    }

    fn kill(&self, id: &str, signal: Signal) -> Result<()> {
        if !self.has_state(id) {
            return Err(RuntimeError::NotRunning {
                id: id.to_string(),
                path: self.root.join(id),
            });
        }
        let sig = (signal as i32).to_string();
        self.run("kill", &["kill", id, &sig])
    }

    fn as_external(&self) -> Option<&External> {
        Some(self)
    }
}

/// True if `bin` can be found (for tests and `--runtime` checks).
pub fn available(bin: &str) -> bool {
    find(bin).is_some()
}

/// The path `bin` resolves to.
pub fn resolve(bin: &str) -> Option<PathBuf> {
    find(bin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn missing_runtime_is_named() {
        let p = Paths::new(Path::new("/nonexistent"));
        match External::new("/nonexistent/crun", &p) {
            Err(RuntimeError::NoRuntime(n)) => assert_eq!(n, "/nonexistent/crun"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("found a missing runtime"),
        }
    }
}
