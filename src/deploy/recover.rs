//! Recovery: what an install killed before its commit point left behind is
//! cleared by the next install of the same name, under the store lock.

use std::path::{Path, PathBuf};

use super::txn::remove_any;
use super::{containers_dir, in_root, DeployError};
use crate::layout::Layout;
use crate::systemd::dropin::DROPIN_FILE;
use crate::systemd::{is_owned_by, ContainerName};

/// Clears what an install of `name` killed before its commit point left.
/// Without the `NAME` symlink nothing of `name` is installed, so its slot,
/// `*.tmp` files, unit, drop-in and tmpfiles files carrying the marker for `name`,
/// and links to that unit are leftovers.
pub fn recover(layout: &Layout, name: &ContainerName) -> Result<(), DeployError> {
    let cdir = containers_dir(layout);
    if cdir.join(name.as_str()).symlink_metadata().is_ok() {
        return Ok(());
    }
    let unit_inside = format!("{}/{name}.service", layout.unit_dir());
    let unit = in_root(layout, &unit_inside);
    let tmpfiles = in_root(layout, &format!("{}/{name}.conf", layout.tmpfiles_dir()));
    let dropin_dir = in_root(layout, &format!("{unit_inside}.d"));
    let dropin = dropin_dir.join(DROPIN_FILE);
    let mut stale = vec![
        cdir.join(format!("{name}.0")),
        cdir.join(format!(".{name}.tmp")),
        cdir.join(format!("{name}.1")),
        tmp_of(&unit),
        tmp_of(&tmpfiles),
        tmp_of(&dropin),
    ];
    for f in [&tmpfiles, &dropin, &unit] {
        if std::fs::read_to_string(f).is_ok_and(|t| is_owned_by(&t, name)) {
            stale.push(f.clone());
        }
    }
    if stale.contains(&unit) {
        stale.extend(links_to(&in_root(layout, layout.unit_dir()), &unit_inside));
    }
    for p in stale.iter().filter(|p| p.symlink_metadata().is_ok()) {
        tracing::warn!(
            "removing {}, left by an install of {name} that did not finish",
            p.display()
        );
        remove_any(p)?;
    }
    // The drop-in directory, when berth's drop-in was all it held.
    let had_dropin = stale.contains(&dropin);
    if had_dropin && std::fs::read_dir(&dropin_dir).is_ok_and(|mut d| d.next().is_none()) {
        remove_any(&dropin_dir)?;
    }
    Ok(())
}

/// The staging name of `path`.
pub fn tmp_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.tmp", path.display()))
}

/// Symlinks in `dir` and its `*.wants`/`*.requires` directories pointing to `target`.
fn links_to(dir: &Path, target: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(".wants") || n.ends_with(".requires") {
                dirs.push(e.path());
            }
        }
    }
    for d in dirs {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if std::fs::read_link(e.path()).is_ok_and(|t| t == Path::new(target)) {
                out.push(e.path());
            }
        }
    }
    out
}

/// Refuses when anything of `name` is installed (exit 4).
pub fn check_free(layout: &Layout, name: &ContainerName) -> Result<(), DeployError> {
    let c = containers_dir(layout);
    let unit = in_root(layout, &format!("{}/{name}.service", layout.unit_dir()));
    for p in [c.join(name.as_str()), c.join(format!("{name}.0")), unit] {
        if p.symlink_metadata().is_ok() {
            return Err(DeployError::Exists {
                name: name.to_string(),
                path: p,
            });
        }
    }
    Ok(())
}
