//! `berth-run --pid-file` and `--cleanup` (a unit's `PIDFile=` and
//! `ExecStopPost=`), with the bundled runtime and, where installed, crun: as
//! root, on a busybox-static bundle.
//!
//! Each test skips with one line when root (or the tool) is missing, unless
//! `BERTH_TEST_REQUIRE_ALL=1`. No timing assertions: every wait polls a
//! condition under a generous bound.
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
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{unique, wait_for, Berth};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use run_support::{alive, bundle, children, config, rootfs};

const LONG: Duration = Duration::from_secs(60);
const LEAN: &str = env!("CARGO_BIN_EXE_berth-run");

/// A berth root, a sleeping bundle, an ID and a pid file path outside the root.
struct Fixture {
    b: Berth,
    bundle: PathBuf,
    id: String,
    pid_file: PathBuf,
}

fn fixture(prefix: &str) -> Fixture {
    let b = Berth::new();
    let c = config(&rootfs(), &["/bin/sh", "-c", "exec sleep 600"]);
    let bundle = bundle(&b.dir().join("bundle"), &c);
    let pid_file = b.dir().join(format!("container-{prefix}.pid"));
    Fixture {
        b,
        bundle,
        id: unique(prefix),
        pid_file,
    }
}

impl Fixture {
    fn lean(&self, runtime: &str, args: &[&str]) -> Command {
        let mut c = Command::new(LEAN);
        c.arg("--root")
            .arg(self.b.root())
            .args(["--runtime", runtime, "--pid-file"])
            .arg(&self.pid_file)
            .args(args)
            .arg(&self.id);
        c.stdin(Stdio::null());
        c
    }

