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

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{io_err, DeployError};
use crate::layout::Layout;

/// Suffix of paths staged for removal.
pub const REMOVED_SUFFIX: &str = ".~berth-removed~";

/// The journal of the open transaction, relative to the root.

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
enum Step {
    Created { path: PathBuf },
    Removed { path: PathBuf, staged: PathBuf },
    Symlink { path: PathBuf, old: PathBuf },
    Moved { from: PathBuf, to: PathBuf },
    Commit,
}

/// Steps done so far; undone on drop unless committed.
#[derive(Debug, Default)]
pub struct Transaction {
    steps: Vec<Step>,
    committed: bool,
    journal: Option<(PathBuf, std::fs::File)>,
}

impl Transaction {
    /// An empty transaction, in memory only.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty transaction journaled below `root` (the caller holds the
    /// root's lock and has run [`recover_journal`]).
    pub fn journaled(layout: &Layout) -> Result<Self, DeployError> {
        let path = layout.journal();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        // 0600: steps name the files of deployments, and the data dir may
        // be an older, wider one until the lock tightens it.
        let file = std::os::unix::fs::OpenOptionsExt::mode(
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true),
            0o600,
        )
        .open(&path)
        .map_err(io_err(&path))?;
        Ok(Transaction {
            steps: Vec::new(),
            committed: false,
            journal: Some((path, file)),
        })
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
                .map_err(io_err(path))?;
        }
        self.steps.push(step);
        Ok(())
    }

    /// Records that `path` did not exist and is created by this transaction
    /// (call before creating it).
    pub fn created(&mut self, path: &Path) -> Result<(), DeployError> {
        self.log(Step::Created {
            path: path.to_path_buf(),
        })
    }

    /// Creates `dir` and every missing ancestor, recording each one created.
    /// Returns the directories created, outermost first.
    pub fn create_dir_all(&mut self, dir: &Path) -> Result<Vec<PathBuf>, DeployError> {
        let mut missing = Vec::new();
        let mut cur = Some(dir);
        while let Some(d) = cur {
            if d.symlink_metadata().is_ok() {
                break;
            }
            missing.push(d.to_path_buf());
            cur = d.parent();
        }
        missing.reverse();
        for d in &missing {
            self.created(d)?;
            std::fs::create_dir(d).map_err(io_err(d))?;
        }
        Ok(missing)
    }

    /// Writes a new file at `path` (which must not exist) with `mode`.
    pub fn write_new(&mut self, path: &Path, content: &[u8], mode: u32) -> Result<(), DeployError> {
        if path.symlink_metadata().is_ok() {
            return Err(io_err(path)(std::io::Error::from(
                std::io::ErrorKind::AlreadyExists,
            )));
        }
        self.created(path)?;
        write_synced(path, content, mode, true)
    }

    /// Renames `from` (created by this transaction) to `to`, which must not exist.
    pub fn rename_new(&mut self, from: &Path, to: &Path) -> Result<(), DeployError> {
        if to.symlink_metadata().is_ok() {
            return Err(io_err(to)(std::io::Error::from(
                std::io::ErrorKind::AlreadyExists,
            )));
        }
        // Journaled first: undo removes `to` (and `from`, if the rename never happened).
        self.created(to)?;
        std::fs::rename(from, to).map_err(io_err(to))?;
        Ok(())
    }

    /// Puts `content` at `path` with `mode`: a new file, or one replacing
    /// the current file (staged for removal, restored on undo).
    pub fn put_file(&mut self, path: &Path, content: &[u8], mode: u32) -> Result<(), DeployError> {
        let tmp = PathBuf::from(format!("{}.tmp", path.display()));
        remove_any(&tmp)?;
        self.write_new(&tmp, content, mode)?;
        if path.symlink_metadata().is_ok() {
            self.remove(path)?;
        }
        self.rename_new(&tmp, path)
    }

    /// Stages `path` for removal: renamed aside now, deleted on commit,
    /// renamed back on undo.
    pub fn remove(&mut self, path: &Path) -> Result<(), DeployError> {
        let mut staged = path.as_os_str().to_os_string();
        staged.push(REMOVED_SUFFIX);
        let staged = PathBuf::from(staged);
        remove_any(&staged)?;
        self.log(Step::Removed {
            path: path.to_path_buf(),
            staged: staged.clone(),
        })?;
        std::fs::rename(path, &staged).map_err(io_err(path))?;
        Ok(())
    }

    /// Points the symlink `path` (which exists) at `target`, atomically;
    /// undo points it back.
    pub fn replace_symlink(&mut self, path: &Path, target: &Path) -> Result<(), DeployError> {
        let old = std::fs::read_link(path).map_err(io_err(path))?;
        self.log(Step::Symlink {
            path: path.to_path_buf(),
            old,
        })?;
        set_symlink(path, target)
    }

    /// Renames `from` to `to` (which must not exist); undo renames it back.
    pub fn rename(&mut self, from: &Path, to: &Path) -> Result<(), DeployError> {
        if to.symlink_metadata().is_ok() {
            return Err(io_err(to)(std::io::Error::from(
                std::io::ErrorKind::AlreadyExists,
            )));
        }
        self.log(Step::Moved {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        })?;
        std::fs::rename(from, to).map_err(io_err(to))
    }

    /// Makes every step permanent: paths staged for removal are deleted
    /// (failures there are warnings; the operation is done).
    pub fn commit(mut self) {
        if let Err(e) = self.log(Step::Commit) {
            tracing::warn!("{e}");
        }
        self.committed = true;
        finish(&std::mem::take(&mut self.steps));
        if let Some((path, _)) = self.journal.take() {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!("{}: {e}", path.display());
            }
        }
    }
}

