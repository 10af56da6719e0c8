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
    /// `/exports/manifest.json`'s `defaultValues`.
    pub defaults: BTreeMap<String, String>,
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
    match file.load_contents(NOCANCEL) {
        Ok((bytes, _)) => Ok(Some(bytes.to_vec())),
        Err(e)
            if e.matches(gio::IOErrorEnum::NotFound)
                || e.matches(gio::IOErrorEnum::IsDirectory) =>
        {
            Ok(None)
        }
        Err(e) => Err(store_err(ot(|| format!("reading /{path} of the image"))(e))),
    }
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
        defaults: BTreeMap::new(),
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
            if key != "defaultValues" {
                tracing::warn!("/exports/manifest.json: {key} is not supported yet; ignoring it");
            }
        }
        if let Some(d) = obj.get("defaultValues") {
            let d = d
                .as_object()
                .ok_or_else(|| invalid("defaultValues is not an object".into()))?;
            ex.defaults = template::values::manifest_defaults(d)?;
        }
    }
    Ok(ex)
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
pub fn config_json(
    store: &Store,
    image: &ImageRecord,
    exports: &Exports,
    values: &Values,
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
    validate_config(file, &text)?;
    Ok(text)
}

/// berth's tmpfiles.d lines when the image has no template: one `d` line per
/// writable bind-mount source of `config` that does not exist below `root` yet.
pub fn default_tmpfiles(root: &std::path::Path, config: &str) -> Option<String> {
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
        if !is_bind || !plain || super::in_root(root, source).symlink_metadata().is_ok() {
            continue;
        }
        out.push_str(&format!(
            "d {} 0755 root root - -\n",
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
            default_tmpfiles(root.path(), config).unwrap(),
            "d /var/lib/x%%y 0755 root root - -\nd /srv/c 0755 root root - -\n"
        );
        assert_eq!(default_tmpfiles(root.path(), r#"{"mounts": []}"#), None);
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
