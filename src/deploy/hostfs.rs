//! Planning `/exports/hostfs`: the image's entries as host paths
//! (`renameFiles`, `installedFilesTemplate`), checked (normalised, inside
//! the root, never below a symlink), and what installing each one does
//! given the [`Registry`] and the host (`--display`, `--json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::exports::{Exports, HostfsWhat};
use super::plan::{check_host_path, PlannedFile};
use super::shared::{decide, HostfsAction, Registry};
use super::{in_root, DeployError, EntryKind, Info};
use super::{paths, render};
use crate::layout::Layout;
use crate::systemd::ContainerName;
use crate::template::{FileKind, Values};

/// What happens to one hostfs path (`--display`, `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct PlannedHostfs {
    /// Path as seen inside the root.
    pub path: String,
    /// Where it comes from in the image (`/exports/hostfs/...`).
    pub source: String,
    /// What berth does with it.
    #[serde(flatten)]
    pub action: HostfsAction,
    /// The same, in one line.
    pub message: String,
}

/// How the modes of hostfs files and directories reach the host: an
/// image asks for any mode it likes, the operator decides what lands.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum HostfsModes {
    /// Group and other write bits removed, and setuid, setgid and sticky
    /// (the mode and 0755): a group- or world-writable file in
    /// `/usr/local/bin` or `/etc/sudoers.d` is a way in for a local user.
    #[default]
    Safe,
    /// The image's modes as they are (`--hostfs-modes=as-image`).
    AsImage,
}

impl HostfsModes {
    /// The default, [`HostfsModes::Safe`].
    pub fn is_safe(&self) -> bool {
        *self == HostfsModes::Safe
    }

    /// The flag value: `safe` or `as-image`.
    pub fn as_str(&self) -> &'static str {
        match self {
            HostfsModes::Safe => "safe",
            HostfsModes::AsImage => "as-image",
        }
    }

    /// PURE: the mode a hostfs file or directory the image ships with
    /// `image_mode` gets on the host.
    pub fn host_mode(&self, image_mode: u32) -> u32 {
        match self {
            HostfsModes::Safe => image_mode & SAFE_MODE_MASK,
            HostfsModes::AsImage => image_mode & 0o7777,
        }
    }
}

impl std::str::FromStr for HostfsModes {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "safe" => Ok(HostfsModes::Safe),
            "as-image" => Ok(HostfsModes::AsImage),
            _ => Err(format!("{s:?} is not safe or as-image")),
        }
    }
}

/// The bits [`HostfsModes::Safe`] keeps.
pub const SAFE_MODE_MASK: u32 = 0o755;

/// A hostfs path whose mode on the host is not the image's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModeChange {
    /// Path as seen inside the root.
    pub path: String,
    /// The mode the image ships.
    pub image_mode: u32,
    /// The mode it gets.
    pub mode: u32,
    /// `hostfs PATH: mode 0777 → 0755`.
    pub message: String,
}

impl ModeChange {
    fn new(path: &str, image_mode: u32, mode: u32) -> ModeChange {
        ModeChange {
            path: path.to_string(),
            image_mode,
            mode,
            message: format!("hostfs {path}: mode {image_mode:04o} \u{2192} {mode:04o}"),
        }
    }
}

/// The hostfs part of a plan.
#[derive(Debug, Default)]
pub(crate) struct PlannedTree {
    /// Host path → image path.
    pub sources: BTreeMap<String, String>,
    /// Modes that differ from the image's.
    pub mode_changes: Vec<ModeChange>,
}

/// What each hostfs path of `files` will do, given the registry and the host.
pub(crate) fn hostfs_actions(
    layout: &Layout,
    name: &ContainerName,
    previous: Option<&Info>,
    files: &[PlannedFile],
    sources: &BTreeMap<String, String>,
) -> Result<Vec<PlannedHostfs>, DeployError> {
    let reg = Registry::load_adopting(layout)?;
    let mut out = Vec::new();
    for f in files.iter().filter(|f| !f.owned) {
        let source = sources.get(&f.path).cloned().unwrap_or_default();
        if let Some((link, e)) = reg.link_above(&f.path) {
            return Err(DeployError::Invalid {
                file: source,
                detail: format!(
                    "host path {} would be written through the symlink {link} (installed for {}); refusing",
                    f.path, e.owner
                ),
            });
        }
        let on_host = in_root(layout, &f.path).symlink_metadata().is_ok();
        let had = previous.is_some_and(|i| i.files.iter().any(|o| o.path == f.path));
        let action = decide(
            &reg,
            name.as_str(),
            &f.path,
            f.kind,
            &super::sha256(&f.content),
            on_host,
            had,
        );
        out.push(PlannedHostfs {
            message: action.describe(&f.path, name.as_str()),
            path: f.path.clone(),
            source,
            action,
        });
    }
    Ok(out)
}

