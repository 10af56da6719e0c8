//! The variables of an install: berth's forced values (the commands the
//! units run, the deployment directory, the image), the host defaults of the
//! scope, and the previous deployment's values, resolved by
//! [`crate::template::resolve`]. docs/variables.md lists every variable
//! beside the value atomic gave it.

use std::path::{Path, PathBuf};

use super::exports::Exports;
use super::plan::PlanRequest;
use super::{io_err, DeployError};
use crate::layout::Layout;
use crate::runtime::foreground::check_pid_file;
use crate::runtime::RuntimeChoice;
use crate::store::image::ImageRecord;
use crate::template::values::{capabilities_value, image_id, wants_pid_file, Forced};
use crate::template::{resolve, HostDefaults, Sources, Values};

/// systemd's `PATH` for services: where a unit finds `crun` or `runc`.
const SERVICE_PATH: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The executables a unit's commands run, as paths inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commands {
    /// The berth executable (`ATOMIC`).
    pub berth: String,
    /// `berth-run` beside it, if the root has one.
    pub lean: Option<String>,
    /// `" --user"` or `""`.
    pub scope: &'static str,
    /// The external runtime's path (`--runtime`), `None` for the bundled one.
    pub external: Option<String>,
}

impl Commands {
    /// `RUNTIME`: the executable that runs the containers.
    pub fn runtime(&self) -> &str {
        self.external
            .as_deref()
            .or(self.lean.as_deref())
            .unwrap_or(&self.berth)
    }

    /// The command line that starts `berth run` (`berth-run` or `berth ...
    /// run`) with the scope and runtime flags, and `extra` after them.
    fn run(&self, extra: &str, name: &str) -> String {
        let runtime = self
            .external
            .as_ref()
            .map(|r| format!(" --runtime {r}"))
            .unwrap_or_default();
        match &self.lean {
            Some(lean) => format!("{lean}{}{runtime}{extra} {name}", self.scope),
            None => format!("{}{}{runtime} run{extra} {name}", self.berth, self.scope),
        }
    }

    /// True if `berth-run` may become the runtime (`--exec-runtime`):
    /// crun, run through berth-run, with no pid file to write.
    fn exec_runtime(&self, pid_file: Option<&str>) -> bool {
        let crun = self
            .external
            .as_deref()
            .is_some_and(|r| Path::new(r).file_name().is_some_and(|n| n == "crun"));
        crun && self.lean.is_some() && pid_file.is_none()
    }

    /// PURE: `EXEC_START`, `EXEC_STOP`, `EXEC_STOPPOST` of container `name`,
    /// with `--pid-file` when the unit template asked for one, and
    /// `--exec-runtime` when berth-run may become crun
    /// ([`crate::runtime::direct`]; the `--cleanup` of `EXEC_STOPPOST`
    /// removes berth's files after it).
    pub fn exec(&self, name: &str, pid_file: Option<&str>) -> [String; 3] {
        let pid = pid_file
            .map(|p| format!(" --pid-file {p}"))
            .unwrap_or_default();
        let start = if self.exec_runtime(pid_file) {
            format!(" {}", crate::runtime::direct::FLAG)
        } else {
            String::new()
        };
        [
            self.run(&format!("{start}{pid}"), name),
            format!("{}{} kill --if-running {name}", self.berth, self.scope),
            self.run(&format!(" --cleanup{pid}"), name),
        ]
    }
}

/// Finds the executables the units of `req` run below `layout`'s root.
fn commands(layout: &Layout, req: &PlanRequest<'_>) -> Result<Commands, DeployError> {
    let lean = req.berth.with_file_name("berth-run");
    let external = match RuntimeChoice::parse(req.runtime) {
        RuntimeChoice::Bundled => None,
        RuntimeChoice::External(r) => Some(runtime_path(layout, &r)?),
    };
    Ok(Commands {
        berth: req.berth.display().to_string(),
        lean: layout
            .open_root()
            .is_ok_and(|r| r.is_file(&lean))
            .then(|| lean.display().to_string()),
        scope: layout.scope_args(),
        external,
    })
}

