//! The record of the last update of a container: passed, or rolled back
//! with its reason. A rolled-back digest is not tried again by `update
//! --all` (and so `berth-update.timer`) until the reference resolves to
//! another digest; an explicit `berth update NAME` retries it.
//!
//! ```text
//! ROOT/var/lib/berth/containers/NAME.N/      (the deployment active after it)
//! └── last-update.json   { "reference", "digest", "from_digest", "outcome", "reason", "at" }
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::install::SECRET_MODE;
use super::{DeployError, Info};
use crate::layout::Layout;

/// The record's file name in the active deployment directory.
pub const FILE: &str = "last-update.json";

/// How an update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The new deployment passed the gate and stays.
    Passed,
    /// The new deployment failed the gate; the previous one was put back.
    RolledBack,
}

/// The last update of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastUpdate {
    /// The image reference updated to.
    pub reference: String,
    /// Its manifest digest.
    pub digest: String,
    /// The digest of the deployment it replaced (or would have).
    pub from_digest: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it was rolled back (empty when it passed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Seconds since the epoch.
    pub at: u64,
}

impl LastUpdate {
    /// Whether `update --all` must not try `digest` again on the active
    /// deployment `info`: it failed there before.
    pub fn refuses(&self, info: &Info, digest: &str) -> bool {
        self.outcome == Outcome::RolledBack
            && self.digest == digest
            && self.from_digest == info.image.digest
    }

    /// The lines `status NAME` shows.
    pub fn describe(&self, name: &str) -> String {
        match self.outcome {
            Outcome::Passed => format!(
                "last update: to {} ({}) passed, from {}",
                self.digest, self.reference, self.from_digest
            ),
            Outcome::RolledBack => format!(
                "last update: to {} ({}) rolled back: {}\n\
                 update --all and berth-update.timer skip this digest until {} \
                 moves; `berth update {name}` retries it",
                self.digest, self.reference, self.reason, self.reference
            ),
        }
    }
}

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn path(layout: &Layout, info: &Info) -> PathBuf {
    PathBuf::from(info.dir(layout)).join(FILE)
}

/// Records `last` in the deployment `info` (the one active after it).
pub fn record(layout: &Layout, info: &Info, last: &LastUpdate) -> Result<(), DeployError> {
    let json = serde_json::to_string_pretty(last).map_err(|e| DeployError::Invalid {
        file: FILE.into(),
        detail: e.to_string(),
    })?;
    Ok(layout
        .open_root()?
        .write_atomic(&path(layout, info), json.as_bytes(), SECRET_MODE)?)
}

/// The last update recorded in the deployment `info`, if any.
pub fn read(layout: &Layout, info: &Info) -> Option<LastUpdate> {
    let p = path(layout, info);
    let text = layout.open_root().ok()?.read(&p).ok()?;
    match serde_json::from_slice::<LastUpdate>(&text) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!("{}: {e}; ignoring it", p.display());
            None
        }
    }
}
