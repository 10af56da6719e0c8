//! PURE: checks and edits of an OCI runtime spec (`config.json`).
//!
//! Everything here takes values and returns values: parsing with the offending
//! field named, the checks that make a bad bundle fail before anything runs,
//! berth's default config (the one place its hardening is defined), and the
//! edits `berth run` makes before handing the
//! spec to a runtime (notify mount, socket-activation environment, cgroup
//! path). The files are read and written one level up, in [`super::prepare`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, Linux, LinuxCapabilities, LinuxNamespace, LinuxNamespaceType, LinuxSeccomp, Mount,
    Process, Root, Spec, User,
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

/// The capabilities of berth's default config: Docker's default set, the
/// one service images are written for.
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

/// The masked paths of berth's default config, as `runc spec` writes them.
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// The read-only paths of berth's default config, as `runc spec` writes
/// them (`/proc/asound` is read-only there, not masked).
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The namespaces of berth's default config: the host network is shared (a
/// service listens on the host's addresses, as with atomic).
pub const DEFAULT_NAMESPACES: &[LinuxNamespaceType] = &[
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Mount,
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

/// The default seccomp profile for the architecture berth was built for.
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

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination))
        .set_typ(Some(typ.into()))
        .set_source(Some(PathBuf::from(source)))
        .set_options(
            (!options.is_empty()).then(|| options.iter().map(|s| s.to_string()).collect()),
        );
    m
}

/// berth's default config for images without one of their own: the single
/// source of berth's hardening (read-only root, no new privileges, Docker's
/// capability set, the deny-list seccomp profile, runc's masked and
/// read-only paths), with an empty `process.args` for the caller to fill.
pub fn default_spec() -> Result<Spec, SpecError> {
    let caps: HashSet<Capability> = DEFAULT_CAPABILITIES.iter().copied().collect();
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(caps.clone()))
        .set_effective(Some(caps.clone()))
        .set_permitted(Some(caps))
        .set_inheritable(None)
        .set_ambient(None);
    let mut process = Process::default();
    process
        .set_terminal(Some(false))
        .set_console_size(None)
        .set_user(User::default())
        .set_args(Some(Vec::new()))
        .set_env(Some(Vec::new()))
        .set_cwd(PathBuf::from("/"))
        .set_capabilities(Some(c))
        .set_rlimits(None)
        .set_no_new_privileges(Some(true))
        .set_apparmor_profile(None)
        .set_selinux_label(None)
        .set_scheduler(None)
        .set_oom_score_adj(None)
        .set_io_priority(None)
        .set_command_line(None);
    let mut root = Root::default();
    root.set_path(PathBuf::from("rootfs"))
        .set_readonly(Some(true));
    let namespaces = DEFAULT_NAMESPACES
        .iter()
        .map(|t| {
            let mut n = LinuxNamespace::default();
            n.set_typ(*t).set_path(None);
            n
        })
        .collect();
    let owned = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let mut linux = Linux::default();
    linux
        .set_net_devices(None)
        .set_memory_policy(None)
        .set_uid_mappings(None)
        .set_gid_mappings(None)
        .set_sysctl(None)
        .set_resources(None)
        .set_cgroups_path(None)
        .set_namespaces(Some(namespaces))
        .set_devices(None)
        .set_seccomp(Some(default_seccomp()?))
        .set_rootfs_propagation(None)
        .set_masked_paths(owned(DEFAULT_MASKED_PATHS))
        .set_readonly_paths(owned(DEFAULT_READONLY_PATHS))
        .set_mount_label(None)
        .set_intel_rdt(None)
        .set_personality(None)
        .set_time_offsets(None);
    let mounts = vec![
        mount("/proc", "proc", "proc", &[]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount("/run", "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=755"]),
        mount("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=1777"]),
    ];
    let mut spec = Spec::default();
    spec.set_version(crate::runtime::legacy::UPGRADED_VERSION.into())
        .set_process(Some(process))
        .set_root(Some(root))
        .set_hostname(Some("berth".into()))
        .set_domainname(None)
        .set_mounts(Some(mounts))
        .set_annotations(None)
        .set_linux(Some(linux))
        .set_hooks(None);
    Ok(spec)
}

/// The spec as pretty JSON with each capability set sorted, so the same
/// spec always gives the same text (the sets are hash sets in memory).
pub fn to_json(spec: &Spec) -> Result<String, serde_json::Error> {
    let mut v = serde_json::to_value(spec)?;
    if let Some(sets) = v
        .get_mut("process")
        .and_then(|p| p.get_mut("capabilities"))
        .and_then(serde_json::Value::as_object_mut)
    {
        for set in sets.values_mut() {
            if let Some(a) = set.as_array_mut() {
                a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
            }
        }
    }
    serde_json::to_string_pretty(&v)
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
        let all: HashSet<Capability> = DEFAULT_CAPABILITIES.iter().copied().collect();
        assert_eq!(clamp_capabilities(&mut s, &all), Hardening::default());
        assert_eq!(s, before);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn default_spec_is_golden() {
        let got: serde_json::Value =
            serde_json::from_str(&to_json(&default_spec().unwrap()).unwrap()).unwrap();
        let want: serde_json::Value =
            serde_json::from_str(include_str!("testdata/default-config.json")).unwrap();
        assert_eq!(got, want, "{}", serde_json::to_string_pretty(&got).unwrap());
    }

    #[test]
    fn default_spec_passes_the_checks_once_filled() {
        let mut s = default_spec().unwrap();
        s.process_mut()
            .as_mut()
            .unwrap()
            .set_args(Some(vec!["/x".into()]));
        check(&s).unwrap();
        assert!(has_pid_namespace(&s));
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
