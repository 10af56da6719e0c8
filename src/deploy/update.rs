//! `berth update` and `berth rollback`: the container has two deployment
//! slots, `NAME.0` and `NAME.1`; `NAME` points at the active one. Update
//! fills the other slot from the (re-pulled) image with the previous values
//! overlaid by `--set`, and switches to it; rollback switches back. Both
//! restart the service if it was running, and switch back when the restart
//! fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::footprint::{growth, Footprint};
use super::gate::{self, Waiting};
use super::install::{
    apply_tmpfiles, ensure_image, host_files, parse_set, settle, stage, staged_files, with_journal,
    write_info, Fetch,
};
use super::plan::{plan, Plan, PlanRequest};
use super::switch::{switch, HostFile};
use super::txn::{recover_journal, Transaction};
use super::{containers_inside, failpoint, DeployError, Info};
use crate::image::limits::Limits;
use crate::layout::Layout;
use crate::progress::Progress;
use crate::store::{lock_root, Store, StoreError};
use crate::systemd::manager::Manager;
use crate::systemd::{ContainerName, UnitName};
use crate::Error;

/// What to update.
#[derive(Debug, Clone)]
pub struct UpdateRequest {
    /// The container.
    pub name: String,
    /// `--image`: a different image (default: the installed reference, re-pulled).
    pub image: Option<String>,
    /// `--set KEY=VALUE`, overlaid on the previous values.
    pub set: Vec<String>,
    /// The `--runtime` value.
    pub runtime: String,
    /// The berth executable the units run.
    pub berth: PathBuf,
    /// Plan only; change nothing.
    pub display: bool,
    /// Pull the image again (a tag may have moved); else use the stored one.
    pub refresh: bool,
    /// `set` is the whole desired set: previous `--set` values are dropped.
    pub reset_values: bool,
    /// Allow a footprint that grows (`--accept-footprint`, a manifest's
    /// `accept_footprint`); else such an update is refused and recorded as
    /// waiting.
    pub accept_footprint: bool,
    /// How hostfs modes reach the host; `None` keeps the installed choice.
    pub hostfs_modes: Option<super::hostfs::HostfsModes>,
    /// Caps on what pulling the image may decompress to.
    pub limits: Limits,
    /// The signature policy a pull applies.
    pub policy: crate::trust::source::PolicyOptions,
}

/// What an update or rollback did.
#[derive(Debug, Serialize)]
pub struct Updated {
    /// The container.
    pub name: String,
    /// Deployment before.
    pub from: String,
    /// Deployment after.
    pub to: String,
    /// Image before.
    pub from_digest: String,
    /// Image after.
    pub to_digest: String,
    /// Whether the service was restarted.
    pub restarted: bool,
    /// False when nothing changed (same image, no `--set`).
    pub changed: bool,
    /// Host files left in place, with the reason.
    pub kept: Vec<String>,
    /// Hostfs paths shared with other containers, naming the owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<String>,
    /// The plan (update only; `--display` prints it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// What the update adds to the footprint: accepted, or with
    /// `--display`, what needs accepting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub footprint_growth: Option<Footprint>,
}

/// The other slot of a deployment name (`NAME.0` ↔ `NAME.1`).
pub fn other_slot(name: &ContainerName, active: &str) -> String {
    if active == format!("{name}.0") {
        format!("{name}.1")
    } else {
        format!("{name}.0")
    }
}

fn active_info(layout: &Layout, name: &ContainerName) -> Result<Info, DeployError> {
    let link = containers_inside(layout).join(name.as_str());
    let root = layout.open_root()?;
    if !matches!(root.lstat(&link)?, Some(e) if e.kind == crate::rootfs::Kind::Symlink) {
        return Err(DeployError::NotInstalled {
            name: name.to_string(),
        });
    }
    Info::read(layout, name.as_str())
}

