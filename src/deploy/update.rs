//! `berth update`: the container has two deployment slots, `NAME.0` and
//! `NAME.1`; `NAME` points at the active one. Update fills the other slot
//! from the (re-pulled) image with the previous values overlaid by
//! `--set`, and switches to it ([`super::activate`]: restart, soak, and
//! switch back on failure). Several containers update as one group:
//! staged together, switched in order, put back together.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::activate::{activate, Member};
use super::footprint::{growth, Footprint};
use super::gate::{self, Waiting};
use super::install::{ensure_image, host_files, parse_set, stage, write_info, Fetch};
use super::last_update::{self, LastUpdate, Outcome};
use super::plan::{plan, Plan, PlanRequest};
use super::recover::recover_interrupted;
use super::switch::switch;
use super::txn::Transaction;
use super::{containers_inside, failpoint, DeployError, Info};
use crate::image::limits::Limits;
use crate::layout::Layout;
use crate::progress::Progress;
use crate::store::{lock_root, Store, StoreError};
use crate::systemd::manager::Manager;
use crate::systemd::ContainerName;
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
    /// The operator's health check keys (a manifest's `health`); `None`
    /// keeps the installed ones.
    pub health: Option<crate::runtime::health::source::Overrides>,
    /// Containers a manifest entry orders this one after; `None` keeps
    /// the recorded ones.
    pub after: Option<Vec<String>>,
    /// How long the restarted service must hold (active, ready, healthy,
    /// no restarts) before the update stays; zero keeps the one-second
    /// settle.
    pub soak: Duration,
    /// Try a digest that was rolled back before on this deployment
    /// (`berth update NAME`); `update --all` does not.
    pub retry_failed: bool,
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
    /// Why the update was not tried: its digest was rolled back before
    /// (`update --all` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The other slot of a deployment name (`NAME.0` ↔ `NAME.1`).
pub fn other_slot(name: &ContainerName, active: &str) -> String {
    if active == format!("{name}.0") {
        format!("{name}.1")
    } else {
        format!("{name}.0")
    }
}

pub(super) fn active_info(layout: &Layout, name: &ContainerName) -> Result<Info, DeployError> {
    let link = containers_inside(layout).join(name.as_str());
    let root = layout.open_root()?;
    if !matches!(root.lstat(&link)?, Some(e) if e.kind == crate::rootfs::Kind::Symlink) {
        return Err(DeployError::NotInstalled {
            name: name.to_string(),
        });
    }
    Info::read(layout, name.as_str())
}

/// Updates the container per `req` (a group of one).
pub fn update(
    layout: &Layout,
    req: &UpdateRequest,
    manager: &dyn Manager,
    progress: Arc<dyn Progress>,
) -> Result<Updated, Error> {
    let mut out = update_group(layout, std::slice::from_ref(req), manager, progress)?;
    out.pop().ok_or_else(|| {
        DeployError::Failed {
            detail: format!("updating {}: nothing was done", req.name),
        }
        .into()
    })
}

/// Updates `reqs` as one group, all or nothing: every image is pulled and
/// every deployment staged first (one journaled transaction), then the
/// containers are switched in the order given (dependencies first), each
/// restart held to its soak. When one fails, every member is put back.
/// Results come in the order of `reqs`.
pub fn update_group(
    layout: &Layout,
    reqs: &[UpdateRequest],
    manager: &dyn Manager,
    progress: Arc<dyn Progress>,
) -> Result<Vec<Updated>, Error> {
    let display = reqs.iter().any(|r| r.display);
    let mut names = Vec::new();
    for r in reqs {
        names.push(ContainerName::parse(&r.name).map_err(DeployError::from)?);
    }
    let mut images = Vec::new();
    {
        let _lock = lock_root(layout)?;
        if !display {
            recover_interrupted(layout, manager)?;
        }
        for (r, n) in reqs.iter().zip(&names) {
            let current = active_info(layout, n)?;
            images.push(r.image.clone().unwrap_or(current.image.reference));
        }
    }
    // Re-pulled: the tag may have moved. Pull takes the lock itself.
    let mut records = Vec::new();
    for (r, image) in reqs.iter().zip(&images) {
        let fetch = Fetch {
            display: r.display,
            refresh: r.refresh,
            limits: r.limits,
            policy: r.policy.clone(),
        };
        records.push(ensure_image(layout, image, fetch, progress.clone())?);
    }
    let _lock = lock_root(layout)?;
    let store = Store::open(layout, false)?
        .ok_or_else(|| StoreError::Damaged("store missing after pull".into()))?;
    let mut outs = Vec::new();
    let mut todo = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let (out, plan) = prepare(
            layout,
            &store,
            r,
            &names[i],
            &images[i],
            &records[i],
            manager,
        )?;
        if let Some(plan) = plan {
            todo.push((i, active_info(layout, &names[i])?, plan));
        }
        outs.push(out);
    }
    if display || todo.is_empty() {
        return Ok(outs);
    }
    let mut txn = Transaction::journaled(layout)?;
    let mut staged = Vec::new();
    for (i, current, plan) in todo {
        let info = stage_one(
            layout,
            &mut txn,
            &store,
            &names[i],
            &current,
            &plan,
            &mut outs[i],
        )?;
        outs[i].plan = Some(plan);
        staged.push((i, current, info));
    }
    failpoint("update-files")?;
    let members: Vec<Member<'_>> = staged
        .iter()
        .map(|(i, current, info)| Member {
            current,
            info,
            soak: reqs[*i].soak,
        })
        .collect();
    match activate(layout, txn, manager, &members) {
        Ok(restarted) => {
            for ((i, current, info), restarted) in staged.iter().zip(restarted) {
                outs[*i].restarted = restarted;
                if restarted {
                    let last = last_update(current, info, Outcome::Passed, String::new());
                    last_update::record(layout, info, &last)?;
                }
            }
            Ok(outs)
        }
        Err(e) => {
            if let DeployError::RolledBack { name, reason, .. } = &e {
                if let Some((_, current, info)) = staged.iter().find(|(_, c, _)| &c.name == name) {
                    let last = last_update(current, info, Outcome::RolledBack, reason.clone());
                    if let Err(w) = last_update::record(layout, current, &last) {
                        tracing::warn!("recording the failed update of {name}: {w}");
                    }
                }
            }
            Err(e.into())
        }
    }
}

