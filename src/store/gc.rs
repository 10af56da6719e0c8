//! Removing images and collecting what nothing references.
//!
//! An image is in use while a deployment under `ROOT/var/lib/berth/containers`
//! names it in its `info.json` (`image.reference` or `image.commit`).

use std::collections::HashSet;

use serde::Serialize;

use super::image::{self, ImageRecord};
use super::{ot, refs, Store, StoreError, NOCANCEL};
use crate::layout::Layout;
use crate::Error;

/// Names of the containers whose deployments use `record`.
pub fn users(layout: &Layout, record: &ImageRecord) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(root) = layout.open_root() else {
        return out;
    };
    let cdir = std::path::PathBuf::from(layout.containers_inside());
    let Ok(entries) = root.read_dir(&cdir) else {
        return out;
    };
    for entry in entries {
        let info = cdir.join(entry).join("info.json");
        let Ok(text) = root.read(&info) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
            tracing::warn!("{}: not valid JSON; ignoring it", info.display());
            continue;
        };
        let image = &v["image"];
        if image["reference"].as_str() == Some(&record.reference)
            || image["commit"].as_str() == Some(&record.commit)
        {
            let name = v["name"].as_str().unwrap_or_default().to_string();
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out.sort();
    out
}

/// Removes the image stored as `reference`; refuses while in use unless `force`.
pub fn remove(store: &Store, reference: &str, force: bool) -> Result<ImageRecord, Error> {
    let record = image::find(store, reference)?.ok_or_else(|| StoreError::ImageNotFound {
        name: reference.to_string(),
    })?;
    let users = users(store.layout(), &record);
    if !users.is_empty() && !force {
        return Err(StoreError::InUse {
            name: reference.to_string(),
            users: users.join(", "),
        }
        .into());
    }
    store
        .repo()
        .set_ref_immediate(None, &refs::image_ref(reference), None, NOCANCEL)
        .map_err(ot(|| format!("removing {reference}")))?;
    Ok(record)
}

/// What a prune removed.
#[derive(Debug, Default, Serialize)]
pub struct Pruned {
    /// Layer commits dropped.
    pub removed_layers: usize,
    /// Objects deleted.
    pub removed_objects: i32,
    /// Bytes freed.
    pub freed_bytes: u64,
}

/// The commits the deployments below the layout were checked out from
/// (both slots of every container, as their `info.json` records).
pub fn deployed_commits(layout: &Layout) -> HashSet<String> {
    let mut out = HashSet::new();
    let Ok(root) = layout.open_root() else {
        return out;
    };
    let cdir = std::path::PathBuf::from(layout.containers_inside());
    let Ok(entries) = root.read_dir(&cdir) else {
        return out;
    };
    for entry in entries {
        let Ok(text) = root.read(&cdir.join(entry).join("info.json")) else {
            continue;
        };
        let v = serde_json::from_slice::<serde_json::Value>(&text).unwrap_or_default();
        if let Some(c) = v["image"]["commit"].as_str() {
            out.insert(c.to_string());
        }
    }
    out
}

/// Makes the `berth/deployed/` refs exactly the deployed commits the
/// repo holds: a deployment's image stays while either slot uses it, even
/// when its tag moved on (the rollback target of an update).
fn pin_deployed(store: &Store) -> Result<(), Error> {
    let want = deployed_commits(store.layout());
    for (r, _) in store.refs_with_prefix(refs::DEPLOYED_PREFIX)? {
        let commit = r.strip_prefix(refs::DEPLOYED_PREFIX).unwrap_or_default();
        if !want.contains(commit) {
            store
                .repo()
                .set_ref_immediate(None, &r, None, NOCANCEL)
                .map_err(ot(|| format!("removing {r}")))?;
        }
    }
    for c in &want {
        let present = store
            .repo()
            .has_object(ostree::ObjectType::Commit, c, NOCANCEL)
            .map_err(ot(|| format!("looking up commit {c}")))?;
        if present {
            let r = format!("{}{c}", refs::DEPLOYED_PREFIX);
            store
                .repo()
                .set_ref_immediate(None, &r, Some(c), NOCANCEL)
                .map_err(ot(|| format!("setting {r}")))?;
        }
    }
    Ok(())
}

/// Drops layer refs no image uses, then every object no ref reaches; a
/// commit any deployment uses is pinned first, so it is never pruned.
pub fn prune(store: &Store) -> Result<Pruned, Error> {
    pin_deployed(store)?;
    let used: HashSet<String> = image::list(store)?
        .iter()
        .flat_map(|i| i.layers.iter().map(|l| l.diff_id.clone()))
        .collect();
    let mut pruned = Pruned::default();
    for (r, _) in store.refs_with_prefix(refs::LAYER_PREFIX)? {
        let keep = refs::layer_diff_id(&r).is_some_and(|d| used.contains(&d));
        if !keep {
            store
                .repo()
                .set_ref_immediate(None, &r, None, NOCANCEL)
                .map_err(ot(|| format!("removing {r}")))?;
            pruned.removed_layers += 1;
        }
    }
    let (_, removed, freed) = store
        .repo()
        .prune(ostree::RepoPruneFlags::REFS_ONLY, -1, NOCANCEL)
        .map_err(ot(|| "pruning unreachable objects".to_string()))?;
    pruned.removed_objects = removed;
    pruned.freed_bytes = freed;
    Ok(pruned)
}
