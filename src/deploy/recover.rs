//! Recovery: an operation a killed berth left journaled is undone (or
//! finished) by the next berth, and the services it had restarted are
//! restarted on the files put back ([`recover_interrupted`]); what an
//! install killed before its commit point left behind is cleared by the
//! next install of the same name ([`recover`]). Both under the store lock.

use std::path::{Path, PathBuf};

use super::install::settle;
use super::txn::{recover_journal, Recovered};
use super::{containers_inside, DeployError};
use crate::layout::Layout;
use crate::rootfs::Root;
use crate::systemd::dropin::DROPIN_FILE;
use crate::systemd::manager::Manager;
use crate::systemd::{is_owned_by, ContainerName, UnitName};

/// Undoes or finishes what a killed berth left journaled; when it undid
/// an update that had already restarted services, reloads the manager and
/// restarts them (newest first) on the deployments put back, so each runs
/// what its `NAME` link says. A restart that fails is a warning naming the
/// command to run; the recovery itself stands. Returns the services
/// restarted.
pub fn recover_interrupted(
    layout: &Layout,
    manager: &dyn Manager,
) -> Result<Vec<String>, DeployError> {
    let Recovered::Undone(units) = recover_journal(layout)? else {
        return Ok(Vec::new());
    };
    if let Err(e) = manager.reload() {
        tracing::warn!("reloading the manager after the recovery: {e}");
    }
    let mut restarted = Vec::new();
    for u in units.iter().rev() {
        let Ok(unit) = UnitName::parse(u) else {
            tracing::warn!("the journal names {u:?}, which is no unit name; not restarted");
            continue;
        };
        if !manager.is_live() {
            continue;
        }
        tracing::warn!(
            "restarting {unit}: an interrupted update had restarted it on the deployment now undone"
        );
        match manager
            .restart(&unit)
            .and_then(|_| settle(manager, &unit, "restart"))
        {
            Ok(()) => restarted.push(u.clone()),
            Err(e) => tracing::warn!(
                "{unit} did not come back on its previous deployment: {e}; \
                 see `journalctl -u {unit}`, then `systemctl restart {unit}`"
            ),
        }
    }
    Ok(restarted)
}

/// Clears what an install of `name` killed before its commit point left.
/// Without the `NAME` symlink nothing of `name` is installed, so its slot,
/// unit, drop-in and tmpfiles files carrying the marker for `name`, and
/// links to that unit are leftovers. Files staged under temp names are the
/// journal's to undo: a `PATH.tmp` beside a unit may be the operator's. Every path is looked at and
/// removed through the root (a link planted there is removed itself,
/// never followed).
pub fn recover(layout: &Layout, name: &ContainerName) -> Result<(), DeployError> {
    let root = layout.open_root()?;
    let cdir = containers_inside(layout);
    if root.exists(&cdir.join(name.as_str())) {
        return Ok(());
    }
    let unit = PathBuf::from(format!("{}/{name}.service", layout.unit_dir()));
    let tmpfiles = PathBuf::from(format!("{}/{name}.conf", layout.tmpfiles_dir()));
    let dropin_dir = PathBuf::from(format!("{}.d", unit.display()));
    let dropin = dropin_dir.join(DROPIN_FILE);
    let mut stale = vec![
        cdir.join(format!("{name}.0")),
        cdir.join(format!(".{name}.tmp")),
        cdir.join(format!("{name}.1")),
    ];
    for f in [&tmpfiles, &dropin, &unit] {
        let owned = root
            .read_file_nofollow(f)
            .ok()
            .flatten()
            .is_some_and(|t| is_owned_by(&String::from_utf8_lossy(&t), name));
        if owned {
            stale.push(f.clone());
        }
    }
    if stale.contains(&unit) {
        stale.extend(links_to(&root, Path::new(layout.unit_dir()), &unit));
    }
    for p in stale.iter().filter(|p| root.exists(p)) {
        tracing::warn!(
            "removing {}, left by an install of {name} that did not finish",
            p.display()
        );
        root.remove(p)?;
    }
    // The drop-in directory, when berth's drop-in was all it held.
    let had_dropin = stale.contains(&dropin);
    if had_dropin && root.read_dir(&dropin_dir).is_ok_and(|d| d.is_empty()) {
        root.remove(&dropin_dir)?;
    }
    Ok(())
}

/// Symlinks in `dir` and its `*.wants`/`*.requires` directories pointing to `target`.
fn links_to(root: &Root, dir: &Path, target: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    for n in root.read_dir(dir).unwrap_or_default() {
        let n = n.to_string_lossy();
        if n.ends_with(".wants") || n.ends_with(".requires") {
            dirs.push(dir.join(&*n));
        }
    }
    for d in dirs {
        for n in root.read_dir(&d).unwrap_or_default() {
            let p = d.join(n);
            if root.read_link(&p).is_ok_and(|t| t == target) {
                out.push(p);
            }
        }
    }
    out
}

/// Refuses when anything of `name` is installed (exit 4).
pub fn check_free(layout: &Layout, name: &ContainerName) -> Result<(), DeployError> {
    let root = layout.open_root()?;
    let c = containers_inside(layout);
    let unit = PathBuf::from(format!("{}/{name}.service", layout.unit_dir()));
    for p in [c.join(name.as_str()), c.join(format!("{name}.0")), unit] {
        if root.lstat(&p)?.is_some() {
            return Err(DeployError::Exists {
                name: name.to_string(),
                path: layout.host(&p.display().to_string()),
            });
        }
    }
    Ok(())
}
