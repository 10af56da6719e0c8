//! `berth apply`: stage every entry (pull what is not stored, render and
//! validate every install and update without changing anything), then
//! switch in dependency order (removals last, in reverse); a failure puts
//! every entry already switched in this run back to where it was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::plan::{self, Action, Step};
use super::Manifest;
use crate::deploy::{self, InstallRequest, UpdateRequest};
use crate::image::limits::Limits;
use crate::layout::Layout;
use crate::progress::{Event, Progress};
use crate::systemd::manager::Manager;
use crate::systemd::{Dependencies, UnitName, UnitType};
use crate::trust::source::PolicyOptions;
use crate::Error;

/// What an apply did (or, with `plan_only`, would do).
#[derive(Debug, Serialize)]
pub struct Applied {
    /// Per container, in the order they were (or would be) switched.
    pub steps: Vec<Step>,
    /// Ordering the manifest asks for that the units do not declare.
    pub warnings: Vec<String>,
    /// Whether anything changed.
    pub changed: bool,
    /// The rendered plan of every install, update and reconfigure.
    #[serde(skip)]
    pub plans: BTreeMap<String, deploy::Plan>,
}

/// The common inputs of the deploy verbs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The `--runtime` value.
    pub runtime: String,
    /// The berth executable units run.
    pub berth: PathBuf,
    /// Print the plan only.
    pub plan_only: bool,
    /// Caps on what pulling an entry's image may decompress to.
    pub limits: Limits,
    /// The signature policy pulls apply (an entry's `verify` adds to it).
    pub policy: PolicyOptions,
}

fn installed(layout: &Layout, manager: &dyn Manager) -> Vec<crate::deploy::Listed> {
    deploy::list(layout, manager)
}

/// Applies `manifest` below `root`: `stage`, then `switch` (which
/// puts back what it switched when an entry fails).
pub fn apply(
    layout: &Layout,
    manifest: &Manifest,
    opts: &ApplyOptions,
    manager: &dyn Manager,
    progress: Arc<dyn Progress>,
) -> Result<Applied, Error> {
    deploy::recover_if_needed(layout, manager)?;
    let listed = installed(layout, manager);
    let names: BTreeSet<String> = listed.iter().map(|l| l.name.clone()).collect();
    let order = manifest.validate(&names).map_err(Error::from)?;
    let steps = plan::plan(layout, manifest, &order, &listed);
    let changed = steps.iter().any(|s| s.action != Action::Unchanged)
        || owners_after(layout, manifest, &steps) != plan::owners(layout);
    let mut out = Applied {
        plans: BTreeMap::new(),
        warnings: Vec::new(),
        changed,
        steps,
    };
    if !out.changed {
        out.warnings = ordering_warnings(layout, manifest, &BTreeMap::new());
        return Ok(out);
    }
    let rendered = stage(layout, opts, manager, &progress, &mut out)?;
    out.warnings = ordering_warnings(layout, manifest, &rendered);
    for w in &out.warnings {
        tracing::warn!("{w}");
    }
    if opts.plan_only {
        return Ok(out);
    }
    switch(layout, opts, manager, &progress, &out.steps)?;
    write_owners(layout, &owners_after(layout, manifest, &out.steps))?;
    Ok(out)
}

/// Pulls what is missing and renders every change (nothing is switched);
/// returns each rendered unit's text, for the ordering warnings. At boot
/// (berth-apply.service is not ordered after the network) the network is
/// waited for only when something must be pulled.
fn stage(
    layout: &Layout,
    opts: &ApplyOptions,
    manager: &dyn Manager,
    progress: &Arc<dyn Progress>,
    out: &mut Applied,
) -> Result<BTreeMap<String, String>, Error> {
    let needs_pull = out.steps.iter().any(|s| {
        matches!(s.action, Action::Install | Action::Update)
            && s.entry
                .as_ref()
                .is_some_and(|e| !deploy::install::is_stored(layout, &e.image))
    });
    if needs_pull && !opts.plan_only && manager.is_live() {
        if let Ok(online) = UnitName::parse("network-online.target") {
            if let Err(e) = manager.start(&online) {
                tracing::warn!("waiting for network-online.target: {e}");
            }
        }
    }
    let mut rendered = BTreeMap::new();
    for s in &out.steps {
        let Some(e) = &s.entry else { continue };
        let at = |err: Error| entry_error(s, err);
        match s.action {
            Action::Install | Action::Update if !opts.plan_only => {
                let fetch = deploy::install::Fetch {
                    limits: opts.limits,
                    policy: entry_policy(layout, e, opts).map_err(at)?,
                    ..Default::default()
                };
                deploy::install::ensure_image(layout, &e.image, fetch, progress.clone())
                    .map_err(at)?;
            }
            Action::Install | Action::Update | Action::Reconfigure => {}
            Action::Remove | Action::Unchanged => continue,
        }
        let plan = match s.action {
            Action::Install => deploy::install(
                layout,
                &install_req(e, opts, true),
                manager,
                progress.clone(),
            )
            .map(Some),
            _ => deploy::update(
                layout,
                &update_req(s, e, opts, true),
                manager,
                progress.clone(),
            )
            .and_then(|u| refuse_growth(s, e, u, opts.plan_only))
            .map(|u| u.plan),
        };
        match plan {
            Ok(Some(p)) => {
                if let Some(t) = unit_text(&p) {
                    rendered.insert(s.name.clone(), t);
                }
                out.plans.insert(s.name.clone(), p);
            }
            Ok(None) => {}
            Err(err) if opts.plan_only => {
                tracing::warn!("{}: not rendered in the plan: {err}", s.name);
            }
            Err(err) => return Err(at(err)),
        }
        if !opts.plan_only {
            entry_event(progress.as_ref(), &s.name, s.action, "staged");
        }
    }
    Ok(rendered)
}

