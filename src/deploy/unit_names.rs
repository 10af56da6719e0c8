//! Unit names are the operator's: a container's units (`NAME.service`,
//! `.socket`, `.timer`), the `Alias=` links of an enabled unit and the
//! units its `Also=` names may not take a name a unit already has anywhere
//! in the manager's unit search path (a vendor `dbus.service` in
//! `/usr/lib/systemd/system`, a masked unit in `/etc`), unless berth put it
//! there for this container. An `install --name dbus` would otherwise
//! shadow the vendor unit from `/etc/systemd/system`.
//!
//! The search path is systemd 252's (`systemd-analyze unit-paths`) for the
//! scope, as seen inside the root; each name is looked up there with
//! symlinks resolved inside the root, so a root whose `/lib` points to
//! `/usr/lib` is read as it would be once booted, and the host's own
//! directories are never consulted.

use std::path::Path;

use super::{DeployError, Info};
use crate::layout::Layout;
use crate::template::UserDirs;

/// The directories of the system manager's unit search path.
const SYSTEM_SEARCH_PATH: &[&str] = &[
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/run/systemd/generator.early",
    "/etc/systemd/system",
    "/etc/systemd/system.attached",
    "/run/systemd/system",
    "/run/systemd/system.attached",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/run/systemd/generator.late",
    "/lib/systemd/system",
];

/// PURE: the unit search path of `layout`'s manager, as seen inside its root.
pub fn search_path(layout: &Layout) -> Vec<String> {
    match layout.user_dirs() {
        None => SYSTEM_SEARCH_PATH.iter().map(|d| d.to_string()).collect(),
        Some(dirs) => user_search_path(dirs),
    }
}

/// The user manager's search path (`XDG_*` unset or relative count as
/// their defaults, as in [`Layout::user`]).
fn user_search_path(dirs: &UserDirs) -> Vec<String> {
    let config = dirs.config_home();
    let data = dirs.data_home();
    let runtime = dirs.runtime_dir();
    vec![
        format!("{config}/systemd/user.control"),
        format!("{runtime}/systemd/user.control"),
        format!("{runtime}/systemd/transient"),
        format!("{runtime}/systemd/generator.early"),
        format!("{config}/systemd/user"),
        "/etc/xdg/systemd/user".into(),
        "/etc/systemd/user".into(),
        format!("{runtime}/systemd/user"),
        "/run/systemd/user".into(),
        format!("{runtime}/systemd/generator"),
        format!("{data}/systemd/user"),
        "/usr/local/share/systemd/user".into(),
        "/usr/share/systemd/user".into(),
        "/usr/local/lib/systemd/user".into(),
        "/usr/lib/systemd/user".into(),
        format!("{runtime}/systemd/generator.late"),
    ]
}

/// Why a unit name is asked for: the container's name or a key of a unit.
#[derive(Debug, Clone)]
pub enum Claim {
    /// One of the container's units, named after it.
    Container,
    /// `Alias=` or `Also=` (`key`) in the unit `unit` of the image.
    Install {
        /// `Alias` or `Also`.
        key: &'static str,
        /// The image's unit holding it.
        unit: String,
    },
}

/// Refuses the first of `names` (each with its claim) present in the
/// search path and not this container's: names `previous` (the deployment
/// being updated) holds are already the container's and pass.
pub fn check_unit_names(
    layout: &Layout,
    container: &str,
    image: &str,
    names: &[(String, Claim)],
    previous: Option<&Info>,
) -> Result<(), DeployError> {
    let dirs = search_path(layout);
    for (unit, claim) in names {
        if previous.is_some_and(|i| held_by(i, layout, unit)) {
            continue;
        }
        for dir in &dirs {
            let path = format!("{dir}/{unit}");
            if !present_in_root(layout.root(), &path) {
                continue;
            }
            let (by, hint) = match claim {
                Claim::Container => (
                    format!("container {container}"),
                    "choose another --name".to_string(),
                ),
                Claim::Install { key, unit: holder } => (
                    format!("image {image}, {key}= of {holder}"),
                    format!("refusing the image (it may not {})", verb(key)),
                ),
            };
            return Err(DeployError::UnitTaken {
                unit: unit.clone(),
                path,
                by,
                hint,
            });
        }
    }
    Ok(())
}

fn verb(key: &str) -> &'static str {
    match key {
        "Alias" => "alias an existing unit",
        _ => "enable an existing unit",
    }
}

/// Whether `unit` is a unit of `info` or one of its links in the unit
/// directory (an alias).
fn held_by(info: &Info, layout: &Layout, unit: &str) -> bool {
    let link = format!("{}/{unit}", layout.unit_dir());
    info.units.iter().any(|u| u == unit) || info.links.iter().any(|l| l.path == link)
}

