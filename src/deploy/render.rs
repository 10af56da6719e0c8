//! The files of an install: the image's `/exports` templates, or berth's
//! defaults from `templates/`, rendered with the resolved values.
//!
//! berth's own defaults use the same `$VAR` syntax as images (no tera): the
//! unit is `templates/service.template`; the default `config.json` is the
//! skeleton `templates/config.json` with the process filled in from the
//! image config (entrypoint + cmd, env, working dir, user).

use std::collections::BTreeMap;

use ostree::gio;
use ostree::prelude::*;

use super::DeployError;
use crate::store::{image::ImageRecord, ot, Store, NOCANCEL};
use crate::template::{self, FileKind, Values};

/// berth's default unit template.
pub const DEFAULT_SERVICE: &str = include_str!("../../templates/service.template");
/// berth's unit template for `--user` images without one: no
/// `network.target` (the user manager has none), `WantedBy=default.target`.
pub const DEFAULT_USER_SERVICE: &str = include_str!("../../templates/user-service.template");
/// berth's default runtime config skeleton.
pub const DEFAULT_CONFIG: &str = include_str!("../../templates/config.json");

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
    /// `/exports/hostfs/**` regular files: (path relative to hostfs, mode, content).
    pub hostfs: Vec<(String, u32, Vec<u8>)>,
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
    let (root, _) = store
        .repo()
        .read_commit(commit, NOCANCEL)
        .map_err(ot(|| format!("reading commit {commit}")))
        .map_err(store_err)?;
    let file = root.resolve_relative_path(path);
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

