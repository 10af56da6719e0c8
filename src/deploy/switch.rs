//! Switching the host from one deployment's files and links to another's,
//! inside a [`Transaction`]: install (from nothing), update (from the active
//! deployment to a new one), rollback (to the other deployment) and
//! uninstall (to nothing) are all this one operation.
//!
//! Rules, per path:
//! - berth's own files (units, tmpfiles: `owned`) and links: written when
//!   new, always replaced when they differ (they name the deployment
//!   directory), removed when gone from the new set and unmodified;
//! - hostfs files, symlinks and empty directories go through the
//!   [`Registry`]: written by their first container, shared by later ones
//!   (not rewritten), removed with their last user when unchanged; a path
//!   that existed before berth is left alone and reported; a hostfs file
//!   the user edited since berth wrote it is never overwritten;
//! - directories berth created are removed when no container uses them and
//!   they are empty.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::shared::{decide, registry_path, HostfsAction, Registry, SharedPath};
use super::txn::Transaction;
use super::{sha256, DeployError, EntryKind, Info, Link, WrittenFile};
use crate::layout::Layout;
use crate::rootfs::{Kind, Root};

/// A host path of the deployment being switched to.
#[derive(Debug, Clone)]
pub struct HostFile {
    /// Path as seen inside the root.
    pub path: String,
    /// Content; a symlink's target; empty for a directory.
    pub content: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Carries berth's marker.
    pub owned: bool,
    /// File, empty directory or symlink.
    pub kind: EntryKind,
}

impl HostFile {
    /// Its record in `info.json`.
    pub fn written(&self) -> WrittenFile {
        WrittenFile {
            path: self.path.clone(),
            sha256: sha256(&self.content),
            mode: self.mode,
            owned: self.owned,
            kind: self.kind,
            target: self.target(),
        }
    }

    /// A symlink's target.
    pub fn target(&self) -> Option<String> {
        (self.kind == EntryKind::Symlink).then(|| String::from_utf8_lossy(&self.content).into())
    }
}

/// What a switch did and left.
#[derive(Debug, Default)]
pub struct Switched {
    /// Paths left in place, with the reason.
    pub kept: Vec<String>,
    /// Hostfs paths shared with other containers, naming the owner.
    pub shared: Vec<String>,
    /// Paths removed (staged for removal until the commit).
    pub removed: Vec<String>,
    /// Host directories this container uses that berth created, outermost first.
    pub dirs: Vec<String>,
    /// Hostfs paths of the new set that are the operator's: not recorded.
    pub untracked: BTreeSet<String>,
}

impl Switched {
    /// The records of `files` this container keeps (without the operator's paths).
    pub fn tracked(&self, files: &[WrittenFile]) -> Vec<WrittenFile> {
        files
            .iter()
            .filter(|f| !self.untracked.contains(&f.path))
            .cloned()
            .collect()
    }
}

/// Whether `path` (as seen inside the root) is still what berth wrote there.
pub(crate) fn unchanged(root: &Root, path: &str, kind: EntryKind, sum: &str) -> bool {
    let p = Path::new(path);
    match kind {
        EntryKind::File => root
            .read_file_nofollow(p)
            .ok()
            .flatten()
            .is_some_and(|b| sha256(&b) == sum),
        EntryKind::Symlink => root
            .read_link(p)
            .is_ok_and(|t| sha256(t.as_os_str().as_encoded_bytes()) == sum),
        EntryKind::Dir => matches!(root.lstat(p), Ok(Some(e)) if e.kind == Kind::Dir),
    }
}

/// Whether the host already has exactly `f`.
fn same(root: &Root, f: &HostFile) -> bool {
    let mode_ok = matches!(root.lstat(Path::new(&f.path)), Ok(Some(e)) if e.mode == f.mode);
    match f.kind {
        EntryKind::File => unchanged(root, &f.path, f.kind, &sha256(&f.content)) && mode_ok,
        EntryKind::Symlink => unchanged(root, &f.path, f.kind, &sha256(&f.content)),
        EntryKind::Dir => unchanged(root, &f.path, f.kind, "") && mode_ok,
    }
}

/// One switch: the registry, what was created and what is reported.
struct Run<'a> {
    root: Root,
    name: &'a str,
    reg: Registry,
    created: Vec<String>,
    out: Switched,
}

