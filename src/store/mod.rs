//! The OSTree store: one repository per root, written by one berth at a time.
//!
//! ```text
//! ROOT/var/lib/berth/           mode 0700: only root (the user, for --user)
//! ├── lock                      flock(2): one writer per root
//! └── repo/                     OSTree repo, mode bare (bare-user when not root)
//!     ├── refs/heads/berth/layer/sha256/<hex>   one commit per layer, keyed by diff_id
//!     ├── refs/heads/berth/image/<escaped name> merged image commit + metadata
//!     └── tmp/berth-pull-<pid>/                 blobs of a pull in progress
//! ```
//!
//! Layers are committed one by one (each in its own transaction, so an
//! interrupted pull resumes); the merged image commit is written last, so an
//! image exists whole or not at all.

pub mod gc;
pub mod image;
pub mod import;
pub mod merge;
pub mod refs;

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use ostree::gio;
use ostree::glib;

use crate::layout::Layout;
use crate::ErrorKind;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// libostree reported an error.
    #[error("{what}: {source}")]
    Ostree {
        /// What berth was doing.
        what: String,
        /// libostree's error.
        source: glib::Error,
    },
    /// Filesystem error outside libostree.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// No such image in the store.
    #[error("image {name} is not in the store; see `berth images`")]
    ImageNotFound {
        /// The name asked for.
        name: String,
    },
    /// The image is used by an installed container.
    #[error("image {name} is used by {users}; uninstall them first or use --force")]
    InUse {
        /// The image.
        name: String,
        /// Containers using it.
        users: String,
    },
    /// The repository has content berth did not expect.
    #[error("store damaged: {0}; run `ostree fsck --repo=<root>/var/lib/berth/repo`")]
    Damaged(String),
    /// A layer's content does not match its digest.
    #[error("layer {layer}: uncompressed content hashes to {actual}, the image config says {expected}; the image is corrupt")]
    DiffIdMismatch {
        /// Layer blob digest.
        layer: String,
        /// diff_id from the config.
        expected: String,
        /// What the content hashes to.
        actual: String,
    },
    /// A blob's (compressed) content does not match its digest.
    #[error("blob {expected}: content hashes to {actual}; the source is corrupt")]
    BlobMismatch {
        /// Digest from the manifest.
        expected: String,
        /// What the content hashes to.
        actual: String,
    },
    /// The layer stream could not be read (decompression or tar).
    #[error("layer {layer}: {detail}")]
    LayerRead {
        /// Layer blob digest.
        layer: String,
        /// What failed.
        detail: String,
    },
    /// The checkout destination is not usable.
    #[error("{path}: {detail}")]
    Destination {
        /// The destination.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

impl StoreError {
    /// The exit-code kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::ImageNotFound { .. } => ErrorKind::NotFound,
            StoreError::InUse { .. } => ErrorKind::Conflict,
            StoreError::Damaged(_)
            | StoreError::DiffIdMismatch { .. }
            | StoreError::BlobMismatch { .. }
            | StoreError::LayerRead { .. } => ErrorKind::Integrity,
            StoreError::Destination { .. } => ErrorKind::Usage,
            StoreError::Ostree { .. } | StoreError::Io { .. } => ErrorKind::Failed,
        }
    }
}

/// Shorthand used throughout the store to attach context to libostree errors.
pub(crate) fn ot(what: impl FnOnce() -> String) -> impl FnOnce(glib::Error) -> StoreError {
    move |source| StoreError::Ostree {
        what: what(),
        source,
    }
}

/// `None` cancellable, typed for the bindings.
pub(crate) const NOCANCEL: Option<&gio::Cancellable> = None;

/// An opened store below a root.
pub struct Store {
    layout: Layout,
    repo: ostree::Repo,
}

/// Holds the store's write lock until dropped.
pub struct WriteLock {
    _file: nix::fcntl::Flock<File>,
}

impl Store {
    /// Opens the store below `root`, creating the repo when `create` and it
    /// does not exist. `Ok(None)` when it does not exist and `!create`.
    pub fn open(layout: &Layout, create: bool) -> Result<Option<Store>, StoreError> {
        let path = layout.repo();
        let repo = ostree::Repo::new_for_path(&path);
        if path.join("config").exists() {
            repo.open(NOCANCEL)
                .map_err(ot(|| format!("opening the store {}", path.display())))?;
        } else if create {
            private_data_dir(layout)?;
            std::fs::create_dir_all(&path).map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
            let mode = if nix::unistd::geteuid().is_root() {
                ostree::RepoMode::Bare
            } else {
                ostree::RepoMode::BareUser
            };
            repo.create(mode, NOCANCEL)
                .map_err(ot(|| format!("creating the store {}", path.display())))?;
        } else {
            return Ok(None);
        }
        Ok(Some(Store {
            layout: layout.clone(),
            repo,
        }))
    }

    /// The libostree repository.
    pub fn repo(&self) -> &ostree::Repo {
        &self.repo
    }

    /// The layout this store belongs to.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The repository directory.
    pub fn repo_path(&self) -> PathBuf {
        self.layout.repo()
    }

    /// Takes the write lock of this root, waiting (and saying so) while
    /// another berth holds it.
    pub fn lock(&self) -> Result<WriteLock, StoreError> {
        lock_root(&self.layout)
    }

