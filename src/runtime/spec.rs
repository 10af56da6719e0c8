//! PURE: checks and edits of an OCI runtime spec (`config.json`).
//!
//! Everything here takes values and returns values: parsing with the offending
//! field named, the checks that make a bad bundle fail before anything runs,
//! the capability clamp, and the edits `berth run` makes before handing the
//! spec to a runtime (notify mount, socket-activation environment, cgroup
//! path). The files are read and written one level up, in [`super::prepare`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capability, LinuxNamespaceType, Mount, Spec};

/// Where the notify relay's directory appears inside the container.
pub const NOTIFY_DIR_IN_CONTAINER: &str = "/run/notify";
/// `NOTIFY_SOCKET` as the container sees it.
pub const NOTIFY_SOCKET_IN_CONTAINER: &str = "/run/notify/notify.sock";

/// A problem with a bundle's `config.json`, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Not JSON, or JSON that does not fit the OCI runtime spec.
    #[error("line {line} column {column}: {message}")]
    Invalid {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde's message, naming the field or variant.
        message: String,
    },
    /// A field the runtime needs is absent or empty.
    #[error("{field} is missing; a runnable bundle needs it")]
    Missing {
        /// The field, as a JSON path (`process.args`).
        field: &'static str,
    },
    /// Something the config names is not there (a bind source on the host,
    /// the working directory or the executable in the rootfs).
    #[error("{what}: {why}")]
    Unresolved {
        /// What names it (`mount SRC → DEST`, `process.cwd /x`).
        what: String,
        /// What is wrong with it.
        why: String,
    },
    /// A field berth cannot honour.
    #[error("{field}: {why}")]
    Unsupported {
        /// The field, as a JSON path.
        field: String,
        /// Why berth refuses it.
        why: String,
    },
}

/// Parses `config.json` bytes; serde's message names the offending field.
pub fn parse(bytes: &[u8]) -> Result<Spec, SpecError> {
    serde_json::from_slice::<Spec>(bytes).map_err(|e| SpecError::Invalid {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// The checks that make a bad bundle fail before anything runs.
pub fn check(spec: &Spec) -> Result<(), SpecError> {
    if !spec.version().starts_with("1.") {
        return Err(SpecError::Unsupported {
            field: "ociVersion".into(),
            why: format!("{:?} is not a 1.x runtime spec version", spec.version()),
        });
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or(SpecError::Missing { field: "process" })?;
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => {
            return Err(SpecError::Missing {
                field: "process.args",
            })
        }
    }
    if process.terminal() == Some(true) {
        return Err(SpecError::Unsupported {
            field: "process.terminal".into(),
            why: "berth runs containers without a terminal (their output goes to the journal); set it to false".into(),
        });
    }
    if !process.cwd().is_absolute() {
        return Err(SpecError::Unsupported {
            field: "process.cwd".into(),
            why: format!("{:?} is not an absolute path", process.cwd()),
        });
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or(SpecError::Missing { field: "root" })?;
    if root.path().as_os_str().is_empty() {
        return Err(SpecError::Missing { field: "root.path" });
    }
    if spec.linux().is_none() {
        return Err(SpecError::Missing { field: "linux" });
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(SpecError::Unsupported {
                field: format!("mounts[{i}].destination"),
                why: format!("{:?} is not an absolute path", m.destination()),
            });
        }
        if m.destination() == Path::new(NOTIFY_DIR_IN_CONTAINER) {
            return Err(SpecError::Unsupported {
                field: format!("mounts[{i}].destination"),
                why: format!("{NOTIFY_DIR_IN_CONTAINER} is reserved for berth's notify socket"),
            });
        }
    }
    Ok(())
}

/// True if the spec gives the container its own pid namespace.
pub fn has_pid_namespace(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Pid))
}

/// What [`clamp_capabilities`] changed, for the caller to report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hardening {
    /// Capabilities the config asked for that the caller's bounding set lacks.
    pub dropped_capabilities: Vec<String>,
}