/// The absolute path of `--runtime R` as the units see it: a path as given
/// (made absolute), else the first `R` on systemd's service `PATH` in the
/// root (on `/`, this process's `PATH` is searched too). Not found: an error
/// on `/`; for another root (an image being built, which may get its runtime
/// later) `/usr/bin/R`, with a warning.
fn runtime_path(layout: &Layout, runtime: &str) -> Result<String, DeployError> {
    let invalid = |detail: String| DeployError::Invalid {
        file: "RUNTIME".into(),
        detail,
    };
    if runtime.contains('/') {
        let p = std::path::absolute(runtime).map_err(|e| invalid(format!("{runtime}: {e}")))?;
        return Ok(p.display().to_string());
    }
    let on_root = layout.root() == Path::new("/");
    let found = SERVICE_PATH
        .iter()
        .map(|d| format!("{d}/{runtime}"))
        .find(|p| layout.open_root().is_ok_and(|r| r.is_file(Path::new(p))))
        .or_else(|| {
            on_root
                .then(|| crate::runtime::external::resolve(runtime))
                .flatten()
                .and_then(|p| std::path::absolute(p).ok())
                .map(|p: PathBuf| p.display().to_string())
        });
    match found {
        Some(p) => Ok(p),
        None if on_root => Err(invalid(format!(
            "--runtime {runtime}: not found on PATH or in {}; install it or give its path",
            SERVICE_PATH.join(":")
        ))),
        None => {
            tracing::warn!(
                "{} has no {runtime} in {}; units will run /usr/bin/{runtime}",
                layout.root().display(),
                SERVICE_PATH.join(":")
            );
            Ok(format!("/usr/bin/{runtime}"))
        }
    }
}