    /// The commit a ref points to, if any.
    pub fn resolve(&self, r: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .repo
            .resolve_rev(r, true)
            .map_err(ot(|| format!("resolving {r}")))?
            .map(|s| s.to_string()))
    }

    /// All refs starting with `prefix`, as (ref, commit).
    pub fn refs_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let all = self
            .repo
            .list_refs(None, NOCANCEL)
            .map_err(ot(|| "listing refs".to_string()))?;
        let mut out: Vec<(String, String)> = all
            .into_iter()
            .filter(|(r, _)| r.starts_with(prefix))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Whether the repo stores files with real ownership (mode bare).
    pub fn is_bare(&self) -> bool {
        self.repo.mode() == ostree::RepoMode::Bare
    }

    /// Runs `f` inside an OSTree transaction, aborting it on error.
    pub fn transaction<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.repo
            .prepare_transaction(NOCANCEL)
            .map_err(ot(|| "starting a store transaction".to_string()))
            .map_err(E::from)?;
        match f() {
            Ok(v) => {
                self.repo
                    .commit_transaction(NOCANCEL)
                    .map_err(ot(|| "committing a store transaction".to_string()))
                    .map_err(E::from)?;
                Ok(v)
            }
            Err(e) => {
                if let Err(abort) = self.repo.abort_transaction(NOCANCEL) {
                    tracing::warn!("aborting the store transaction failed: {abort}");
                }
                Err(e)
            }
        }
    }
}

/// Mode of the data directory: the store holds images' setuid-root binaries
/// (mode bare keeps them setuid, owned by root) and deployments hold
/// `config.json` values; like podman's and docker's, it is out of other
/// users' reach.
pub const DATA_DIR_MODE: u32 = 0o700;

/// Creates the data directory (`ROOT/var/lib/berth`, or the `--user` one)
/// with [`DATA_DIR_MODE`], and sets that mode on an existing one (earlier
/// berths made it 0755), and tightens the deployments' secret files
/// ([`SECRET_FILES`]) the same way: every mutating verb passes here, as it
/// takes the lock.
pub fn private_data_dir(layout: &Layout) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let data = layout.data();
    let io = |source| StoreError::Io {
        path: data.clone(),
        source,
    };
    if let Some(parent) = data.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    match std::fs::DirBuilder::new().mode(DATA_DIR_MODE).create(&data) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io(e)),
        _ => {}
    }
    let mode = std::fs::metadata(&data).map_err(io)?.permissions().mode() & 0o7777;
    if mode != DATA_DIR_MODE {
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(DATA_DIR_MODE))
            .map_err(io)?;
    }
    private_deployment_files(&layout.containers())
}

/// The files of a deployment that hold `--set` values, which may be secrets.
pub const SECRET_FILES: &[&str] = &["config.json", "info.json"];

/// Mode of [`SECRET_FILES`].
pub const SECRET_FILE_MODE: u32 = 0o600;

/// Sets [`SECRET_FILE_MODE`] on the [`SECRET_FILES`] of each deployment
/// below `containers` that has a wider mode (earlier berths wrote them
/// 0644). Symlinks are left alone, never followed.
fn private_deployment_files(containers: &std::path::Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt as _;
    let entries = match std::fs::read_dir(containers) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Io {
                path: containers.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        for name in SECRET_FILES {
            let path = entry.path().join(name);
            let Ok(meta) = path.symlink_metadata() else {
                continue;
            };
            if meta.is_file() && meta.permissions().mode() & 0o7777 != SECRET_FILE_MODE {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(SECRET_FILE_MODE))
                    .map_err(|source| StoreError::Io {
                        path: path.clone(),
                        source,
                    })?;
            }
        }
    }
    Ok(())
}

/// Takes the write lock of `root` (creating `var/lib/berth`, mode 0700).
pub fn lock_root(layout: &Layout) -> Result<WriteLock, StoreError> {
    let path = layout.lock();
    let io = |source| StoreError::Io {
        path: path.clone(),
        source,
    };
    private_data_dir(layout)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io)?;
    use nix::fcntl::{Flock, FlockArg};
    let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
            eprintln!(
                "Waiting for another berth working on {} to finish…",
                layout.data().display()
            );
            Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, e)| io(std::io::Error::from(e)))?
        }
        Err((_, e)) => return Err(io(std::io::Error::from(e))),
    };
    Ok(WriteLock { _file: file })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(p: &std::path::Path) -> u32 {
        p.symlink_metadata().unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn secret_files_of_older_deployments_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("containers");
        let slot = c.join("app.0");
        std::fs::create_dir_all(slot.join("rootfs")).unwrap();
        for f in ["config.json", "info.json", "rootfs/etc.json"] {
            std::fs::write(slot.join(f), "{}").unwrap();
            std::fs::set_permissions(slot.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::os::unix::fs::symlink("app.0", c.join("app")).unwrap();
        // A symlink named like a secret file is not followed.
        let other = dir.path().join("other");
        std::fs::write(&other, "").unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::create_dir(c.join("b.0")).unwrap();
        std::os::unix::fs::symlink(&other, c.join("b.0/info.json")).unwrap();
        private_deployment_files(&c).unwrap();
        assert_eq!(mode(&slot.join("config.json")), 0o600);
        assert_eq!(mode(&slot.join("info.json")), 0o600);
        assert_eq!(mode(&slot.join("rootfs/etc.json")), 0o644);
        assert_eq!(mode(&other), 0o644);
        private_deployment_files(&dir.path().join("none")).unwrap();
    }
}
