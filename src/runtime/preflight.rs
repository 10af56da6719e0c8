//! The host checks made before a container is created, so that a missing
//! bind source, working directory or executable is named instead of failing
//! deep inside the runtime ("failed to prepare rootfs").
//!
//! A few `stat` calls and no parsing: the bind sources on the host,
//! `process.cwd` and `process.args[0]` inside the rootfs. Paths inside the
//! rootfs are resolved as if it were `/` (an absolute symlink in the image
//! stays in the image). Paths that lie under a mount destination are not
//! checked: what is there comes from the mount, not from the rootfs.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::Spec;

use super::spec::SpecError;

/// The `PATH` used to find `process.args[0]` when the config sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Symlinks followed before a path inside the rootfs is given up on (the
/// kernel's own limit).
const MAX_LINKS: usize = 40;

/// Checks `spec`'s bind sources on the host (relative ones against
/// `bundle`), and its `process.cwd` and `process.args[0]` inside `rootfs`.
pub fn check(spec: &Spec, bundle: &Path, rootfs: &Path) -> Result<(), SpecError> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    for m in mounts {
        let opts = m.options().as_deref().unwrap_or_default();
        let bind =
            m.typ().as_deref() == Some("bind") || opts.iter().any(|o| o == "bind" || o == "rbind");
        let Some(source) = m.source().as_ref().filter(|_| bind) else {
            continue;
        };
        let host = if source.is_absolute() {
            source.clone()
        } else {
            bundle.join(source)
        };
        // An unreadable parent (rootless) is not "missing": let the runtime say.
        if let Ok(false) = host.try_exists() {
            return Err(SpecError::Unresolved {
                what: format!(
                    "mount {} \u{2192} {}",
                    source.display(),
                    m.destination().display()
                ),
                why: "source does not exist".into(),
            });
        }
    }
    let Some(process) = spec.process().as_ref() else {
        return Ok(());
    };
    let destinations: Vec<&Path> = mounts.iter().map(|m| m.destination().as_path()).collect();
    let mounted = |p: &Path| destinations.iter().any(|d| p.starts_with(d));
    let cwd = process.cwd();
    if !mounted(cwd) && !resolve(rootfs, cwd).is_some_and(|p| p.is_dir()) {
        return Err(SpecError::Unresolved {
            what: format!("process.cwd {}", cwd.display()),
            why: "no such directory in the rootfs".into(),
        });
    }
    let Some(arg0) = process.args().as_ref().and_then(|a| a.first()) else {
        return Ok(());
    };
    let candidates: Vec<PathBuf> = if arg0.contains('/') {
        vec![cwd.join(arg0)]
    } else {
        let path = process
            .env()
            .iter()
            .flatten()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| Path::new(d).join(arg0))
            .collect()
    };
    if candidates.iter().any(|c| mounted(c)) {
        return Ok(());
    }
    let mut seen = None;
    for c in &candidates {
        if let Some(host) = resolve(rootfs, c) {
            if let Ok(md) = host.metadata() {
                if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                    return Ok(());
                }
                seen.get_or_insert(c.clone());
            }
        }
    }
    Err(SpecError::Unresolved {
        what: format!("process.args[0] {arg0}"),
        why: match seen {
            Some(p) => format!("{} is not an executable file", p.display()),
            None if arg0.contains('/') => "no such file in the rootfs".into(),
            None => "not found in the rootfs on the config's PATH".into(),
        },
    })
}

/// `path` (absolute, as the container sees it) resolved inside `rootfs`
/// as if `rootfs` were `/`: `..` and absolute symlinks stay inside it.
/// `None` when a component is missing or the links loop.
pub fn resolve(rootfs: &Path, path: &Path) -> Option<PathBuf> {
    let mut todo: Vec<OsString> = components(path);
    todo.reverse();
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c.as_bytes() == b".." {
            done.pop();
            continue;
        }
        let mut here = rootfs.to_path_buf();
        here.extend(&done);
        here.push(&c);
        let md = here.symlink_metadata().ok()?;
        if !md.file_type().is_symlink() {
            done.push(c);
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return None;
        }
        let target = std::fs::read_link(&here).ok()?;
        if target.is_absolute() {
            done.clear();
        }
        let mut t = components(&target);
        t.reverse();
        todo.extend(t);
    }
    let mut out = rootfs.to_path_buf();
    out.extend(&done);
    Some(out)
}