/// Updates the container per `req`.
pub fn update(
    layout: &Layout,
    req: &UpdateRequest,
    manager: &dyn Manager,
    progress: Arc<dyn Progress>,
) -> Result<Updated, Error> {
    let name = ContainerName::parse(&req.name).map_err(DeployError::from)?;
    let set = parse_set(&req.set)?;
    let current = {
        let _lock = lock_root(layout)?;
        if !req.display {
            recover_journal(layout)?;
        }
        active_info(layout, &name)?
    };
    let image_name = req
        .image
        .clone()
        .unwrap_or_else(|| current.image.reference.clone());
    // Re-pulled: the tag may have moved. Pull takes the lock itself.
    let fetch = Fetch {
        display: req.display,
        refresh: req.refresh,
        limits: req.limits,
        policy: req.policy.clone(),
    };
    let record = ensure_image(layout, &image_name, fetch, progress)?;
    let _lock = lock_root(layout)?;
    let current = active_info(layout, &name)?;
    let store = Store::open(layout, false)?
        .ok_or_else(|| StoreError::Damaged("store missing after pull".into()))?;
    let slot = other_slot(&name, &current.deployment);
    let mut out = Updated {
        name: name.to_string(),
        from: current.deployment.clone(),
        to: slot.clone(),
        from_digest: current.image.digest.clone(),
        to_digest: record.digest.clone(),
        restarted: false,
        changed: true,
        kept: Vec::new(),
        shared: Vec::new(),
        plan: None,
        footprint_growth: None,
    };
    if record.commit == current.image.commit
        && set.is_empty()
        && req.image.is_none()
        && !req.reset_values
    {
        out.changed = false;
        out.to = current.deployment.clone();
        if !req.display {
            gate::clear_wait(layout, &current)?;
        }
        return Ok(out);
    }
    let preq = PlanRequest {
        name: &name,
        image_name: &image_name,
        set: &set,
        runtime: &req.runtime,
        berth: &req.berth,
        slot: slot.clone(),
        previous: Some(&current),
        reset_values: req.reset_values,
        enable: !current.links.is_empty(),
        hostfs_modes: req.hostfs_modes.unwrap_or(current.hostfs_modes),
    };
    let plan = plan(layout, &store, &record, &preq, manager)?;
    let grows = growth(&gate::footprint_of(layout, &current)?, &plan.footprint);
    if !grows.is_empty() {
        if !req.display && !req.accept_footprint {
            return Err(refuse(layout, &current, &plan, grows)?.into());
        }
        out.footprint_growth = Some(grows);
    }
    if req.display {
        out.plan = Some(plan);
        return Ok(out);
    }
    let mut txn = Transaction::journaled(layout)?;
    let other = containers_inside(layout).join(&slot);
    let mut reuse = None;
    if txn.root().exists(&other) {
        // The rollback target of the previous update is replaced; its
        // checkout is reused when it is of the same commit.
        let same = Info::read_slot(layout, &slot).is_ok_and(|i| i.image.commit == record.commit);
        txn.remove(&other)?;
        let mut staged = other.clone().into_os_string();
        staged.push(super::txn::REMOVED_SUFFIX);
        let rootfs = std::path::PathBuf::from(staged).join("rootfs");
        let is_dir =
            matches!(txn.root().lstat(&rootfs), Ok(Some(e)) if e.kind == crate::rootfs::Kind::Dir);
        if same && is_dir {
            reuse = Some(rootfs);
        }
    }
    let mut info = stage(&mut txn, &store, &plan, reuse.as_deref())?;
    failpoint("update-stage")?;
    let files = host_files(&plan);
    let switched = switch(
        layout,
        &mut txn,
        name.as_str(),
        Some(&current),
        &files,
        &plan.links,
    )?;
    info.dirs = switched.dirs.clone();
    info.files = switched.tracked(&info.files);
    out.kept = switched.kept;
    out.shared = switched.shared;
    write_info(layout, &info)?;
    failpoint("update-files")?;
    out.restarted = activate(layout, txn, manager, &name, &current, &info)?;
    out.plan = Some(plan);
    Ok(out)
}

/// Records that the update to `plan` waits, and the error refusing it.
fn refuse(
    layout: &Layout,
    current: &Info,
    plan: &Plan,
    grows: Footprint,
) -> Result<DeployError, DeployError> {
    let lines = grows.lines().join("\n  ");
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let waiting = Waiting {
        reference: plan.image.reference.clone(),
        digest: plan.image.digest.clone(),
        from_digest: current.image.digest.clone(),
        growth: grows,
        since,
    };
    gate::record_wait(layout, current, &waiting)?;
    Ok(DeployError::FootprintGrows {
        name: current.name.clone(),
        digest: plan.image.digest.clone(),
        growth: lines,
    })
}

/// Switches back to the other deployment.
pub fn rollback(layout: &Layout, name: &str, manager: &dyn Manager) -> Result<Updated, Error> {
    let name = ContainerName::parse(name).map_err(DeployError::from)?;
    let _lock = lock_root(layout)?;
    recover_journal(layout)?;
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
    let restarted = activate(layout, txn, manager, &name, &current, &info)?;
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
    })
}

/// The commit point of update and rollback: `NAME` points at the new
/// deployment; then tmpfiles, reload, and a restart when the service was
/// running. A failed restart undoes everything and restarts the old one.
fn activate(
    layout: &Layout,
    mut txn: Transaction,
    manager: &dyn Manager,
    name: &ContainerName,
    current: &Info,
    info: &Info,
) -> Result<bool, Error> {
    let service = current.service().and_then(|u| UnitName::parse(u).ok());
    let was_running = service.as_ref().is_some_and(|u| manager.is_running(u));
    let link = containers_inside(layout).join(name.as_str());
    txn.replace_symlink(&link, Path::new(&info.deployment))?;
    failpoint("switch")?;
    apply_tmpfiles(layout, manager, info)?;
    manager.reload().map_err(DeployError::from)?;
    let new_service = info.service().and_then(|u| UnitName::parse(u).ok());
    if let (true, Some(unit)) = (was_running, &new_service) {
        let started = manager
            .restart(unit)
            .and_then(|_| settle(manager, unit, "restart"))
            .map_err(|e| with_journal(manager, unit, e));
        if let Err(e) = started {
            drop(txn);
            let back = manager
                .reload()
                .and_then(|_| service.as_ref().map_or(Ok(()), |old| manager.restart(old)));
            let detail = match back {
                Ok(()) => format!(
                    "{e}\nswitched {name} back to {} and restarted it",
                    current.deployment
                ),
                Err(b) => format!(
                    "{e}\nswitched {name} back to {}, but restarting it failed too: {b}",
                    current.deployment
                ),
            };
            return Err(DeployError::Failed { detail }.into());
        }
    }
    txn.commit();
    Ok(was_running && new_service.is_some())
}