fn text(store: &Store, commit: &str, path: &str) -> Result<Option<String>, DeployError> {
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
                if !from.starts_with('/') {
                    return Err(invalid(format!(
                        "renameFiles: {from:?} is not an absolute host path"
                    )));
                }
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

/// The regular files below `/exports/hostfs` of the commit, sorted by path.
/// Symlinks and special files there are skipped with a warning (berth
/// copies host files; it does not link into the deployment).
fn hostfs_files(store: &Store, commit: &str) -> Result<Vec<(String, u32, Vec<u8>)>, DeployError> {
    let store_err = |e: crate::store::StoreError| DeployError::Invalid {
        file: "/exports/hostfs".into(),
        detail: e.to_string(),
    };
    let (root, _) = store
        .repo()
        .read_commit(commit, NOCANCEL)
        .map_err(ot(|| format!("reading commit {commit}")))
        .map_err(store_err)?;
    let top = root.resolve_relative_path("exports/hostfs");
    if top.query_file_type(gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS, NOCANCEL)
        != gio::FileType::Directory
    {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut stack = vec![(top, String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let children = dir
            .enumerate_children(
                "standard::name,standard::type,unix::mode",
                gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS,
                NOCANCEL,
            )
            .map_err(ot(|| format!("listing /exports/hostfs/{rel}")))
            .map_err(store_err)?;
        for info in children {
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
            match info.file_type() {
                gio::FileType::Directory => stack.push((child, path)),
                gio::FileType::Regular => {
                    let bytes = read_all(store, &child)
                        .map_err(ot(|| format!("reading /exports/hostfs/{path}")))
                        .map_err(store_err)?;
                    let mode = info.attribute_uint32("unix::mode") & 0o777;
                    out.push((path, mode, bytes));
                }
                _ => tracing::warn!(
                    "/exports/hostfs/{path} is not a regular file or directory; skipping it"
                ),
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Renders `text` (the template `file`) into a file of `kind`.
pub fn render(
    file: &str,
    text: &str,
    values: &Values,
    kind: FileKind,
) -> Result<String, DeployError> {
    let t = template::parse(file, text).map_err(template::RenderError::from)?;
    Ok(template::render(&t, values, kind)?)
}

/// The deployment's `config.json`: rendered template, copied file or default;
/// checked to parse as an OCI runtime spec with a read-only `rootfs` root.
///
/// With `rootless` (`--user`: the user's uid and gid) the spec is made
/// runnable without privileges ([`super::rootless`]); changes to an image's
/// own config are logged as warnings.
pub fn config_json(
    store: &Store,
    image: &ImageRecord,
    exports: &Exports,
    values: &Values,
    rootless: Option<(u32, u32)>,
) -> Result<String, DeployError> {
    let (file, text) = if let Some(t) = &exports.config_template {
        let file = "/exports/config.json.template";
        (file, render(file, t, values, FileKind::Json)?)
    } else if let Some(c) = &exports.config {
        ("/exports/config.json", c.clone())
    } else {
        (
            "berth's default config.json",
            default_config(store, image, values)?,
        )
    };
    let text = match rootless {
        None => text,
        Some((uid, gid)) => {
            let (text, changes) = super::rootless::rootless(&text, uid, gid).map_err(|detail| {
                DeployError::Invalid {
                    file: file.to_string(),
                    detail,
                }
            })?;
            if file != "berth's default config.json" {
                for c in changes {
                    tracing::warn!("{file}: for a rootless --user container, {c}");
                }
            }
            text
        }
    };
    validate_config(file, &text)?;
    Ok(text)
}

/// berth's tmpfiles.d lines when the image has no template: one `d` line per
/// writable bind-mount source of `config` that does not exist below `root` yet,
/// owned by root (`user`: `-`, the user `systemd-tmpfiles --user` runs as).
pub fn default_tmpfiles(root: &std::path::Path, config: &str, user: bool) -> Option<String> {
    let spec: serde_json::Value = serde_json::from_str(config).ok()?;
    let mut out = String::new();
    for m in spec["mounts"].as_array()? {
        let options = m["options"].as_array().cloned().unwrap_or_default();
        let is_bind = m["type"] == "bind" || options.iter().any(|x| x == "bind" || x == "rbind");
        // A read-only bind is usually of a file (resolv.conf, a config): no `d` line.
        if options.iter().any(|x| x == "ro") {
            continue;
        }
        let Some(source) = m["source"].as_str() else {
            continue;
        };
        let plain = source.starts_with('/')
            && !source
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '\\');
        if !is_bind
            || !plain
            || root
                .join(source.trim_start_matches('/'))
                .symlink_metadata()
                .is_ok()
        {
            continue;
        }
        let owner = if user { "- -" } else { "root root" };
        out.push_str(&format!(
            "d {} 0755 {owner} - -\n",
            source.replace('%', "%%")
        ));
    }
    (!out.is_empty()).then_some(out)
}

/// Checks that `text` is a runtime spec whose root is `rootfs`, read-only.
pub fn validate_config(file: &str, text: &str) -> Result<(), DeployError> {
    let invalid = |detail: String| DeployError::Invalid {
        file: file.to_string(),
        detail,
    };
    let spec: oci_spec::runtime::Spec = serde_json::from_str(text)
        .map_err(|e| invalid(format!("not an OCI runtime config: {e}")))?;
    let root = spec.root().as_ref().ok_or_else(|| {
        invalid("has no root; expected {\"path\": \"rootfs\", \"readonly\": true}".into())
    })?;
    if root.path() != std::path::Path::new("rootfs") {
        return Err(invalid(format!(
            "root.path is {:?}; it must be \"rootfs\"",
            root.path()
        )));
    }
    if root.readonly() != Some(true) {
        return Err(invalid("root.readonly must be true".into()));
    }
    if spec
        .process()
        .as_ref()
        .is_none_or(|p| p.args().as_ref().is_none_or(Vec::is_empty))
    {
        return Err(invalid("process.args is empty; nothing to run".into()));
    }
    Ok(())
}

fn default_config(
    store: &Store,
    image: &ImageRecord,
    values: &Values,
) -> Result<String, DeployError> {
    let invalid = |detail: String| DeployError::Invalid {
        file: "image config".into(),
        detail,
    };
    let cfg = image.config_json();
    let c = &cfg["config"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut args = strings(&c["Entrypoint"]);
    args.extend(strings(&c["Cmd"]));
    if args.is_empty() {
        return Err(invalid(
            "no Entrypoint or Cmd; add /exports/config.json.template to the image".into(),
        ));
    }
    let mut env = strings(&c["Env"]);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    let cwd = c["WorkingDir"]
        .as_str()
        .filter(|s| s.starts_with('/'))
        .unwrap_or("/");
    let (uid, gid) = user(store, &image.commit, c["User"].as_str().unwrap_or(""))?;
    let mut spec: serde_json::Value = serde_json::from_str(DEFAULT_CONFIG)
        .map_err(|e| invalid(format!("templates/config.json: {e}")))?;
    let p = &mut spec["process"];
    p["args"] = args.into();
    p["env"] = env.into();
    p["cwd"] = cwd.into();
    p["user"] = serde_json::json!({"uid": uid, "gid": gid});
    // Each declared VOLUME is a bind of STATE_DIRECTORY/NAME/VOLUME.
    let state = values.get("STATE_DIRECTORY").unwrap_or("/var/lib");
    let name = values.get("NAME").unwrap_or_default();
    if let (Some(volumes), Some(mounts)) = (c["Volumes"].as_object(), spec["mounts"].as_array_mut())
    {
        for v in volumes.keys().filter(|v| v.starts_with('/')) {
            let v = v.trim_end_matches('/');
            mounts.push(serde_json::json!({
                "destination": v,
                "type": "bind",
                "source": format!("{}/{name}{v}", state.trim_end_matches('/')),
                "options": ["rbind", "rw"],
            }));
        }
    }
    serde_json::to_string_pretty(&spec).map_err(|e| invalid(e.to_string()))
}

/// `User` of the image config as uid/gid: numbers, or names from the image's
/// `/etc/passwd` and `/etc/group`.
fn user(store: &Store, commit: &str, spec: &str) -> Result<(u32, u32), DeployError> {
    if spec.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup =
        |file: &str, name: &str, field: usize| -> Result<Option<(u32, u32)>, DeployError> {
            let Some(t) = text(store, commit, file)? else {
                return Ok(None);
            };
            Ok(t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.first() == Some(&name) && f.len() > field)
                    .then(|| {
                        let id = f.get(2)?.parse().ok()?;
                        let second = f.get(field).and_then(|s| s.parse().ok()).unwrap_or(id);
                        Some((id, second))
                    })
                    .flatten()
            }))
        };
    let unknown = |what: &str| DeployError::Invalid {
        file: "image config".into(),
        detail: format!("User {spec:?}: {what} not found in the image"),
    };
    let (uid, pw_gid) = match u.parse::<u32>() {
        Ok(n) => (n, n),
        Err(_) => lookup("etc/passwd", u, 3)?.ok_or_else(|| unknown("user"))?,
    };
    let gid = match g {
        None => pw_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                lookup("etc/group", g, 2)?
                    .ok_or_else(|| unknown("group"))?
                    .0
            }
        },
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn default_tmpfiles_makes_missing_writable_bind_sources() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("var/lib/there")).unwrap();
        let config = r#"{"mounts": [
            {"destination": "/a", "type": "bind", "source": "/var/lib/x%y", "options": ["rbind", "rw"]},
            {"destination": "/b", "type": "bind", "source": "/var/lib/there"},
            {"destination": "/c", "type": "none", "source": "/srv/c", "options": ["bind"]},
            {"destination": "/etc/resolv.conf", "type": "bind", "source": "/etc/resolv.conf", "options": ["ro"]},
            {"destination": "/d", "type": "bind", "source": "/has space"},
            {"destination": "/proc", "type": "proc", "source": "proc"}
        ]}"#;
        assert_eq!(
            default_tmpfiles(root.path(), config, false).unwrap(),
            "d /var/lib/x%%y 0755 root root - -\nd /srv/c 0755 root root - -\n"
        );
        assert_eq!(
            default_tmpfiles(root.path(), r#"{"mounts": []}"#, false),
            None
        );
    }

    #[test]
    fn config_must_have_a_read_only_rootfs_root_and_args() {
        let ok = r#"{"ociVersion": "1.0.2", "process": {"args": ["/x"], "cwd": "/", "user": {"uid": 0, "gid": 0}}, "root": {"path": "rootfs", "readonly": true}}"#;
        validate_config("c", ok).unwrap();
        for bad in [
            ok.replace("true", "false"),
            ok.replace("\"rootfs\"", "\"/\""),
            ok.replace("[\"/x\"]", "[]"),
            ok.replace(r#", "root": {"path": "rootfs", "readonly": true}"#, ""),
            "{".to_string(),
        ] {
            let e = validate_config("c", &bad).unwrap_err();
            assert!(matches!(e, DeployError::Invalid { .. }), "{bad}: {e}");
        }
    }
}