/// Switches every step in order; on the first failure puts back every
/// entry already switched, in reverse, and returns that failure.
fn switch(
    layout: &Layout,
    opts: &ApplyOptions,
    manager: &dyn Manager,
    progress: &Arc<dyn Progress>,
    steps: &[Step],
) -> Result<(), Error> {
    let live = manager.is_live();
    let mut done: Vec<(String, Action)> = Vec::new();
    for s in steps {
        let r: Result<(), Error> = match (s.action, &s.entry) {
            (Action::Install, Some(e)) => {
                let mut req = install_req(e, opts, false);
                req.now = live && e.start;
                deploy::install(layout, &req, manager, progress.clone()).map(|_| ())
            }
            (Action::Update | Action::Reconfigure, Some(e)) => deploy::update(
                layout,
                &update_req(s, e, opts, false),
                manager,
                progress.clone(),
            )
            .map(|_| ()),
            (Action::Remove, _) => deploy::uninstall(layout, &s.name, manager).map(|_| ()),
            _ => Ok(()),
        };
        if let Err(err) = r {
            put_back(layout, manager, progress.as_ref(), done);
            return Err(entry_error(s, err));
        }
        if s.action != Action::Unchanged {
            entry_event(progress.as_ref(), &s.name, s.action, "switched");
        }
        done.push((s.name.clone(), s.action));
    }
    Ok(())
}

/// Undoes `done` (switched entries, in switch order) in reverse: an
/// install is uninstalled, an update rolled back. A failure to put one
/// back is logged and the rest still go back.
fn put_back(
    layout: &Layout,
    manager: &dyn Manager,
    progress: &dyn Progress,
    done: Vec<(String, Action)>,
) {
    let mut put_back = Vec::new();
    for (name, action) in done.into_iter().rev() {
        let r = match action {
            Action::Install => deploy::uninstall(layout, &name, manager).map(|_| ()),
            Action::Update | Action::Reconfigure => {
                deploy::rollback(layout, &name, manager).map(|_| ())
            }
            _ => Ok(()),
        };
        match r {
            Ok(()) => {
                entry_event(progress, &name, action, "put back");
                put_back.push(name);
            }
            Err(e) => tracing::error!("putting {name} back failed: {e}"),
        }
    }
    if !put_back.is_empty() {
        tracing::warn!("put back: {}", put_back.join(", "));
    }
}

fn entry_event(progress: &dyn Progress, name: &str, action: Action, step: &str) {
    progress.event(Event::Entry {
        name: name.to_string(),
        action: format!("{action:?}").to_lowercase(),
        step: step.to_string(),
    });
}

fn install_req(e: &super::Entry, opts: &ApplyOptions, display: bool) -> InstallRequest {
    InstallRequest {
        name: Some(e.name.clone()),
        image: e.image.clone(),
        set: e.set.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        runtime: opts.runtime.clone(),
        berth: opts.berth.clone(),
        display,
        now: false,
        enable: e.enabled,
        hostfs_modes: e.hostfs_modes,
        limits: opts.limits,
        policy: opts.policy.clone(),
        health: e.health.clone(),
        after: e.ordered_after(),
    }
}

fn update_req(s: &Step, e: &super::Entry, opts: &ApplyOptions, display: bool) -> UpdateRequest {
    UpdateRequest {
        name: e.name.clone(),
        image: (s.action == Action::Update).then(|| e.image.clone()),
        set: e.set.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        runtime: opts.runtime.clone(),
        berth: opts.berth.clone(),
        display,
        refresh: false,
        reset_values: true,
        accept_footprint: e.accept_footprint,
        hostfs_modes: Some(e.hostfs_modes),
        limits: opts.limits,
        policy: opts.policy.clone(),
        health: Some(e.health.clone()),
        after: Some(e.ordered_after()),
        soak: e.soak.unwrap_or(deploy::soak::DEFAULT_SOAK),
        // The manifest asks for this image: apply converges to it.
        retry_failed: true,
    }
}

