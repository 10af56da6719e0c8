//! The plan of an install or update: every value, file and link, computed
//! from the image and the request before anything changes; `--display`
//! prints it.

use std::path::Path;

use serde::Serialize;

use super::footprint::Footprint;
use super::hostfs::{hostfs, hostfs_actions};
pub use super::hostfs::{HostfsModes, ModeChange, PlannedHostfs};
use super::render;
use super::unit_names::{check_unit_names, Claim};
use super::{exports, paths};
use super::{in_root, DeployError, EntryKind, Info, InfoImage, Link};
use crate::layout::Layout;
use crate::runtime::health;
use crate::store::image::ImageRecord;
use crate::store::Store;
use crate::systemd::manager::Manager;
use crate::systemd::{ContainerName, Marker, UnitName};
use crate::template::{SetValue, Values};

mod units;

use units::{render_unit, tmpfiles, unit_templates, UnitInput};

/// A host file an install writes.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFile {
    /// Path as seen inside the root.
    pub path: String,
    /// Content (text, or binary from `/exports/hostfs`).
    #[serde(serialize_with = "lossy")]
    pub content: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Carries berth's marker (units, tmpfiles).
    pub owned: bool,
    /// File, empty directory or symlink (hostfs); a symlink's content is its target.
    #[serde(skip_serializing_if = "EntryKind::is_file")]
    pub kind: EntryKind,
}

fn lossy<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(bytes) {
        Ok(t) => s.serialize_str(t),
        Err(_) => s.serialize_str(&format!("<{} bytes of binary data>", bytes.len())),
    }
}

/// Everything an install or update does, computed before anything changes.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The container.
    pub name: String,
    /// The image.
    pub image: InfoImage,
    /// The deployment directory name (`NAME.0`, `NAME.1`).
    pub slot: String,
    /// The deployment directory, as seen inside the root.
    pub deployment: String,
    /// Resolved values.
    pub values: Values,
    /// The deployment's `config.json` (none with `noContainerService`).
    pub config: Option<String>,
    /// The merged health check, written as the deployment's `health.json`
    /// (none: no check).
    pub health: Option<health::Config>,
    /// The operator's health keys, recorded in `info.json`.
    pub health_keys: health::source::Overrides,
    /// Containers a manifest entry orders this one after, recorded in
    /// `info.json` for `update --all`'s groups.
    pub after: Vec<String>,
    /// Host files: units, tmpfiles, hostfs.
    pub files: Vec<PlannedFile>,
    /// Enablement symlinks.
    pub links: Vec<Link>,
    /// Units installed.
    pub units: Vec<String>,
    /// What happens to each hostfs path.
    pub hostfs: Vec<PlannedHostfs>,
    /// How hostfs modes reach the host.
    pub hostfs_modes: HostfsModes,
    /// hostfs paths whose mode is not the image's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hostfs_mode_changes: Vec<ModeChange>,
    /// After the install: paths left in place, with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// After the install: hostfs paths shared with other containers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<String>,
    /// What it does to the host beyond its own files.
    pub footprint: Footprint,
}

/// What the plan is for.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    /// The container.
    pub name: &'a ContainerName,
    /// The image reference as the user gave it (`IMAGE_NAME`).
    pub image_name: &'a str,
    /// `--set` values.
    pub set: &'a [SetValue],
    /// The `--runtime` value (the `RUNTIME` default).
    pub runtime: &'a str,
    /// The berth executable the units run.
    pub berth: &'a Path,
    /// The deployment directory name to fill (`NAME.0` or `NAME.1`).
    pub slot: String,
    /// The active deployment being updated, if any.
    pub previous: Option<&'a Info>,
    /// Start from the previous deployment's generated values only (UUID),
    /// not its `--set` ones: `set` is the whole desired set (`berth apply`).
    pub reset_values: bool,
    /// Create the `[Install]` links.
    pub enable: bool,
    /// How hostfs modes reach the host.
    pub hostfs_modes: HostfsModes,
    /// The operator's health check keys (install flags, manifest `health`).
    pub health: &'a health::source::Overrides,
    /// Containers a manifest entry orders this one after (`after`,
    /// `requires`); empty from the command line.
    pub after: &'a [String],
}

