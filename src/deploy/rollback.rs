//! `berth rollback`: switches a container back to its other deployment
//! slot (units, tmpfiles, host files and values), restarting the service
//! if it was running; a failed restart puts it back where it was.

use std::time::Duration;

use super::activate::{activate, Member};
use super::install::{staged_files, write_info};
use super::recover::recover_interrupted;
use super::switch::{switch, HostFile};
use super::txn::Transaction;
use super::update::{active_info, other_slot, Updated};
use super::{failpoint, DeployError, Info};
use crate::layout::Layout;
use crate::store::lock_root;
use crate::systemd::manager::Manager;
use crate::systemd::ContainerName;
use crate::Error;

/// Switches back to the other deployment.
pub fn rollback(layout: &Layout, name: &str, manager: &dyn Manager) -> Result<Updated, Error> {
    let name = ContainerName::parse(name).map_err(DeployError::from)?;
    let _lock = lock_root(layout)?;
    recover_interrupted(layout, manager)?;
    let current = active_info(layout, &name)?;
    let slot = other_slot(&name, &current.deployment);
    let target = match Info::read_slot(layout, &slot) {
        Ok(i) => i,
        Err(DeployError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(DeployError::NoPrevious {
                name: name.to_string(),
            }
            .into())
        }
        Err(e) => return Err(e.into()),
    };
    let files: Vec<HostFile> = staged_files(layout, &target)?;
    let mut txn = Transaction::journaled(layout)?;
    let switched = switch(
        layout,
        &mut txn,
        name.as_str(),
        Some(&current),
        &files,
        &target.links,
    )?;
    let mut info = target.clone();
    info.dirs = switched.dirs.clone();
    info.files = switched.tracked(&info.files);
    write_info(layout, &info)?;
    failpoint("rollback-files")?;
    let member = Member {
        current: &current,
        info: &info,
        soak: Duration::ZERO,
    };
    let restarted = activate(layout, txn, manager, &[member])?
        .first()
        .copied()
        .unwrap_or(false);
    Ok(Updated {
        name: name.to_string(),
        from: current.deployment.clone(),
        to: slot,
        from_digest: current.image.digest.clone(),
        to_digest: target.image.digest.clone(),
        restarted,
        changed: true,
        kept: switched.kept,
        shared: switched.shared,
        plan: None,
        footprint_growth: None,
        skipped: None,
    })
}