/// The normal and `..` components of `p` (`/` and `.` dropped).
fn components(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::symlink;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::create_dir_all(r.join("srv")).unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("usr/bin/app"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            r.join("usr/bin/app"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(r.join("usr/bin/data"), "x").unwrap();
        symlink("usr/bin", r.join("bin")).unwrap();
        symlink("/../../../etc", r.join("escape")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        d
    }

    fn spec(cwd: &str, arg0: &str, mounts: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"cwd": cwd, "args": [arg0], "user": {"uid": 0, "gid": 0},
                        "env": ["PATH=/bin:/usr/local/bin"]},
            "root": {"path": "rootfs"},
            "mounts": mounts
        }))
        .unwrap()
    }

    #[test]
    fn resolves_inside_the_rootfs() {
        let d = rootfs();
        let r = d.path();
        assert_eq!(
            resolve(r, Path::new("/bin/app")),
            Some(r.join("usr/bin/app"))
        );
        assert_eq!(
            resolve(r, Path::new("/../../usr/bin")),
            Some(r.join("usr/bin"))
        );
        assert_eq!(resolve(r, Path::new("/escape")), Some(r.join("etc")));
        assert!(resolve(r, Path::new("/escape/passwd")).is_none());
        assert!(resolve(r, Path::new("/loop")).is_none());
        assert!(resolve(r, Path::new("/nope")).is_none());
    }

    #[test]
    fn names_what_is_missing() {
        let d = rootfs();
        let r = d.path();
        let none = serde_json::json!([]);
        let cases: Vec<(Spec, Option<&str>)> = vec![
            (spec("/", "app", none.clone()), None),
            (spec("/srv", "/bin/app", none.clone()), None),
            (spec("/srv", "../usr/bin/app", none.clone()), None),
            (
                spec("/", "/usr/bin/data", none.clone()),
                Some("process.args[0] /usr/bin/data: /usr/bin/data is not an executable file"),
            ),
            (
                spec("/", "nothere", none.clone()),
                Some("process.args[0] nothere: not found in the rootfs on the config's PATH"),
            ),
            (
                spec("/", "/opt/x", none.clone()),
                Some("process.args[0] /opt/x: no such file in the rootfs"),
            ),
            (
                spec("/var/lib/x", "app", none.clone()),
                Some("process.cwd /var/lib/x: no such directory in the rootfs"),
            ),
            // Under a mount destination: not the rootfs's business.
            (
                spec(
                    "/var/lib/x",
                    "/opt/bin/x",
                    serde_json::json!([
                {"destination": "/var/lib", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/opt", "type": "bind", "source": r.join("srv")}]),
                ),
                None,
            ),
            (
                spec(
                    "/",
                    "app",
                    serde_json::json!([
                {"destination": "/etc/flanneld", "type": "bind", "source": "/nonexistent/etc/flanneld", "options": ["rbind", "ro"]}]),
                ),
                Some(
                    "mount /nonexistent/etc/flanneld \u{2192} /etc/flanneld: source does not exist",
                ),
            ),
            (
                spec(
                    "/",
                    "app",
                    serde_json::json!([
                {"destination": "/x", "type": "none", "source": "rel", "options": ["bind"]}]),
                ),
                Some("mount rel \u{2192} /x: source does not exist"),
            ),
        ];
        for (s, want) in cases {
            let got = check(&s, Path::new("/nonexistent-bundle"), r)
                .err()
                .map(|e| e.to_string());
            assert_eq!(got.as_deref(), want);
        }
    }
}
