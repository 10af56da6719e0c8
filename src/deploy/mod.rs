//! Installing images as systemd services: `berth install`, `uninstall`, `list`.
//!
//! ```text
//! ROOT/var/lib/berth/containers/
//! ├── NAME -> NAME.0            the active deployment (the commit point of install)
//! └── NAME.0/
//!     ├── rootfs/               hardlinked checkout of the image commit
//!     ├── config.json           rendered OCI runtime config
//!     └── info.json             image, values with provenance, files written, links
//! ROOT/etc/systemd/system/NAME.service   marker line first
//! ROOT/etc/tmpfiles.d/NAME.conf          when the image has a tmpfiles template
//! ```
//!
//! - [`txn`]: the undo log every multi-step operation runs in.
//! - [`vars`]: the variables of an install.
//! - [`plan`]: every value, file and link of an install, before anything changes.
//! - [`recover`]: clearing what a killed install left.
//! - [`exports`]: the image's `/exports`, read once; [`paths`]: the check
//!   every path an image supplies passes.
//! - [`hostfs`]: `/exports/hostfs` planned as host paths; [`shared`]: who
//!   wrote each hostfs path and who else uses it.
//! - [`footprint`]: what a deployment does to its host beyond its own
//!   files ([`grants`]: the config part); [`gate`]: update refuses a
//!   footprint that grows.
//! - [`unit_names`]: a container's unit names and its units' `Alias=`
//!   and `Also=` may not take an existing unit's name.
//! - [`render`]: the image's `/exports` (or berth's defaults) rendered into files.
//! - [`run_once`]: `berth run-once`, an image run as a tool, nothing left.
//! - [`mod@install`], [`mod@uninstall`]: the verbs; [`list()`] reads the deployments.
//!
//! Only the offline path exists so far ([`crate::systemd::manager::Offline`]).

pub mod activate;
pub mod exports;
pub mod footprint;
pub mod gate;
pub mod grants;
pub mod groups;
pub mod hostfs;
pub mod install;
pub mod last_update;
pub mod mount;
pub mod paths;
pub mod plan;
pub mod recover;
pub mod render;
pub mod rollback;
pub mod rootless;
pub mod run_once;
pub mod shared;
pub mod soak;
pub mod status;
pub mod switch;
pub mod txn;
pub mod uninstall;
pub mod unit_names;
pub mod update;
pub mod update_order;
pub mod vars;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::layout::Layout;
use crate::systemd::{NameError, UnitError};
use crate::template::{RenderError, Values, ValuesError};
use crate::ErrorKind;

pub use install::{install, InstallRequest};
pub use plan::{Plan, PlannedFile};
pub use rollback::rollback;
pub use uninstall::uninstall;
pub use update::{update, UpdateRequest};

