//! Switching the host from one deployment's files and links to another's,
//! inside a [`Transaction`]: install (from nothing), update (from the active
//! deployment to a new one), rollback (to the other deployment) and
//! uninstall (to nothing) are all this one operation.
//!
//! Rules, per path:
//! - in the new set only: written (parent directories created and recorded);
//! - in both: rewritten when the content or mode differs; a hostfs file the
//!   user edited since berth wrote it is left alone and reported, a file with
//!   berth's marker (unit, tmpfiles) is always replaced (it names the
//!   deployment directory, so an old copy would run the old deployment);
//! - in the old set only: removed when unmodified, else left and reported;
//! - directories berth created that end up empty are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::txn::Transaction;
use super::{in_root, io_err, sha256, DeployError, Info, Link, WrittenFile};
use crate::layout::Layout;

/// A host file of the deployment being switched to.
#[derive(Debug, Clone)]
pub struct HostFile {
    /// Path as seen inside the root.
    pub path: String,
    /// Content.
    pub content: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Carries berth's marker.
    pub owned: bool,
}

impl HostFile {
    /// Its record in `info.json`.
    pub fn written(&self) -> WrittenFile {
        WrittenFile {
            path: self.path.clone(),
            sha256: sha256(&self.content),
            mode: self.mode,
            owned: self.owned,
        }
    }
}

/// What a switch left in place, and the directories now berth's.
#[derive(Debug, Default)]
pub struct Switched {
    /// Paths left in place, with the reason.
    pub kept: Vec<String>,
    /// Host directories created by berth for this container, outermost first.
    pub dirs: Vec<String>,
}

fn unmodified(layout: &Layout, f: &WrittenFile) -> bool {
    std::fs::read(in_root(layout, &f.path)).is_ok_and(|b| sha256(&b) == f.sha256)
}

fn mode_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    path.symlink_metadata()
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

/// Switches the host below `root` from `from` (the active deployment, if
/// any) to `files` and `links`.
pub fn switch(
    layout: &Layout,
    txn: &mut Transaction,
    from: Option<&Info>,
    files: &[HostFile],
    links: &[Link],
) -> Result<Switched, DeployError> {
    let mut out = Switched::default();
    let mut dirs: Vec<String> = from.map(|i| i.dirs.clone()).unwrap_or_default();
    let old_files: BTreeMap<&str, &WrittenFile> = from
        .map(|i| i.files.iter().map(|f| (f.path.as_str(), f)).collect())
        .unwrap_or_default();
    let new_paths: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let old_links: &[Link] = from.map(|i| i.links.as_slice()).unwrap_or_default();

    // Links first away, files, then links in: a unit is never enabled
    // before its file is in place, nor left enabled without it.
    for l in old_links {
        if links.contains(l) {
            continue;
        }
        let p = in_root(layout, &l.path);
        match std::fs::read_link(&p) {
            Ok(t) if t == Path::new(&l.target) => txn.remove(&p)?,
            Ok(_) => out
                .kept
                .push(format!("{}: points elsewhere now; left in place", l.path)),
            Err(_) => {}
        }
    }
    for (path, old) in &old_files {
        if new_paths.contains(path) {
            continue;
        }
        let p = in_root(layout, path);
        if p.symlink_metadata().is_err() {
            continue;
        }
        if unmodified(layout, old) {
            txn.remove(&p)?;
        } else {
            out.kept.push(format!(
                "{path}: modified since berth wrote it; left in place"
            ));
        }
    }
    for f in files {
        let p = in_root(layout, &f.path);
        if p.symlink_metadata().is_ok() {
            let same =
                std::fs::read(&p).is_ok_and(|b| b == f.content) && mode_of(&p) == Some(f.mode);
            if same {
                continue;
            }
            let edited = old_files
                .get(f.path.as_str())
                .is_some_and(|old| !unmodified(layout, old));
            if edited && !f.owned {
                out.kept.push(format!(
                    "{}: modified since berth wrote it; left in place (the new version is not installed)",
                    f.path
                ));
                continue;
            }
            if edited {
                tracing::warn!(
                    "{}: replacing local edits (use a drop-in for local changes)",
                    f.path
                );
            }
        } else if let Some(parent) = p.parent() {
            record_dirs(layout, &mut dirs, txn.create_dir_all(parent)?);
        }
        txn.put_file(&p, &f.content, f.mode)?;
    }
    for l in links {
        let p = in_root(layout, &l.path);
        if std::fs::read_link(&p).is_ok_and(|t| t == Path::new(&l.target)) {
            continue;
        }
        if p.symlink_metadata().is_ok() {
            txn.remove(&p)?;
        } else if let Some(parent) = p.parent() {
            record_dirs(layout, &mut dirs, txn.create_dir_all(parent)?);
        }
        txn.created(&p)?;
        std::os::unix::fs::symlink(&l.target, &p).map_err(io_err(&p))?;
    }
    // Directories of ours left empty go, deepest first.
    let mut kept_dirs = Vec::new();
    for d in dirs.iter().rev() {
        let p = in_root(layout, d);
        // Entries staged for removal by this transaction don't count.
        let Ok(entries) = std::fs::read_dir(&p) else {
            continue;
        };
        let empty = entries.flatten().all(|e| {
            e.file_name()
                .to_string_lossy()
                .ends_with(super::txn::REMOVED_SUFFIX)
        });
        if empty {
            txn.remove(&p)?;
        } else {
            kept_dirs.push(d.clone());
        }
    }
    kept_dirs.reverse();
    out.dirs = kept_dirs;
    Ok(out)
}

fn record_dirs(layout: &Layout, dirs: &mut Vec<String>, created: Vec<std::path::PathBuf>) {
    for d in created {
        if let Ok(rel) = d.strip_prefix(layout.root()) {
            let inside = format!("/{}", rel.display());
            if !dirs.contains(&inside) {
                dirs.push(inside);
            }
        }
    }
}
