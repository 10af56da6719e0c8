//! `berth mount NAME|IMAGE DIR` and `berth umount DIR`: a read-only look
//! inside an installed container's deployment or a stored image.
//!
//! A container's `rootfs` is bind-mounted read-only, `nosuid` and `nodev`
//! at DIR (DIR is where other users may reach it: an image's setuid-root
//! binaries must not run as root from there, nor its device nodes open). An image is
//! checked out (hardlinks) under `ROOT/var/lib/berth/mounts/ID/rootfs`
//! first; `umount` removes that checkout again. The checkout's files are
//! the store's objects, so the mount is read-only: writing through it would
//! corrupt the store.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::Serialize;

use super::{io_err, DeployError};
use crate::layout::Layout;
use crate::store::image;
use crate::store::{lock_root, Store, StoreError};
use crate::systemd::ContainerName;
use crate::Error;

/// What `mount` did.
#[derive(Debug, Serialize)]
pub struct Mounted {
    /// The directory mounted on.
    pub dir: PathBuf,
    /// The tree shown there.
    pub source: PathBuf,
    /// The container or image reference.
    pub what: String,
}

fn mount_err(path: &Path) -> impl FnOnce(nix::Error) -> DeployError + '_ {
    move |e| DeployError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::from(e),
    }
}

fn bind_read_only(source: &Path, dir: &Path) -> Result<(), DeployError> {
    mount(
        Some(source),
        dir,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(mount_err(dir))?;
    let ro = mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_REC,
        None::<&str>,
    );
    if let Err(e) = ro {
        let _ = umount2(dir, MntFlags::MNT_DETACH);
        return Err(mount_err(dir)(e));
    }
    Ok(())
}

/// Mounts the container `what` (or, if no container has that name, the
/// stored image `what`) read-only on `dir`.
pub fn mount_at(layout: &Layout, what: &str, dir: &Path) -> Result<Mounted, Error> {
    let dir = std::fs::canonicalize(dir).map_err(io_err(dir))?;
    if !dir.is_dir() {
        return Err(DeployError::Invalid {
            file: dir.display().to_string(),
            detail: "is not a directory".into(),
        }
        .into());
    }
    if let Ok(name) = ContainerName::parse(what) {
        let root = layout.open_root()?;
        let active = super::containers_inside(layout).join(name.as_str());
        if root.exists(&active) {
            let source = root.resolve(&active.join("rootfs"))?;
            bind_read_only(&source, &dir)?;
            return Ok(Mounted {
                dir,
                source,
                what: what.to_string(),
            });
        }
    }
    let _lock = lock_root(layout)?;
    let store = Store::open(layout, false)?.ok_or_else(|| StoreError::ImageNotFound {
        name: what.to_string(),
    })?;
    let record = image::find(&store, what)?.ok_or_else(|| StoreError::ImageNotFound {
        name: format!("{what} (neither an installed container nor a stored image)"),
    })?;
    let id = format!("{}-{}", &record.commit[..12], std::process::id());
    let root = layout.open_root()?;
    let base = mounts_inside(layout).join(&id);
    root.create_dir_all(&base, 0o700)?;
    // libostree checks out by path: the base resolved inside the root.
    let source = root.resolve(&base)?.join("rootfs");
    let result = image::checkout(&store, &record.commit, &source)
        .and_then(|_| {
            root.write_atomic(
                &base.join("target"),
                dir.as_os_str().as_encoded_bytes(),
                0o600,
            )
            .map_err(Error::from)
        })
        .and_then(|_| bind_read_only(&source, &dir).map_err(Error::from));
    if let Err(e) = result {
        let _ = root.remove(&base);
        return Err(e);
    }
    Ok(Mounted {
        dir,
        source,
        what: record.reference,
    })
}

/// Unmounts `dir`, and removes the image checkout behind it, if any.
pub fn umount_at(layout: &Layout, dir: &Path) -> Result<(), Error> {
    let dir = std::fs::canonicalize(dir).map_err(io_err(dir))?;
    umount2(&dir, MntFlags::empty()).map_err(mount_err(&dir))?;
    let root = layout.open_root()?;
    let mounts = mounts_inside(layout);
    for n in root.read_dir(&mounts).unwrap_or_default() {
        let base = mounts.join(n);
        let target = root
            .read_file_nofollow(&base.join("target"))
            .ok()
            .flatten()
            .unwrap_or_default();
        if target == dir.as_os_str().as_encoded_bytes() {
            root.remove(&base)?;
        }
    }
    Ok(())
}

/// Checkouts behind `berth mount IMAGE`, as seen inside the root.
fn mounts_inside(layout: &Layout) -> std::path::PathBuf {
    Path::new(layout.data_inside()).join("mounts")
}