/// The resolved values of deploying `record` per `req` into `destdir`.
pub fn values(
    layout: &Layout,
    record: &ImageRecord,
    destdir: &str,
    req: &PlanRequest<'_>,
    exports: &Exports,
) -> Result<Values, DeployError> {
    let name = req.name.to_string();
    let cmds = commands(layout, req)?;
    let [exec_start, exec_stop, exec_stoppost] = cmds.exec(&name, None);
    let mut forced = Forced {
        name: name.clone(),
        destdir: destdir.to_string(),
        exec_start,
        exec_stop,
        exec_startpre: String::new(),
        exec_stoppost,
        host_uid: nix::unistd::getuid().as_raw(),
        host_gid: nix::unistd::getgid().as_raw(),
        image_name: req.image_name.to_string(),
        image_id: image_id(&record.digest).to_string(),
    };
    let mut caps: Vec<String> = caps::read(None, caps::CapSet::Bounding)
        .map(|s| s.iter().map(|c| c.to_string()).collect())
        .unwrap_or_default();
    caps.sort();
    let runtime = cmds.runtime().to_string();
    let host = match layout.user_dirs() {
        None => HostDefaults::system(capabilities_value(&caps), runtime),
        Some(dirs) => {
            // RUN_DIRECTORY and the runtime's state need $XDG_RUNTIME_DIR.
            layout.runtime_dir().map_err(|e| DeployError::Invalid {
                file: "RUN_DIRECTORY".into(),
                detail: e.to_string(),
            })?;
            HostDefaults::user(dirs, capabilities_value(&caps), runtime)
        }
    }
    .with_atomic(cmds.berth.clone());
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map_err(io_err(Path::new("/proc/sys/kernel/random/uuid")))?;
    let mut previous = req
        .previous
        .map(|i| i.values.carried_over())
        .unwrap_or_default();
    if req.reset_values {
        if let Some(i) = req.previous {
            previous.retain(|k, _| {
                i.values.provenance(k) == Some(crate::template::Provenance::Generated)
            });
        }
    }
    let resolve_with = |forced: &Forced| {
        resolve(&Sources {
            forced,
            set: req.set,
            previous: &previous,
            host: &host,
            manifest: &exports.defaults,
            generated_uuid: uuid.trim(),
        })
    };
    let values = resolve_with(&forced)?;
    if !exports.service.as_deref().is_some_and(wants_pid_file) {
        return Ok(values);
    }
    // The unit names $PIDFILE: berth-run writes it, so the commands carry
    // the resolved path, which must be one the operator chose.
    let pid_file = values.get("PIDFILE").unwrap_or_default();
    check_pid_file(pid_file).map_err(|e| DeployError::Invalid {
        file: "PIDFILE".into(),
        detail: format!(
            "the unit template names $PIDFILE, which berth-run writes: {e} (see --set PIDFILE=)"
        ),
    })?;
    [forced.exec_start, forced.exec_stop, forced.exec_stoppost] = cmds.exec(&name, Some(pid_file));
    Ok(resolve_with(&forced)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::disallowed_methods)]
    use super::*;

    fn cmds(lean: bool, scope: &'static str, external: Option<&str>) -> Commands {
        Commands {
            berth: "/usr/bin/berth".into(),
            lean: lean.then(|| "/usr/bin/berth-run".into()),
            scope,
            external: external.map(str::to_string),
        }
    }

    #[test]
    fn commands_carry_scope_runtime_and_pid_file() {
        let table: [(Commands, Option<&str>, [&str; 3], &str); 7] = [
            (
                cmds(true, "", Some("/usr/bin/crun")),
                None,
                [
                    "/usr/bin/berth-run --runtime /usr/bin/crun --exec-runtime etcd",
                    "/usr/bin/berth kill --if-running etcd",
                    "/usr/bin/berth-run --runtime /usr/bin/crun --cleanup etcd",
                ],
                "/usr/bin/crun",
            ),
            (
                cmds(true, " --user", Some("/usr/sbin/runc")),
                None,
                [
                    "/usr/bin/berth-run --user --runtime /usr/sbin/runc etcd",
                    "/usr/bin/berth --user kill --if-running etcd",
                    "/usr/bin/berth-run --user --runtime /usr/sbin/runc --cleanup etcd",
                ],
                "/usr/sbin/runc",
            ),
            (
                cmds(true, "", None),
                None,
                [
                    "/usr/bin/berth-run etcd",
                    "/usr/bin/berth kill --if-running etcd",
                    "/usr/bin/berth-run --cleanup etcd",
                ],
                "/usr/bin/berth-run",
            ),
            (
                cmds(true, "", Some("/usr/bin/crun")),
                Some("/run/container-etcd.pid"),
                [
                    "/usr/bin/berth-run --runtime /usr/bin/crun --pid-file /run/container-etcd.pid etcd",
                    "/usr/bin/berth kill --if-running etcd",
                    "/usr/bin/berth-run --runtime /usr/bin/crun --cleanup --pid-file /run/container-etcd.pid etcd",
                ],
                "/usr/bin/crun",
            ),
            (
                cmds(false, "", None),
                Some("/run/x.pid"),
                [
                    "/usr/bin/berth run --pid-file /run/x.pid etcd",
                    "/usr/bin/berth kill --if-running etcd",
                    "/usr/bin/berth run --cleanup --pid-file /run/x.pid etcd",
                ],
                "/usr/bin/berth",
            ),
            (
                cmds(false, " --user", Some("/usr/sbin/runc")),
                None,
                [
                    "/usr/bin/berth --user --runtime /usr/sbin/runc run etcd",
                    "/usr/bin/berth --user kill --if-running etcd",
                    "/usr/bin/berth --user --runtime /usr/sbin/runc run --cleanup etcd",
                ],
                "/usr/sbin/runc",
            ),
            (
                cmds(true, " --user", None),
                Some("/run/user/1000/container-etcd.pid"),
                [
                    "/usr/bin/berth-run --user --pid-file /run/user/1000/container-etcd.pid etcd",
                    "/usr/bin/berth --user kill --if-running etcd",
                    "/usr/bin/berth-run --user --cleanup --pid-file /run/user/1000/container-etcd.pid etcd",
                ],
                "/usr/bin/berth-run",
            ),
        ];
        for (c, pid, want, runtime) in table {
            assert_eq!(c.exec("etcd", pid), want.map(String::from), "{c:?}");
            assert_eq!(c.runtime(), runtime, "{c:?}");
        }
    }

    #[test]
    fn runtime_paths_resolve_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::system(root.path());
        std::fs::create_dir_all(root.path().join("usr/sbin")).unwrap();
        std::fs::File::create(root.path().join("usr/sbin/runc")).unwrap();
        assert_eq!(runtime_path(&layout, "runc").unwrap(), "/usr/sbin/runc");
        assert_eq!(
            runtime_path(&layout, "/opt/rt/crun").unwrap(),
            "/opt/rt/crun"
        );
        // Not in the root (which may get it later): where packages put it.
        assert_eq!(
            runtime_path(&layout, "no-such-runtime").unwrap(),
            "/usr/bin/no-such-runtime"
        );
        let host = Layout::system(Path::new("/"));
        let err = runtime_path(&host, "no-such-runtime-berth").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("RUNTIME: --runtime no-such-runtime-berth: not found"),
            "{err}"
        );
    }
}
