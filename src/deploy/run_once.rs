//! `berth run-once IMAGE`: run an image once in the foreground, as a tool,
//! and leave nothing behind but the image in the store.
//!
//! ```text
//! ROOT/var/lib/berth/run-once/ID/      the slot, removed afterwards
//! ├── rootfs/                          hardlinked checkout of the image commit
//! └── config.json                      rendered as install renders it
//! ```
//!
//! The slot is run by a child `berth run --bundle SLOT ID` (a fresh process
//! with no threads, as the runtime wants) while this process waits, passing
//! on the signals sent to it alone (a terminal's Ctrl-C reaches the child
//! itself). Afterwards the slot, the runtime's state and lock, and every
//! directory this run created are removed, however the payload ended.
//! No unit, no hostfs file and no tmpfiles entry is written or applied.

use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::install::{default_name, ensure_image, parse_set, Fetch};
use super::plan::PlanRequest;
use super::{exports, render, vars, DeployError};
use crate::image::limits::Limits;
use crate::layout::Layout;
use crate::progress::Progress;
use crate::runtime::supervise::Signals;
use crate::runtime::{self, IdLock, Paths, RuntimeChoice};
use crate::store::image::{self, ImageRecord};
use crate::store::{lock_root, Store, StoreError};
use crate::systemd::ContainerName;
use crate::Error;

/// The image label that marks a tool, not a service.
pub const LABEL: &str = "atomic.run";

/// Run-once failures.
#[derive(Debug, thiserror::Error)]
pub enum RunOnceError {
    /// `berth install` of an image labelled `atomic.run=once`.
    #[error(
        "{image} is a run-once image (label atomic.run=once); \
         run it with `berth run-once {image} [-- CMD…]`"
    )]
    IsRunOnce {
        /// The image as the user named it.
        image: String,
    },
    /// A container of this name is running, or a killed run-once left its slot.
    #[error(
        "a container named {name} is in use ({path} exists); pick another --name, \
         or remove {path} if no berth runs it"
    )]
    Busy {
        /// The container ID.
        name: String,
        /// The slot in the way.
        path: PathBuf,
    },
    /// `--user` is not supported.
    #[error("{0}")]
    Unsupported(String),
    /// The `berth run` child could not be started or waited for.
    #[error("{what}: {source}")]
    Child {
        /// What berth was doing.
        what: String,
        /// Cause.
        source: std::io::Error,
    },
}

impl RunOnceError {
    /// The exit-code kind.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            RunOnceError::IsRunOnce { .. } | RunOnceError::Unsupported(_) => {
                crate::ErrorKind::Usage
            }
            RunOnceError::Busy { .. } => crate::ErrorKind::Conflict,
            RunOnceError::Child { .. } => crate::ErrorKind::Failed,
        }
    }
}

/// PURE: whether an image config (the OCI image config JSON) carries
/// `atomic.run=once`.
pub fn is_run_once(config: &serde_json::Value) -> bool {
    config["config"]["Labels"][LABEL] == "once"
}

/// Refuses to install a run-once image (`berth install`, `apply`).
pub fn refuse_install(image: &str, record: &ImageRecord) -> Result<(), RunOnceError> {
    if is_run_once(&record.config_json()) {
        return Err(RunOnceError::IsRunOnce {
            image: image.to_string(),
        });
    }
    Ok(())
}

/// PURE: `config` with `process.args` replaced by `args`.
pub fn replace_args(config: &str, args: &[String]) -> Result<String, DeployError> {
    let invalid = |detail: String| DeployError::Invalid {
        file: "config.json".into(),
        detail,
    };
    let mut spec: serde_json::Value =
        serde_json::from_str(config).map_err(|e| invalid(e.to_string()))?;
    let process = spec
        .get_mut("process")
        .and_then(|p| p.as_object_mut())
        .ok_or_else(|| invalid("has no process to give the command to".into()))?;
    process.insert("args".into(), serde_json::json!(args));
    serde_json::to_string_pretty(&spec).map_err(|e| invalid(e.to_string()))
}