/// Install, uninstall and list failures.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A container of this name is installed, or its files exist.
    #[error("{name} is already installed ({path} exists); uninstall it first")]
    Exists {
        /// The container.
        name: String,
        /// What is in the way.
        path: PathBuf,
    },
    /// No container of this name is installed.
    #[error("no container named {name} is installed; see `berth list`")]
    NotInstalled {
        /// The container.
        name: String,
    },
    /// An invalid container or unit name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// An invalid variable or value.
    #[error(transparent)]
    Values(#[from] ValuesError),
    /// A template that cannot be rendered.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Unit text that systemd would refuse.
    #[error("{file}: {source}")]
    Unit {
        /// The unit file.
        file: String,
        /// Cause.
        source: UnitError,
    },
    /// An image file (manifest.json, config.json) that cannot be used.
    #[error("{file}: {detail}")]
    Invalid {
        /// The file, as the image or berth names it.
        file: String,
        /// What is wrong.
        detail: String,
    },
    /// A unit failed to start or restart (the message carries its journal).
    #[error("{detail}")]
    Failed {
        /// What failed, with the unit's last journal lines.
        detail: String,
    },
    /// An update failed its gate and was switched back (with the others
    /// of its group already switched).
    #[error("rolled back {name}: {reason}{detail}")]
    RolledBack {
        /// The container that failed.
        name: String,
        /// Why (one line).
        reason: String,
        /// What was put back, and the unit's last journal lines (each on
        /// its own line, after a newline).
        detail: String,
    },
    /// Nothing to roll back to.
    #[error("{name} has no previous deployment to roll back to (it was never updated)")]
    NoPrevious {
        /// The container.
        name: String,
    },
    /// An update would widen what the container does on its host.
    #[error(
        "the update of {name} to {digest} grows its host footprint:\n  {growth}\n\
         review the update with --display; to allow it pass --accept-footprint \
         (in a manifest: accept_footprint = true in its entry)"
    )]
    FootprintGrows {
        /// The container.
        name: String,
        /// The refused image's manifest digest.
        digest: String,
        /// What grows, one kind per line.
        growth: String,
    },
    /// The service manager refused or failed an operation.
    #[error(transparent)]
    Manager(#[from] crate::systemd::manager::ManagerError),
    /// A path below the root could not be used (a planted symlink, a loop, I/O).
    #[error(transparent)]
    Root(#[from] crate::rootfs::RootError),
    /// A path the image supplies (a `VOLUME`, a hostfs path, a
    /// `manifest.json` key, a tmpfiles line) that is not a plain absolute
    /// path inside the root, or one berth does not let an image write.
    #[error("image {image}: {key}: path {path:?} {why}; refusing the image")]
    ImagePath {
        /// The image reference.
        image: String,
        /// Where the image holds the path (`config.Volumes`,
        /// `manifest.json renameFiles`, `tmpfiles.template line 3`).
        key: String,
        /// The path, as the image gives it.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// A unit name the install would take is already a unit's, not berth's.
    #[error("{by}: {path} already holds unit {unit}, and berth did not write it; {hint}")]
    UnitTaken {
        /// The unit name.
        unit: String,
        /// Where the unit is, as seen inside the root.
        path: String,
        /// What asks for the name (`container dbus`, `image IMAGE, Alias= of
        /// app.service`).
        by: String,
        /// What to do.
        hint: String,
    },
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

impl DeployError {
    /// The exit-code kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DeployError::Exists { .. }
            | DeployError::FootprintGrows { .. }
            | DeployError::UnitTaken { .. } => ErrorKind::Conflict,
            DeployError::NotInstalled { .. } => ErrorKind::NotFound,
            DeployError::Name(_)
            | DeployError::Values(_)
            | DeployError::Render(_)
            | DeployError::Unit { .. }
            | DeployError::Invalid { .. }
            | DeployError::ImagePath { .. } => ErrorKind::Usage,
            DeployError::NoPrevious { .. } => ErrorKind::NotFound,
            DeployError::Root(e) => e.kind(),
            DeployError::Io { .. }
            | DeployError::Manager(_)
            | DeployError::Failed { .. }
            | DeployError::RolledBack { .. } => ErrorKind::Failed,
        }
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DeployError + '_ {
    move |source| DeployError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Test builds: `BERTH_FAILPOINT=STEP` makes the named step fail;
/// `BERTH_FAILPOINT=STEP:kill` SIGKILLs berth there (no cleanup runs, as
/// when the machine loses power), leaving the journal for the next run.
pub(crate) fn failpoint(step: &str) -> Result<(), DeployError> {
    if !cfg!(debug_assertions) {
        return Ok(());
    }
    let Ok(want) = std::env::var("BERTH_FAILPOINT") else {
        return Ok(());
    };
    if want == step {
        return Err(DeployError::Io {
            path: PathBuf::from(format!("failpoint {step}")),
            source: std::io::Error::other("injected failure"),
        });
    }
    if want.strip_suffix(":kill") == Some(step) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    Ok(())
}

/// Undoes or finishes an operation a killed berth left journaled, if any,
/// restarting the services it had restarted (for the read-only verbs,
/// which take the lock only then).
pub fn recover_if_needed(
    layout: &Layout,
    manager: &dyn crate::systemd::manager::Manager,
) -> Result<(), crate::Error> {
    // No root (nothing installed there yet): nothing to recover.
    let journal = layout.journal_inside();
    if layout.open_root().is_ok_and(|r| r.exists(&journal)) {
        let _lock = crate::store::lock_root(layout)?;
        recover::recover_interrupted(layout, manager)?;
    }
    Ok(())
}

/// The berth executable units below `root` should run: this one when the
/// root is `/` (always for `--user`); else the same path if the root has a berth there, else the
/// first of `/usr/bin/berth` and `/usr/local/bin/berth` the root has (an
/// image being built runs its own berth, not the builder's). With none,
/// `/usr/bin/berth` (where the packages put it), with a warning.
pub fn berth_for_root(layout: &Layout, current: &Path) -> PathBuf {
    if layout.root() == Path::new("/") {
        return current.to_path_buf();
    }
    let candidates = [
        current.to_path_buf(),
        PathBuf::from("/usr/bin/berth"),
        PathBuf::from("/usr/local/bin/berth"),
    ];
    for c in &candidates {
        if layout.open_root().is_ok_and(|r| r.is_file(c)) {
            return c.clone();
        }
    }
    tracing::warn!(
        "{} has no berth executable (looked for {}); units will run /usr/bin/berth: install berth there",
        layout.root().display(),
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    PathBuf::from("/usr/bin/berth")
}

/// `path` (absolute, as seen inside the root) on the host.
pub fn in_root(layout: &Layout, path: &str) -> PathBuf {
    layout.host(path)
}

/// The deployments directory, as seen inside the root.
pub fn containers_inside(layout: &Layout) -> PathBuf {
    PathBuf::from(layout.containers_inside())
}

/// The deployments directory on the host.
pub fn containers_dir(layout: &Layout) -> PathBuf {
    layout.containers()
}

/// The image a deployment was made from (`gc::users` reads `reference` and `commit`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InfoImage {
    /// The stored reference.
    pub reference: String,
    /// Manifest digest.
    pub digest: String,
    /// The merged OSTree commit checked out.
    pub commit: String,
    /// Config digest.
    #[serde(default)]
    pub image_id: String,
    /// How the signature policy checked the image when it was pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<crate::trust::source::TrustRecord>,
}

/// A host file an install wrote, with its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenFile {
    /// Path as seen inside the root.
    pub path: String,
    /// `sha256:<hex>` of the content.
    pub sha256: String,
    /// Permission bits.
    #[serde(default = "default_mode")]
    pub mode: u32,
    /// Written by berth with its marker (unit, socket, timer, tmpfiles):
    /// replaced on update even when edited. Other host files (hostfs) are
    /// left alone once edited.
    #[serde(default)]
    pub owned: bool,
    /// What the path is: a file (the default, and all an `info.json` written
    /// before berth knew other kinds holds), an empty directory or a symlink.
    #[serde(default, skip_serializing_if = "EntryKind::is_file")]
    pub kind: EntryKind,
    /// A symlink's target, verbatim from the image (never followed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// What a host path of a deployment is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file.
    #[default]
    File,
    /// A directory the image ships empty (`/exports/hostfs/etc/cni/net.d`).
    Dir,
    /// A symlink.
    Symlink,
}

impl EntryKind {
    /// A regular file.
    pub fn is_file(&self) -> bool {
        *self == EntryKind::File
    }

    /// An empty directory.
    pub fn is_dir(&self) -> bool {
        *self == EntryKind::Dir
    }
}

fn default_mode() -> u32 {
    0o644
}

/// An enablement symlink.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Link {
    /// The link, as seen inside the root.
    pub path: String,
    /// Where it points.
    pub target: String,
}

/// `NAME.N/info.json`: everything needed to switch to this deployment
/// (rollback) or away from it (update, uninstall). Copies of the host files
/// are kept in `NAME.N/host/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Info {
    /// The container name.
    pub name: String,
    /// The deployment directory name (`NAME.0` or `NAME.1`).
    pub deployment: String,
    /// The image.
    pub image: InfoImage,
    /// Resolved values with provenance.
    pub values: Values,
    /// Host files (units, tmpfiles, hostfs).
    pub files: Vec<WrittenFile>,
    /// Enablement symlinks.
    pub links: Vec<Link>,
    /// Host directories created for the files and links, outermost first;
    /// removed when empty.
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Units installed (`NAME.service`, `NAME.socket`, ...).
    #[serde(default)]
    pub units: Vec<String>,
    /// Seconds since the epoch of the install of this deployment.
    pub installed: u64,
    /// What it does to the host beyond its own files (absent in deployments
    /// made before berth recorded it: then computed from their files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footprint: Option<footprint::Footprint>,
    /// How its hostfs modes reached the host (updates keep the choice).
    #[serde(default, skip_serializing_if = "hostfs::HostfsModes::is_safe")]
    pub hostfs_modes: hostfs::HostfsModes,
    /// The operator's health check keys (`--health-*`, a manifest entry's
    /// `health`): an update merges them again with the new image's config.
    #[serde(
        default,
        skip_serializing_if = "crate::runtime::health::source::Overrides::is_empty"
    )]
    pub health: crate::runtime::health::source::Overrides,
    /// Containers a manifest entry orders this one after (`after`,
    /// `requires`): `update --all` groups and orders by them as by the
    /// units' `After=` (see [`groups`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
}

