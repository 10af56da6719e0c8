//! Reads a bundle, checks it, and writes the spec berth actually runs.
//!
//! Bad bundles fail here, before anything runs. The rendered spec goes to
//! `ctr/ID/bundle/config.json` (the bundle itself is a read-only deployment
//! and is never written): hardening defaults, the notify mount, the
//! socket-activation environment and the cgroup path below berth's own.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capability, Spec};

use super::activation::Listen;
use super::cgroup::OwnCgroups;
use super::notify::{NotifyEnv, Relay};
use super::spec::{self, Hardening};
use super::{Paths, Result, RunRequest, RuntimeError};

/// A bundle that passed the checks.
#[derive(Debug)]
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// Its spec.
    pub spec: Spec,
    /// The rootfs, absolute and canonical.
    pub rootfs: PathBuf,
}

/// Loads and checks `dir/config.json` and the rootfs it names.
pub fn load(dir: &Path) -> Result<Bundle> {
    let missing = |what, path: PathBuf| RuntimeError::BundleMissing {
        bundle: dir.to_path_buf(),
        what,
        path,
    };
    if !dir.is_dir() {
        return Err(missing("directory", dir.to_path_buf()));
    }
    let config = dir.join("config.json");
    let bytes = match std::fs::read(&config) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(missing("config.json", config))
        }
        Err(e) => return Err(RuntimeError::io("reading", &config, e)),
    };
    let bad = |source| RuntimeError::BadSpec {
        path: config.clone(),
        source,
    };
    let spec = spec::parse(&bytes).map_err(bad)?;
    spec::check(&spec).map_err(bad)?;
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_default();
    let root = if root.is_absolute() {
        root
    } else {
        dir.join(root)
    };
    let rootfs = match std::fs::canonicalize(&root) {
        Ok(p) if p.is_dir() => p,
        _ => return Err(missing("rootfs (root.path)", root)),
    };
    Ok(Bundle {
        dir: dir.to_path_buf(),
        spec,
        rootfs,
    })
}

/// What [`render`] produced.
#[derive(Debug)]
pub struct Rendered {
    /// The request for the runtime.
    pub req: RunRequest,
    /// The notify relay, when systemd gave berth a `NOTIFY_SOCKET`.
    pub relay: Option<Relay>,
    /// What hardening changed (reported as warnings by the caller).
    pub hardening: Hardening,
}

/// The capabilities berth itself may pass on: its bounding set.
pub fn bounding_set() -> Result<HashSet<Capability>> {
    let caps = caps::read(None, caps::CapSet::Bounding).map_err(|e| RuntimeError::Io {
        what: "reading the capability bounding set of",
        path: PathBuf::from("/proc/self/status"),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(caps
        .iter()
        .filter_map(|c| {
            c.to_string()
                .strip_prefix("CAP_")
                .and_then(|n| n.parse().ok())
        })
        .collect())
}

/// True if the kernel has seccomp filters (`Seccomp:` in /proc/self/status).
/// Rootless, libcontainer creates the container's cgroup below `base` in
/// every hierarchy and fails with an opaque message when it may not: say
/// so first.
fn check_delegated(base: &Path) -> Result<()> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| RuntimeError::io("reading", Path::new("/proc/self/mountinfo"), e))?;
    for dir in super::cgroup::parent_dirs(&mountinfo, base) {
        if nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK).is_err() {
            return Err(RuntimeError::CgroupNotDelegated { path: dir });
        }
    }
    Ok(())
}

fn seccomp_available() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s.contains("\nSeccomp:"))
}

/// Writes `ctr/ID/` for `bundle`: the rendered spec, the relay socket and
/// the runtime's name.
pub fn render(
    paths: &Paths,
    id: &str,
    mut bundle: Bundle,
    listen: &Listen,
    notify: &NotifyEnv,
    runtime_name: &str,
) -> Result<Rendered> {
    let ctr = paths.ctr(id);
    let rendered = ctr.join("bundle");
    std::fs::create_dir_all(&rendered).map_err(|e| RuntimeError::io("creating", &rendered, e))?;
    let runtime_file = ctr.join("runtime");
    std::fs::write(&runtime_file, runtime_name)
        .map_err(|e| RuntimeError::io("writing", &runtime_file, e))?;

    let s = &mut bundle.spec;
    let seccomp = if seccomp_available() {
        Some(
            spec::default_seccomp().map_err(|source| RuntimeError::BadSpec {
                path: bundle.dir.join("config.json"),
                source,
            })?,
        )
    } else {
        None
    };
    let hardening = spec::harden(s, &bounding_set()?, seccomp);
    spec::set_root_path(s, &bundle.rootfs);
    let cg = OwnCgroups::read()
        .map_err(|e| RuntimeError::io("reading", Path::new("/proc/self/cgroup"), e))?;
    if runtime_name == "bundled" && !nix::unistd::geteuid().is_root() {
        check_delegated(&cg.base())?;
    }
    spec::set_cgroups_path(s, &cg.container_path(id));
    match cg.leave_unit_root() {
        Ok(Some(sup)) => tracing::debug!("{id}: berth moved into {}", sup.display()),
        Ok(None) => {}
        Err(e) => tracing::warn!("{id}: could not leave the unit's cgroup root: {e}"),
    }
    spec::set_listen_env(s, listen.fds, listen.names.as_deref());
    if listen.fds > 0 && !spec::has_pid_namespace(s) {
        tracing::warn!(
            "{id}: no pid namespace, so LISTEN_PID=1 does not name the container's init"
        );
    }
    spec::remove_env(s, "NOTIFY_SOCKET");
    let relay = match &notify.socket {
        Some(sock) => {
            let dir = ctr.join("notify");
            std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("creating", &dir, e))?;
            let relay = Relay::bind(&dir, sock)
                .map_err(|e| RuntimeError::io("binding the notify socket in", &dir, e))?;
            spec::add_notify(s, &dir);
            Some(relay)
        }
        None => None,
    };
    if let Some(w) = &notify.watchdog_usec {
        spec::set_env(s, "WATCHDOG_USEC", w);
    }
    let config = rendered.join("config.json");
    let json = serde_json::to_vec_pretty(&bundle.spec)
        .map_err(|e| RuntimeError::io("writing", &config, e.into()))?;
    std::fs::write(&config, json).map_err(|e| RuntimeError::io("writing", &config, e))?;
    Ok(Rendered {
        req: RunRequest {
            id: id.to_string(),
            bundle: bundle.dir,
            rendered,
            listen_fds: listen.fds,
        },
        relay,
        hardening,
    })
}

/// Removes berth's own directory for `id` (the rendered bundle, the socket).
pub fn remove_ctr(paths: &Paths, id: &str) -> Result<()> {
    let ctr = paths.ctr(id);
    match std::fs::remove_dir_all(&ctr) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("removing", &ctr, e)),
    }
}
