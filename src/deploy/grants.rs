//! PURE: what a deployment's config grants beyond berth's default config.
//!
//! An image's own config is run as written, so `install` and `update` say
//! what it asks for that berth's default ([`crate::runtime::defaults::default_spec`])
//! would not give: host namespaces, extra capabilities, host paths bound
//! read-write or read-only, all devices, new privileges, no seccomp filter.
//! It is the config part of a deployment's [`super::footprint::Footprint`].

use std::collections::BTreeSet;

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use crate::runtime::defaults::{DEFAULT_CAPABILITIES, DEFAULT_NAMESPACES};

/// What a config grants beyond berth's default. Empty fields are omitted
/// from `--json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Grants {
    /// Host namespaces shared where the default has the container's own
    /// (`pid`, `ipc`, `uts`, `mount`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host_namespaces: Vec<String>,
    /// Capabilities beyond the default set, in any of the sets (`CAP_SYS_ADMIN`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Host paths bound read-write (`SOURCE → DESTINATION`), other than the
    /// container's own (see [`grants`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rw_binds: Vec<String>,
    /// Host paths bound read-only (`SOURCE → DESTINATION`), other than the
    /// container's own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ro_binds: Vec<String>,
    /// The device cgroup allows every device.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub all_devices: bool,
    /// `noNewPrivileges` is not set: setuid binaries can gain privileges.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub new_privileges: bool,
    /// No seccomp filter.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_seccomp: bool,
}

impl Grants {
    /// True if the config grants nothing beyond the default.
    pub fn is_empty(&self) -> bool {
        *self == Grants::default()
    }

    /// One line per grant, for the human summary.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let list = |name: &str, v: &[String]| format!("{name}: {}", v.join(", "));
        if !self.host_namespaces.is_empty() {
            out.push(list("host namespaces", &self.host_namespaces));
        }
        if !self.capabilities.is_empty() {
            out.push(list("capabilities", &self.capabilities));
        }
        if !self.rw_binds.is_empty() {
            out.push(list("read-write host paths", &self.rw_binds));
        }
        if !self.ro_binds.is_empty() {
            out.push(list("read-only host paths", &self.ro_binds));
        }
        if self.all_devices {
            out.push("all devices".into());
        }
        if self.new_privileges {
            out.push("new privileges (noNewPrivileges is not set)".into());
        }
        if self.no_seccomp {
            out.push("no seccomp filter".into());
        }
        out
    }
}

/// What `config` (a deployment's config.json) grants beyond berth's default
/// (`own`: as in [`grants`]).
pub fn of_config(config: &str, own: &[String]) -> Result<Grants, serde_json::Error> {
    Ok(grants(&serde_json::from_str(config)?, own))
}

/// What `spec` grants beyond berth's default. A bind whose source is at or
/// below one of `own` (the container's state and runtime directories, its
/// deployment) is its own: berth's default makes those too (one per image
/// `VOLUME`).
pub fn grants(spec: &Spec, own: &[String]) -> Grants {
    let linux = spec.linux().as_ref();
    let own_ns: Vec<LinuxNamespaceType> = linux
        .and_then(|l| l.namespaces().as_ref())
        .map(|ns| {
            ns.iter()
                .filter(|n| n.path().is_none())
                .map(|n| n.typ())
                .collect()
        })
        .unwrap_or_default();
    let host_namespaces = DEFAULT_NAMESPACES
        .iter()
        .filter(|t| !own_ns.contains(t))
        .map(|t| t.to_string())
        .collect();
    let process = spec.process().as_ref();
    let mut capabilities = BTreeSet::new();
    if let Some(c) = process.and_then(|p| p.capabilities().as_ref()) {
        for set in [
            c.bounding(),
            c.effective(),
            c.permitted(),
            c.inheritable(),
            c.ambient(),
        ]
        .into_iter()
        .flatten()
        {
            for cap in set.iter().filter(|c| !DEFAULT_CAPABILITIES.contains(c)) {
                capabilities.insert(format!("CAP_{cap}"));
            }
        }
    }
    let mut rw_binds = Vec::new();
    let mut ro_binds = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let opts = m.options().as_deref().unwrap_or_default();
        let bind =
            m.typ().as_deref() == Some("bind") || opts.iter().any(|o| o == "bind" || o == "rbind");
        let src = m.source().as_ref().map(|s| s.display().to_string());
        let Some(src) = src.filter(|_| bind) else {
            continue;
        };
        if own.iter().any(|o| is_at_or_below(&src, o)) {
            continue;
        }
        let line = format!("{src} \u{2192} {}", m.destination().display());
        if opts.iter().any(|o| o == "ro") {
            ro_binds.push(line);
        } else {
            rw_binds.push(line);
        }
    }
    let all_devices = linux
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_ref())
        .and_then(|d| d.last())
        .is_some_and(|d| {
            d.allow()
                && d.typ().is_none_or(|t| t.as_str() == "a")
                && d.major().is_none()
                && d.minor().is_none()
        });
    Grants {
        host_namespaces,
        capabilities: capabilities.into_iter().collect(),
        rw_binds,
        ro_binds,
        all_devices,
        new_privileges: process.is_some_and(|p| p.no_new_privileges() != Some(true)),
        no_seccomp: linux.is_none_or(|l| l.seccomp().is_none()),
    }
}

