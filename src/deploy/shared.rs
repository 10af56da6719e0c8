//! Host paths several containers ship (`/etc/kubernetes/config` comes with
//! the apiserver, the scheduler, the proxy...): who wrote each one, who else
//! uses it, and what a new use of a path does. One registry for the root:
//!
//! ```text
//! ROOT/var/lib/berth/hostfs.json   (absent when no container has hostfs paths)
//! {
//!   "paths": { "/etc/kubernetes/config": { "owner": "kube-apiserver",
//!              "users": ["kube-apiserver", "kube-scheduler"],
//!              "kind": "file", "sha256": "sha256:…", "mode": 420 } },
//!   "dirs":  { "/etc/kubernetes": ["kube-apiserver", "kube-scheduler"] }
//! }
//! ```
//!
//! `paths` holds the hostfs files and symlinks berth wrote: the first
//! container to ship one writes it and owns it; later ones are its users
//! and write nothing. It goes when its last user goes (if unchanged since
//! berth wrote it); when the owner goes first, the next user owns it.
//! `dirs` holds the directories berth created (parents of what it wrote,
//! and the empty directories images ship), with the containers that have
//! something at or below each: one is removed when no container uses it
//! and it is empty. Paths that existed before berth are in neither and are
//! never touched. The registry is rewritten inside the switch's journaled
//! transaction, so a failed or killed operation leaves it as it was.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{DeployError, EntryKind};
use crate::layout::Layout;

/// The registry file's name in berth's data directory.
pub const REGISTRY_FILE: &str = "hostfs.json";

