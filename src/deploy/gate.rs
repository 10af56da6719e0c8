//! A deployment's footprint as recorded in its `info.json`, or computed
//! from its files for deployments made before berth recorded it.

use super::footprint::{self, Footprint};
use super::install::staged_files;
use super::plan::PlannedFile;
use super::{in_root, io_err, DeployError, Info};
use crate::layout::Layout;

/// The footprint of the deployment `info` describes.
pub fn footprint_of(layout: &Layout, info: &Info) -> Result<Footprint, DeployError> {
    if let Some(f) = &info.footprint {
        return Ok(f.clone());
    }
    let dir = in_root(layout, &info.dir(layout));
    let config_path = dir.join("config.json");
    let config = match std::fs::read_to_string(&config_path) {
        Ok(c) => Some(c),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&config_path)(e)),
    };
    let files: Vec<PlannedFile> = staged_files(layout, info)?
        .into_iter()
        .map(|f| PlannedFile {
            path: f.path,
            content: f.content,
            mode: f.mode,
            owned: f.owned,
            kind: f.kind,
        })
        .collect();
    // What a deployment recorded are the paths it wrote: none existed.
    let hostfs: Vec<super::plan::PlannedHostfs> = files
        .iter()
        .filter(|f| !f.owned)
        .map(|f| super::plan::PlannedHostfs {
            path: f.path.clone(),
            source: String::new(),
            action: super::shared::HostfsAction::Write,
            message: String::new(),
        })
        .collect();
    let units: Vec<String> = info
        .units
        .iter()
        .map(|u| format!("{}/{u}", layout.unit_dir()))
        .collect();
    Ok(footprint::of_files(
        &info.values,
        config.as_deref(),
        &files,
        &units,
        &format!("{}/{}.conf", layout.tmpfiles_dir(), info.name),
        &hostfs,
    ))
}
