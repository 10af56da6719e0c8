//! `berth uninstall`: units stopped, then the host switched from the active
//! deployment to nothing (unmodified host files, links, tmpfiles entry and
//! berth's empty directories removed) and both deployments removed, in one
//! journaled [`Transaction`]; the image stays in the store.

use std::path::Path;

use serde::Serialize;

use super::recover::recover_interrupted;
use super::switch::switch;
use super::txn::Transaction;
use super::{containers_inside, failpoint, DeployError, Info};
use crate::layout::Layout;
use crate::store::lock_root;
use crate::systemd::manager::Manager;
use crate::systemd::{ContainerName, UnitName};
use crate::Error;

/// What an uninstall removed and what it left.
#[derive(Debug, Default, Serialize)]
pub struct Removed {
    /// Paths removed, as seen inside the root.
    pub removed: Vec<String>,
    /// Paths left in place, with the reason.
    pub kept: Vec<String>,
    /// Hostfs paths that stay for the other containers shipping them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<String>,
    /// Units outside this container that require or want its units.
    pub needed_by: Vec<String>,
}

/// Removes the container `name` below `root`.
pub fn uninstall(layout: &Layout, name: &str, manager: &dyn Manager) -> Result<Removed, Error> {
    let name = ContainerName::parse(name).map_err(DeployError::from)?;
    let _lock = lock_root(layout)?;
    recover_interrupted(layout, manager)?;
    let cdir = containers_inside(layout);
    let active = cdir.join(name.as_str());
    let root = layout.open_root()?;
    if !matches!(root.lstat(&active)?, Some(e) if e.kind == crate::rootfs::Kind::Symlink) {
        return Err(DeployError::NotInstalled {
            name: name.to_string(),
        }
        .into());
    }
    let info = Info::read(layout, name.as_str())?;
    let mut out = Removed {
        needed_by: needed_by(layout, &info),
        ..Removed::default()
    };
    for n in &out.needed_by {
        tracing::warn!("{n}");
    }
    // Activators first (a socket would start the service again), then the rest.
    let mut units: Vec<&String> = info.units.iter().collect();
    units.sort_by_key(|u| u.ends_with(".service"));
    for u in units {
        if let Ok(unit) = UnitName::parse(u) {
            manager.stop(&unit).map_err(DeployError::from)?;
        }
    }
    let mut txn = Transaction::journaled(layout)?;
    let switched = switch(layout, &mut txn, name.as_str(), Some(&info), &[], &[])?;
    out.kept = switched.kept;
    out.removed = switched.removed;
    out.shared = switched.shared;
    failpoint("uninstall-files")?;
    txn.remove(&active)?;
    for slot in [format!("{name}.0"), format!("{name}.1")] {
        let p = cdir.join(&slot);
        if root.exists(&p) {
            txn.remove(&p)?;
            out.removed
                .push(format!("{}/{slot}", layout.containers_inside()));
        }
    }
    failpoint("uninstall-staged")?;
    manager.reload().map_err(DeployError::from)?;
    failpoint("uninstall-commit")?;
    txn.commit();
    Ok(out)
}

/// Units not of this container whose `.requires/` or `.wants/` directory
/// links to one of its units, or whose file names one in `Requires=`.
fn needed_by(layout: &Layout, info: &Info) -> Vec<String> {
    let ours: Vec<&str> = info.units.iter().map(String::as_str).collect();
    let own_links: Vec<&str> = info.links.iter().map(|l| l.path.as_str()).collect();
    let unit_dir = layout.unit_dir();
    let dir = Path::new(unit_dir);
    let mut out = Vec::new();
    let Ok(root) = layout.open_root() else {
        return out;
    };
    for e in root.read_dir(dir).unwrap_or_default() {
        let file = e.to_string_lossy().into_owned();
        let (unit, how) = if let Some(u) = file.strip_suffix(".requires") {
            (u.to_string(), "requires")
        } else if let Some(u) = file.strip_suffix(".wants") {
            (u.to_string(), "wants")
        } else {
            if !ours.contains(&file.as_str()) {
                if let Ok(text) = root.read(&dir.join(&file)) {
                    let text = String::from_utf8_lossy(&text);
                    for line in text.lines() {
                        let Some(v) = line.trim().strip_prefix("Requires=") else {
                            continue;
                        };
                        for u in v.split_whitespace().filter(|u| ours.contains(u)) {
                            out.push(format!("{file} requires {u} (Requires=)"));
                        }
                    }
                }
            }
            continue;
        };
        if unit.ends_with(".target") && how == "wants" {
            continue;
        }
        for l in root.read_dir(&dir.join(&file)).unwrap_or_default() {
            let lname = l.to_string_lossy().into_owned();
            let inside = format!("{unit_dir}/{file}/{lname}");
            if ours.contains(&lname.as_str()) && !own_links.contains(&inside.as_str()) {
                out.push(format!("{unit} {how} {lname}"));
            }
        }
    }
    out.sort();
    out
}
