//! Reads a bundle, checks it, and writes the spec berth actually runs.
//!
//! Bad bundles fail here, before anything runs: a pre-1.0 config is read in
//! its 1.0 shape ([`super::legacy`]), and missing bind sources, working
//! directory or executable are named ([`super::preflight`]). The rendered
//! spec goes to `ctr/ID/bundle/config.json` (the bundle itself is a read-only
//! deployment and is never written): the config as written, plus what berth
//! needs to supervise (the notify mount, the socket-activation environment,
//! the cgroup path below berth's own) and capabilities clamped to the ones
//! berth holds. Hardening is not added here: berth's default config carries
//! it from install time.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capability, Spec};

use super::activation::Listen;
use super::cgroup::OwnCgroups;
use super::legacy;
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
    let spec = parse_any_version(&bytes).map_err(bad)?;
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
    super::preflight::check(&spec, dir, &rootfs).map_err(bad)?;
    Ok(Bundle {
        dir: dir.to_path_buf(),
        spec,
        rootfs,
    })
}

/// Parses config.json; a pre-1.0 one (which fails to parse or says so) is
/// upgraded first, with a warning per change. A 1.0 config is parsed once.
fn parse_any_version(bytes: &[u8]) -> std::result::Result<Spec, spec::SpecError> {
    let first = spec::parse(bytes);
    if matches!(&first, Ok(s) if !legacy::is_old_version(s.version())) {
        return first;
    }
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return first;
    };
    let notes = legacy::upgrade(&mut value);
    if notes.is_empty() {
        return first;
    }
    for n in &notes {
        tracing::warn!("config.json: {n}");
    }
    serde_json::from_value(value).map_err(|e| spec::SpecError::Unsupported {
        field: "ociVersion".into(),
        why: format!("a pre-1.0 config that is no runtime config once read as 1.0: {e}"),
    })
}

/// What [`render`] produced.
#[derive(Debug)]
pub struct Rendered {
    /// The request for the runtime.
    pub req: RunRequest,
    /// The notify relay, when systemd gave berth a `NOTIFY_SOCKET`.
    pub relay: Option<Relay>,
    /// The container's cgroup (`cgroupsPath`), relative to each hierarchy.
    pub cgroup: PathBuf,
    /// Capabilities dropped because berth does not hold them (reported as
    /// warnings by the caller).
    pub hardening: Hardening,
}

/// The capabilities `spec` asks for that berth itself may pass on: those in
/// its bounding set. Only the capabilities the spec names are looked up (one
/// `PR_CAPBSET_READ` each), not the whole set (41 on a current kernel).
pub fn held_of_named(spec: &Spec) -> Result<HashSet<Capability>> {
    let named = spec::named_capabilities(spec);
    let mut held = HashSet::with_capacity(named.len());
    for cap in named {
        let Ok(probe) = format!("CAP_{cap}").parse::<caps::Capability>() else {
            continue;
        };
        let has =
            caps::has_cap(None, caps::CapSet::Bounding, probe).map_err(|e| RuntimeError::Io {
                what: "reading the capability bounding set of",
                path: PathBuf::from("/proc/self/status"),
                source: std::io::Error::other(e.to_string()),
            })?;
        if has {
            held.insert(cap);
        }
    }
    Ok(held)
}

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
    let held = held_of_named(s)?;
    let hardening = spec::clamp_capabilities(s, &held);
    spec::set_root_path(s, &bundle.rootfs);
    if spec::ensure_dev_mount(s) {
        tracing::debug!("{id}: no mount at /dev in the config; a tmpfs is added there");
    }
    let cg = OwnCgroups::read()
        .map_err(|e| RuntimeError::io("reading", Path::new("/proc/self/cgroup"), e))?;
    if runtime_name == "bundled" && !nix::unistd::geteuid().is_root() {
        check_delegated(&cg.base())?;
    }
    let cgroup = cg.container_path(id);
    spec::set_cgroups_path(s, &cgroup);
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
        cgroup,
        hardening,
    })
}

/// Warns about the capabilities [`render`] dropped, if any.
pub fn warn_dropped(id: &str, hardening: &Hardening) {
    if !hardening.dropped_capabilities.is_empty() {
        tracing::warn!(
            "{id}: dropping capabilities outside berth's bounding set: {}",
            hardening.dropped_capabilities.join(", ")
        );
    }
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
