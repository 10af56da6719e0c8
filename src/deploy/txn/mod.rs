//! A filesystem transaction: every step records its inverse; dropping an
//! uncommitted transaction undoes the steps, newest first.
//!
//! ```text
//! created(p)          step: p was made by us       undo: remove p             commit: keep p
//! remove(p)           step: p renamed to p.~berth~ undo: rename it back       commit: delete it
//! replace_symlink(p)  step: p re-pointed (atomic)  undo: point it back        commit: keep
//! ```
//! Nothing is deleted before [`Transaction::commit`], so undo restores the
//! previous state exactly (names, contents, inode numbers).
//!
//! A journaled transaction ([`Transaction::journaled`]) also writes each
//! step to `ROOT/var/lib/berth/journal` *before* doing it, and `commit` to
//! it before deleting what was staged for removal. A berth killed mid-way
//! leaves the journal; the next berth (under the same lock) calls
//! [`recover_journal`], which undoes an open transaction or finishes a
//! committed one. Undo steps tolerate a step that was journaled but never
//! done.
//!
//! Two journal lines change no file: `restart` (a service about to be
//! restarted on what this transaction switched, [`Transaction::note_restart`])
//! and `undone` (the steps were undone, the services not yet put back:
//! [`Transaction::abort`]). Recovery hands the noted services back
//! ([`Recovered::Undone`]) so the caller restarts them on the files it put
//! back.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DeployError;
use crate::layout::Layout;
use crate::rootfs::{OpenMode, Root};

/// Suffix of paths staged for removal.
pub const REMOVED_SUFFIX: &str = ".~berth-removed~";

/// Mode of the journal: steps name the files of deployments.
const JOURNAL_MODE: u32 = 0o600;

/// One journaled step; paths are as seen inside the root.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
enum Step {
    Created { path: PathBuf },
    Removed { path: PathBuf, staged: PathBuf },
    Symlink { path: PathBuf, old: PathBuf },
    Moved { from: PathBuf, to: PathBuf },
    Restart { unit: String },
    Undone,
    Commit,
}

/// Steps done so far below one root; undone on drop unless committed.
#[derive(Debug)]
pub struct Transaction {
    root: Root,
    steps: Vec<Step>,
    committed: bool,
    journal: Option<(PathBuf, std::fs::File)>,
}

impl Transaction {
    /// An empty transaction below `root`, in memory only.
    pub fn new(root: Root) -> Self {
        Transaction {
            root,
            steps: Vec::new(),
            committed: false,
            journal: None,
        }
    }

    /// An empty transaction journaled below the layout's root (the caller
    /// holds the root's lock and has run [`recover_journal`]). The journal
    /// is opened through the root, never through a symlink (`O_NOFOLLOW`).
    pub fn journaled(layout: &Layout) -> Result<Self, DeployError> {
        let root = layout.open_root()?;
        let path = layout.journal_inside();
        if let Some(dir) = path.parent() {
            root.create_dir_all(dir, 0o755)?;
        }
        let file = root.open_file(&path, OpenMode::WriteTruncate, JOURNAL_MODE)?;
        Ok(Transaction {
            root,
            steps: Vec::new(),
            committed: false,
            journal: Some((path, file)),
        })
    }

    /// The root this transaction works below.
    pub fn root(&self) -> &Root {
        &self.root
    }