/// What to run once.
#[derive(Debug, Clone)]
pub struct RunOnceRequest {
    /// The image reference as given.
    pub image: String,
    /// `--set KEY=VALUE` arguments, in order.
    pub set: Vec<String>,
    /// `--name`: the container ID and `$NAME` (default: `IMAGE-XXXXXXXX`).
    pub name: Option<String>,
    /// The command after `--`, replacing the config's `process.args`.
    pub args: Vec<String>,
    /// The `--runtime` value.
    pub runtime: String,
    /// The berth executable (runs `berth run --bundle`).
    pub berth: PathBuf,
    /// `-v` count, passed on to the child.
    pub verbose: u8,
    /// Caps on what pulling the image may decompress to.
    pub limits: Limits,
    /// The signature policy a pull applies.
    pub policy: crate::trust::source::PolicyOptions,
}

/// A checked-out, rendered slot, and what to remove after it ran.
#[derive(Debug)]
pub struct Slot {
    /// The container ID.
    pub id: String,
    /// The bundle directory on the host.
    pub dir: PathBuf,
    /// The bundle directory, as seen inside the root.
    inside: PathBuf,
    /// The image.
    pub image: ImageRecord,
    /// Directories this run created (deepest first), removed if empty.
    created: Vec<PathBuf>,
}

/// The directories below `path` (included) that do not exist yet, deepest
/// first (the runtime's state directories: host paths, not below --root).
fn missing(path: &Path) -> Vec<PathBuf> {
    path.ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && p.symlink_metadata().is_err())
        .map(Path::to_path_buf)
        .collect()
}

/// Makes the slot directory `inside` (and its missing parents) through the
/// root; returns it, where it is on the host, and the host directories
/// made, deepest first.
fn make_slot(
    layout: &Layout,
    name: &ContainerName,
    inside: &str,
) -> Result<(PathBuf, PathBuf, Vec<PathBuf>), Error> {
    let root = layout.open_root()?;
    let inside = PathBuf::from(inside);
    let parent = inside.parent().unwrap_or(Path::new("/"));
    let parents = root.create_dir_all(parent, 0o755)?;
    let mut created: Vec<PathBuf> = parents
        .iter()
        .rev()
        .filter_map(|d| root.resolve(d).ok())
        .collect();
    match root.create_dir(&inside, 0o755) {
        Ok(()) => {}
        Err(e) => {
            remove_empty(&created);
            return Err(match e {
                crate::rootfs::RootError::Io { source, .. }
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    RunOnceError::Busy {
                        name: name.to_string(),
                        path: layout.host(&inside.display().to_string()),
                    }
                    .into()
                }
                e => e.into(),
            });
        }
    }
    let dir = root.resolve(&inside)?;
    created.insert(0, dir.clone());
    Ok((inside, dir, created))
}

/// The ID of a run-once: `--name`, or the image's name and a random suffix.
fn container_id(req: &RunOnceRequest) -> Result<ContainerName, DeployError> {
    let name = match &req.name {
        Some(n) => n.clone(),
        None => {
            let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
                .map_err(super::io_err(Path::new("/proc/sys/kernel/random/uuid")))?;
            let base: String = default_name(&req.image)
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                .take(40)
                .collect();
            let suffix: String = uuid.trim().chars().take(8).collect();
            format!("{base}-once-{suffix}")
        }
    };
    Ok(ContainerName::parse(&name)?)
}

/// Checks the request and pulls the image when it is not stored.
pub fn pull(
    layout: &Layout,
    req: &RunOnceRequest,
    progress: Arc<dyn Progress>,
) -> Result<ImageRecord, Error> {
    if layout.is_user() {
        return Err(RunOnceError::Unsupported(
            "berth run-once does not run --user (rootless) containers yet; \
             run it as root, or install the image with `berth --user install`"
                .into(),
        )
        .into());
    }
    if let Some(n) = &req.name {
        ContainerName::parse(n).map_err(DeployError::from)?;
        runtime::check_id(n)?;
    }
    parse_set(&req.set)?;
    let fetch = Fetch {
        limits: req.limits,
        policy: req.policy.clone(),
        ..Fetch::default()
    };
    ensure_image(layout, &req.image, fetch, progress)
}

