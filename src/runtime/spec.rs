//! PURE: checks and edits of an OCI runtime spec (`config.json`).
//!
//! Everything here takes values and returns values: parsing with the offending
//! field named, the checks that make a bad bundle fail before anything runs,
//! the hardening defaults, and the edits `berth run` makes before handing the
//! spec to a runtime (notify mount, socket-activation environment, cgroup
//! path). The files are read and written one level up, in [`super::prepare`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxNamespaceType, LinuxSeccomp, Mount, Spec,
};

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

/// Capabilities a process gets when the config names none: Docker's default
/// set, the one service images are written for.
pub const DEFAULT_CAPABILITIES: &[Capability] = &[
    Capability::AuditWrite,
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Mknod,
    Capability::NetBindService,
    Capability::NetRaw,
    Capability::Setfcap,
    Capability::Setgid,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysChroot,
];

/// The OCI default masked paths (as `runc spec` writes them).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// The OCI default read-only paths (as `runc spec` writes them).
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Syscalls the default seccomp profile refuses with EPERM: kernel modules,
/// kexec, keyrings, clocks, swap, reboot, accounting, BPF, perf, handle-based
/// opens and other host-wide knobs no service needs. Everything else is
/// allowed (a deny list, like LXC's default), so images keep working.
pub const DEFAULT_SECCOMP_DENY: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// The default seccomp profile for this architecture.
pub fn default_seccomp() -> Result<LinuxSeccomp, SpecError> {
    let arches: &[&str] = if cfg!(target_arch = "x86_64") {
        &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    } else if cfg!(target_arch = "aarch64") {
        &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    } else {
        &[]
    };
    let v = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": arches,
        "syscalls": [{
            "names": DEFAULT_SECCOMP_DENY,
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1
        }]
    });
    serde_json::from_value(v).map_err(|e| SpecError::Unsupported {
        field: "linux.seccomp".into(),
        why: format!("berth's default profile does not parse: {e}"),
    })
}

/// What [`harden`] changed, for the caller to report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hardening {
    /// Capabilities the config asked for that the caller's bounding set lacks.
    pub dropped_capabilities: Vec<String>,
    /// Defaults filled in because the config left the field out.
    pub defaults: Vec<&'static str>,
}

/// Applies berth's hardening defaults: capabilities never exceed `bounding`
/// (extras are dropped and reported, not refused); `noNewPrivileges`, the
/// capability set, masked and read-only paths and (when `seccomp` is given)
/// the seccomp profile are filled in where the config has none. Fields the
/// config sets are kept as they are, `root.readonly` included.
pub fn harden(
    spec: &mut Spec,
    bounding: &HashSet<Capability>,
    seccomp: Option<LinuxSeccomp>,
) -> Hardening {
    let mut out = Hardening::default();
    if let Some(process) = spec.process_mut() {
        if process.no_new_privileges().is_none() {
            process.set_no_new_privileges(Some(true));
            out.defaults.push("process.noNewPrivileges");
        }
        let mut caps = process.capabilities().clone().unwrap_or_else(|| {
            out.defaults.push("process.capabilities");
            let d: HashSet<Capability> = DEFAULT_CAPABILITIES.iter().copied().collect();
            let mut c = LinuxCapabilities::default();
            c.set_bounding(Some(d.clone()))
                .set_effective(Some(d.clone()))
                .set_permitted(Some(d))
                .set_inheritable(None)
                .set_ambient(None);
            c
        });
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
    }
    if let Some(linux) = spec.linux_mut() {
        let owned = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        if linux.masked_paths().is_none() {
            linux.set_masked_paths(owned(DEFAULT_MASKED_PATHS));
            out.defaults.push("linux.maskedPaths");
        }
        if linux.readonly_paths().is_none() {
            linux.set_readonly_paths(owned(DEFAULT_READONLY_PATHS));
            out.defaults.push("linux.readonlyPaths");
        }
        if linux.seccomp().is_none() {
            if let Some(s) = seccomp {
                linux.set_seccomp(Some(s));
                out.defaults.push("linux.seccomp");
            }
        }
    }
    out
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
    fn harden_clamps_capabilities_to_bounding_set() {
        let mut v = minimal();
        v["process"]["capabilities"] = serde_json::json!({
            "bounding": ["CAP_KILL", "CAP_SYS_RESOURCE"],
            "effective": ["CAP_KILL", "CAP_SYS_RESOURCE"],
            "permitted": ["CAP_KILL"]
        });
        let mut s = spec_of(v);
        let bounding: HashSet<Capability> = [Capability::Kill].into_iter().collect();
        let h = harden(&mut s, &bounding, None);
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
    fn harden_fills_defaults_only_where_absent() {
        let mut v = minimal();
        v["linux"]["maskedPaths"] = serde_json::json!([]);
        v["process"]["noNewPrivileges"] = false.into();
        let mut s = spec_of(v);
        let all: HashSet<Capability> = DEFAULT_CAPABILITIES.iter().copied().collect();
        let h = harden(&mut s, &all, Some(default_seccomp().unwrap()));
        let linux = s.linux().as_ref().unwrap();
        assert_eq!(linux.masked_paths().as_ref().unwrap().len(), 0);
        assert_eq!(
            linux.readonly_paths().as_ref().unwrap().len(),
            DEFAULT_READONLY_PATHS.len()
        );
        assert!(linux.seccomp().is_some());
        assert_eq!(
            s.process().as_ref().unwrap().no_new_privileges(),
            Some(false)
        );
        assert!(h.defaults.contains(&"process.capabilities"));
        assert!(!h.defaults.contains(&"linux.maskedPaths"));
        assert!(h.dropped_capabilities.is_empty());
        // A second pass changes nothing.
        let again = harden(&mut s, &all, Some(default_seccomp().unwrap()));
        assert_eq!(again, Hardening::default());
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
