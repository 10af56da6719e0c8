//! A filesystem transaction: every step records its inverse; dropping an
//! uncommitted transaction undoes the steps, newest first.
//!
//! ```text
//! created(p)   step: p was made by us        undo: remove p          commit: keep p
//! remove(p)    step: p renamed to p.~berth~  undo: rename it back    commit: delete it
//! ```
//! Nothing is deleted before [`Transaction::commit`], so undo restores the
//! previous state exactly (names, contents, inode numbers).

use std::path::{Path, PathBuf};

use super::{io_err, DeployError};

/// Suffix of paths staged for removal.
pub const REMOVED_SUFFIX: &str = ".~berth-removed~";

#[derive(Debug)]
enum Step {
    Created(PathBuf),
    Removed { path: PathBuf, staged: PathBuf },
}

/// Steps done so far; undone on drop unless committed.
#[derive(Debug, Default)]
pub struct Transaction {
    steps: Vec<Step>,
    committed: bool,
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `path` did not exist and was created by this transaction.
    pub fn created(&mut self, path: &Path) {
        self.steps.push(Step::Created(path.to_path_buf()));
    }

    /// Creates `dir` and every missing ancestor, recording each one created.
    pub fn create_dir_all(&mut self, dir: &Path) -> Result<(), DeployError> {
        let mut missing = Vec::new();
        let mut cur = Some(dir);
        while let Some(d) = cur {
            if d.symlink_metadata().is_ok() {
                break;
            }
            missing.push(d.to_path_buf());
            cur = d.parent();
        }
        for d in missing.iter().rev() {
            std::fs::create_dir(d).map_err(io_err(d))?;
            self.created(d);
        }
        Ok(())
    }

    /// Writes a new file at `path` (which must not exist) with `mode`.
    pub fn write_new(&mut self, path: &Path, content: &[u8], mode: u32) -> Result<(), DeployError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(io_err(path))?;
        self.created(path);
        f.write_all(content).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))?;
        Ok(())
    }

    /// Renames `from` (created by this transaction) to `to`, which must not exist.
    pub fn rename_new(&mut self, from: &Path, to: &Path) -> Result<(), DeployError> {
        if to.symlink_metadata().is_ok() {
            return Err(io_err(to)(std::io::Error::from(
                std::io::ErrorKind::AlreadyExists,
            )));
        }
        std::fs::rename(from, to).map_err(io_err(to))?;
        for step in self.steps.iter_mut().rev() {
            if let Step::Created(p) = step {
                if p == from {
                    *p = to.to_path_buf();
                    return Ok(());
                }
            }
        }
        self.created(to);
        Ok(())
    }

    /// Stages `path` for removal: renamed aside now, deleted on commit,
    /// renamed back on undo.
    pub fn remove(&mut self, path: &Path) -> Result<(), DeployError> {
        let mut staged = path.as_os_str().to_os_string();
        staged.push(REMOVED_SUFFIX);
        let staged = PathBuf::from(staged);
        remove_any(&staged)?;
        std::fs::rename(path, &staged).map_err(io_err(path))?;
        self.steps.push(Step::Removed {
            path: path.to_path_buf(),
            staged,
        });
        Ok(())
    }

    /// Makes every step permanent: paths staged for removal are deleted
    /// (failures there are warnings; the operation is done).
    pub fn commit(mut self) {
        self.committed = true;
        for step in std::mem::take(&mut self.steps) {
            if let Step::Removed { staged, .. } = step {
                if let Err(e) = remove_any(&staged) {
                    tracing::warn!("{e}");
                }
            }
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for step in self.steps.drain(..).rev() {
            let result = match &step {
                Step::Created(p) => remove_any(p),
                Step::Removed { path, staged } => {
                    std::fs::rename(staged, path).map_err(io_err(path))
                }
            };
            if let Err(e) = result {
                tracing::warn!("undoing {step:?}: {e}");
            }
        }
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn drop_undoes_and_commit_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old");
        std::fs::write(&old, "keep").unwrap();
        {
            let mut t = Transaction::new();
            t.create_dir_all(&dir.path().join("a/b")).unwrap();
            t.write_new(&dir.path().join("a/b/f.tmp"), b"x", 0o644)
                .unwrap();
            t.rename_new(&dir.path().join("a/b/f.tmp"), &dir.path().join("a/b/f"))
                .unwrap();
            t.remove(&old).unwrap();
            assert!(!old.exists());
        }
        assert!(!dir.path().join("a").exists());
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "keep");
        let mut t = Transaction::new();
        t.write_new(&dir.path().join("n"), b"y", 0o600).unwrap();
        t.remove(&old).unwrap();
        t.commit();
        assert!(dir.path().join("n").exists());
        assert!(!old.exists());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