/// A hostfs file or symlink berth wrote, with the containers using it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedPath {
    /// The container whose version is on the host.
    pub owner: String,
    /// Every container shipping it, the owner first.
    pub users: Vec<String>,
    /// File or symlink.
    #[serde(default)]
    pub kind: EntryKind,
    /// `sha256:<hex>` of what berth wrote (of the target, for a symlink).
    pub sha256: String,
    /// Permission bits written.
    pub mode: u32,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `hostfs.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    /// Hostfs files and symlinks berth wrote.
    #[serde(default)]
    pub paths: BTreeMap<String, SharedPath>,
    /// Directories berth created → the containers with something at or below.
    #[serde(default)]
    pub dirs: BTreeMap<String, Vec<String>>,
}

/// The registry file, as seen inside the root.
pub fn registry_path(layout: &Layout) -> PathBuf {
    PathBuf::from(layout.data_inside()).join(REGISTRY_FILE)
}

impl Registry {
    /// Reads the registry below the root (empty when absent).
    pub fn load(layout: &Layout) -> Result<Registry, DeployError> {
        let path = registry_path(layout);
        let text = match layout.open_root()?.read(&path) {
            Ok(t) => String::from_utf8_lossy(&t).into_owned(),
            Err(e) if e.is_not_found() => return Ok(Registry::default()),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_str(&text).map_err(|e| DeployError::Invalid {
            file: path.display().to_string(),
            detail: format!(
                "{e}; fix or remove it (it records which container wrote which hostfs path)"
            ),
        })
    }

    /// Reads the registry and adds what installs made before it existed
    /// recorded only in their `info.json`: their hostfs files and symlinks
    /// (owned by the container that lists them) and the directories they
    /// created.
    pub fn load_adopting(layout: &Layout) -> Result<Registry, DeployError> {
        let mut reg = Registry::load(layout)?;
        let root = layout.open_root()?;
        let cdir = super::containers_inside(layout);
        let Ok(entries) = root.read_dir(&cdir) else {
            return Ok(reg);
        };
        let mut names: Vec<String> = entries
            .iter()
            .filter(|n| {
                matches!(root.lstat(&cdir.join(n)), Ok(Some(e)) if e.kind == crate::rootfs::Kind::Symlink)
            })
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| crate::systemd::ContainerName::parse(n).is_ok())
            .collect();
        names.sort();
        let known = |reg: &Registry, name: &str| {
            reg.paths
                .values()
                .any(|e| e.users.iter().any(|u| u == name))
                || reg.dirs.values().any(|u| u.iter().any(|u| u == name))
        };
        for name in names {
            if known(&reg, &name) {
                continue;
            }
            let Ok(info) = super::Info::read(layout, &name) else {
                continue;
            };
            for f in info.files.iter().filter(|f| !f.owned && !f.kind.is_dir()) {
                reg.paths
                    .entry(f.path.clone())
                    .or_insert_with(|| SharedPath {
                        owner: name.clone(),
                        users: vec![name.clone()],
                        kind: f.kind,
                        sha256: f.sha256.clone(),
                        mode: f.mode,
                        target: f.target.clone(),
                    });
            }
            for d in &info.dirs {
                let users = reg.dirs.entry(d.clone()).or_default();
                if !users.contains(&name) {
                    users.push(name.clone());
                }
            }
        }
        Ok(reg)
    }

    /// The registry as written to disk.
    pub fn to_json(&self) -> Result<String, DeployError> {
        serde_json::to_string_pretty(self).map_err(|e| DeployError::Invalid {
            file: REGISTRY_FILE.into(),
            detail: e.to_string(),
        })
    }

    /// Nothing recorded.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.dirs.is_empty()
    }

    /// Drops `name` from the users of `path`. Returns whether it was the
    /// last user (the entry is then gone); passes ownership on otherwise.
    pub fn release(&mut self, path: &str, name: &str) -> Option<SharedPath> {
        let entry = self.paths.get_mut(path)?;
        entry.users.retain(|u| u != name);
        if entry.users.is_empty() {
            return self.paths.remove(path);
        }
        if entry.owner == name {
            entry.owner = entry.users.first().cloned().unwrap_or_default();
        }
        None
    }

    /// A symlink berth wrote that `path` would be written through.
    pub fn link_above(&self, path: &str) -> Option<(&str, &SharedPath)> {
        self.paths.iter().find_map(|(p, e)| {
            (e.kind == EntryKind::Symlink && path.starts_with(&format!("{p}/")))
                .then_some((p.as_str(), e))
        })
    }
}

/// What installing one hostfs path does, decided before anything changes
/// (the same function answers `--display` and the switch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum HostfsAction {
    /// A file written (or rewritten, on update).
    Write,
    /// An empty directory created.
    CreateDir,
    /// A symlink created.
    Link,
    /// Another container's path: recorded as used, not rewritten.
    Shared {
        /// Whose version is on the host.
        owner: String,
        /// Whether this image's version differs (the owner's stays).
        differs: bool,
    },
    /// A directory berth created for another container: recorded as used.
    SharedDir,
    /// Exists and is not berth's: left alone, not recorded.
    NotBerths,
}

impl HostfsAction {
    /// Whether the container records the path (it is not the operator's).
    pub fn tracked(&self) -> bool {
        *self != HostfsAction::NotBerths
    }

    /// One line for the report: `PATH is OWNER's, shared with NAME`.
    pub fn describe(&self, path: &str, name: &str) -> String {
        match self {
            HostfsAction::Write => format!("write {path}"),
            HostfsAction::CreateDir => format!("create directory {path}"),
            HostfsAction::Link => format!("link {path}"),
            HostfsAction::Shared { owner, differs } => {
                let mut s = format!("{path} is {owner}'s, shared with {name}");
                if *differs {
                    s.push_str(&format!(
                        "; {name}'s version differs and is not installed ({owner}'s stays)"
                    ));
                }
                s
            }
            HostfsAction::SharedDir => format!("{path}: directory shared with other containers"),
            HostfsAction::NotBerths => format!(
                "{path}: exists and is not berth's; left in place (the image's version is not installed)"
            ),
        }
    }
}