impl Info {
    /// Reads `info.json` of the active deployment of `name`.
    pub fn read(layout: &Layout, name: &str) -> Result<Info, DeployError> {
        Self::read_slot(layout, name)
    }

    /// Reads `info.json` of the deployment directory `slot` (`NAME`, `NAME.0`).
    pub fn read_slot(layout: &Layout, slot: &str) -> Result<Info, DeployError> {
        let path = containers_inside(layout).join(slot).join("info.json");
        let text = match layout.open_root()?.read(&path) {
            Ok(t) => t,
            Err(crate::rootfs::RootError::Io { source, .. }) => {
                return Err(io_err(&layout.host(&path.display().to_string()))(source))
            }
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&text).map_err(|e| DeployError::Invalid {
            file: path.display().to_string(),
            detail: e.to_string(),
        })
    }

    /// The deployment directory, as seen inside the root.
    pub fn dir(&self, layout: &Layout) -> String {
        format!("{}/{}", layout.containers_inside(), self.deployment)
    }

    /// The units to start for `--now` (sockets and timers activate the
    /// service), or the service alone.
    pub fn start_units(&self) -> Vec<String> {
        let activators: Vec<String> = self
            .units
            .iter()
            .filter(|u| u.ends_with(".socket") || u.ends_with(".timer"))
            .cloned()
            .collect();
        if activators.is_empty() {
            self.units.clone()
        } else {
            activators
        }
    }