/// `path` is `dir` or below it, component-wise (`/var/lib/app` is not
/// below `/var/lib/ap`); a path with `.` or `..` components is below nothing.
pub fn is_at_or_below(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    let normal = !path
        .split('/')
        .skip(1)
        .any(|c| c.is_empty() || c == "." || c == "..");
    normal
        && !dir.is_empty()
        && (path == dir
            || path
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/')))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::runtime::defaults::{default_spec, to_json};
    use serde_json::json;

    fn default_value() -> serde_json::Value {
        serde_json::from_str(&to_json(&default_spec().unwrap()).unwrap()).unwrap()
    }

    fn of(v: &serde_json::Value) -> Grants {
        of_config(&v.to_string(), &["/var/lib/app".into()]).unwrap()
    }

    #[test]
    fn the_default_grants_nothing() {
        assert!(of(&default_value()).is_empty());
    }

    #[test]
    fn names_each_grant() {
        type Edit = fn(&mut serde_json::Value);
        let cases: Vec<(Edit, Grants)> = vec![
            (
                |v| v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "network"}]),
                Grants {
                    host_namespaces: vec!["pid".into(), "ipc".into(), "uts".into()],
                    ..Grants::default()
                },
            ),
            (
                |v| v["linux"]["namespaces"][0] = json!({"type": "pid", "path": "/proc/1/ns/pid"}),
                Grants {
                    host_namespaces: vec!["pid".into()],
                    ..Grants::default()
                },
            ),
            (
                |v| {
                    v["process"]["capabilities"]["bounding"] =
                        json!(["CAP_KILL", "CAP_SYS_ADMIN", "CAP_NET_ADMIN"]);
                    v["process"]["capabilities"]["ambient"] = json!(["CAP_NET_ADMIN"]);
                },
                Grants {
                    capabilities: vec!["CAP_NET_ADMIN".into(), "CAP_SYS_ADMIN".into()],
                    ..Grants::default()
                },
            ),
            (
                |v| {
                    let m = v["mounts"].as_array_mut().unwrap();
                    m.push(json!({"destination": "/run/flannel", "type": "bind", "source": "/run/flannel", "options": ["rbind", "rw"]}));
                    m.push(json!({"destination": "/etc", "type": "bind", "source": "/etc", "options": ["rbind", "ro"]}));
                    m.push(json!({"destination": "/host", "type": "none", "source": "/", "options": ["rbind"]}));
                    m.push(json!({"destination": "/data", "type": "bind", "source": "/var/lib/app/data", "options": ["rbind", "rw"]}));
                    m.push(json!({"destination": "/other", "type": "bind", "source": "/var/lib/application", "options": ["rbind", "rw"]}));
                },
                Grants {
                    rw_binds: vec![
                        "/run/flannel \u{2192} /run/flannel".into(),
                        "/ \u{2192} /host".into(),
                        "/var/lib/application \u{2192} /other".into(),
                    ],
                    ro_binds: vec!["/etc \u{2192} /etc".into()],
                    ..Grants::default()
                },
            ),
            (
                |v| {
                    v["linux"]["resources"] = json!({"devices": [{"allow": true, "access": "rwm"}]})
                },
                Grants {
                    all_devices: true,
                    ..Grants::default()
                },
            ),
            (
                |v| {
                    v["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"}]})
                },
                Grants::default(),
            ),
            (
                |v| {
                    v["process"]
                        .as_object_mut()
                        .unwrap()
                        .remove("noNewPrivileges");
                    v["linux"].as_object_mut().unwrap().remove("seccomp");
                },
                Grants {
                    new_privileges: true,
                    no_seccomp: true,
                    ..Grants::default()
                },
            ),
        ];
        for (edit, want) in cases {
            let mut v = default_value();
            edit(&mut v);
            assert_eq!(of(&v), want, "{v}");
        }
    }

    #[test]
    fn lines_and_json_name_the_grants() {
        let g = Grants {
            capabilities: vec!["CAP_SYS_ADMIN".into()],
            rw_binds: vec!["/var/lib/x \u{2192} /data".into()],
            no_seccomp: true,
            ..Grants::default()
        };
        assert_eq!(
            g.lines(),
            [
                "capabilities: CAP_SYS_ADMIN",
                "read-write host paths: /var/lib/x \u{2192} /data",
                "no seccomp filter"
            ]
        );
        assert_eq!(
            serde_json::to_value(&g).unwrap(),
            json!({"capabilities": ["CAP_SYS_ADMIN"], "rw_binds": ["/var/lib/x \u{2192} /data"], "no_seccomp": true})
        );
    }
}
