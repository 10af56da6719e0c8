//! `berth-run --runtime crun --exec-runtime` (what units of crun containers
//! run): berth-run prepares the container and becomes crun, same pid. What a
//! unit relies on must hold as in the supervised path: the pid is the one
//! systemd started and stays until the container ends, signals reach the
//! init, READY=1 reaches systemd from that pid, the exit code mirrors the
//! container, the id stays locked, `berth exec`/`kill` find the container,
//! and the unit's `--cleanup` leaves nothing behind. When berth-run has work
//! of its own (a health check, a watchdog), it stays the supervisor. As
//! root, with crun installed; no timing assertions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;
#[allow(dead_code)] // shared with tests/run.rs, which uses all of it
mod run_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{unique, wait_for, Berth};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use run_support::systemd::FakeSystemd;
use run_support::{alive, bundle, config, lines, memory_cgroup, rootfs};
use serde_json::json;

const LONG: Duration = Duration::from_secs(60);
const LEAN: &str = env!("CARGO_BIN_EXE_berth-run");

fn crun() -> Option<PathBuf> {
    if !common::require_root() || !common::require("crun") {
        return None;
    }
    common::which("crun")
}

/// The payload: notifies on USR1, echoes HUP, ends with 3 on TERM.
const PAYLOAD: &str = "trap 'berth-test-helper notify READY=1 STATUS=up; echo notified' USR1; \
                       trap 'echo got HUP' HUP; trap 'echo got TERM; exit 3' TERM; echo up; \
                       while true; do sleep 1 & wait; done";

fn lean(b: &Berth, crun: &Path, bundle: &Path, id: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(LEAN);
    c.arg("--root")
        .arg(b.root())
        .arg("--runtime")
        .arg(crun)
        .args(extra)
        .arg("--bundle")
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null());
    c
}

/// Waits for `want` from the container; on anything else, fails with
/// berth-run's stderr.
fn expect_line(rx: &mpsc::Receiver<String>, child: Child, want: &str) -> Child {
    match rx.recv_timeout(LONG) {
        Ok(l) if l.trim() == want => child,
        other => {
            let out = child.wait_with_output().unwrap();
            panic!(
                "wanted {want:?} from the container, got {other:?}; berth-run: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        }
    }
}

/// Kills a berth-run (or the crun it became) and cleans its container up
/// when a test ends, so a failed assertion leaves no container running.
struct Reap<'a> {
    b: &'a Berth,
    crun: &'a Path,
    pid: u32,
    id: String,
}

impl Drop for Reap<'_> {
    fn drop(&mut self) {
        if alive(self.pid) {
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        }
        let _ = Command::new(LEAN)
            .arg("--root")
            .arg(self.b.root())
            .arg("--runtime")
            .arg(self.crun)
            .args(["--cleanup", &self.id])
            .status();
    }
}

/// Starts `cmd` (a berth-run), reaped when the returned guard goes, and
/// waits for the payload's "up".
fn start<'a>(
    b: &'a Berth,
    crun: &'a Path,
    id: &str,
    mut cmd: Command,
) -> (Child, mpsc::Receiver<String>, Reap<'a>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reap = Reap {
        b,
        crun,
        pid: child.id(),
        id: id.to_string(),
    };
    let rx = lines(&mut child);
    let child = expect_line(&rx, child, "up");
    (child, rx, reap)
}

/// The payload under `--exec-runtime` and a fake systemd, started.
struct Notified<'a> {
    dir: PathBuf,
    id: String,
    child: Child,
    /// The container's output.
    rx: mpsc::Receiver<String>,
    /// What systemd received, with the sender's pid.
    notified: mpsc::Receiver<(String, i32)>,
    _reap: Reap<'a>,
}

