//! The footprint gate of `update`: the active deployment's footprint
//! (recorded in its `info.json`, or computed from its files for
//! deployments made before berth recorded it), and the record of an update
//! refused because its footprint grows, which `status` shows until an
//! accepted update or another image replaces it:
//!
//! ```text
//! ROOT/var/lib/berth/containers/NAME.N/
//! └── update-waits.json   { "reference", "digest", "from_digest", "growth", "since" }
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::footprint::{self, Footprint};
use super::install::{staged_files, SECRET_MODE};
use super::plan::PlannedFile;
use super::{in_root, io_err, DeployError, Info};
use crate::layout::Layout;

/// The record's file name in the active deployment directory.
pub const WAITS_FILE: &str = "update-waits.json";

/// An update refused because its footprint grows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// The image reference of the refused update.
    pub reference: String,
    /// Its manifest digest.
    pub digest: String,
    /// The digest of the deployment it would have replaced.
    pub from_digest: String,
    /// What it adds to the footprint.
    pub growth: Footprint,
    /// Seconds since the epoch of the refusal.
    pub since: u64,
}

impl Waiting {
    /// `update to DIGEST waits: footprint grows: …` (one line per kind after it).
    pub fn describe(&self) -> String {
        let mut s = format!(
            "update to {} ({}) waits: footprint grows:",
            self.digest, self.reference
        );
        for l in self.growth.lines() {
            s.push_str("\n  ");
            s.push_str(&l);
        }
        s
    }
}

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

fn waits_path(layout: &Layout, info: &Info) -> PathBuf {
    in_root(layout, &info.dir(layout)).join(WAITS_FILE)
}

/// Records in the active deployment `info` that an update waits.
pub fn record_wait(layout: &Layout, info: &Info, waiting: &Waiting) -> Result<(), DeployError> {
    let path = waits_path(layout, info);
    let json = serde_json::to_string_pretty(waiting).map_err(|e| DeployError::Invalid {
        file: WAITS_FILE.into(),
        detail: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    super::txn::write_synced(&tmp, json.as_bytes(), SECRET_MODE, false)?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))
}

/// Drops the record of a waiting update, if any.
pub fn clear_wait(layout: &Layout, info: &Info) -> Result<(), DeployError> {
    let path = waits_path(layout, info);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
        _ => Ok(()),
    }
}

/// The update waiting for the active deployment `info`, if one does. A
/// record left from before a rollback (made against another image) is
/// not shown.
pub fn waiting(layout: &Layout, info: &Info) -> Option<Waiting> {
    let path = waits_path(layout, info);
    let text = std::fs::read_to_string(&path).ok()?;
    match serde_json::from_str::<Waiting>(&text) {
        Ok(w) if w.from_digest == info.image.digest => Some(w),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("{}: {e}; ignoring it", path.display());
            None
        }
    }
}
