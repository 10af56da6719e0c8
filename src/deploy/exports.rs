//! The image's `/exports`, read once from its OSTree commit: the templates,
//! `manifest.json`'s keys and the `hostfs/` tree. Everything after this reads
//! the [`Exports`] value, not the commit.

use std::collections::BTreeMap;

use ostree::gio;
use ostree::prelude::*;

use super::DeployError;
use crate::store::{ot, Store, NOCANCEL};
use crate::template;

/// The `/exports` files an install reads, as found in the image.
#[derive(Debug, Default, Clone)]
pub struct Exports {
    /// `/exports/service.template`.
    pub service: Option<String>,
    /// `/exports/config.json.template`.
    pub config_template: Option<String>,
    /// `/exports/config.json`.
    pub config: Option<String>,
    /// `/exports/tmpfiles.template`.
    pub tmpfiles: Option<String>,
    /// `/exports/socket.template` (berth extension).
    pub socket: Option<String>,
    /// `/exports/timer.template` (berth extension).
    pub timer: Option<String>,
    /// `/exports/manifest.json`'s `defaultValues`.
    pub defaults: BTreeMap<String, String>,
    /// `installedFilesTemplate`: host paths rendered as templates before copying.
    pub installed_files_template: Vec<String>,
    /// `renameFiles`: host path prefix → new path (a template).
    pub rename_files: BTreeMap<String, String>,
    /// `noContainerService`: only host files, no unit and no config.json.
    pub no_container_service: bool,
    /// `/exports/hostfs/**`: regular files, empty directories and symlinks,
    /// sorted by path.
    pub hostfs: Vec<HostfsEntry>,
}

/// One entry below `/exports/hostfs`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostfsEntry {
    /// Path relative to `/exports/hostfs`.
    pub path: String,
    /// Permission bits with setuid, setgid and sticky (`mode & 0o7777`;
    /// 0o777 for symlinks); [`super::hostfs::HostfsModes`] decides what
    /// reaches the host.
    pub mode: u32,
    /// What it is.
    pub what: HostfsWhat,
}

/// What a hostfs entry is, with its data.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum HostfsWhat {
    /// A regular file and its content.
    File(Vec<u8>),
    /// A directory with nothing in it (non-empty ones are implied by their
    /// entries).
    EmptyDir,
    /// A symlink and its target, verbatim.
    Symlink(String),
}

/// Keys of `/exports/manifest.json` berth understands.
pub const MANIFEST_KEYS: &[&str] = &[
    "version",
    "defaultValues",
    "installedFilesTemplate",
    "renameFiles",
    "noContainerService",
    "useLinks",
];

/// The root directory of `commit`; errors name `file`, what was being read.
fn commit_root(store: &Store, commit: &str, file: &str) -> Result<gio::File, DeployError> {
    let (root, _) = store
        .repo()
        .read_commit(commit, NOCANCEL)
        .map_err(ot(|| format!("reading commit {commit}")))
        .map_err(|e| DeployError::Invalid {
            file: file.to_string(),
            detail: e.to_string(),
        })?;
    Ok(root)
}

/// Reads `path` (relative to the image root) from the commit, if it is a file.
pub fn read_image_file(
    store: &Store,
    commit: &str,
    path: &str,
) -> Result<Option<Vec<u8>>, DeployError> {
    let store_err = |e: crate::store::StoreError| DeployError::Invalid {
        file: path.to_string(),
        detail: e.to_string(),
    };
    let file = commit_root(store, commit, path)?.resolve_relative_path(path);
    let kind = file.query_file_type(gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS, NOCANCEL);
    if kind != gio::FileType::Regular {
        if kind != gio::FileType::Unknown {
            tracing::warn!("/{path} in the image is not a regular file; ignoring it");
        }
        return Ok(None);
    }
    match read_all(store, &file) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e)
            if e.matches(gio::IOErrorEnum::NotFound)
                || e.matches(gio::IOErrorEnum::IsDirectory) =>
        {
            Ok(None)
        }
        Err(e) => Err(store_err(ot(|| format!("reading /{path} of the image"))(e))),
    }
}