/// Atomically points `path` at `target` (a new symlink renamed over it).
fn set_symlink(path: &Path, target: &Path) -> Result<(), DeployError> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    remove_any(&tmp)?;
    std::os::unix::fs::symlink(target, &tmp).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}

fn finish(steps: &[Step]) {
    for step in steps {
        if let Step::Removed { staged, .. } = step {
            if let Err(e) = remove_any(staged) {
                tracing::warn!("{e}");
            }
        }
    }
}

fn undo(steps: Vec<Step>) {
    for step in steps.into_iter().rev() {
        let result = match &step {
            Step::Created { path } => remove_any(path),
            Step::Removed { path, staged } => {
                if staged.symlink_metadata().is_ok() {
                    remove_any(path)
                        .and_then(|_| std::fs::rename(staged, path).map_err(io_err(path)))
                } else {
                    Ok(())
                }
            }
            Step::Symlink { path, old } => set_symlink(path, old),
            Step::Moved { from, to } => {
                if to.symlink_metadata().is_ok() && from.symlink_metadata().is_err() {
                    std::fs::rename(to, from).map_err(io_err(from))
                } else {
                    Ok(())
                }
            }
            Step::Commit => Ok(()),
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
        undo(std::mem::take(&mut self.steps));
        if let Some((path, _)) = self.journal.take() {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!("{}: {e}", path.display());
            }
        }
    }
}

/// What [`recover_journal`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// No journal: nothing was interrupted.
    Nothing,
    /// An interrupted transaction was undone.
    Undone,
    /// A transaction killed after its commit point was finished.
    Finished,
}

/// Undoes (or, past its commit point, finishes) a transaction a killed
/// berth left journaled below `root`. The caller holds the root's lock.
pub fn recover_journal(layout: &Layout) -> Result<Recovered, DeployError> {
    let path = layout.journal();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Recovered::Nothing),
        Err(e) => return Err(io_err(&path)(e)),
    };
    // A torn last line (killed mid-write) was never acted on: skip it.
    let steps: Vec<Step> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let outcome = if steps.iter().any(|s| matches!(s, Step::Commit)) {
        tracing::warn!("finishing an operation that was interrupted after its commit point");
        finish(&steps);
        Recovered::Finished
    } else {
        tracing::warn!(
            "undoing an operation that was interrupted ({} steps)",
            steps.len()
        );
        undo(steps);
        Recovered::Undone
    };
    std::fs::remove_file(&path).map_err(io_err(&path))?;
    Ok(outcome)
}

/// Removes a file, symlink or directory tree; absent is fine.
pub fn remove_any(path: &Path) -> Result<(), DeployError> {
    let Ok(meta) = path.symlink_metadata() else {
        return Ok(());
    };
    let r = if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    r.map_err(io_err(path))
}