/// Drops the capabilities berth cannot pass on (those outside `bounding`)
/// from every set; reports them, does not refuse. This is feasibility, not
/// hardening: everything else in the config is run as written.
pub fn clamp_capabilities(spec: &mut Spec, bounding: &HashSet<Capability>) -> Hardening {
    let mut out = Hardening::default();
    let Some(process) = spec.process_mut() else {
        return out;
    };
    let Some(mut caps) = process.capabilities().clone() else {
        return out;
    };
    let mut dropped: HashSet<String> = HashSet::new();
    let mut clamp = |set: Option<HashSet<Capability>>| {
        set.map(|s| {
            s.into_iter()
                .filter(|c| {
                    let keep = bounding.contains(c);
                    if !keep {
                        dropped.insert(format!("CAP_{c}"));
                    }
                    keep
                })
                .collect::<HashSet<_>>()
        })
    };
    let b = clamp(caps.bounding().clone());
    let e = clamp(caps.effective().clone());
    let p = clamp(caps.permitted().clone());
    let i = clamp(caps.inheritable().clone());
    let a = clamp(caps.ambient().clone());
    caps.set_bounding(b)
        .set_effective(e)
        .set_permitted(p)
        .set_inheritable(i)
        .set_ambient(a);
    process.set_capabilities(Some(caps));
    let mut dropped: Vec<String> = dropped.into_iter().collect();
    dropped.sort();
    out.dropped_capabilities = dropped;
    out
}

/// PURE: every capability named in any of the process's capability sets.
pub fn named_capabilities(spec: &Spec) -> HashSet<Capability> {
    let Some(caps) = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
    else {
        return HashSet::new();
    };
    [
        caps.bounding(),
        caps.effective(),
        caps.permitted(),
        caps.inheritable(),
        caps.ambient(),
    ]
    .into_iter()
    .flatten()
    .flat_map(|set| set.iter().copied())
    .collect()
}

/// Sets `KEY=value` in the process environment, replacing any earlier `KEY=`.
pub fn set_env(spec: &mut Spec, key: &str, value: &str) {
    remove_env(spec, key);
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        env.push(format!("{key}={value}"));
        p.set_env(Some(env));
    }
}

/// Removes every `KEY=` from the process environment.
pub fn remove_env(spec: &mut Spec, key: &str) {
    if let Some(p) = spec.process_mut() {
        if let Some(env) = p.env() {
            let prefix = format!("{key}=");
            let kept: Vec<String> = env
                .iter()
                .filter(|e| !e.starts_with(&prefix) && e.as_str() != key)
                .cloned()
                .collect();
            p.set_env(Some(kept));
        }
    }
}