/// `/exports/hostfs/**` as host paths: `renameFiles` applied by prefix,
/// `installedFilesTemplate` entries rendered, empty directories and
/// symlinks kept as such, modes as `modes` says.
pub(crate) fn hostfs(
    layout: &Layout,
    image: &str,
    exports: &Exports,
    values: &Values,
    modes: HostfsModes,
    files: &mut Vec<PlannedFile>,
) -> Result<PlannedTree, DeployError> {
    let mut mode_changes = Vec::new();
    let mut renames: Vec<(String, String)> = Vec::new();
    for (from, to) in &exports.rename_files {
        let file = format!("/exports/manifest.json renameFiles[{from:?}]");
        let to = render::render(&file, to, values, FileKind::Plain)?;
        let key = format!("manifest.json renameFiles[{from:?}]");
        check_host_path(layout, image, &key, paths::strip_dir_slash(&to))?;
        renames.push((from.trim_end_matches('/').to_string(), to));
    }
    // The longest matching prefix wins.
    renames.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    let mut seen = BTreeMap::new();
    let mut links: Vec<(String, String)> = Vec::new();
    for entry in &exports.hostfs {
        let original = format!("/{}", entry.path);
        let path = renames
            .iter()
            .find_map(|(from, to)| {
                let rest = original.strip_prefix(from.as_str())?;
                (rest.is_empty() || rest.starts_with('/'))
                    .then(|| format!("{}{rest}", to.trim_end_matches('/')))
            })
            .unwrap_or_else(|| original.clone());
        let source = format!("/exports/hostfs{original}");
        check_host_path(layout, image, &format!("hostfs {source}"), &path)?;
        if let Some(other) = seen.insert(path.clone(), source.clone()) {
            return Err(DeployError::Invalid {
                file: source,
                detail: format!("renamed to {path}, where {other} goes too"),
            });
        }
        let (kind, content, mode) = match &entry.what {
            HostfsWhat::File(bytes) => {
                let templated = exports
                    .installed_files_template
                    .iter()
                    .any(|t| t == &original || t == &path);
                let content = if templated {
                    let text = std::str::from_utf8(bytes).map_err(|_| DeployError::Invalid {
                        file: source.clone(),
                        detail: "listed in installedFilesTemplate but not UTF-8 text".into(),
                    })?;
                    render::render(&source, text, values, FileKind::Plain)?.into_bytes()
                } else {
                    bytes.clone()
                };
                (EntryKind::File, content, modes.host_mode(entry.mode))
            }
            // A directory others may write lets them replace what a
            // service reads there.
            HostfsWhat::EmptyDir => (EntryKind::Dir, Vec::new(), modes.host_mode(entry.mode)),
            HostfsWhat::Symlink(target) => {
                if target.is_empty() || target.contains('\0') {
                    return Err(DeployError::Invalid {
                        file: source,
                        detail: "a symlink with an empty target".into(),
                    });
                }
                links.push((path.clone(), source.clone()));
                (EntryKind::Symlink, target.clone().into_bytes(), 0o777)
            }
        };
        if kind != EntryKind::Symlink && mode != entry.mode {
            mode_changes.push(ModeChange::new(&path, entry.mode, mode));
        }
        files.push(PlannedFile {
            path,
            content,
            mode,
            owned: false,
            kind,
        });
    }
    check_through_links(&links, &seen)?;
    Ok(PlannedTree {
        sources: seen,
        mode_changes,
    })
}

/// Refuses a hostfs entry that would be written through a symlink the same
/// image ships (`/etc/a -> /tmp` and `/etc/a/b`): berth would follow it.
fn check_through_links(
    links: &[(String, String)],
    paths: &BTreeMap<String, String>,
) -> Result<(), DeployError> {
    for (link, link_source) in links {
        let below = format!("{link}/");
        if let Some((path, source)) = paths.iter().find(|(p, _)| p.starts_with(&below)) {
            return Err(DeployError::Invalid {
                file: source.clone(),
                detail: format!(
                    "host path {path} is below {link}, which the image ships as a symlink \
                     ({link_source}); berth does not write through symlinks"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn safe_modes_drop_group_and_other_write_and_special_bits() {
        let table = [
            (0o777, 0o755, 0o777),
            (0o666, 0o644, 0o666),
            (0o4755, 0o755, 0o4755),
            (0o2775, 0o755, 0o2775),
            (0o1777, 0o755, 0o1777),
            (0o640, 0o640, 0o640),
            (0o600, 0o600, 0o600),
        ];
        for (image, safe, as_image) in table {
            assert_eq!(HostfsModes::Safe.host_mode(image), safe, "{image:o}");
            assert_eq!(HostfsModes::AsImage.host_mode(image), as_image, "{image:o}");
        }
        assert_eq!("as-image".parse(), Ok(HostfsModes::AsImage));
        assert_eq!("safe".parse(), Ok(HostfsModes::Safe));
        assert!("0755".parse::<HostfsModes>().is_err());
        let c = ModeChange::new("/usr/local/bin/helper", 0o777, 0o755);
        assert_eq!(
            c.message,
            "hostfs /usr/local/bin/helper: mode 0777 \u{2192} 0755"
        );
    }

    #[test]
    fn refuses_entries_below_a_symlink_of_the_image() {
        let paths: BTreeMap<String, String> = [
            ("/etc/a", "/exports/hostfs/etc/a"),
            ("/etc/a/b", "/exports/hostfs/x/b"),
            ("/etc/ab", "/exports/hostfs/etc/ab"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let link = [("/etc/a".to_string(), "/exports/hostfs/etc/a".to_string())];
        let e = check_through_links(&link, &paths).unwrap_err().to_string();
        assert!(
            e.contains("/exports/hostfs/x/b") && e.contains("/etc/a/b"),
            "{e}"
        );
        let other = [("/etc/ab".to_string(), "/exports/hostfs/etc/ab".to_string())];
        check_through_links(&other, &paths).unwrap();
    }
}