/// Writes `content` to `path` with exactly `mode` (the umask must not narrow what the
/// image or template asked for) and fsyncs it; `new`: the file must not exist yet,
/// else it is truncated.
pub(crate) fn write_synced(
    path: &Path,
    content: &[u8],
    mode: u32,
    new: bool,
) -> Result<(), DeployError> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut o = std::fs::OpenOptions::new();
    o.write(true).mode(mode);
    if new {
        o.create_new(true);
    } else {
        o.create(true).truncate(true);
    }
    let mut f = o.open(path).map_err(io_err(path))?;
    f.write_all(content).map_err(io_err(path))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn listing(dir: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                let meta = p.symlink_metadata().unwrap();
                let what = if meta.is_symlink() {
                    format!("-> {}", std::fs::read_link(&p).unwrap().display())
                } else if meta.is_dir() {
                    stack.push(p.clone());
                    "dir".into()
                } else {
                    std::fs::read_to_string(&p).unwrap()
                };
                out.push((rel, what));
            }
        }
        out.sort();
        out
    }

    fn scenario(t: &mut Transaction, dir: &Path) {
        t.create_dir_all(&dir.join("a/b")).unwrap();
        t.put_file(&dir.join("a/b/f"), b"x", 0o644).unwrap();
        t.put_file(&dir.join("old"), b"new", 0o600).unwrap();
        t.remove(&dir.join("gone")).unwrap();
        t.replace_symlink(&dir.join("link"), Path::new("b"))
            .unwrap();
        t.rename(&dir.join("moved"), &dir.join("a/moved")).unwrap();
    }

    fn setup(dir: &Path) {
        std::fs::write(dir.join("old"), "keep").unwrap();
        std::fs::write(dir.join("gone"), "here").unwrap();
        std::os::unix::fs::symlink("a", dir.join("link")).unwrap();
        std::fs::write(dir.join("moved"), "m").unwrap();
    }

    #[test]
    fn drop_undoes_and_commit_keeps() {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        let before = listing(dir.path());
        {
            let mut t = Transaction::new();
            scenario(&mut t, dir.path());
            assert_ne!(listing(dir.path()), before);
        }
        assert_eq!(listing(dir.path()), before);
        let mut t = Transaction::new();
        scenario(&mut t, dir.path());
        t.commit();
        let after = listing(dir.path());
        assert!(after.contains(&("old".into(), "new".into())));
        assert!(after.contains(&("link".into(), "-> b".into())));
        assert!(!after
            .iter()
            .any(|(p, _)| p == "gone" || p.ends_with(REMOVED_SUFFIX)));
    }

    #[test]
    fn journal_of_a_killed_transaction_is_undone_or_finished() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        setup(&dir);
        let before = listing(&dir);
        // Killed mid-way: the process dies without running Drop.
        let mut t = Transaction::journaled(&Layout::system(root.path())).unwrap();
        scenario(&mut t, &dir);
        std::mem::forget(t);
        assert_ne!(listing(&dir), before);
        assert_eq!(
            recover_journal(&Layout::system(root.path())).unwrap(),
            Recovered::Undone
        );
        assert_eq!(listing(&dir), before);
        assert_eq!(
            recover_journal(&Layout::system(root.path())).unwrap(),
            Recovered::Nothing
        );
        // Killed after the commit line: finished, not undone.
        let mut t = Transaction::journaled(&Layout::system(root.path())).unwrap();
        scenario(&mut t, &dir);
        t.log(Step::Commit).unwrap();
        std::mem::forget(t);
        assert_eq!(
            recover_journal(&Layout::system(root.path())).unwrap(),
            Recovered::Finished
        );
        let after = listing(&dir);
        assert!(after.contains(&("old".into(), "new".into())));
        assert!(!after.iter().any(|(p, _)| p.ends_with(REMOVED_SUFFIX)));
    }

    #[test]
    fn a_step_journaled_but_never_done_undoes_cleanly() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        setup(&dir);
        let before = listing(&dir);
        let mut t = Transaction::journaled(&Layout::system(root.path())).unwrap();
        t.put_file(&dir.join("old"), b"new", 0o644).unwrap();
        // Journaled, then killed before the rename.
        t.log(Step::Removed {
            path: dir.join("gone"),
            staged: dir.join(format!("gone{REMOVED_SUFFIX}")),
        })
        .unwrap();
        std::mem::forget(t);
        recover_journal(&Layout::system(root.path())).unwrap();
        assert_eq!(listing(&dir), before);
    }
}