/// Bind-mounts the relay's directory `host_dir` read-only at
/// [`NOTIFY_DIR_IN_CONTAINER`] and points `NOTIFY_SOCKET` at the socket in it.
/// A unix socket stays writable on a read-only mount, and the directory (not
/// the socket file) is mounted so the mount point is a plain directory.
pub fn add_notify(spec: &mut Spec, host_dir: &Path) {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(NOTIFY_DIR_IN_CONTAINER))
        .set_typ(Some("bind".into()))
        .set_source(Some(host_dir.to_path_buf()))
        .set_options(Some(
            ["bind", "ro", "nosuid", "nodev", "noexec"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(m);
    spec.set_mounts(Some(mounts));
    set_env(spec, "NOTIFY_SOCKET", NOTIFY_SOCKET_IN_CONTAINER);
}

/// Gives a config without a mount at `/dev` the OCI default tmpfs there,
/// placed before the first mount below `/dev`. Runtimes create the default
/// device nodes and symlinks in the container's `/dev`; without a mount that
/// is the deployment's rootfs, a read-only checkout shared by hardlinks,
/// which must not be written (and a second start would find them there).
/// Returns whether it added the mount.
pub fn ensure_dev_mount(spec: &mut Spec) -> bool {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    if mounts.iter().any(|m| m.destination() == Path::new("/dev")) {
        return false;
    }
    let mut m = Mount::default();
    m.set_destination(PathBuf::from("/dev"))
        .set_typ(Some("tmpfs".into()))
        .set_source(Some(PathBuf::from("tmpfs")))
        .set_options(Some(
            ["nosuid", "strictatime", "mode=755", "size=65536k"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ));
    let at = mounts
        .iter()
        .position(|m| m.destination().starts_with("/dev"))
        .unwrap_or(mounts.len());
    mounts.insert(at, m);
    spec.set_mounts(Some(mounts));
    true
}

/// Socket activation inside the container: `LISTEN_FDS=n`, `LISTEN_PID=1`
/// (the init as the container sees it) and `LISTEN_FDNAMES` when systemd gave
/// names. With `n == 0` every `LISTEN_*` is removed.
pub fn set_listen_env(spec: &mut Spec, n: u32, names: Option<&str>) {
    for k in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        remove_env(spec, k);
    }
    if n == 0 {
        return;
    }
    set_env(spec, "LISTEN_FDS", &n.to_string());
    set_env(spec, "LISTEN_PID", "1");
    if let Some(names) = names {
        set_env(spec, "LISTEN_FDNAMES", names);
    }
}

/// Points `root.path` at an absolute rootfs (the rendered config lives
/// outside the bundle).
pub fn set_root_path(spec: &mut Spec, rootfs: &Path) {
    if let Some(root) = spec.root_mut() {
        root.set_path(rootfs.to_path_buf());
    }
}

/// Sets `linux.cgroupsPath`.
pub fn set_cgroups_path(spec: &mut Spec, path: &Path) {
    if let Some(linux) = spec.linux_mut() {
        linux.set_cgroups_path(Some(path.to_path_buf()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"terminal": false, "cwd": "/", "args": ["/bin/true"],
                        "env": ["PATH=/bin", "NOTIFY_SOCKET=/x", "LISTEN_FDS=9"],
                        "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs", "readonly": true},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
        })
    }

    fn spec_of(v: serde_json::Value) -> Spec {
        parse(v.to_string().as_bytes()).unwrap()
    }

    fn env(s: &Spec) -> Vec<String> {
        s.process().as_ref().unwrap().env().clone().unwrap()
    }

    #[test]
    fn accepts_minimal_bundle() {
        let s = spec_of(minimal());
        check(&s).unwrap();
        assert!(has_pid_namespace(&s));
    }

    #[test]
    fn invalid_json_names_line_and_column() {
        let e = parse(b"{\n  \"ociVersion\": ,\n}").unwrap_err();
        match e {
            SpecError::Invalid { line, .. } => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_type_names_the_field() {
        let mut v = minimal();
        v["process"]["args"] = serde_json::json!("not-a-list");
        let e = parse(v.to_string().as_bytes()).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        assert!(e.contains("sequence"), "{e}");
    }

    #[test]
    fn rejects_each_bad_field() {
        type Edit = fn(&mut serde_json::Value);
        let cases: Vec<(Edit, &str)> = vec![
            (|v| v["ociVersion"] = "0.9".into(), "ociVersion"),
            (
                |v| {
                    v.as_object_mut().unwrap().remove("process");
                },
                "process",
            ),
            (
                |v| v["process"]["args"] = serde_json::json!([]),
                "process.args",
            ),
            (
                |v| v["process"]["terminal"] = true.into(),
                "process.terminal",
            ),
            (|v| v["process"]["cwd"] = "rel".into(), "process.cwd"),
            (
                |v| {
                    v.as_object_mut().unwrap().remove("root");
                },
                "root",
            ),
            (
                |v| {
                    v.as_object_mut().unwrap().remove("linux");
                },
                "linux",
            ),
            (
                |v| v["mounts"] = serde_json::json!([{"destination": "tmp", "type": "tmpfs"}]),
                "mounts[0].destination",
            ),
            (
                |v| {
                    v["mounts"] =
                        serde_json::json!([{"destination": "/run/notify", "type": "tmpfs"}])
                },
                "mounts[0].destination",
            ),
        ];
        for (edit, field) in cases {
            let mut v = minimal();
            edit(&mut v);
            let e = check(&spec_of(v)).unwrap_err().to_string();
            assert!(e.starts_with(field), "{field}: {e}");
        }
    }

    #[test]
    fn named_capabilities_are_the_union_of_the_sets() {
        let mut v = minimal();
        v["process"]["capabilities"] = serde_json::json!({
            "bounding": ["CAP_KILL", "CAP_SYS_RESOURCE"],
            "permitted": ["CAP_KILL"],
            "ambient": ["CAP_NET_RAW"]
        });
        let want: HashSet<Capability> = [
            Capability::Kill,
            Capability::SysResource,
            Capability::NetRaw,
        ]
        .into_iter()
        .collect();
        assert_eq!(named_capabilities(&spec_of(v)), want);
        let mut v = minimal();
        v["process"].as_object_mut().unwrap().remove("capabilities");
        assert!(named_capabilities(&spec_of(v)).is_empty());
    }

    #[test]
    fn clamps_capabilities_to_bounding_set() {
        let mut v = minimal();
        v["process"]["capabilities"] = serde_json::json!({
            "bounding": ["CAP_KILL", "CAP_SYS_RESOURCE"],
            "effective": ["CAP_KILL", "CAP_SYS_RESOURCE"],
            "permitted": ["CAP_KILL"]
        });
        let mut s = spec_of(v);
        let bounding: HashSet<Capability> = [Capability::Kill].into_iter().collect();
        let h = clamp_capabilities(&mut s, &bounding);
        assert_eq!(h.dropped_capabilities, vec!["CAP_SYS_RESOURCE".to_string()]);
        let caps = s
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        assert_eq!(caps.bounding().clone().unwrap(), bounding);
        assert_eq!(caps.effective().clone().unwrap(), bounding);
    }

    #[test]
    fn clamping_adds_nothing_to_a_config() {
        let mut s = spec_of(minimal());
        let before = s.clone();
        let all: HashSet<Capability> = super::super::defaults::DEFAULT_CAPABILITIES
            .iter()
            .copied()
            .collect();
        assert_eq!(clamp_capabilities(&mut s, &all), Hardening::default());
        assert_eq!(s, before);
    }

    #[test]
    fn a_config_without_dev_gets_a_tmpfs_before_its_dev_submounts() {
        let mut s = spec_of(minimal());
        let mut pts = Mount::default();
        pts.set_destination(PathBuf::from("/dev/pts"));
        let mut proc_ = Mount::default();
        proc_.set_destination(PathBuf::from("/proc"));
        s.set_mounts(Some(vec![proc_, pts]));
        assert!(ensure_dev_mount(&mut s));
        let dests: Vec<_> = s
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(dests, ["/proc", "/dev", "/dev/pts"]);
        // Idempotent, and a config's own /dev (a host bind) is kept.
        assert!(!ensure_dev_mount(&mut s));
        assert_eq!(s.mounts().as_ref().unwrap().len(), 3);
    }

    #[test]
    fn notify_and_listen_edit_env_and_mounts() {
        let mut s = spec_of(minimal());
        add_notify(&mut s, Path::new("/run/berth/x/notify"));
        set_listen_env(&mut s, 2, Some("http:https"));
        let e = env(&s);
        assert!(e.contains(&"NOTIFY_SOCKET=/run/notify/notify.sock".to_string()));
        assert!(!e.contains(&"NOTIFY_SOCKET=/x".to_string()));
        assert!(e.contains(&"LISTEN_FDS=2".to_string()));
        assert!(e.contains(&"LISTEN_PID=1".to_string()));
        assert!(e.contains(&"LISTEN_FDNAMES=http:https".to_string()));
        assert!(!e.contains(&"LISTEN_FDS=9".to_string()));
        let m = s.mounts().as_ref().unwrap().last().unwrap().clone();
        assert_eq!(m.destination(), Path::new("/run/notify"));
        set_listen_env(&mut s, 0, None);
        assert!(env(&s).iter().all(|e| !e.starts_with("LISTEN_")));
    }
}