    /// The service unit, unless the image has none (`noContainerService`).
    pub fn service(&self) -> Option<&str> {
        self.units
            .iter()
            .find(|u| u.ends_with(".service"))
            .map(String::as_str)
    }
}

/// One row of `berth list`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Manifest digest.
    pub digest: String,
    /// Active deployment directory name.
    pub deployment: String,
    /// Unit state from the service manager ("unknown" offline).
    pub state: String,
    /// Where its health check stands while it runs (none: no check, or
    /// not running).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::runtime::health::Status>,
}

/// The installed containers below `root`, sorted by name.
pub fn list(layout: &Layout, manager: &dyn crate::systemd::manager::Manager) -> Vec<Listed> {
    let mut out = Vec::new();
    let Ok(root) = layout.open_root() else {
        return out;
    };
    let cdir = containers_inside(layout);
    let Ok(entries) = root.read_dir(&cdir) else {
        return out;
    };
    for entry in entries {
        let is_link = matches!(root.lstat(&cdir.join(&entry)), Ok(Some(e)) if e.kind == crate::rootfs::Kind::Symlink);
        let name = entry.to_string_lossy().into_owned();
        if !is_link || crate::systemd::ContainerName::parse(&name).is_err() {
            continue;
        }
        match Info::read(layout, &name) {
            Ok(info) => {
                let state = crate::systemd::UnitName::parse(&format!("{name}.service"))
                    .map(|u| manager.unit_state(&u))
                    .unwrap_or_else(|_| "unknown".into());
                let health = status::running_health(layout, &name).map(|h| h.status);
                out.push(Listed {
                    name,
                    image: info.image.reference,
                    digest: info.image.digest,
                    deployment: info.deployment,
                    state,
                    health,
                });
            }
            Err(e) => tracing::warn!("ignoring {name}: {e}"),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}