    fn log(&mut self, step: Step) -> Result<(), DeployError> {
        if let Some((path, file)) = &mut self.journal {
            let mut line = serde_json::to_vec(&step).map_err(|e| DeployError::Io {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?;
            line.push(b'\n');
            file.write_all(&line)
                .and_then(|_| file.sync_data())
                .map_err(|source| DeployError::Io {
                    path: path.clone(),
                    source,
                })?;
        }
        self.steps.push(step);
        Ok(())
    }

    fn exists_err(&self, path: &Path) -> DeployError {
        DeployError::Io {
            path: PathBuf::from(Root::show(path)),
            source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        }
    }

    /// Records that `path` did not exist and is created by this transaction
    /// (call before creating it).
    pub fn created(&mut self, path: &Path) -> Result<(), DeployError> {
        self.log(Step::Created {
            path: path.to_path_buf(),
        })
    }

    /// Creates `dir` and every missing ancestor (0755), recording each one
    /// created. Returns the directories created, outermost first.
    pub fn create_dir_all(&mut self, dir: &Path) -> Result<Vec<PathBuf>, DeployError> {
        let missing = self.root.missing_dirs(dir)?;
        for d in &missing {
            self.created(d)?;
            self.root.create_dir_all(d, 0o755)?;
        }
        Ok(missing)
    }

    /// Creates the directory `path` (which must not exist) with `mode`.
    pub fn create_dir(&mut self, path: &Path, mode: u32) -> Result<(), DeployError> {
        self.created(path)?;
        Ok(self.root.create_dir(path, mode)?)
    }

    /// Creates the symlink `path` (which must not exist) pointing at `target`.
    pub fn symlink(&mut self, path: &Path, target: &Path) -> Result<(), DeployError> {
        if self.root.exists(path) {
            return Err(self.exists_err(path));
        }
        self.created(path)?;
        Ok(self.root.symlink(target, path)?)
    }

    /// Writes a new file at `path` (which must not exist) with `mode`.
    pub fn write_new(&mut self, path: &Path, content: &[u8], mode: u32) -> Result<(), DeployError> {
        if self.root.exists(path) {
            return Err(self.exists_err(path));
        }
        self.created(path)?;
        Ok(self.root.write_new(path, content, mode)?)
    }

    /// Renames `from` (created by this transaction) to `to`, which must not exist.
    pub fn rename_new(&mut self, from: &Path, to: &Path) -> Result<(), DeployError> {
        if self.root.exists(to) {
            return Err(self.exists_err(to));
        }
        // Journaled first: undo removes `to` (and `from`, if the rename never happened).
        self.created(to)?;
        Ok(self.root.rename_noreplace(from, to)?)
    }

    /// Puts `content` at `path` with `mode`: a new file, or one replacing
    /// the current file (staged for removal, restored on undo). The new
    /// content is staged under a name unique to this process, journaled,
    /// so nothing of the operator's beside `path` is touched.
    pub fn put_file(&mut self, path: &Path, content: &[u8], mode: u32) -> Result<(), DeployError> {
        let tmp = Root::temp_name(path);
        self.write_new(&tmp, content, mode)?;
        if self.root.exists(path) {
            self.remove(path)?;
        }
        self.rename_new(&tmp, path)
    }

    /// Stages `path` for removal: renamed aside now, deleted on commit,
    /// renamed back on undo.
    pub fn remove(&mut self, path: &Path) -> Result<(), DeployError> {
        let mut staged = path.as_os_str().to_os_string();
        // A path replaced twice in one transaction (a group update writes
        // the hostfs registry once per member): the first staged copy is
        // the one undo restores last, so the next gets a name of its own.
        let earlier = self
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Removed { path: p, .. } if p == path))
            .count();
        if earlier > 0 {
            staged.push(format!(".~{earlier}~"));
        }
        staged.push(REMOVED_SUFFIX);
        let staged = PathBuf::from(staged);
        self.root.remove(&staged)?;
        self.log(Step::Removed {
            path: path.to_path_buf(),
            staged: staged.clone(),
        })?;
        Ok(self.root.rename_noreplace(path, &staged)?)
    }

    /// Points the symlink `path` (which exists) at `target`, atomically;
    /// undo points it back.
    pub fn replace_symlink(&mut self, path: &Path, target: &Path) -> Result<(), DeployError> {
        let old = self.root.read_link(path)?;
        self.log(Step::Symlink {
            path: path.to_path_buf(),
            old,
        })?;
        set_symlink(&self.root, path, target)
    }

