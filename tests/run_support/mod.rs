//! Bundles for the `berth run` tests.
//!
//! ```text
//! target/test-cache/rootfs/berth-run-HASH/   busybox-static rootfs + bin/berth-test-helper
//!                                            + mount points (proc dev sys tmp run/notify)
//! TMP/bundle-N/config.json                   one per test; root.path is the shared rootfs
//! ```
//! The shared rootfs is only ever mounted read-only (`root.readonly: true`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{mpsc, Mutex};

use serde_json::{json, Value};

use crate::common::{self, cache_dir, debs, run_ok};

#[allow(dead_code)] // each test file uses part of it
pub mod systemd;

static LOCK: Mutex<()> = Mutex::new(());

const HELPER_SRC: &str = include_str!("helper.rs");

/// Extra busybox applets the tests use.
const APPLETS: &[&str] = &[
    "touch", "cat", "grep", "kill", "wc", "tr", "head", "ls", "ps",
];

fn rustc() -> PathBuf {
    if let Some(r) = std::env::var_os("RUSTC") {
        return r.into();
    }
    common::which("rustc").unwrap_or_else(|| PathBuf::from("rustc"))
}

/// The shared rootfs: busybox, the helper, mount points. Built once per helper version.
pub fn rootfs() -> PathBuf {
    let base = debs::busybox_rootfs();
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let key = &common::sha256_hex(HELPER_SRC.as_bytes())[..12];
    let dest = cache_dir().join("rootfs").join(format!("berth-run-{key}"));
    if dest.is_dir() {
        return dest;
    }
    let tmp = dest.with_file_name(format!("berth-run-{key}.tmp-{}", common::unique("x")));
    run_ok(Command::new("cp").arg("-a").arg(&base).arg(&tmp));
    for d in ["proc", "dev", "sys", "run/notify"] {
        std::fs::create_dir_all(tmp.join(d)).unwrap();
    }
    for a in APPLETS {
        let link = tmp.join("bin").join(a);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).unwrap();
        }
    }
    let src = tmp.with_extension("helper.rs");
    std::fs::write(&src, HELPER_SRC).unwrap();
    run_ok(
        Command::new(rustc())
            .args([
                "--edition",
                "2021",
                "--crate-name",
                "berth_test_helper",
                "-O",
                "-C",
                "target-feature=+crt-static",
                "-C",
                "strip=symbols",
                "-o",
            ])
            .arg(tmp.join("bin/berth-test-helper"))
            .arg(&src),
    );
    let _ = std::fs::remove_file(&src);
    if std::fs::rename(&tmp, &dest).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dest
}

/// A `runc spec`-like config: read-only root, no terminal, pid/ipc/uts/mount
/// namespaces (host network), tmpfs on /tmp, running `args`.
pub fn config(rootfs: &Path, args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin", "TERM=xterm"],
            "cwd": "/",
            "noNewPrivileges": true
        },
        "root": {"path": rootfs, "readonly": true},
        "hostname": "berth-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
        }
    })
}

/// Writes `config` as `DIR/config.json` and returns `DIR`.
pub fn bundle(dir: &Path, config: &Value) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(config).unwrap(),
    )
    .unwrap();
    dir.to_path_buf()
}

/// The state of process `pid` from /proc (`'Z'` zombie, `'?'` gone).
pub fn proc_state(pid: u32) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").and_then(|(_, r)| r.chars().next()))
        .unwrap_or('?')
}

/// True while `pid` is a live (non-zombie) process.
pub fn alive(pid: u32) -> bool {
    !matches!(proc_state(pid), 'Z' | 'X' | '?')
}

/// The children of `pid` (from /proc/PID/task/PID/children).
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// `/proc/PID/cgroup` as (hierarchy, path) pairs.
pub fn cgroups(pid: u32) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut p = l.splitn(3, ':');
            let _ = p.next()?;
            Some((p.next()?.to_string(), p.next()?.to_string()))
        })
        .collect()
}

/// Reads `child`'s stdout lines into a channel.
pub fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// The directory of `pid`'s memory cgroup (v1), or its unified one.
pub fn memory_cgroup(pid: u32) -> PathBuf {
    let all = cgroups(pid);
    let (ctrls, path) = all
        .iter()
        .find(|(c, _)| c.split(',').any(|c| c == "memory"))
        .or_else(|| all.iter().find(|(c, _)| c.is_empty()))
        .unwrap();
    Path::new("/sys/fs/cgroup")
        .join(ctrls)
        .join(path.trim_start_matches('/'))
}

/// Removes the bundled runtime's state of running container `id` under
/// `root`, as a wiped `/run` would. Waits first for the state's last write
/// (`"status":"running"`, saved after the init was started, so possibly
/// after the payload's first output): removed before it, the state file
/// would be written again.
pub fn wipe_state(root: &Path, id: &str) {
    let state = root.join("run/berth/runtime/state").join(id);
    common::wait_for(
        "the runtime to record the container as running",
        std::time::Duration::from_secs(60),
        || {
            std::fs::read_to_string(state.join("state.json"))
                .is_ok_and(|s| s.contains("\"status\":\"running\""))
        },
    );
    std::fs::remove_dir_all(&state).unwrap();
}
