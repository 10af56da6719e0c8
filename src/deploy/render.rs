//! The files of an install: the image's `/exports` templates, or berth's
//! defaults from `templates/`, rendered with the resolved values.
//!
//! berth's own defaults use the same `$VAR` syntax as images (no tera): the
//! unit is `templates/service.template`; the default `config.json` is the
//! skeleton `templates/config.json` with the process filled in from the
//! image config (entrypoint + cmd, env, working dir, user).

use super::exports::{text, Exports};
use super::DeployError;
use crate::store::{image::ImageRecord, Store};
use crate::template::{self, FileKind, Values};

/// berth's default unit template.
pub const DEFAULT_SERVICE: &str = include_str!("../../templates/service.template");
/// berth's unit template for `--user` images without one: no
/// `network.target` (the user manager has none), `WantedBy=default.target`.
pub const DEFAULT_USER_SERVICE: &str = include_str!("../../templates/user-service.template");
/// berth's default runtime config skeleton.
pub const DEFAULT_CONFIG: &str = include_str!("../../templates/config.json");

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