/// Decides what `name` shipping `path` (of `kind`, content checksum
/// `sha256`) does, given the registry, whether the host has something
/// there, and whether `name`'s active deployment already has the path.
pub fn decide(
    reg: &Registry,
    name: &str,
    path: &str,
    kind: EntryKind,
    sha256: &str,
    on_host: bool,
    previous: bool,
) -> HostfsAction {
    let fresh = match kind {
        EntryKind::Dir => HostfsAction::CreateDir,
        EntryKind::Symlink => HostfsAction::Link,
        EntryKind::File => HostfsAction::Write,
    };
    if kind == EntryKind::Dir {
        return if reg.dirs.contains_key(path) {
            HostfsAction::SharedDir
        } else if on_host && !previous {
            HostfsAction::NotBerths
        } else {
            fresh
        };
    }
    match reg.paths.get(path) {
        Some(e) if e.owner == name => fresh,
        Some(e) => HostfsAction::Shared {
            owner: e.owner.clone(),
            differs: e.sha256 != sha256 || e.kind != kind,
        },
        // `previous`: written by an install from before the registry.
        None if previous || !on_host => fresh,
        None => HostfsAction::NotBerths,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn reg() -> Registry {
        let mut r = Registry::default();
        r.paths.insert(
            "/etc/k/config".into(),
            SharedPath {
                owner: "api".into(),
                users: vec!["api".into(), "sched".into()],
                kind: EntryKind::File,
                sha256: "sha256:a".into(),
                mode: 0o644,
                target: None,
            },
        );
        r.paths.insert(
            "/etc/a".into(),
            SharedPath {
                owner: "x".into(),
                users: vec!["x".into()],
                kind: EntryKind::Symlink,
                sha256: "sha256:t".into(),
                mode: 0o777,
                target: Some("/tmp".into()),
            },
        );
        r.dirs.insert("/etc/cni".into(), vec!["kubelet".into()]);
        r
    }

    #[test]
    fn decides_per_path() {
        let r = reg();
        let f = EntryKind::File;
        let cases = [
            (("/etc/new", f, false, false), HostfsAction::Write),
            (("/etc/new", f, true, false), HostfsAction::NotBerths),
            (("/etc/new", f, true, true), HostfsAction::Write),
            (
                ("/etc/k/config", f, true, false),
                HostfsAction::Shared {
                    owner: "api".into(),
                    differs: false,
                },
            ),
            (
                ("/etc/cni", EntryKind::Dir, true, false),
                HostfsAction::SharedDir,
            ),
            (
                ("/etc/other", EntryKind::Dir, true, false),
                HostfsAction::NotBerths,
            ),
            (
                ("/etc/other", EntryKind::Dir, false, false),
                HostfsAction::CreateDir,
            ),
            (
                ("/etc/l", EntryKind::Symlink, false, false),
                HostfsAction::Link,
            ),
        ];
        for ((p, k, on_host, prev), want) in cases {
            assert_eq!(
                decide(&r, "proxy", p, k, "sha256:a", on_host, prev),
                want,
                "{p}"
            );
        }
        assert_eq!(
            decide(&r, "proxy", "/etc/k/config", f, "sha256:b", true, false),
            HostfsAction::Shared {
                owner: "api".into(),
                differs: true
            }
        );
        assert_eq!(
            decide(&r, "api", "/etc/k/config", f, "sha256:b", true, true),
            HostfsAction::Write
        );
        let msg = decide(&r, "sched", "/etc/k/config", f, "sha256:a", true, true)
            .describe("/etc/k/config", "sched");
        assert_eq!(msg, "/etc/k/config is api's, shared with sched");
    }

    #[test]
    fn ownership_passes_and_the_last_user_gets_the_entry() {
        let mut r = reg();
        assert_eq!(r.release("/etc/k/config", "api"), None);
        assert_eq!(r.paths["/etc/k/config"].owner, "sched");
        assert_eq!(r.paths["/etc/k/config"].users, ["sched"]);
        let last = r.release("/etc/k/config", "sched").unwrap();
        assert_eq!(last.sha256, "sha256:a");
        assert!(!r.paths.contains_key("/etc/k/config"));
        assert_eq!(r.release("/nope", "sched"), None);
    }

    #[test]
    fn finds_a_symlink_above_a_path() {
        let r = reg();
        assert_eq!(r.link_above("/etc/a/b").map(|(p, _)| p), Some("/etc/a"));
        assert!(r.link_above("/etc/ab").is_none());
        assert!(r.link_above("/etc/a").is_none());
    }

    #[test]
    fn registry_round_trips_and_reads_old_shapes() {
        let r = reg();
        let back: Registry = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        assert_eq!(back, r);
        let empty: Registry = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty());
    }
}
