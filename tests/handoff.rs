//! berth-run's hand-off: once its container has run a while, berth-run
//! re-executes itself into a lean supervisor (same pid, same child). What a
//! unit sees must not change: signals reach the init, sd_notify messages
//! still come from the main pid with `MAINPID=` rewritten, the exit code
//! mirrors the container, the pid file and all state go at the end, and a
//! SIGKILL still takes the container with it. As root, bundled runtime.
//!
//! Each test waits (bounded) until `/proc/PID/cmdline` shows the hand-off
//! happened, then checks behaviour; no timing assertions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;
#[allow(dead_code)] // shared with tests/run.rs, which uses all of it
mod run_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{unique, wait_for, Berth};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use run_support::systemd::FakeSystemd;
use run_support::{alive, bundle, children, config, lines, memory_cgroup, rootfs, wipe_state};

const LONG: Duration = Duration::from_secs(60);
const LEAN: &str = env!("CARGO_BIN_EXE_berth-run");

/// Whether berth-run `pid` has become the handed-off supervisor.
fn handed_off(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.split(|b| *b == 0).any(|a| a == b"--supervise-handoff"))
        .unwrap_or(false)
}

fn expect_line(rx: &mpsc::Receiver<String>, want: &str) {
    match rx.recv_timeout(LONG) {
        Ok(l) if l.trim() == want => {}
        other => panic!("wanted {want:?} from the container, got {other:?}"),
    }
}

fn runtime_dir(b: &Berth, sub: &str, id: &str) -> std::path::PathBuf {
    b.root().join("run/berth/runtime").join(sub).join(id)
}

fn lean(b: &Berth, bundle: &Path, id: &str, pid_file: &Path) -> Command {
    let mut c = Command::new(LEAN);
    c.arg("--root")
        .arg(b.root())
        .arg("--pid-file")
        .arg(pid_file)
        .arg("--bundle")
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null());
    c
}

#[test]
fn after_the_hand_off_signals_notify_exit_and_cleanup_are_unchanged() {
    if !common::require_root() {
        return;
    }
    // USR1 makes the container notify (after the hand-off), HUP is echoed,
    // TERM ends it with 3.
    let script = "trap 'berth-test-helper notify READY=1 MAINPID=9; echo notified' USR1; \
                  trap 'echo got HUP' HUP; trap 'echo got TERM; exit 3' TERM; echo up; \
                  while true; do sleep 1 & wait; done";
    let b = Berth::new();
    let dir = bundle(
        &b.dir().join("bundle"),
        &config(&rootfs(), &["/bin/sh", "-c", script]),
    );
    let systemd = FakeSystemd::new();
    let id = unique("handoff");
    let pid_file = b.dir().join("handoff.pid");
    let mut child = lean(&b, &dir, &id, &pid_file)
        .env("NOTIFY_SOCKET", systemd.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let berth = child.id();
    let rx = lines(&mut child);
    expect_line(&rx, "up");
    wait_for("berth-run to hand off", LONG, || handed_off(berth));

    // Same pid, same child, the pid file still names it.
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        berth.to_string()
    );
    let init = children(berth);
    assert_eq!(
        init.len(),
        1,
        "the container's init is still berth-run's child"
    );
    assert!(runtime_dir(&b, "ctr", &id).exists());

    let pid = Pid::from_raw(berth as i32);
    kill(pid, Signal::SIGHUP).unwrap();
    expect_line(&rx, "got HUP");
    kill(pid, Signal::SIGUSR1).unwrap();
    expect_line(&rx, "notified");
    let (msg, sender) = systemd.recv_with_pid();
    assert_eq!(msg, format!("READY=1\nMAINPID={berth}"));
    assert_eq!(sender, berth as i32, "relayed from berth-run's own pid");

    kill(pid, Signal::SIGTERM).unwrap();
    expect_line(&rx, "got TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!pid_file.exists(), "pid file removed");
    assert!(!runtime_dir(&b, "ctr", &id).exists(), "ctr/ID removed");
    assert!(!runtime_dir(&b, "state", &id).exists(), "state/ID removed");
    // The lock went with the process: the same ID runs again.
    let again = bundle(
        &b.dir().join("bundle2"),
        &config(&rootfs(), &["/bin/sh", "-c", "exit 5"]),
    );
    let st = lean(&b, &again, &id, &pid_file).status().unwrap();
    assert_eq!(st.code(), Some(5));
}

/// A berth-run of `sleep 600` (no TERM handler) that has handed off.
struct Sleeper {
    b: Berth,
    dir: std::path::PathBuf,
    id: String,
    pid_file: std::path::PathBuf,
    child: std::process::Child,
    /// The container's init.
    init: u32,
}

fn sleeper(prefix: &str) -> Sleeper {
    let b = Berth::new();
    let dir = bundle(
        &b.dir().join("bundle"),
        &config(&rootfs(), &["/bin/sh", "-c", "exec sleep 600"]),
    );
    let id = unique(prefix);
    let pid_file = b.dir().join(format!("{prefix}.pid"));
    let child = lean(&b, &dir, &id, &pid_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let berth = child.id();
    wait_for("berth-run to hand off", LONG, || handed_off(berth));
    let init = children(berth).first().copied().unwrap();
    Sleeper {
        b,
        dir,
        id,
        pid_file,
        child,
        init,
    }
}

#[test]
fn a_handed_off_berth_run_holds_the_lock_and_dies_with_its_container() {
    if !common::require_root() {
        return;
    }
    let Sleeper {
        b,
        dir,
        id,
        pid_file,
        mut child,
        init,
    } = sleeper("handkill");
    let berth = child.id();
    // Still known as berth-run (`ps -C`, `pgrep -x`), not as `exe`.
    wait_for(
        "the handed-off supervisor to be named berth-run",
        LONG,
        || {
            std::fs::read_to_string(format!("/proc/{berth}/comm"))
                .is_ok_and(|c| c.trim() == "berth-run")
        },
    );

    // A second berth-run of the same ID is refused: the lock crossed the exec.
    let busy = lean(&b, &dir, &id, &b.dir().join("other.pid"))
        .output()
        .unwrap();
    assert_eq!(busy.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&busy.stderr).contains("already running"));

    // SIGKILL: the container dies with berth-run; --cleanup removes the rest.
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("the container to die with berth-run", LONG, || !alive(init));
    let out = Command::new(LEAN)
        .arg("--root")
        .arg(b.root())
        .arg("--pid-file")
        .arg(&pid_file)
        .arg("--cleanup")
        .arg(&id)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!pid_file.exists());
    assert!(!runtime_dir(&b, "state", &id).exists());
    assert!(!runtime_dir(&b, "ctr", &id).exists());
}

/// The runtime finds a container's cgroup through its state; a state wiped
/// under a handed-off container (a cleared `/run`, an operator's `rm`)
/// must not leave the cgroup on the host when the container ends.
#[test]
fn a_handed_off_container_whose_state_went_leaves_no_cgroup() {
    if !common::require_root() {
        return;
    }
    let Sleeper {
        b, id, child, init, ..
    } = sleeper("handstate");
    let berth = child.id();
    let cg = memory_cgroup(init);
    assert!(cg.is_dir(), "{}", cg.display());
    wipe_state(&b.root(), &id);
    // `sleep` has no TERM handler: berth-run delivers KILL (as for a unit's stop).
    kill(Pid::from_raw(berth as i32), Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!alive(init));
    assert!(
        !cg.exists(),
        "{} is left on the host; berth-run said: {}",
        cg.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}
