//! PURE: berth's default runtime config, the one place its hardening is
//! defined: read-only root, no new privileges, Docker's capability set, a
//! deny-list seccomp profile for the build's architecture, and runc's masked
//! and read-only paths. Images without a config of their own get it at
//! install time ([`crate::deploy::render`]); nothing is added at run time.

use std::collections::HashSet;
use std::path::PathBuf;

use oci_spec::runtime::{
    Capability, Linux, LinuxCapabilities, LinuxNamespace, LinuxNamespaceType, LinuxSeccomp, Mount,
    Process, Root, Spec, User,
};

use super::spec::SpecError;

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::runtime::spec::{check, has_pid_namespace};

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
}
