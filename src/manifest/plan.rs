//! What `berth apply` would do, per entry, computed from the manifest and
//! the installed containers without changing anything.
//!
//! An entry is compared by what the manifest states: the image reference
//! as written and the values. A tag that moved in the registry is not a
//! difference here (`berth update --all` follows tags); so applying the
//! same manifest twice reads a few small files and changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Entry, Manifest};
use crate::deploy::{Info, Listed};
use crate::layout::Layout;
use crate::template::Provenance;

/// The action for one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Not installed: install it.
    Install,
    /// Installed from another image: update to the manifest's.
    Update,
    /// Same image, other values: redeploy with the manifest's values.
    Reconfigure,
    /// Installed by this manifest, gone from it: uninstall.
    Remove,
    /// Matches the manifest.
    Unchanged,
}

/// One line of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The container.
    pub name: String,
    /// What to do.
    pub action: Action,
    /// Why.
    pub reason: String,
    /// The manifest entry (none for removals).
    #[serde(skip)]
    pub entry: Option<Entry>,
    /// Its file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// Reads the owners record: who installed what (the layout's
/// `owners.json`, `ROOT/var/lib/berth/owners.json`), container name → the
/// manifest path that owns it. Containers installed by hand are absent.
pub fn owners(layout: &Layout) -> BTreeMap<String, String> {
    layout
        .open_root()
        .and_then(|r| r.read(&layout.owners_inside()))
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
        .unwrap_or_default()
}

/// The values an operator chose for an installed container (`--set` and
/// those carried over from earlier `--set`s).
pub fn chosen_values(info: &Info) -> BTreeMap<String, String> {
    info.values
        .iter()
        .filter(|(k, v)| match v.provenance {
            Provenance::Set => true,
            // The generated UUID is carried over as a previous value too.
            Provenance::Previous => *k != "UUID",
            _ => false,
        })
        .map(|(k, v)| (k.to_string(), v.value.clone()))
        .collect()
}

/// The plan for `manifest` (entries in `order`) against `installed`.
pub fn plan(
    layout: &Layout,
    manifest: &Manifest,
    order: &[usize],
    installed: &[Listed],
) -> Vec<Step> {
    let owners = owners(layout);
    let source = super::owner_key(layout.root(), &manifest.source);
    let installed_names: BTreeSet<&str> = installed.iter().map(|l| l.name.as_str()).collect();
    let mut steps = Vec::new();
    for &i in order {
        let l = &manifest.entries[i];
        let e = &l.entry;
        let file = Some(l.file.display().to_string());
        let step = |action, reason: String| Step {
            name: e.name.clone(),
            action,
            reason,
            entry: Some(e.clone()),
            file: file.clone(),
        };
        if !installed_names.contains(e.name.as_str()) {
            steps.push(step(
                Action::Install,
                format!("not installed; image {}", e.image),
            ));
            continue;
        }
        let Ok(info) = Info::read(layout, &e.name) else {
            steps.push(step(Action::Install, "its deployment is unreadable".into()));
            continue;
        };
        let adopted = match owners.get(&e.name) {
            Some(o) if o == &source => String::new(),
            Some(o) => format!(" (taken over from the manifest {o})"),
            None => " (installed by hand; the manifest takes it over)".into(),
        };
        let given = info.values.get("IMAGE_NAME").unwrap_or_default();
        if e.image != given && e.image != info.image.reference {
            steps.push(step(
                Action::Update,
                format!("image {given} -> {}{adopted}", e.image),
            ));
            continue;
        }
        let have = chosen_values(&info);
        if have != e.set {
            let mut diffs = Vec::new();
            for (k, v) in &e.set {
                match have.get(k) {
                    Some(old) if old == v => {}
                    Some(old) => diffs.push(format!("{k}: {old} -> {v}")),
                    None => diffs.push(format!("{k}: (default) -> {v}")),
                }
            }
            for (k, old) in &have {
                if !e.set.contains_key(k) {
                    diffs.push(format!("{k}: {old} -> (default)"));
                }
            }
            steps.push(step(
                Action::Reconfigure,
                format!("values {}{adopted}", diffs.join(", ")),
            ));
            continue;
        }
        if info.hostfs_modes != e.hostfs_modes {
            steps.push(step(
                Action::Reconfigure,
                format!(
                    "hostfs_modes {} -> {}{adopted}",
                    info.hostfs_modes.as_str(),
                    e.hostfs_modes.as_str()
                ),
            ));
            continue;
        }
        if info.after != e.ordered_after() {
            steps.push(step(
                Action::Reconfigure,
                format!("after/requires changed{adopted}"),
            ));
            continue;
        }
        if info.health != e.health {
            steps.push(step(
                Action::Reconfigure,
                format!("health check keys changed{adopted}"),
            ));
            continue;
        }
        let reason = if adopted.is_empty() {
            "matches the manifest".to_string()
        } else {
            format!("matches the manifest{adopted}")
        };
        steps.push(step(Action::Unchanged, reason));
    }
    let declared: BTreeSet<&str> = manifest
        .entries
        .iter()
        .map(|l| l.entry.name.as_str())
        .collect();
    let mut removals: Vec<&String> = owners
        .iter()
        .filter(|(n, o)| {
            *o == &source && !declared.contains(n.as_str()) && installed_names.contains(n.as_str())
        })
        .map(|(n, _)| n)
        .collect();
    removals.sort_by(|a, b| b.cmp(a));
    for n in removals {
        steps.push(Step {
            name: n.clone(),
            action: Action::Remove,
            reason: "installed by this manifest, no longer in it".into(),
            entry: None,
            file: None,
        });
    }
    steps
}