/// Whether `path` (absolute, as seen inside `root`) exists, a dangling or
/// masking symlink included, with the symlinks above it resolved inside
/// `root` (an absolute target starts again at `root`, `..` stops there).
pub fn present_in_root(root: &Path, path: &str) -> bool {
    crate::rootfs::Root::open(root).is_ok_and(|r| r.exists(Path::new(path)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::disallowed_methods)]
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn the_search_path_has_the_vendor_and_runtime_dirs() {
        let system = search_path(&Layout::system(Path::new("/r")));
        for d in [
            "/etc/systemd/system",
            "/usr/lib/systemd/system",
            "/lib/systemd/system",
        ] {
            assert!(system.contains(&d.to_string()), "{d}");
        }
        let dirs = UserDirs {
            home: "/home/u".into(),
            uid: 1000,
            ..Default::default()
        };
        let user = search_path(&Layout::user(&dirs).unwrap());
        for d in [
            "/home/u/.config/systemd/user",
            "/run/user/1000/systemd/user",
            "/home/u/.local/share/systemd/user",
            "/usr/lib/systemd/user",
        ] {
            assert!(user.contains(&d.to_string()), "{d}");
        }
        assert!(!user.iter().any(|d| d.ends_with("/system")));
    }

    fn info(units: &[&str], links: &[&str]) -> Info {
        Info {
            name: "app".into(),
            deployment: "app.0".into(),
            image: crate::deploy::InfoImage {
                reference: "img".into(),
                digest: String::new(),
                commit: String::new(),
                image_id: String::new(),
                trust: None,
            },
            values: Default::default(),
            files: Vec::new(),
            links: links
                .iter()
                .map(|l| crate::deploy::Link {
                    path: l.to_string(),
                    target: "/etc/systemd/system/app.service".into(),
                })
                .collect(),
            dirs: Vec::new(),
            health: Default::default(),
            after: Vec::new(),
            units: units.iter().map(|u| u.to_string()).collect(),
            installed: 0,
            hostfs_modes: Default::default(),
            footprint: None,
        }
    }

    #[test]
    fn a_name_held_elsewhere_is_refused_unless_the_container_has_it() {
        let r = tempfile::tempdir().unwrap();
        let layout = Layout::system(r.path());
        std::fs::create_dir_all(r.path().join("usr/lib/systemd/system")).unwrap();
        std::fs::create_dir_all(r.path().join("etc/systemd/system")).unwrap();
        std::fs::write(r.path().join("usr/lib/systemd/system/dbus.service"), "").unwrap();
        std::fs::write(r.path().join("etc/systemd/system/app.service"), "").unwrap();
        let alias = Claim::Install {
            key: "Alias",
            unit: "app.service".into(),
        };
        let names = vec![
            ("app.service".to_string(), Claim::Container),
            ("dbus.service".to_string(), alias),
        ];
        let e = check_unit_names(&layout, "app", "img", &names, None).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        assert!(
            e.to_string()
                .starts_with("container app: /etc/systemd/system/app.service already holds"),
            "{e}"
        );
        let update = info(&["app.service"], &[]);
        let e = check_unit_names(&layout, "app", "img", &names, Some(&update)).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "image img, Alias= of app.service: /usr/lib/systemd/system/dbus.service"
            ),
            "{e}"
        );
        let update = info(&["app.service"], &["/etc/systemd/system/dbus.service"]);
        check_unit_names(&layout, "app", "img", &names, Some(&update)).unwrap();
        check_unit_names(&layout, "app", "img", &names[..0], None).unwrap();
    }

    #[test]
    fn looks_names_up_with_links_resolved_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(outside.path().join("systemd/system")).unwrap();
        std::fs::write(outside.path().join("systemd/system/evil.service"), "").unwrap();
        let r = tempfile::tempdir().unwrap();
        let root = r.path();
        std::fs::create_dir_all(root.join("usr/lib/systemd/system")).unwrap();
        std::fs::write(root.join("usr/lib/systemd/system/ssh.service"), "").unwrap();
        // Merged /usr, by an absolute link: it resolves inside the root.
        symlink("/usr/lib", root.join("lib")).unwrap();
        std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
        symlink("/dev/null", root.join("etc/systemd/system/masked.service")).unwrap();
        // A link out of the root is read as inside it.
        symlink(outside.path(), root.join("opt")).unwrap();
        symlink("../../loop", root.join("loop")).unwrap();
        assert!(present_in_root(root, "/lib/systemd/system/ssh.service"));
        assert!(present_in_root(root, "/usr/lib/systemd/system/ssh.service"));
        assert!(present_in_root(root, "/etc/systemd/system/masked.service"));
        assert!(!present_in_root(root, "/etc/systemd/system/ssh.service"));
        assert!(!present_in_root(root, "/opt/systemd/system/evil.service"));
        assert!(!present_in_root(root, "/loop/x"));
        assert!(!present_in_root(root, "/run/systemd/system/x.service"));
    }
}
