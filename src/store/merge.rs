//! The image tree: layer commits merged bottom to top with whiteouts applied.
//!
//! Works on OSTree trees only (no checkout): each layer's dirtree objects are
//! walked and applied to one `MutableTree`. Per directory: an opaque marker
//! first clears what lower layers put there, then `.wh.NAME` removes NAME,
//! then the layer's files replace and its directories merge. Directories the
//! layer only implies keep the lower layer's metadata. A subtree that is new
//! in the merged tree and comes from a layer without whiteouts is linked as
//! is (no walk).

use std::collections::HashSet;

use ostree::glib;

use super::import::{lookup, META_IMPLICIT, META_WHITEOUTS};
use super::{ot, Store, StoreError};
use crate::Error;

const OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT: &str = ".wh.";

/// A layer commit as the merge needs it.
struct LayerTree {
    contents: String,
    metadata: String,
    implicit: HashSet<String>,
    whiteouts: bool,
}

fn csum(v: &glib::Variant) -> String {
    ostree::checksum_from_bytes_v(v).to_string()
}

fn load_layer(store: &Store, commit: &str) -> Result<LayerTree, Error> {
    let (v, _) = store
        .repo()
        .load_commit(commit)
        .map_err(ot(|| format!("loading layer commit {commit}")))?;
    let meta = glib::VariantDict::new(Some(&v.child_value(0)));
    let implicit: Vec<String> = meta
        .lookup::<Vec<String>>(META_IMPLICIT)
        .ok()
        .flatten()
        .unwrap_or_default();
    let whiteouts = meta
        .lookup::<bool>(META_WHITEOUTS)
        .ok()
        .flatten()
        .unwrap_or(true);
    Ok(LayerTree {
        contents: csum(&v.child_value(6)),
        metadata: csum(&v.child_value(7)),
        implicit: implicit.into_iter().collect(),
        whiteouts,
    })
}

/// Entries of one dirtree object.
struct DirTree {
    files: Vec<(String, String)>,
    dirs: Vec<(String, String, String)>,
}

fn load_dirtree(repo: &ostree::Repo, checksum: &str) -> Result<DirTree, Error> {
    let v = repo
        .load_variant(ostree::ObjectType::DirTree, checksum)
        .map_err(ot(|| format!("loading dirtree {checksum}")))?;
    let files_v = v.child_value(0);
    let dirs_v = v.child_value(1);
    let mut files = Vec::with_capacity(files_v.n_children());
    for i in 0..files_v.n_children() {
        let f = files_v.child_value(i);
        let name = f.child_value(0).str().unwrap_or_default().to_string();
        files.push((name, csum(&f.child_value(1))));
    }
    let mut dirs = Vec::with_capacity(dirs_v.n_children());
    for i in 0..dirs_v.n_children() {
        let d = dirs_v.child_value(i);
        let name = d.child_value(0).str().unwrap_or_default().to_string();
        dirs.push((name, csum(&d.child_value(1)), csum(&d.child_value(2))));
    }
    Ok(DirTree { files, dirs })
}

/// Merges layer commits (bottom first) into one tree; returns it unwritten.
pub fn merge_layers(store: &Store, layer_commits: &[String]) -> Result<ostree::MutableTree, Error> {
    let merged = ostree::MutableTree::new();
    let mut fresh = true;
    for commit in layer_commits {
        let layer = load_layer(store, commit)?;
        if fresh && !layer.whiteouts {
            // The bottom layer without whiteouts is the starting tree as is.
            if !merged.fill_empty_from_dirtree(store.repo(), &layer.contents, &layer.metadata) {
                return Err(
                    StoreError::Damaged(format!("cannot load layer commit {commit}")).into(),
                );
            }
            fresh = false;
            continue;
        }
        if fresh || !layer.implicit.contains("") {
            merged.set_metadata_checksum(&layer.metadata);
        }
        fresh = false;
        apply(store.repo(), &merged, "", &layer.contents, &layer)?;
    }
    if fresh {
        let meta = super::import::implicit_dirmeta(store.repo())?;
        merged.set_metadata_checksum(&meta);
    }
    Ok(merged)
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}/{name}")
    }
}

fn apply(
    repo: &ostree::Repo,
    dst: &ostree::MutableTree,
    path: &str,
    tree_csum: &str,
    layer: &LayerTree,
) -> Result<(), Error> {
    let tree = load_dirtree(repo, tree_csum)?;
    let remove = |name: &str| -> Result<(), Error> {
        dst.remove(name, true)
            .map_err(ot(|| format!("removing {}", join(path, name))))?;
        Ok(())
    };
    if tree.files.iter().any(|(n, _)| n == OPAQUE) {
        for name in dst.copy_files().keys().chain(dst.copy_subdirs().keys()) {
            remove(name)?;
        }
    }
    for (name, _) in &tree.files {
        if let Some(target) = name.strip_prefix(WHITEOUT) {
            if name != OPAQUE && !target.starts_with(".wh.") {
                remove(target)?;
            }
        }
    }
    for (name, checksum) in &tree.files {
        if name.starts_with(WHITEOUT) {
            continue;
        }
        remove(name)?;
        dst.replace_file(name, checksum)
            .map_err(ot(|| format!("adding {}", join(path, name))))?;
    }
    for (name, sub_contents, sub_meta) in &tree.dirs {
        let sub_path = join(path, name);
        let (file, existing) = lookup(dst, name)?;
        if file.is_some() {
            remove(name)?;
        }
        match existing {
            Some(sub) => {
                if !layer.implicit.contains(&sub_path) {
                    sub.set_metadata_checksum(sub_meta);
                }
                apply(repo, &sub, &sub_path, sub_contents, layer)?;
            }
            None => {
                let sub = dst
                    .ensure_dir(name)
                    .map_err(ot(|| format!("creating {sub_path}")))?;
                if layer.whiteouts {
                    sub.set_metadata_checksum(sub_meta);
                    apply(repo, &sub, &sub_path, sub_contents, layer)?;
                } else if !sub.fill_empty_from_dirtree(repo, sub_contents, sub_meta) {
                    return Err(
                        StoreError::Damaged(format!("cannot link {sub_path} of a layer")).into(),
                    );
                }
            }
        }
    }
    Ok(())
}