fn last_update(current: &Info, info: &Info, outcome: Outcome, reason: String) -> LastUpdate {
    LastUpdate {
        reference: info.image.reference.clone(),
        digest: info.image.digest.clone(),
        from_digest: current.image.digest.clone(),
        outcome,
        reason,
        at: last_update::now(),
    }
}

/// What updating one container would do: its result so far, and the plan
/// to stage (`None`: nothing to do, refused digest, or `--display`).
fn prepare(
    layout: &Layout,
    store: &Store,
    req: &UpdateRequest,
    name: &ContainerName,
    image_name: &str,
    record: &crate::store::image::ImageRecord,
    manager: &dyn Manager,
) -> Result<(Updated, Option<Plan>), Error> {
    let set = parse_set(&req.set)?;
    let current = active_info(layout, name)?;
    let slot = other_slot(name, &current.deployment);
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
        skipped: None,
    };
    let same_image = record.commit == current.image.commit && req.image.is_none();
    if same_image
        && set.is_empty()
        && !req.reset_values
        && req.health.as_ref().is_none_or(|h| *h == current.health)
        && req.after.as_ref().is_none_or(|a| *a == current.after)
    {
        out.changed = false;
        out.to = current.deployment.clone();
        if !req.display {
            gate::clear_wait(layout, &current)?;
        }
        return Ok((out, None));
    }
    let failed =
        last_update::read(layout, &current).filter(|l| l.refuses(&current, &record.digest));
    if let (Some(l), true, false) = (&failed, req.retry_failed, req.display) {
        tracing::warn!(
            "{name}: retrying {} ({}), which was rolled back before: {}",
            l.digest,
            l.reference,
            l.reason
        );
    }
    if let (Some(l), false) = (failed, req.retry_failed) {
        out.changed = false;
        out.to = current.deployment.clone();
        out.skipped = Some(format!(
            "{name}: not retrying {} ({}): it was rolled back: {}; `berth update {name}` retries it",
            l.digest, l.reference, l.reason
        ));
        return Ok((out, None));
    }
    let preq = PlanRequest {
        name,
        image_name,
        set: &set,
        runtime: &req.runtime,
        berth: &req.berth,
        slot,
        previous: Some(&current),
        reset_values: req.reset_values,
        enable: !current.links.is_empty(),
        hostfs_modes: req.hostfs_modes.unwrap_or(current.hostfs_modes),
        health: req.health.as_ref().unwrap_or(&current.health),
        after: req.after.as_deref().unwrap_or(&current.after),
    };
    let plan = plan(layout, store, record, &preq, manager)?;
    let grows = growth(&gate::footprint_of(layout, &current)?, &plan.footprint);
    if !grows.is_empty() {
        if !req.display && !req.accept_footprint {
            return Err(refuse(layout, &current, &plan, grows)?.into());
        }
        out.footprint_growth = Some(grows);
    }
    if req.display {
        out.plan = Some(plan);
        return Ok((out, None));
    }
    Ok((out, Some(plan)))
}

/// Stages `plan` into the other slot of `name` and switches its host files
/// inside `txn`; returns the staged deployment's record (written).
fn stage_one(
    layout: &Layout,
    txn: &mut Transaction,
    store: &Store,
    name: &ContainerName,
    current: &Info,
    plan: &Plan,
    out: &mut Updated,
) -> Result<Info, Error> {
    let slot = other_slot(name, &current.deployment);
    let other = containers_inside(layout).join(&slot);
    let mut reuse = None;
    if txn.root().exists(&other) {
        // The rollback target of the previous update is replaced; its
        // checkout is reused when it is of the same commit.
        let same =
            Info::read_slot(layout, &slot).is_ok_and(|i| i.image.commit == plan.image.commit);
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
    let mut info = stage(txn, store, plan, reuse.as_deref())?;
    failpoint("update-stage")?;
    let files = host_files(plan);
    let switched = switch(
        layout,
        txn,
        name.as_str(),
        Some(current),
        &files,
        &plan.links,
    )?;
    info.dirs = switched.dirs.clone();
    info.files = switched.tracked(&info.files);
    out.kept = switched.kept;
    out.shared = switched.shared;
    write_info(layout, &info)?;
    Ok(info)
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