impl Run<'_> {
    /// Writes `f` at its path (replacing what is there), parents created.
    fn write(&mut self, txn: &mut Transaction, f: &HostFile) -> Result<(), DeployError> {
        let p = Path::new(&f.path);
        let there = self.root.lstat(p)?;
        if there.is_none() {
            if let Some(parent) = p.parent() {
                let made = txn.create_dir_all(parent)?;
                self.record_dirs(made);
            }
        }
        match f.kind {
            EntryKind::File => txn.put_file(p, &f.content, f.mode)?,
            EntryKind::Symlink => {
                if there.is_some() {
                    txn.remove(p)?;
                }
                let target = f.target().unwrap_or_default();
                txn.symlink(p, Path::new(&target))?;
            }
            EntryKind::Dir => {
                let is_dir = there.is_some_and(|e| e.kind == Kind::Dir);
                if there.is_some() && !is_dir {
                    txn.remove(p)?;
                }
                // A directory that is there keeps its mode (a chmod would
                // not be undone with the transaction).
                if !is_dir {
                    txn.create_dir(p, f.mode)?;
                    self.created.push(f.path.clone());
                }
            }
        }
        Ok(())
    }

    fn record_dirs(&mut self, made: Vec<PathBuf>) {
        for d in made {
            self.created.push(Root::show(&d));
        }
    }

    /// Removes `path` if it is still what berth wrote; else reports it.
    fn remove_unchanged(
        &mut self,
        txn: &mut Transaction,
        path: &str,
        kind: EntryKind,
        sum: &str,
    ) -> Result<(), DeployError> {
        let p = Path::new(path);
        if !self.root.exists(p) {
            return Ok(());
        }
        if unchanged(&self.root, path, kind, sum) {
            txn.remove(p)?;
            self.out.removed.push(path.to_string());
        } else {
            self.out.kept.push(format!(
                "{path}: modified since berth wrote it; left in place"
            ));
        }
        Ok(())
    }

    /// A hostfs path of the new set.
    fn hostfs(
        &mut self,
        txn: &mut Transaction,
        f: &HostFile,
        previous: Option<&WrittenFile>,
    ) -> Result<(), DeployError> {
        if let Some((link, e)) = self.reg.link_above(&f.path) {
            return Err(DeployError::Invalid {
                file: f.path.clone(),
                detail: format!(
                    "would be written through the symlink {link} (installed for {}); refusing",
                    e.owner
                ),
            });
        }
        let sum = sha256(&f.content);
        let on_host = self.root.lstat(Path::new(&f.path))?.is_some();
        let action = decide(
            &self.reg,
            self.name,
            &f.path,
            f.kind,
            &sum,
            on_host,
            previous.is_some(),
        );
        let line = action.describe(&f.path, self.name);
        match action {
            HostfsAction::NotBerths => {
                self.out.kept.push(line);
                self.out.untracked.insert(f.path.clone());
            }
            HostfsAction::Shared { differs, .. } => {
                if let Some(e) = self.reg.paths.get_mut(&f.path) {
                    if !e.users.iter().any(|u| u == self.name) {
                        e.users.push(self.name.to_string());
                    }
                }
                if differs {
                    self.out.kept.push(line);
                } else {
                    self.out.shared.push(line);
                }
            }
            HostfsAction::SharedDir => {}
            HostfsAction::CreateDir => self.write(txn, f)?,
            HostfsAction::Write | HostfsAction::Link => {
                self.write_own(txn, f, previous, on_host)?
            }
        }
        Ok(())
    }

    /// A hostfs path this container owns (or is the first to ship): written
    /// unless it is already right or was edited since berth wrote it;
    /// recorded with what is on the host.
    fn write_own(
        &mut self,
        txn: &mut Transaction,
        f: &HostFile,
        previous: Option<&WrittenFile>,
        on_host: bool,
    ) -> Result<(), DeployError> {
        let entry = self.reg.paths.get(&f.path).cloned();
        let recorded = entry.clone().or_else(|| {
            previous.map(|o| SharedPath {
                owner: self.name.to_string(),
                users: Vec::new(),
                kind: o.kind,
                sha256: o.sha256.clone(),
                mode: o.mode,
                target: o.target.clone(),
            })
        });
        let mut record = SharedPath {
            owner: self.name.to_string(),
            users: entry.map(|e| e.users).unwrap_or_default(),
            kind: f.kind,
            sha256: sha256(&f.content),
            mode: f.mode,
            target: f.target(),
        };
        let edited = recorded
            .as_ref()
            .filter(|r| on_host && !unchanged(&self.root, &f.path, r.kind, &r.sha256));
        match edited {
            _ if same(&self.root, f) => {}
            Some(r) => {
                self.out.kept.push(format!(
                    "{}: modified since berth wrote it; left in place (the new version is not installed)",
                    f.path
                ));
                // Still berth's record of what it wrote: edits stay detectable.
                (record.kind, record.mode) = (r.kind, r.mode);
                (record.sha256, record.target) = (r.sha256.clone(), r.target.clone());
            }
            None => self.write(txn, f)?,
        }
        if !record.users.iter().any(|u| u == self.name) {
            record.users.insert(0, self.name.to_string());
        }
        self.reg.paths.insert(f.path.clone(), record);
        Ok(())
    }

    /// Re-counts this container's use of berth's directories and removes
    /// the ones nobody uses any more, when empty (deepest first).
    fn settle_dirs(&mut self, txn: &mut Transaction, mine: &[String]) -> Result<(), DeployError> {
        for d in std::mem::take(&mut self.created) {
            self.reg.dirs.entry(d).or_default();
        }
        for (d, users) in self.reg.dirs.iter_mut() {
            let uses = mine
                .iter()
                .any(|p| p == d || p.starts_with(&format!("{d}/")));
            users.retain(|u| u != self.name);
            if uses {
                users.push(self.name.to_string());
            }
        }
        let mut idle: Vec<String> = self
            .reg
            .dirs
            .iter()
            .filter(|(_, u)| u.is_empty())
            .map(|(d, _)| d.clone())
            .collect();
        idle.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        for d in idle {
            self.reg.dirs.remove(&d);
            let p = Path::new(&d);
            if !matches!(self.root.lstat(p), Ok(Some(e)) if e.kind == Kind::Dir) {
                continue;
            }
            let Ok(entries) = self.root.read_dir(p) else {
                continue;
            };
            // Entries staged for removal by this transaction don't count.
            let empty = entries
                .iter()
                .all(|e| e.to_string_lossy().ends_with(super::txn::REMOVED_SUFFIX));
            if empty {
                txn.remove(p)?;
                self.out.removed.push(d);
            } else {
                self.out.kept.push(format!(
                    "{d}: directory made by berth holds files that are not berth's; left in place"
                ));
            }
        }
        self.out.dirs = self
            .reg
            .dirs
            .iter()
            .filter(|(_, u)| u.iter().any(|u| u == self.name))
            .map(|(d, _)| d.clone())
            .collect();
        Ok(())
    }
}