    /// Renames `from` to `to` (which must not exist); undo renames it back.
    pub fn rename(&mut self, from: &Path, to: &Path) -> Result<(), DeployError> {
        if self.root.exists(to) {
            return Err(self.exists_err(to));
        }
        self.log(Step::Moved {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        })?;
        Ok(self.root.rename_noreplace(from, to)?)
    }

    /// Journals that `unit` is about to be restarted on what this
    /// transaction switched (call before restarting it): undone, it must
    /// be restarted again, by whoever undoes it.
    pub fn note_restart(&mut self, unit: &str) -> Result<(), DeployError> {
        self.log(Step::Restart { unit: unit.into() })
    }

    /// Undoes every step now but keeps the journal, marked `undone`, until
    /// the returned [`Aborted`] is dropped: the caller puts the services
    /// back in between, and a berth killed meanwhile leaves the next one
    /// the services still to restart.
    pub fn abort(mut self) -> Aborted {
        undo(&self.root, std::mem::take(&mut self.steps));
        if let Err(e) = self.log(Step::Undone) {
            tracing::warn!("{e}");
        }
        self.committed = true;
        Aborted {
            root: self.root.clone(),
            journal: self.journal.take().map(|(p, _)| p),
        }
    }

    /// Makes every step permanent: paths staged for removal are deleted
    /// (failures there are warnings; the operation is done).
    pub fn commit(mut self) {
        if let Err(e) = self.log(Step::Commit) {
            tracing::warn!("{e}");
        }
        self.committed = true;
        finish(&self.root, &std::mem::take(&mut self.steps));
        self.close_journal();
    }

    fn close_journal(&mut self) {
        if let Some((path, _)) = self.journal.take() {
            if let Err(e) = self.root.remove(&path) {
                tracing::warn!("{e}");
            }
        }
    }
}

/// A transaction undone by [`Transaction::abort`]; its journal goes when
/// this is dropped.
#[derive(Debug)]
pub struct Aborted {
    root: Root,
    journal: Option<PathBuf>,
}

impl Drop for Aborted {
    fn drop(&mut self) {
        if let Some(path) = self.journal.take() {
            if let Err(e) = self.root.remove(&path) {
                tracing::warn!("{e}");
            }
        }
    }
}

/// Atomically points `path` at `target` (a new symlink under a name unique
/// to this process, renamed over it).
fn set_symlink(root: &Root, path: &Path, target: &Path) -> Result<(), DeployError> {
    let tmp = Root::temp_name(path);
    root.symlink(target, &tmp)?;
    if let Err(e) = root.rename(&tmp, path) {
        let _ = root.remove(&tmp);
        return Err(e.into());
    }
    if let Some(dir) = path.parent() {
        root.sync_dir(dir)?;
    }
    Ok(())
}

fn finish(root: &Root, steps: &[Step]) {
    for step in steps {
        if let Step::Removed { staged, .. } = step {
            if let Err(e) = root.remove(staged) {
                tracing::warn!("{e}");
            }
        }
    }
}

fn undo(root: &Root, steps: Vec<Step>) {
    for step in steps.into_iter().rev() {
        let result: Result<(), DeployError> = match &step {
            Step::Created { path } => root.remove(path).map_err(Into::into),
            Step::Removed { path, staged } => {
                if root.exists(staged) {
                    root.remove(path)
                        .and_then(|_| root.rename(staged, path))
                        .map_err(Into::into)
                } else {
                    Ok(())
                }
            }
            Step::Symlink { path, old } => set_symlink(root, path, old),
            Step::Moved { from, to } => {
                if root.exists(to) && !root.exists(from) {
                    root.rename(to, from).map_err(Into::into)
                } else {
                    Ok(())
                }
            }
            Step::Restart { .. } | Step::Undone | Step::Commit => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!("undoing {step:?}: {e}");
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        undo(&self.root, std::mem::take(&mut self.steps));
        self.close_journal();
    }
}

mod recovery;

pub use recovery::{recover_journal, Recovered};

#[cfg(test)]
mod tests;
