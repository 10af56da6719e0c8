//! The plan of an install: every value, file and link, computed from the
//! image and the request before anything changes; `--display` prints it.

use std::path::Path;

use serde::Serialize;

use super::install::InstallRequest;
use super::render::{self, Exports};
use super::{in_root, io_err, DeployError, InfoImage};
use super::{TMPFILES_DIR, UNIT_DIR};
use crate::store::image::ImageRecord;
use crate::store::Store;
use crate::systemd::manager::Manager;
use crate::systemd::{ContainerName, Marker, UnitType};
use crate::template::values::{capabilities_value, Forced};
use crate::template::{resolve, FileKind, HostDefaults, SetValue, Sources, Values};

/// A file an install writes.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFile {
    /// Path as seen inside the root.
    pub path: String,
    /// Content.
    pub content: String,
}

/// Everything an install does, computed before anything changes.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The container.
    pub name: String,
    /// The image.
    pub image: InfoImage,
    /// The deployment directory, as seen inside the root.
    pub deployment: String,
    /// Resolved values.
    pub values: Values,
    /// Files written, host files and the deployment's config.json.
    pub files: Vec<PlannedFile>,
    /// Enablement symlinks: (link, target), as seen inside the root.
    pub links: Vec<(String, String)>,
}

/// Plans the install of `record` as `name` below `root`.
pub fn plan(
    root: &Path,
    store: &Store,
    record: &ImageRecord,
    name: &ContainerName,
    set: &[SetValue],
    req: &InstallRequest,
    manager: &dyn Manager,
) -> Result<Plan, DeployError> {
    let deployment = format!("/{}/{name}.0", crate::store::gc::CONTAINERS_DIR);
    let exports = render::read_exports(store, &record.commit)?;
    let values = values(record, name, &deployment, set, req, &exports)?;
    let image = InfoImage {
        reference: record.reference.clone(),
        digest: record.digest.clone(),
        commit: record.commit.clone(),
        image_id: record.image_id.clone(),
    };
    let unit_name = name.unit(UnitType::Service);
    let unit_path = format!("{UNIT_DIR}/{unit_name}");
    let (file, tmpl) = match &exports.service {
        Some(t) => ("/exports/service.template", t.as_str()),
        None => ("templates/service.template", render::DEFAULT_SERVICE),
    };
    let body = render::render(file, tmpl, &values, FileKind::Unit)?;
    let marker = Marker::new(name, &record.reference, &record.digest).map_err(|source| {
        DeployError::Unit {
            file: unit_path.clone(),
            source,
        }
    })?;
    let unit_text = marker.prepend_to(&body);
    let links = manager
        .enable_plan(&unit_name, &unit_text, UNIT_DIR)
        .map_err(|source| DeployError::Unit {
            file: unit_path.clone(),
            source,
        })?;
    // Data first, the unit last (PID 1 never sees a unit before its files).
    let config = render::config_json(store, record, &exports, &values)?;
    let tmpfiles = match &exports.tmpfiles {
        Some(t) => Some(render::render(
            "/exports/tmpfiles.template",
            t,
            &values,
            FileKind::Tmpfiles,
        )?),
        None => render::default_tmpfiles(root, &config),
    };
    let mut files = vec![PlannedFile {
        path: format!("{deployment}/config.json"),
        content: config,
    }];
    if let Some(content) = tmpfiles {
        files.push(PlannedFile {
            path: format!("{TMPFILES_DIR}/{name}.conf"),
            content: marker.prepend_to(&content),
        });
    }
    files.push(PlannedFile {
        path: unit_path,
        content: unit_text,
    });
    for f in &files[1..] {
        let p = in_root(root, &f.path);
        if p.symlink_metadata().is_ok() {
            return Err(DeployError::Exists {
                name: name.to_string(),
                path: p,
            });
        }
    }
    let links = links.into_iter().map(|s| (s.link, s.target)).collect();
    Ok(Plan {
        name: name.to_string(),
        image,
        deployment,
        values,
        files,
        links,
    })
}

fn values(
    record: &ImageRecord,
    name: &ContainerName,
    destdir: &str,
    set: &[SetValue],
    req: &InstallRequest,
    exports: &Exports,
) -> Result<Values, DeployError> {
    let berth = req.berth.display().to_string();
    // Units exec berth-run (the same runtime without libostree linked) when
    // it is installed beside berth; see docs/runtime.md.
    let lean = req.berth.with_file_name("berth-run");
    let exec_start = if lean.is_file() {
        format!("{} {name}", lean.display())
    } else {
        format!("{berth} run {name}")
    };
    let forced = Forced {
        name: name.to_string(),
        destdir: destdir.to_string(),
        exec_start,
        exec_stop: format!("{berth} kill {name}"),
        exec_startpre: String::new(),
        exec_stoppost: String::new(),
        host_uid: nix::unistd::getuid().as_raw(),
        host_gid: nix::unistd::getgid().as_raw(),
        image_name: req.image.clone(),
        image_id: record.image_id.clone(),
    };
    let mut caps: Vec<String> = caps::read(None, caps::CapSet::Bounding)
        .map(|s| s.iter().map(|c| c.to_string()).collect())
        .unwrap_or_default();
    caps.sort();
    let host = HostDefaults::system(capabilities_value(&caps), req.runtime.clone());
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map_err(io_err(Path::new("/proc/sys/kernel/random/uuid")))?;
    Ok(resolve(&Sources {
        forced: &forced,
        set,
        previous: &Default::default(),
        host: &host,
        manifest: &exports.defaults,
        generated_uuid: uuid.trim(),
    })?)
}