/// Switches the host below `root` from `from` (the active deployment of
/// the container `name`, if any) to `files` and `links`.
pub fn switch(
    layout: &Layout,
    txn: &mut Transaction,
    name: &str,
    from: Option<&Info>,
    files: &[HostFile],
    links: &[Link],
) -> Result<Switched, DeployError> {
    let reg = Registry::load_adopting(layout)?;
    let loaded = Registry::load(layout)?;
    let root = txn.root().clone();
    let mut run = Run {
        root: root.clone(),
        name,
        reg,
        created: Vec::new(),
        out: Switched::default(),
    };
    // Directories an install from before the registry made are this one's.
    for d in from.map(|i| i.dirs.as_slice()).unwrap_or_default() {
        run.reg.dirs.entry(d.clone()).or_default();
    }
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
        let p = Path::new(&l.path);
        match root.read_link(p) {
            Ok(t) if t == Path::new(&l.target) => {
                txn.remove(p)?;
                run.out.removed.push(l.path.clone());
            }
            Ok(_) => run
                .out
                .kept
                .push(format!("{}: points elsewhere now; left in place", l.path)),
            Err(_) => {}
        }
    }
    for (path, old) in &old_files {
        if new_paths.contains(path) || old.kind == EntryKind::Dir {
            continue;
        }
        if old.owned || !run.reg.paths.contains_key(*path) {
            run.remove_unchanged(txn, path, old.kind, &old.sha256)?;
        } else if let Some(last) = run.reg.release(path, name) {
            run.remove_unchanged(txn, path, last.kind, &last.sha256)?;
        } else if let Some(e) = run.reg.paths.get(*path) {
            let others: Vec<&str> = e
                .users
                .iter()
                .filter(|u| **u != e.owner)
                .map(String::as_str)
                .collect();
            let mut line = format!("{path} stays: it is {}'s now", e.owner);
            if !others.is_empty() {
                line.push_str(&format!(", shared with {}", others.join(", ")));
            }
            run.out.shared.push(line);
        }
    }
    for f in files {
        if !f.owned {
            run.hostfs(txn, f, old_files.get(f.path.as_str()).copied())?;
            continue;
        }
        if root.lstat(Path::new(&f.path))?.is_some() {
            if same(&root, f) {
                continue;
            }
            let edited = old_files
                .get(f.path.as_str())
                .is_some_and(|old| !unchanged(&root, &old.path, old.kind, &old.sha256));
            if edited {
                tracing::warn!(
                    "{}: replacing local edits (use a drop-in for local changes)",
                    f.path
                );
            }
        }
        run.write(txn, f)?;
    }
    for l in links {
        let p = Path::new(&l.path);
        if root.read_link(p).is_ok_and(|t| t == Path::new(&l.target)) {
            continue;
        }
        if root.lstat(p)?.is_some() {
            txn.remove(p)?;
        } else if let Some(parent) = p.parent() {
            let made = txn.create_dir_all(parent)?;
            run.record_dirs(made);
        }
        txn.symlink(p, Path::new(&l.target))?;
    }
    let mine: Vec<String> = files
        .iter()
        .map(|f| &f.path)
        .filter(|p| !run.out.untracked.contains(*p))
        .chain(links.iter().map(|l| &l.path))
        .cloned()
        .collect();
    run.settle_dirs(txn, &mine)?;
    if run.reg != loaded {
        save(layout, txn, &run.reg)?;
    }
    Ok(run.out)
}

/// Writes the registry in the transaction (removed when empty).
fn save(layout: &Layout, txn: &mut Transaction, reg: &Registry) -> Result<(), DeployError> {
    let path = registry_path(layout);
    if reg.is_empty() {
        if txn.root().exists(&path) {
            txn.remove(&path)?;
        }
        return Ok(());
    }
    txn.put_file(&path, reg.to_json()?.as_bytes(), 0o644)
}
