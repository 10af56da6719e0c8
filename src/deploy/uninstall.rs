//! `berth uninstall`: every file of the container is renamed aside in a
//! [`Transaction`], and deleted only once all of them are; the image stays.

use std::path::Path;

use serde::Serialize;

use super::txn::Transaction;
use super::{containers_dir, failpoint, in_root, io_err, DeployError, Info, UNIT_DIR};
use crate::store::lock_root;
use crate::systemd::manager::Manager;
use crate::systemd::{is_owned_by, ContainerName, UnitType};
use crate::Error;

/// What an uninstall removed and what it left.
#[derive(Debug, Default, Serialize)]
pub struct Removed {
    /// Paths removed, as seen inside the root.
    pub removed: Vec<String>,
    /// Paths left in place, with the reason.
    pub kept: Vec<String>,
}

/// Removes the container `name` below `root`.
pub fn uninstall(root: &Path, name: &str, manager: &dyn Manager) -> Result<Removed, Error> {
    let name = ContainerName::parse(name).map_err(DeployError::from)?;
    let _lock = lock_root(root)?;
    let cdir = containers_dir(root);
    let active = cdir.join(name.as_str());
    if !active.symlink_metadata().is_ok_and(|m| m.is_symlink()) {
        return Err(DeployError::NotInstalled {
            name: name.to_string(),
        }
        .into());
    }
    let info = Info::read(root, name.as_str())?;
    let unit_name = name.unit(UnitType::Service);
    let unit_inside = format!("{UNIT_DIR}/{unit_name}");
    let mut out = Removed::default();
    let mut txn = Transaction::new();
    let mut link_dirs = Vec::new();
    for link in &info.links {
        let p = in_root(root, link);
        match std::fs::read_link(&p) {
            Ok(t) if t == Path::new(&unit_inside) => {
                txn.remove(&p)?;
                out.removed.push(link.clone());
                if let Some(d) = p.parent() {
                    link_dirs.push(d.to_path_buf());
                }
            }
            Ok(_) => out.kept.push(format!("{link}: points elsewhere now")),
            Err(_) => {}
        }
    }
    for f in &info.files {
        if f.path.starts_with(&format!("{}/", info_dir(&info))) {
            continue;
        }
        let p = in_root(root, &f.path);
        let Ok(text) = std::fs::read(&p) else {
            continue;
        };
        if !is_owned_by(&String::from_utf8_lossy(&text), &name) {
            out.kept
                .push(format!("{}: not written by berth for {name}", f.path));
            continue;
        }
        txn.remove(&p)?;
        out.removed.push(f.path.clone());
    }
    txn.remove(&active)?;
    for entry in std::fs::read_dir(&cdir).map_err(io_err(&cdir))?.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let is_deployment = file
            .strip_prefix(&format!("{name}."))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_deployment {
            txn.remove(&entry.path())?;
            out.removed
                .push(format!("/{}/{file}", crate::store::gc::CONTAINERS_DIR));
        }
    }
    failpoint("uninstall-staged")?;
    manager.reload().map_err(DeployError::from)?;
    failpoint("uninstall-commit")?;
    txn.commit();
    // `.wants/` and `.requires/` directories left empty go too.
    for d in link_dirs {
        if std::fs::read_dir(&d).is_ok_and(|mut e| e.next().is_none()) {
            if let Err(e) = std::fs::remove_dir(&d) {
                tracing::warn!("{}: {e}", d.display());
            }
        }
    }
    Ok(out)
}

fn info_dir(info: &Info) -> String {
    format!("/{}/{}", crate::store::gc::CONTAINERS_DIR, info.deployment)
}
