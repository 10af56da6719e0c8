//! The files of an install: the image's `/exports` templates, or berth's
//! defaults from `templates/`, rendered with the resolved values.
//!
//! berth's own defaults use the same `$VAR` syntax as images (no tera): the
//! unit is `templates/service.template`. The image's `config.json` is the
//! contract: a rendered `config.json.template` or a copied `config.json` is
//! used as written (a pre-1.0 one read in its 1.0 shape). Only an image
//! without either gets berth's default config
//! ([`crate::runtime::defaults::default_spec`], with berth's hardening), its
//! process filled in from the image config (entrypoint + cmd, env, working
//! dir, user).

use super::exports::{text, Exports};
use super::{paths, DeployError};
use crate::runtime::{defaults, legacy};
use crate::store::{image::ImageRecord, Store};
use crate::template::{self, FileKind, Values};

/// berth's default unit template.
pub const DEFAULT_SERVICE: &str = include_str!("../../templates/service.template");
/// berth's unit template for `--user` images without one: no
/// `network.target` (the user manager has none), `WantedBy=default.target`.
pub const DEFAULT_USER_SERVICE: &str = include_str!("../../templates/user-service.template");
/// How the default config is named in messages.
const DEFAULT_CONFIG_FILE: &str = "berth's default config.json";

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

/// A deployment's `config.json` before the rootless edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedConfig {
    /// Where it came from, for messages (`/exports/config.json.template`).
    pub file: &'static str,
    /// The config text.
    pub text: String,
    /// What reading a pre-1.0 config in its 1.0 shape changed.
    pub notes: Vec<String>,
}

/// True if the image ships no config of its own, so berth's default is used.
pub fn uses_default_config(exports: &Exports) -> bool {
    exports.config_template.is_none() && exports.config.is_none()
}

/// PURE: the deployment's `config.json` from the image's exports, the
/// values and the image config (of `image`, named in errors) (`user`: the image's `User` as uid/gid, used
/// by the default config only). The image's own config is taken as written,
/// upgraded if it is pre-1.0; berth adds nothing to it.
pub fn render_config(
    image: &str,
    exports: &Exports,
    values: &Values,
    image_config: &serde_json::Value,
    user: (u32, u32),
) -> Result<RenderedConfig, DeployError> {
    let (file, text) = if let Some(t) = &exports.config_template {
        let file = "/exports/config.json.template";
        (file, render(file, t, values, FileKind::Json)?)
    } else if let Some(c) = &exports.config {
        ("/exports/config.json", c.clone())
    } else {
        let text = default_config(image, image_config, values, user)?;
        return Ok(RenderedConfig {
            file: DEFAULT_CONFIG_FILE,
            text,
            notes: Vec::new(),
        });
    };
    let upgraded = legacy::upgrade_text(&text).map_err(|e| DeployError::Invalid {
        file: file.to_string(),
        detail: format!("not JSON: {e}"),
    })?;
    Ok(match upgraded {
        Some((text, notes)) => RenderedConfig { file, text, notes },
        None => RenderedConfig {
            file,
            text,
            notes: Vec::new(),
        },
    })
}

/// The deployment's `config.json`: [`render_config`] on what the image
/// holds, made rootless for `--user`, and checked to parse as an OCI
/// runtime spec with a read-only `rootfs` root. Upgrade notes are logged as
/// warnings.
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
    let cfg = image.config_json();
    let user = if uses_default_config(exports) {
        user(
            store,
            &image.commit,
            cfg["config"]["User"].as_str().unwrap_or(""),
        )?
    } else {
        (0, 0)
    };
    let RenderedConfig { file, text, notes } =
        render_config(&image.reference, exports, values, &cfg, user)?;
    for n in &notes {
        tracing::warn!("{file}: {n}");
    }
    let text = match rootless {
        None => text,
        Some((uid, gid)) => {
            let (text, changes) = super::rootless::rootless(&text, uid, gid).map_err(|detail| {
                DeployError::Invalid {
                    file: file.to_string(),
                    detail,
                }
            })?;
            if file != DEFAULT_CONFIG_FILE {
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
/// writable bind-mount source of `config` (a plain path: [`paths::check_path`],
/// no whitespace or `\`) that does not exist below `root` yet,
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
        let plain = paths::check_path(source).is_ok()
            && !source.chars().any(|c| c.is_whitespace() || c == '\\');
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

/// berth's default config as text, with an empty `process.args`.
pub fn default_config_skeleton() -> Result<String, DeployError> {
    let spec = defaults::default_spec().map_err(|e| DeployError::Invalid {
        file: DEFAULT_CONFIG_FILE.into(),
        detail: e.to_string(),
    })?;
    defaults::to_json(&spec).map_err(|e| DeployError::Invalid {
        file: DEFAULT_CONFIG_FILE.into(),
        detail: e.to_string(),
    })
}

/// PURE: berth's default config with the process of `image_config`.
fn default_config(
    image: &str,
    image_config: &serde_json::Value,
    values: &Values,
    (uid, gid): (u32, u32),
) -> Result<String, DeployError> {
    let invalid = |detail: String| DeployError::Invalid {
        file: "image config".into(),
        detail,
    };
    let c = &image_config["config"];
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
    let mut spec = defaults::default_spec().map_err(|e| DeployError::Invalid {
        file: DEFAULT_CONFIG_FILE.into(),
        detail: e.to_string(),
    })?;
    if let Some(p) = spec.process_mut() {
        let mut u = oci_spec::runtime::User::default();
        u.set_uid(uid).set_gid(gid);
        p.set_args(Some(args))
            .set_env(Some(env))
            .set_cwd(cwd.into())
            .set_user(u);
    }
    // Each declared VOLUME is a bind of STATE_DIRECTORY/NAME/VOLUME: the
    // volume must be a plain path, or `..` would make it any host path.
    let state = values.get("STATE_DIRECTORY").unwrap_or("/var/lib");
    let name = values.get("NAME").unwrap_or_default();
    if let Some(volumes) = c["Volumes"].as_object() {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for v in volumes.keys() {
            let v = paths::strip_dir_slash(v);
            paths::check_image_path(image, "config.Volumes", v)?;
            let base = state.trim_end_matches('/');
            let source = match name {
                "" => format!("{base}{v}"),
                name => format!("{base}/{name}{v}"),
            };
            paths::check_image_path(image, "config.Volumes (bind source)", &source)?;
            let mut m = oci_spec::runtime::Mount::default();
            m.set_destination(v.into())
                .set_typ(Some("bind".into()))
                .set_source(Some(source.into()))
                .set_options(Some(vec!["rbind".into(), "rw".into()]));
            mounts.push(m);
        }
        spec.set_mounts(Some(mounts));
    }
    defaults::to_json(&spec).map_err(|e| invalid(e.to_string()))
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
            {"destination": "/e", "type": "bind", "source": "/var/lib/../../etc"},
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
    fn a_volume_must_be_a_plain_absolute_path() {
        let values = Values::default();
        let cfg = |v: &str| serde_json::json!({"config": {"Cmd": ["/x"], "Volumes": {v: {}}}});
        let ok = default_config("img", &cfg("/data/"), &values, (0, 0)).unwrap();
        assert!(ok.contains("\"/var/lib/data\""), "{ok}");
        for bad in ["/data/../../../etc", "data", "/a//b", "/", "/./x"] {
            let e = default_config("img", &cfg(bad), &values, (0, 0)).unwrap_err();
            assert!(
                matches!(&e, DeployError::ImagePath { image, key, .. }
                    if image == "img" && key == "config.Volumes"),
                "{bad}: {e}"
            );
        }
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