/// The policy an entry's pull applies: the options' plus the entry's
/// `verify` key (read inside the root).
fn entry_policy(
    layout: &Layout,
    e: &super::Entry,
    opts: &ApplyOptions,
) -> Result<PolicyOptions, Error> {
    let mut policy = opts.policy.clone();
    if let Some(v) = &e.verify {
        policy
            .extra
            .push(crate::trust::pin::pinned(layout, &v.key)?);
    }
    Ok(policy)
}

/// Staging refuses an update whose footprint grows unless the entry
/// accepts it, before anything is switched (`--plan` only warns).
fn refuse_growth(
    s: &Step,
    e: &super::Entry,
    u: deploy::update::Updated,
    plan_only: bool,
) -> Result<deploy::update::Updated, Error> {
    let Some(g) = u.footprint_growth.as_ref().filter(|_| !e.accept_footprint) else {
        return Ok(u);
    };
    let err = deploy::DeployError::FootprintGrows {
        name: s.name.clone(),
        digest: u.to_digest.clone(),
        growth: g.lines().join("\n  "),
    };
    if plan_only {
        tracing::warn!("{err}");
        return Ok(u);
    }
    Err(err.into())
}

fn unit_text(p: &deploy::Plan) -> Option<String> {
    p.files
        .iter()
        .find(|f| f.path.ends_with(".service") && f.path.contains(&format!("/{}.", p.name)))
        .and_then(|f| String::from_utf8(f.content.clone()).ok())
}

fn entry_error(s: &Step, err: Error) -> Error {
    Error::InEntry {
        file: s.file.clone().unwrap_or_else(|| "(removal)".into()),
        name: s.name.clone(),
        action: format!("{:?}", s.action).to_lowercase(),
        source: Box::new(err),
    }
}

/// The owners record after the steps: entries of this manifest owned by
/// it, its removals dropped, other owners untouched.
fn owners_after(layout: &Layout, manifest: &Manifest, steps: &[Step]) -> BTreeMap<String, String> {
    let mut owners = plan::owners(layout);
    let source = super::owner_key(layout.root(), &manifest.source);
    for s in steps {
        if s.action == Action::Remove {
            owners.remove(&s.name);
        } else {
            owners.insert(s.name.clone(), source.clone());
        }
    }
    owners
}

fn write_owners(layout: &Layout, owners: &BTreeMap<String, String>) -> Result<(), Error> {
    if &plan::owners(layout) == owners {
        return Ok(());
    }
    let json = serde_json::to_string_pretty(owners).unwrap_or_default();
    let root = layout.open_root()?;
    root.write_atomic(&layout.owners_inside(), json.as_bytes(), 0o644)?;
    Ok(())
}

/// `after`/`requires` of the manifest that the units themselves do not
/// declare (so systemd will not order them at boot): one line each.
fn ordering_warnings(
    layout: &Layout,
    manifest: &Manifest,
    rendered: &BTreeMap<String, String>,
) -> Vec<String> {
    let text_of = |name: &str| -> Option<String> {
        rendered.get(name).cloned().or_else(|| {
            let unit = format!("{}/{name}.service", layout.unit_dir());
            let text = layout
                .open_root()
                .ok()?
                .read(std::path::Path::new(&unit))
                .ok()?;
            String::from_utf8(text).ok()
        })
    };
    let deps_of = |name: &str| -> Option<(UnitName, Dependencies)> {
        let unit = crate::systemd::ContainerName::parse(name)
            .ok()?
            .unit(UnitType::Service);
        let d = Dependencies::parse(&text_of(name)?, &unit).ok()?;
        Some((unit, d))
    };
    let mut out = Vec::new();
    for l in &manifest.entries {
        let e = &l.entry;
        let Some((unit, deps)) = deps_of(&e.name) else {
            continue;
        };
        for d in e.after.iter().chain(&e.requires) {
            let Ok(dn) = crate::systemd::ContainerName::parse(d) else {
                continue;
            };
            let dunit = dn.unit(UnitType::Service);
            let declared = deps.after.contains(&dunit)
                || deps_of(d).is_some_and(|(_, dd)| dd.before.contains(&unit));
            if !declared {
                out.push(format!(
                    "{}: the manifest orders {} after {d}, but neither {unit} says After={dunit} \
                     nor {dunit} says Before={unit}; systemd will not order them at boot \
                     (set the image's ordering value, e.g. AFTER={dunit})",
                    l.file.display(),
                    e.name
                ));
            }
        }
    }
    out
}
