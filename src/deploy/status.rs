//! `berth status NAME`: the active deployment, its values with provenance,
//! the files it wrote (and whether they were edited since), unit states, the
//! rollback target, its host footprint, an update waiting for the operator
//! and the last journal lines.

use serde::Serialize;

use super::footprint::Footprint;
use super::gate::{self, Waiting};
use super::update::other_slot;
use super::{DeployError, Info};
use crate::layout::Layout;
use crate::runtime::health;
use crate::systemd::manager::Manager;
use crate::systemd::{ContainerName, UnitName};
use crate::template::Values;

/// A file the deployment wrote, as it is now.
#[derive(Debug, Serialize)]
pub struct FileState {
    /// Path as seen inside the root.
    pub path: String,
    /// `ok`, `modified`, `missing`, or `shared` (another container's version, as berth wrote it).
    pub state: &'static str,
}

/// A unit and its state.
#[derive(Debug, Serialize)]
pub struct UnitState {
    /// The unit.
    pub unit: String,
    /// Its `ActiveState`, or `unknown` offline.
    pub state: String,
}

/// The other deployment (what `rollback` switches to).
#[derive(Debug, Serialize)]
pub struct Previous {
    /// Its directory name.
    pub deployment: String,
    /// Its image reference.
    pub image: String,
    /// Its manifest digest.
    pub digest: String,
}

/// `berth status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The container.
    pub name: String,
    /// Active deployment directory name.
    pub deployment: String,
    /// Image reference.
    pub image: String,
    /// Manifest digest.
    pub digest: String,
    /// Values with provenance.
    pub values: Values,
    /// Host files.
    pub files: Vec<FileState>,
    /// Enablement links.
    pub links: Vec<String>,
    /// Units and states.
    pub units: Vec<UnitState>,
    /// The rollback target, if any.
    pub previous: Option<Previous>,
    /// Last journal lines of the service.
    pub journal: Vec<String>,
    /// What the deployment does to its host beyond its own files.
    pub footprint: Footprint,
    /// An update refused because its footprint grows, waiting for the
    /// operator (`update --accept-footprint`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_waits: Option<Waiting>,
    /// How the signature policy checked the deployed image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust: Option<crate::trust::source::TrustRecord>,
    /// The health check, if the deployment has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// The last update: passed its soak, or rolled back (and then not
    /// retried by `update --all` until the reference moves).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update: Option<super::last_update::LastUpdate>,
}

/// A deployment's health check and how it stands.
#[derive(Debug, Serialize)]
pub struct Health {
    /// The check the deployment runs (its `health.json`).
    pub check: health::Config,
    /// What berth-run reports; none while the container is not running.
    pub state: Option<health::State>,
}

/// The health check of `info`'s deployment and its state, if it has one.
pub fn health_of(layout: &Layout, info: &Info) -> Option<Health> {
    let path = std::path::Path::new(&info.dir(layout)).join(health::FILE);
    let bytes = layout.open_root().ok()?.read(&path).ok()?;
    let check = match serde_json::from_slice(&bytes) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(
                "{}: {e}",
                layout.host(&path.display().to_string()).display()
            );
            return None;
        }
    };
    Some(Health {
        check,
        state: running_health(layout, &info.name),
    })
}

/// What berth-run reports for running container `name`, if it checks one.
pub fn running_health(layout: &Layout, name: &str) -> Option<health::State> {
    let paths = crate::runtime::Paths::for_layout(layout).ok()?;
    health::State::read(&paths, name)
}

/// The status of `name` below `root`.
pub fn status(layout: &Layout, name: &str, manager: &dyn Manager) -> Result<Status, DeployError> {
    let name = ContainerName::parse(name)?;
    let link = super::containers_inside(layout).join(name.as_str());
    let root = layout.open_root().ok();
    let entry = match &root {
        Some(r) => r.lstat(&link)?,
        None => None,
    };
    if !matches!(entry, Some(e) if e.kind == crate::rootfs::Kind::Symlink) {
        return Err(DeployError::NotInstalled {
            name: name.to_string(),
        });
    }
    let info = Info::read(layout, name.as_str())?;
    let reg = super::shared::Registry::load(layout)?;
    let root = layout.open_root()?;
    let files = info
        .files
        .iter()
        .map(|f| {
            // A path shared with another container carries the owner's version.
            let owner = reg.paths.get(&f.path).filter(|e| e.owner != name.as_str());
            let (kind, sum) =
                owner.map_or((f.kind, f.sha256.as_str()), |e| (e.kind, e.sha256.as_str()));
            FileState {
                path: f.path.clone(),
                state: if !root.exists(std::path::Path::new(&f.path)) {
                    "missing"
                } else if !super::switch::unchanged(&root, &f.path, kind, sum) {
                    "modified"
                } else if owner.is_some() {
                    "shared"
                } else {
                    "ok"
                },
            }
        })
        .collect();
    let units = info
        .units
        .iter()
        .filter_map(|u| UnitName::parse(u).ok())
        .map(|u| UnitState {
            state: manager.unit_state(&u),
            unit: u.to_string(),
        })
        .collect();
    let previous = Info::read_slot(layout, &other_slot(&name, &info.deployment))
        .ok()
        .map(|p| Previous {
            deployment: p.deployment,
            image: p.image.reference,
            digest: p.image.digest,
        });
    let journal = info
        .service()
        .and_then(|u| UnitName::parse(u).ok())
        .map(|u| manager.journal_tail(&u, 10))
        .unwrap_or_default();
    let footprint = gate::footprint_of(layout, &info)?;
    let update_waits = gate::waiting(layout, &info);
    let health = health_of(layout, &info);
    let last_update = super::last_update::read(layout, &info);
    Ok(Status {
        health,
        last_update,
        footprint,
        update_waits,
        trust: info.image.trust.clone(),
        name: name.to_string(),
        deployment: info.deployment.clone(),
        image: info.image.reference.clone(),
        digest: info.image.digest.clone(),
        values: info.values.clone(),
        files,
        links: info.links.iter().map(|l| l.path.clone()).collect(),
        units,
        previous,
        journal,
    })
}