/// Plans deploying `record` per `req` below `root`.
pub fn plan(
    layout: &Layout,
    store: &Store,
    record: &ImageRecord,
    req: &PlanRequest<'_>,
    manager: &dyn Manager,
) -> Result<Plan, DeployError> {
    let name = req.name;
    let deployment = format!("{}/{}", layout.containers_inside(), req.slot);
    let unit_dir = layout.unit_dir();
    let exports = exports::read_exports(store, &record.commit)?;
    paths::check_manifest_paths(&record.reference, &exports)?;
    let values = super::vars::values(layout, record, &deployment, req, &exports)?;
    let image = InfoImage {
        reference: record.reference.clone(),
        digest: record.digest.clone(),
        commit: record.commit.clone(),
        image_id: record.image_id.clone(),
        trust: record.trust.clone(),
    };
    let marker = Marker::new(name, &record.reference, &record.digest).map_err(|source| {
        DeployError::Unit {
            file: format!("{unit_dir}/{name}.service"),
            source,
        }
    })?;
    let mut files = Vec::new();
    let mut links = Vec::new();
    let mut units = Vec::new();
    let config = if exports.no_container_service {
        None
    } else {
        let rootless = layout.user_dirs().map(|d| (d.uid, d.gid));
        Some(render::config_json(
            store, record, &exports, &values, rootless,
        )?)
    };
    let health = match config {
        Some(_) => health_check(&record.reference, &record.config_json(), req.health)?,
        None => None,
    };
    // hostfs first, then data (tmpfiles), the units last: in the order the
    // files are switched, PID 1 never sees a unit before what it needs.
    let tree = hostfs(
        layout,
        &record.reference,
        &exports,
        &values,
        req.hostfs_modes,
        &mut files,
    )?;
    let tmpfiles = tmpfiles(layout, record, &exports, &values, config.as_deref())?;
    if let Some(content) = tmpfiles {
        files.push(PlannedFile {
            path: format!("{}/{name}.conf", layout.tmpfiles_dir()),
            content: marker.prepend_to(&content).into_bytes(),
            mode: 0o644,
            owned: true,
            kind: EntryKind::File,
        });
    }
    let mut claims: Vec<(String, Claim)> = Vec::new();
    for (kind, file, tmpl) in unit_templates(layout, &exports) {
        let unit = render_unit(
            &UnitInput {
                layout,
                name,
                kind,
                file,
                template: tmpl,
                values: &values,
                marker: &marker,
                enable: req.enable,
            },
            manager,
            &mut files,
            &mut claims,
        )?;
        if req.enable {
            links.extend(unit.links);
        }
        units.push(unit.name);
    }
    // Also= naming a unit of this container is how its units go together.
    claims.retain(|(u, c)| matches!(c, Claim::Container) || !units.contains(u));
    check_unit_names(
        layout,
        name.as_str(),
        &record.reference,
        &claims,
        req.previous,
    )?;
    check_conflicts(layout, name, req.previous, &files, &links)?;
    let hostfs = hostfs_actions(layout, name, req.previous, &files, &tree.sources)?;
    let footprint = super::footprint::of_files(
        &values,
        config.as_deref(),
        &files,
        &units
            .iter()
            .map(|u| format!("{unit_dir}/{u}"))
            .collect::<Vec<_>>(),
        &format!("{}/{name}.conf", layout.tmpfiles_dir()),
        &hostfs,
    );
    Ok(Plan {
        name: name.to_string(),
        image,
        slot: req.slot.clone(),
        deployment,
        values,
        config,
        health,
        health_keys: req.health.clone(),
        after: req.after.to_vec(),
        files,
        links,
        units,
        hostfs,
        hostfs_modes: req.hostfs_modes,
        hostfs_mode_changes: tree.mode_changes,
        kept: Vec::new(),
        shared: Vec::new(),
        footprint,
    })
}

/// PURE: the deployment's health check: the image config's `Healthcheck`
/// (of `image`, named in errors) merged with the operator's `keys`.
pub fn health_check(
    image: &str,
    image_config: &serde_json::Value,
    keys: &health::source::Overrides,
) -> Result<Option<health::Config>, DeployError> {
    let invalid = |file: String| {
        move |e: health::source::SourceError| DeployError::Invalid {
            file,
            detail: e.to_string(),
        }
    };
    let from_image = health::source::from_image_config(image_config)
        .map_err(invalid(format!("{image}: image config")))?;
    health::source::merge(from_image.as_ref(), keys).map_err(invalid("health check".into()))
}

