//! Planning `/exports/hostfs`: the image's entries as host paths
//! (`renameFiles`, `installedFilesTemplate`), checked (normalised, inside
//! the root, never below a symlink), and what installing each one does
//! given the [`Registry`] and the host (`--display`, `--json`).

use std::collections::BTreeMap;

use serde::Serialize;

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
/// symlinks kept as such. Returns host path → image path.
pub(crate) fn hostfs(
    layout: &Layout,
    image: &str,
    exports: &Exports,
    values: &Values,
    files: &mut Vec<PlannedFile>,
) -> Result<BTreeMap<String, String>, DeployError> {
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
                (EntryKind::File, content, entry.mode)
            }
            // Permission bits only, never world-writable: a directory any
            // user may write lets them replace what a service reads there.
            HostfsWhat::EmptyDir => (EntryKind::Dir, Vec::new(), entry.mode & DIR_MODE_MASK),
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
        files.push(PlannedFile {
            path,
            content,
            mode,
            owned: false,
            kind,
        });
    }
    check_through_links(&links, &seen)?;
    Ok(seen)
}

/// Permission bits an empty hostfs directory may get: the image's, less
/// world-write and the special bits.
pub const DIR_MODE_MASK: u32 = 0o775;

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