fn start_notified<'a>(b: &'a Berth, crun: &'a Path, prefix: &str) -> Notified<'a> {
    let dir = bundle(
        &b.dir().join("bundle"),
        &config(&rootfs(), &["/bin/sh", "-c", PAYLOAD]),
    );
    let systemd = FakeSystemd::new();
    let id = unique(prefix);
    let mut cmd = lean(b, crun, &dir, &id, &["--exec-runtime"]);
    cmd.env("NOTIFY_SOCKET", systemd.path());
    let notified = systemd.into_channel();
    let (child, rx, _reap) = start(b, crun, &id, cmd);
    Notified {
        dir,
        id,
        child,
        rx,
        notified,
        _reap,
    }
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn runtime_dir(b: &Berth, sub: &str, id: &str) -> PathBuf {
    b.root().join("run/berth/runtime").join(sub).join(id)
}

#[test]
fn berth_run_becomes_crun_and_the_unit_sees_the_same_container() {
    let Some(crun) = crun() else { return };
    // Short wherever the checkout is: crun's notify socket is under the root.
    let b = Berth::short();
    let Notified {
        dir,
        id,
        child,
        rx,
        notified,
        _reap,
    } = start_notified(&b, &crun, "direct");
    let pid = child.id();

    // The pid systemd started is crun now, and crun's child is the init.
    assert_eq!(comm(pid), "crun", "berth-run became crun");
    let init = run_support::children(pid);
    assert_eq!(init.len(), 1, "the init is the child of the unit's pid");
    // The lock's fd stays with crun, not with the container.
    let lock = b.root().join("run/berth/runtime/locks").join(&id);
    let held_by = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == lock))
    };
    assert!(held_by(pid), "crun holds the lock");
    assert!(!held_by(init[0]), "the container's init does not");
    let cgroup = memory_cgroup(init[0]);
    assert!(cgroup.is_dir(), "{}", cgroup.display());
    assert!(runtime_dir(&b, "ctr", &id)
        .join("bundle/config.json")
        .exists());

    // The id stays locked: a second berth-run of it is refused (exit 4).
    let second = lean(&b, &crun, &dir, &id, &["--exec-runtime"])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(4), "{second:?}");
    assert!(String::from_utf8_lossy(&second.stderr).contains("already running"));

    // berth exec finds the container through the runtime berth-run recorded.
    let out = b.run(&["exec", &id, "cat", "/proc/1/comm"]);
    out.code(0);
    assert_eq!(out.stdout.trim(), "sh");

    // Signals to the unit's pid reach the init; READY=1 reaches systemd
    // from that same pid.
    let p = Pid::from_raw(pid as i32);
    kill(p, Signal::SIGHUP).unwrap();
    let child = expect_line(&rx, child, "got HUP");
    kill(p, Signal::SIGUSR1).unwrap();
    let child = expect_line(&rx, child, "notified");
    let (msg, sender) = notified.recv_timeout(LONG).unwrap();
    assert_eq!(msg, "READY=1");
    assert_eq!(sender, pid as i32, "sent from the unit's main pid");

    // The unit's ExecStop.
    b.run(&["kill", "--if-running", &id]).code(0);
    let child = expect_line(&rx, child, "got TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!runtime_dir(&b, "crun", &id).exists(), "crun's state went");
    assert!(!cgroup.exists(), "the container's cgroup went");

    // The unit's ExecStopPost removes berth's files.
    assert!(runtime_dir(&b, "ctr", &id).exists());
    let st = Command::new(LEAN)
        .arg("--root")
        .arg(b.root())
        .arg("--runtime")
        .arg(&crun)
        .args(["--cleanup", &id])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(!runtime_dir(&b, "ctr", &id).exists(), "ctr/ID removed");

    // Killed with crun (kill -9 of the unit's pid), the next start still
    // works: the lock went with the process and the stale state is removed.
    let cmd = lean(&b, &crun, &dir, &id, &["--exec-runtime"]);
    let (mut child, _rx, _reap_again) = start(&b, &crun, &id, cmd);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    let again = bundle(
        &b.dir().join("bundle2"),
        &config(&rootfs(), &["/bin/sh", "-c", "exit 5"]),
    );
    // The init may outlive crun for a moment (PDEATHSIG): wait for the id.
    wait_for("the killed container to go", LONG, || {
        let out = lean(&b, &crun, &again, &id, &["--exec-runtime"])
            .output()
            .unwrap();
        out.status.code() == Some(5)
    });
}

#[test]
fn berth_run_stays_the_supervisor_when_it_has_work() {
    let Some(crun) = crun() else { return };
    let b = Berth::new();
    let plain = bundle(
        &b.dir().join("plain"),
        &config(&rootfs(), &["/bin/sh", "-c", PAYLOAD]),
    );
    let checked = bundle(
        &b.dir().join("checked"),
        &config(&rootfs(), &["/bin/sh", "-c", PAYLOAD]),
    );
    let health = json!({
        "command": {"kind": "shell", "argv": "true"},
        "interval": "30s",
        "timeout": "20s",
        "start_period": "0s",
        "retries": 3,
    });
    std::fs::write(checked.join("health.json"), health.to_string()).unwrap();
    let cases: [(&Path, Option<&str>, &str); 2] = [
        (&checked, None, "a health check"),
        (&plain, Some("30000000"), "a watchdog"),
    ];
    for (dir, watchdog, why) in cases {
        let id = unique("stays");
        let mut cmd = lean(&b, &crun, dir, &id, &["--exec-runtime"]);
        if let Some(w) = watchdog {
            cmd.env("WATCHDOG_USEC", w);
        }
        let (child, _rx, _reap) = start(&b, &crun, &id, cmd);
        let pid = child.id();
        assert_eq!(comm(pid), "berth-run", "with {why}, berth-run supervises");
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{why}: {out:?}");
        assert!(!alive(pid));
        assert!(
            !runtime_dir(&b, "ctr", &id).exists(),
            "{why}: the supervisor removed ctr/ID itself"
        );
    }
}

/// crun before 1.27 (Debian 12 has 1.8.1) cannot bind its notify socket
/// when `ROOT/ID/notify/notify` is longer than a socket address holds, and
/// the container would not start. Under such a `--root`, berth-run stays
/// the supervisor and READY=1 still reaches systemd, through its relay.
#[test]
fn a_root_too_long_for_crun_s_notify_socket_keeps_the_supervisor() {
    let Some(crun) = crun() else { return };
    let long = tempfile::Builder::new()
        .prefix(&"long-root-".repeat(8))
        .tempdir_in(common::scratch_base())
        .unwrap();
    let b = Berth::in_dir(long);
    let Notified {
        child,
        rx,
        notified,
        _reap,
        ..
    } = start_notified(&b, &crun, "long");
    let pid = child.id();
    assert_eq!(comm(pid), "berth-run", "berth-run supervises");
    kill(Pid::from_raw(pid as i32), Signal::SIGUSR1).unwrap();
    let child = expect_line(&rx, child, "notified");
    let (msg, sender) = notified.recv_timeout(LONG).unwrap();
    assert!(msg.contains("READY=1"), "{msg}");
    assert_eq!(sender, pid as i32, "sent from the unit's main pid");
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}