/// A host path berth may write for `image`: [`paths::check_path`], then
/// outside berth's own state and the unit and tmpfiles directories (those
/// are berth's to name); for `--user`, inside the user's home. `key` says
/// where the image holds it.
pub(crate) fn check_host_path(
    layout: &Layout,
    image: &str,
    key: &str,
    path: &str,
) -> Result<(), DeployError> {
    paths::check_image_path(image, key, path)?;
    let bad = |why: String| paths::refuse(image, key, path, why);
    for reserved in [
        layout.data_inside(),
        layout.unit_dir(),
        layout.tmpfiles_dir(),
    ] {
        if path == reserved || path.starts_with(&format!("{reserved}/")) {
            return Err(bad(format!("is below {reserved}, which berth manages")));
        }
    }
    if let Some(home) = layout.user_dirs().map(|d| d.home.trim_end_matches('/')) {
        if !path.starts_with(&format!("{home}/")) {
            return Err(bad(format!(
                "is outside {home}; a --user install writes only below the home directory \
                 (map it there with renameFiles)"
            )));
        }
    }
    Ok(())
}

/// Refuses files and links that exist and are not this container's.
fn check_conflicts(
    layout: &Layout,
    name: &ContainerName,
    previous: Option<&Info>,
    files: &[PlannedFile],
    links: &[Link],
) -> Result<(), DeployError> {
    let ours = |p: &str| {
        previous.is_some_and(|i| {
            i.files.iter().any(|f| f.path == p) || i.links.iter().any(|l| l.path == p)
        })
    };
    let root = layout.open_root()?;
    // Hostfs paths that exist are shared or the operator's: the switch
    // decides, nothing is refused.
    for f in files.iter().filter(|f| f.owned) {
        if root.lstat(Path::new(&f.path))?.is_some() && !ours(&f.path) {
            return Err(DeployError::Exists {
                name: name.to_string(),
                path: in_root(layout, &f.path),
            });
        }
    }
    for l in links {
        let p = in_root(layout, &l.path);
        let inside = Path::new(&l.path);
        match root.read_link(inside) {
            Ok(t) if t == Path::new(&l.target) => {}
            Ok(_) | Err(_) if !root.exists(inside) => {}
            _ if ours(&l.path) => {}
            _ => {
                return Err(DeployError::Exists {
                    name: name.to_string(),
                    path: p,
                })
            }
        }
    }
    Ok(())
}

/// The unit names of a plan, parsed.
pub fn unit_names(units: &[String]) -> Vec<UnitName> {
    units
        .iter()
        .filter_map(|u| UnitName::parse(u).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn host_paths_must_be_plain_absolute_and_outside_berths_dirs() {
        let system = Layout::system(Path::new("/"));
        for ok in ["/usr/bin/etcdctl", "/etc/etcd/etcd.conf", "/opt/x"] {
            check_host_path(&system, "i", "f", ok).unwrap();
        }
        for bad in [
            "usr/bin/x",
            "/",
            "/usr/../etc/shadow",
            "/usr//bin",
            "/usr/./bin",
            "/usr/bin/",
            "/var/lib/berth/containers/x",
            "/etc/systemd/system/x.service",
            "/etc/tmpfiles.d/x.conf",
            "/usr/bin/a\nb",
        ] {
            assert!(check_host_path(&system, "i", "f", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn user_host_paths_must_be_in_home_outside_berths_dirs() {
        let dirs = crate::template::UserDirs {
            home: "/home/u".into(),
            uid: 1000,
            gid: 1000,
            xdg_runtime_dir: Some("/run/user/1000".into()),
            ..Default::default()
        };
        let user = Layout::user(&dirs).unwrap();
        check_host_path(&user, "i", "f", "/home/u/bin/etcdctl").unwrap();
        for bad in [
            "/usr/bin/etcdctl",
            "/home/uv/x",
            "/home/u/.local/share/berth/containers/x",
            "/home/u/.config/systemd/user/x.service",
            "/home/u/.config/user-tmpfiles.d/x.conf",
        ] {
            assert!(check_host_path(&user, "i", "f", bad).is_err(), "{bad:?}");
        }
    }
}
