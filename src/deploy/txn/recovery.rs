//! Recovery from the journal a killed berth left: undo an open
//! transaction (or finish a committed one), and hand back the services it
//! had restarted.

use std::path::{Path, PathBuf};

use super::{finish, undo, Step};
use crate::deploy::DeployError;
use crate::layout::Layout;
use crate::rootfs::OpenMode;

/// A step journaled by an earlier berth, which recorded host paths
/// (`ROOT/etc/x`), with its paths as seen inside the root (`/etc/x`).
/// Paths berth journals now are always absolute and inside the root; with
/// the root `/` both forms are the same.
fn from_host_paths(root: &Path, step: Step) -> Step {
    if root == Path::new("/") {
        return step;
    }
    let abs = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let fix = |p: PathBuf| -> PathBuf {
        let rel = if p.is_relative() {
            p.strip_prefix(root).ok()
        } else {
            p.strip_prefix(&abs).ok()
        };
        match rel {
            Some(rel) => Path::new("/").join(rel),
            None => p,
        }
    };
    match step {
        Step::Created { path } => Step::Created { path: fix(path) },
        Step::Removed { path, staged } => Step::Removed {
            path: fix(path),
            staged: fix(staged),
        },
        Step::Symlink { path, old } => Step::Symlink {
            path: fix(path),
            old,
        },
        Step::Moved { from, to } => Step::Moved {
            from: fix(from),
            to: fix(to),
        },
        other => other,
    }
}

/// What [`recover_journal`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// No journal: nothing was interrupted.
    Nothing,
    /// An interrupted transaction was undone; these services (unit
    /// names, in the order they were restarted) had been restarted on what
    /// it switched and run the wrong files until restarted again.
    Undone(Vec<String>),
    /// A transaction killed after its commit point was finished.
    Finished,
}

/// Undoes (or, past its commit point, finishes) a transaction a killed
/// berth left journaled below `root`. The caller holds the root's lock.
pub fn recover_journal(layout: &Layout) -> Result<Recovered, DeployError> {
    let root = layout.open_root()?;
    let path = layout.journal_inside();
    let mut file = match root.open_file(&path, OpenMode::Read, 0) {
        Ok(f) => f,
        Err(e) if e.is_not_found() => return Ok(Recovered::Nothing),
        Err(e) => return Err(e.into()),
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).map_err(|source| DeployError::Io {
        path: path.clone(),
        source,
    })?;
    // A torn last line (killed mid-write) was never acted on: skip it.
    let steps: Vec<Step> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .map(|s| from_host_paths(layout.root(), s))
        .collect();
    let outcome = if steps.iter().any(|s| matches!(s, Step::Commit)) {
        tracing::warn!("finishing an operation that was interrupted after its commit point");
        finish(&root, &steps);
        Recovered::Finished
    } else {
        let restart: Vec<String> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Restart { unit } => Some(unit.clone()),
                _ => None,
            })
            .collect();
        if steps.iter().any(|s| matches!(s, Step::Undone)) {
            tracing::warn!("an operation was interrupted while putting its services back");
        } else {
            tracing::warn!(
                "undoing an operation that was interrupted ({} steps)",
                steps.len()
            );
            undo(&root, steps);
        }
        Recovered::Undone(restart)
    };
    root.remove(&path)?;
    Ok(outcome)
}