/// Checks `record` out into a fresh slot and renders its `config.json`
/// (the image's template or berth's default) with the values of an install.
pub fn prepare(layout: &Layout, req: &RunOnceRequest, record: ImageRecord) -> Result<Slot, Error> {
    let name = container_id(req)?;
    runtime::check_id(name.as_str())?;
    let set = parse_set(&req.set)?;
    let paths = Paths::for_layout(layout)?;
    if paths.ctr(name.as_str()).exists() {
        return Err(RunOnceError::Busy {
            name: name.to_string(),
            path: paths.ctr(name.as_str()),
        }
        .into());
    }
    let _lock = lock_root(layout)?;
    let store = Store::open(layout, false)?
        .ok_or_else(|| StoreError::Damaged("store missing after pull".into()))?;
    let inside = format!("{}/run-once/{name}", layout.data_inside());
    let (slot_inside, dir, created) = make_slot(layout, &name, &inside)?;
    let slot = Slot {
        id: name.to_string(),
        dir,
        inside: slot_inside,
        image: record,
        created,
    };
    if let Err(e) = fill(layout, &store, req, &name, &set, &inside, &slot) {
        let _ = cleanup(layout, &slot);
        return Err(e);
    }
    Ok(slot)
}

fn fill(
    layout: &Layout,
    store: &Store,
    req: &RunOnceRequest,
    name: &ContainerName,
    set: &[crate::template::SetValue],
    inside: &str,
    slot: &Slot,
) -> Result<(), Error> {
    let exports = exports::read_exports(store, &slot.image.commit)?;
    let preq = PlanRequest {
        name,
        image_name: &req.image,
        set,
        runtime: &req.runtime,
        berth: &req.berth,
        slot: slot.id.clone(),
        previous: None,
        reset_values: false,
        enable: false,
        hostfs_modes: Default::default(),
        health: &Default::default(),
        after: &[],
    };
    let values = vars::values(layout, &slot.image, inside, &preq, &exports)?;
    let mut config = render::config_json(store, &slot.image, &exports, &values, None)?;
    if !req.args.is_empty() {
        config = replace_args(&config, &req.args)?;
    }
    image::checkout(store, &slot.image.commit, &slot.dir.join("rootfs"))?;
    layout.open_root()?.write_new(
        &Path::new(inside).join("config.json"),
        config.as_bytes(),
        super::install::SECRET_MODE,
    )?;
    Ok(())
}