/// The content of a file of a commit, read as its content object.
/// (`g_file_load_contents` on an OSTree repo file works too, but asks the
/// stream for its size through a GFileInputStream-only call, which OSTree's
/// streams are not: GLib prints a CRITICAL each time.)
fn read_all(store: &Store, file: &gio::File) -> Result<Vec<u8>, ostree::glib::Error> {
    let Some(rf) = file.downcast_ref::<ostree::RepoFile>() else {
        return file.load_contents(NOCANCEL).map(|(b, _)| b.to_vec());
    };
    rf.ensure_resolved()?;
    let (stream, _, _) = store.repo().load_file(&rf.checksum(), NOCANCEL)?;
    let Some(stream) = stream else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    loop {
        let chunk = stream.read_bytes(64 * 1024, NOCANCEL)?;
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

pub(crate) fn text(store: &Store, commit: &str, path: &str) -> Result<Option<String>, DeployError> {
    read_image_file(store, commit, path)?
        .map(|b| {
            String::from_utf8(b).map_err(|_| DeployError::Invalid {
                file: format!("/{path}"),
                detail: "not UTF-8 text".into(),
            })
        })
        .transpose()
}

/// Reads the image's `/exports`.
pub fn read_exports(store: &Store, commit: &str) -> Result<Exports, DeployError> {
    let mut ex = Exports {
        service: text(store, commit, "exports/service.template")?,
        config_template: text(store, commit, "exports/config.json.template")?,
        config: text(store, commit, "exports/config.json")?,
        tmpfiles: text(store, commit, "exports/tmpfiles.template")?,
        socket: text(store, commit, "exports/socket.template")?,
        timer: text(store, commit, "exports/timer.template")?,
        hostfs: hostfs_files(store, commit)?,
        ..Exports::default()
    };
    if let Some(m) = text(store, commit, "exports/manifest.json")? {
        let invalid = |detail: String| DeployError::Invalid {
            file: "/exports/manifest.json".into(),
            detail,
        };
        let v: serde_json::Value = serde_json::from_str(&m).map_err(|e| invalid(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| invalid("not a JSON object".into()))?;
        for key in obj.keys() {
            if !MANIFEST_KEYS.contains(&key.as_str()) {
                tracing::warn!("/exports/manifest.json: unknown key {key:?}; ignoring it");
            }
        }
        if let Some(d) = obj.get("defaultValues") {
            let d = d
                .as_object()
                .ok_or_else(|| invalid("defaultValues is not an object".into()))?;
            ex.defaults = template::values::manifest_defaults(d)?;
        }
        if let Some(list) = obj.get("installedFilesTemplate") {
            let list = list
                .as_array()
                .ok_or_else(|| invalid("installedFilesTemplate is not an array".into()))?;
            for item in list {
                let path = item.as_str().ok_or_else(|| {
                    invalid(format!("installedFilesTemplate: {item} is not a string"))
                })?;
                ex.installed_files_template.push(path.to_string());
            }
        }
        if let Some(map) = obj.get("renameFiles") {
            let map = map
                .as_object()
                .ok_or_else(|| invalid("renameFiles is not an object".into()))?;
            for (from, to) in map {
                let to = to.as_str().ok_or_else(|| {
                    invalid(format!(
                        "renameFiles: the value of {from:?} is not a string"
                    ))
                })?;
                ex.rename_files.insert(from.clone(), to.to_string());
            }
        }
        for flag in ["noContainerService", "useLinks"] {
            match obj.get(flag) {
                None | Some(serde_json::Value::Bool(_)) => {}
                Some(v) => return Err(invalid(format!("{flag} is {v}, not true or false"))),
            }
        }
        ex.no_container_service = obj
            .get("noContainerService")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
    }
    Ok(ex)
}

/// The entries below `/exports/hostfs` of the commit, sorted by path:
/// regular files, empty directories and symlinks. Special files there are
/// skipped with a warning.
fn hostfs_files(store: &Store, commit: &str) -> Result<Vec<HostfsEntry>, DeployError> {
    let store_err = |e: crate::store::StoreError| DeployError::Invalid {
        file: "/exports/hostfs".into(),
        detail: e.to_string(),
    };
    let top =
        commit_root(store, commit, "/exports/hostfs")?.resolve_relative_path("exports/hostfs");
    if top.query_file_type(gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS, NOCANCEL)
        != gio::FileType::Directory
    {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut stack = vec![(top, String::new(), 0o755)];
    while let Some((dir, rel, dir_mode)) = stack.pop() {
        let children = dir
            .enumerate_children(
                "standard::name,standard::type,standard::symlink-target,unix::mode",
                gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS,
                NOCANCEL,
            )
            .map_err(ot(|| format!("listing /exports/hostfs/{rel}")))
            .map_err(store_err)?;
        let mut any = false;
        for info in children {
            any = true;
            let info = info
                .map_err(ot(|| format!("listing /exports/hostfs/{rel}")))
                .map_err(store_err)?;
            let name = info.name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let child = dir.child(&name);
            let mode = info.attribute_uint32("unix::mode") & 0o7777;
            match info.file_type() {
                gio::FileType::Directory => stack.push((child, path, mode)),
                gio::FileType::Regular => {
                    let bytes = read_all(store, &child)
                        .map_err(ot(|| format!("reading /exports/hostfs/{path}")))
                        .map_err(store_err)?;
                    out.push(HostfsEntry {
                        path,
                        mode,
                        what: HostfsWhat::File(bytes),
                    });
                }
                gio::FileType::SymbolicLink => {
                    let target = info
                        .symlink_target()
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    out.push(HostfsEntry {
                        path,
                        mode: 0o777,
                        what: HostfsWhat::Symlink(target),
                    });
                }
                _ => tracing::warn!(
                    "/exports/hostfs/{path} is not a regular file, directory or symlink; skipping it"
                ),
            }
        }
        if !any && !rel.is_empty() {
            out.push(HostfsEntry {
                path: rel,
                mode: dir_mode,
                what: HostfsWhat::EmptyDir,
            });
        }
    }
    out.sort();
    Ok(out)
}