    /// berth-run running the bundle, once its pid file is there.
    fn start(&self, runtime: &str) -> Child {
        let mut child = self
            .lean(runtime, &["--bundle", self.bundle.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + LONG;
        while !self.pid_file.exists() {
            if let Some(st) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "berth-run exited {st} before writing its pid file: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(std::time::Instant::now() < deadline, "no pid file");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    fn cleanup(&self, runtime: &str) -> Output {
        let out = self.lean(runtime, &["--cleanup"]).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "--cleanup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn state(&self, runtime_dir: &str) -> PathBuf {
        self.b
            .root()
            .join("run/berth/runtime")
            .join(runtime_dir)
            .join(&self.id)
    }
}

fn pid_in(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The container init: berth-run's only child.
fn init_of(berth: u32) -> u32 {
    let mut pid = 0;
    wait_for("the container init", LONG, || {
        pid = children(berth).first().copied().unwrap_or(0);
        pid != 0
    });
    pid
}

fn check_pid_file_lifecycle(runtime: &str, state_dir: &str) {
    let f = fixture(state_dir);
    let child = f.start(runtime);
    // berth-run's own pid, which forwards signals to the init.
    assert_eq!(pid_in(&f.pid_file), child.id());
    assert!(f.state(state_dir).exists(), "{runtime} holds the container");
    // ExecStopPost while it runs: nothing touched.
    f.cleanup(runtime);
    assert!(f.pid_file.exists());
    assert!(f.state(state_dir).exists());
    // What `kill -TERM $(cat $PIDFILE)` does.
    kill(Pid::from_raw(pid_in(&f.pid_file) as i32), Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !f.pid_file.exists(),
        "pid file removed when the container ended"
    );
    assert!(!f.state(state_dir).exists());
}

#[test]
fn pid_file_holds_berth_runs_pid_while_the_container_runs() {
    if !common::require_root() {
        return;
    }
    check_pid_file_lifecycle("bundled", "state");
}

#[test]
fn a_crun_unit_runs_crun_and_keeps_its_pid_file() {
    if !(common::require_root() && common::require("crun")) {
        return;
    }
    let probe = Berth::new();
    let c = config(&rootfs(), &["/bin/sh", "-c", "true"]);
    let dir = bundle(&probe.dir().join("bundle"), &c);
    let out = Command::new(LEAN)
        .arg("--root")
        .arg(probe.root())
        .args(["--runtime", "crun", "--bundle"])
        .arg(&dir)
        .arg(unique("crunprobe"))
        .output()
        .unwrap();
    if String::from_utf8_lossy(&out.stderr).contains("hybrid mode not supported") {
        common::skip("crun on this hybrid cgroup host (see docs/runtime.md)");
        return;
    }
    // As a unit installed with --runtime crun runs it: by its path.
    let crun = common::which("crun").unwrap();
    check_pid_file_lifecycle(crun.to_str().unwrap(), "crun");
}

#[test]
fn cleanup_removes_what_a_killed_berth_run_left() {
    if !common::require_root() {
        return;
    }
    let f = fixture("stale");
    let mut child = f.start("bundled");
    let init = init_of(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("the container to die with berth-run", LONG, || !alive(init));
    assert!(
        f.pid_file.exists(),
        "a SIGKILLed berth-run leaves its pid file"
    );
    assert!(f.state("state").exists());
    f.cleanup("bundled");
    assert!(!f.pid_file.exists());
    assert!(!f.state("state").exists());
    assert!(!f
        .b
        .root()
        .join("run/berth/runtime/ctr")
        .join(&f.id)
        .exists());
    // Again: nothing left, still fine.
    f.cleanup("bundled");
    // The same through `berth run --cleanup`.
    f.b.run(&["run", "--cleanup", &f.id]).ok();
}

#[test]
fn bad_pid_file_paths_are_refused_with_exit_2() {
    let b = Berth::new();
    for bad in ["relative.pid", "/run/../etc/x", "/run/a b"] {
        let out = Command::new(LEAN)
            .arg("--root")
            .arg(b.root())
            .args(["--pid-file", bad, "--cleanup", "x"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--pid-file"),
            "{bad}"
        );
        b.run(&["run", "--pid-file", bad, "x"])
            .code(2)
            .stderr_has(&["--pid-file"]);
    }
}

#[test]
fn an_unwritable_pid_file_fails_the_run_and_leaves_nothing() {
    if !common::require_root() {
        return;
    }
    let mut f = fixture("nodir");
    f.pid_file = f.b.dir().join("no-such-dir/x.pid");
    let out = f
        .lean("bundled", &["--bundle", f.bundle.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("pid file") && err.contains("no-such-dir"),
        "{err}"
    );
    assert!(!f.state("state").exists(), "the container was taken down");
    assert!(!f.b.dir().join("no-such-dir").exists());
}

/// systemd may stop a unit the moment its pid file appears, before crun has
/// written the container's: the signal must still end the container (a
/// namespace init without a handler gets SIGKILL, as from the bundled runtime).
#[test]
fn a_stop_before_crun_wrote_its_pid_file_still_ends_the_container() {
    if !(common::require_root() && common::require("crun")) {
        return;
    }
    let crun = common::which("crun").unwrap();
    let crun = crun.to_str().unwrap();
    for round in 0..5 {
        let f = fixture(&format!("early{round}"));
        let mut child = f
            .lean(crun, &["--bundle", f.bundle.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + LONG;
        while !f.pid_file.exists() {
            assert!(std::time::Instant::now() < deadline, "no pid file");
            assert!(child.try_wait().unwrap().is_none(), "berth-run ended early");
            std::thread::sleep(Duration::from_micros(200));
        }
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("round {round}: berth-run still runs 60 s after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = child.wait_with_output().unwrap().stderr;
        if String::from_utf8_lossy(&stderr).contains("hybrid mode not supported") {
            common::skip("crun on this hybrid cgroup host (see docs/runtime.md)");
            return;
        }
        assert_eq!(
            status.code(),
            Some(137),
            "round {round}: {}",
            String::from_utf8_lossy(&stderr)
        );
    }
}