/// Runs the slot with `berth run --bundle` in a child and waits for it,
/// passing on the signals `signals` reads; returns berth's exit code for
/// the payload (its status, 128+N for signal N).
pub fn run(
    layout: &Layout,
    req: &RunOnceRequest,
    slot: &Slot,
    signals: &Signals,
) -> Result<i32, Error> {
    let root = std::path::absolute(layout.root()).unwrap_or_else(|_| layout.root().to_path_buf());
    let mut cmd = std::process::Command::new(&req.berth);
    cmd.arg("--root")
        .arg(&root)
        .arg("--runtime")
        .arg(&req.runtime);
    if req.verbose > 0 {
        cmd.arg(format!("-{}", "v".repeat(usize::from(req.verbose))));
    }
    cmd.arg("run").arg("--bundle").arg(&slot.dir).arg(&slot.id);
    let child_err = |what: &str| {
        let what = format!("{what} {}", req.berth.display());
        move |source| RunOnceError::Child { what, source }
    };
    let mut child = cmd.spawn().map_err(child_err("starting"))?;
    let pid = Pid::from_raw(child.id() as i32);
    loop {
        if let Some(status) = child.try_wait().map_err(child_err("waiting for"))? {
            return Ok(status
                .code()
                .or_else(|| status.signal().map(|s| 128 + s))
                .unwrap_or(1));
        }
        let mut fds = [PollFd::new(signals.fd().as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(child_err("waiting for")(e.into()).into()),
        }
        while let Ok(Some(info)) = signals.fd().read_signal() {
            if let Some(sig) = to_forward(info.ssi_signo, info.ssi_code) {
                tracing::debug!("forwarding {sig} to {pid}");
                let _ = kill(pid, sig);
            }
        }
    }
}

/// PURE: the signal to pass on to the child, if any: not SIGCHLD, and not
/// one the kernel sent (a terminal's Ctrl-C goes to the child as well).
fn to_forward(signo: u32, code: i32) -> Option<Signal> {
    let sig = Signal::try_from(i32::try_from(signo).ok()?).ok()?;
    (sig != Signal::SIGCHLD && code != libc::SI_KERNEL).then_some(sig)
}

/// Removes the slot, whatever the runtime left of the container (its state
/// when the child was killed, its lock) and the directories this run created.
pub fn cleanup(layout: &Layout, slot: &Slot) -> Result<(), Error> {
    let mut first: Option<Error> = None;
    // With the ID's lock held no berth runs it, so what the runtime keeps
    // under the ID is this run's (its child was killed) and may go.
    let paths = Paths::for_layout(layout);
    match paths.as_ref().map(|p| (p, IdLock::take(p, &slot.id))) {
        Ok((paths, Ok(_held))) => {
            if paths.ctr(&slot.id).exists() {
                let choice = paths
                    .recorded_runtime(&slot.id)
                    .unwrap_or_else(|| RuntimeChoice::parse("bundled"));
                let r = runtime::open(&choice, paths)
                    .and_then(|rt| rt.remove_stale(&slot.id))
                    .and_then(|_| runtime::prepare::remove_ctr(paths, &slot.id));
                if let Err(e) = r {
                    first.get_or_insert(e.into());
                }
            }
            #[allow(clippy::disallowed_methods)] // the runtime's own lock, not below --root
            let _ = std::fs::remove_file(paths.lock(&slot.id));
        }
        Ok((_, Err(e))) => tracing::warn!("{}: runtime state left alone: {e}", slot.id),
        Err(e) => tracing::debug!("{}: no runtime directory: {e}", slot.id),
    }
    if let Err(e) = layout.open_root().and_then(|r| r.remove(&slot.inside)) {
        first.get_or_insert(e.into());
    }
    remove_empty(&slot.created);
    first.map_or(Ok(()), Err)
}

/// The runtime directories a run may create, and which of them are missing now.
pub fn runtime_dirs_missing(layout: &Layout, id: &str) -> Vec<PathBuf> {
    let Ok(paths) = Paths::for_layout(layout) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for d in [
        paths.lock(id).parent().map(Path::to_path_buf),
        paths.ctr(id).parent().map(Path::to_path_buf),
        Some(paths.libcontainer_root()),
        Some(paths.external_root("crun")),
        Some(paths.external_root("runc")),
        Some(paths.external_root("ext")),
    ]
    .into_iter()
    .flatten()
    {
        out.extend(missing(&d));
    }
    out
}

impl Slot {
    /// Also removes `dirs` (if empty) after the run.
    pub fn remove_after(&mut self, dirs: Vec<PathBuf>) {
        self.created.extend(dirs);
    }
}

/// Removes the empty directories of `dirs`, deepest first: host paths
/// this run made (resolved when made), below the data and runtime dirs.
#[allow(clippy::disallowed_methods)] // rmdir: only ever removes an empty directory
fn remove_empty(dirs: &[PathBuf]) {
    let mut dirs = dirs.to_vec();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    for d in dirs {
        let _ = std::fs::remove_dir(&d);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::disallowed_methods)]
    use super::*;
    use serde_json::json;

    #[test]
    fn the_label_marks_run_once() {
        assert!(is_run_once(
            &json!({"config": {"Labels": {"atomic.run": "once", "x": "y"}}})
        ));
        assert!(!is_run_once(
            &json!({"config": {"Labels": {"atomic.run": "always"}}})
        ));
        assert!(!is_run_once(&json!({"config": {"Labels": null}})));
        assert!(!is_run_once(&json!({})));
    }

    #[test]
    fn args_are_replaced_and_the_rest_kept() {
        let c = r#"{"ociVersion":"1.0.0","process":{"args":["/usr/bin/tool","version"],"cwd":"/"},"root":{"path":"rootfs","readonly":true}}"#;
        let out = replace_args(c, &["/bin/sh".into(), "-c".into(), "exit 7".into()]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["process"]["args"], json!(["/bin/sh", "-c", "exit 7"]));
        assert_eq!(v["process"]["cwd"], "/");
        assert_eq!(v["root"]["readonly"], true);
        assert!(replace_args(r#"{"root":{}}"#, &["x".into()]).is_err());
        assert!(replace_args("not json", &["x".into()]).is_err());
    }

    #[test]
    fn only_signals_sent_by_a_process_are_forwarded() {
        assert_eq!(to_forward(15, libc::SI_USER), Some(Signal::SIGTERM));
        assert_eq!(to_forward(2, libc::SI_KERNEL), None);
        assert_eq!(to_forward(17, libc::SI_USER), None);
        assert_eq!(to_forward(0, libc::SI_USER), None);
    }

    #[test]
    fn remove_empty_removes_only_empty_dirs_deepest_first() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b/c");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::create_dir_all(t.path().join("keep/x")).unwrap();
        let created = vec![
            t.path().join("a"),
            d.clone(),
            t.path().join("a/b"),
            t.path().join("keep"),
        ];
        remove_empty(&created);
        assert!(!t.path().join("a").exists());
        assert!(t.path().join("keep/x").exists());
    }
}
