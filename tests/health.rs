//! Health checks run by `berth run` (the code berth-run shares): a bundle
//! with a `health.json`, the real bundled runtime and crun where installed,
//! as root, on the busybox-static bundle of the run tests.
//!
//! No timing assertions: every wait polls a condition under a generous bound.
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
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{unique, wait_for, Berth};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use run_support::systemd::FakeSystemd;
use run_support::{alive, bundle, children, config, rootfs};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(60);
/// berth-run's exit code when its health check stopped the container.
const UNHEALTHY_EXIT: i32 = 69;

/// The payload of most tests: idles, exits 0 on SIGTERM.
const IDLE: &str = "trap 'exit 0' TERM; while :; do sleep 1; done";

/// A root plus a bundle that runs [`IDLE`] as uid 1000 with `FOO=bar`,
/// checked by `check` (a shell command) every 100 ms.
fn setup(check: &str, retries: u32) -> (Berth, PathBuf) {
    setup_with(IDLE, check, retries)
}

/// [`setup`] with another payload script.
fn setup_with(payload: &str, check: &str, retries: u32) -> (Berth, PathBuf) {
    let b = Berth::new();
    let mut c = config(&rootfs(), &["/bin/sh", "-c", payload]);
    c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    c["process"]["env"] = json!(["PATH=/bin", "FOO=bar"]);
    let dir = bundle(&b.dir().join("bundle"), &c);
    let health = json!({
        "command": {"kind": "shell", "argv": check},
        "interval": "100ms",
        "timeout": "20s",
        "start_period": "0s",
        "retries": retries,
    });
    std::fs::write(dir.join("health.json"), health.to_string()).unwrap();
    (b, dir)
}

fn state_file(b: &Berth, id: &str) -> PathBuf {
    b.root()
        .join("run/berth/runtime/ctr")
        .join(id)
        .join("health.json")
}

fn read_state(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn run_args<'a>(runtime: &'a str, bundle: &'a Path, id: &'a str) -> Vec<&'a std::ffi::OsStr> {
    vec![
        "--runtime".as_ref(),
        runtime.as_ref(),
        "run".as_ref(),
        "--bundle".as_ref(),
        bundle.as_os_str(),
        id.as_ref(),
    ]
}

/// `berth run` of `dir` as container `id` under `runtime`, its stderr piped.
fn spawn_run(b: &Berth, runtime: &str, dir: &Path, id: &str) -> Child {
    b.command(&run_args(runtime, dir, id))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the state at `path` to say `healthy` (berth still running)
/// and returns it.
fn wait_healthy(child: &mut Child, path: &Path) -> Value {
    let mut state = Value::Null;
    wait_for("a passing health check in the state file", LONG, || {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("berth exited early: {st}");
        }
        state = read_state(path).unwrap_or(Value::Null);
        state["status"] == "healthy"
    });
    state
}

fn passing_check_reports_healthy(runtime: &str) {
    let (b, dir) = setup(
        "echo \"probe $FOO uid=$(id -u)\"; test -e /proc/1/status",
        3,
    );
    let id = unique("healthy");
    let mut child = spawn_run(&b, runtime, &dir, &id);
    let path = state_file(&b, &id);
    let state = wait_healthy(&mut child, &path);
    assert_eq!(state["failing_streak"], 0, "{state}");
    assert_eq!(state["last"]["exit"], 0, "{state}");
    assert_eq!(
        state["last"]["output"].as_str().unwrap_or_default().trim(),
        "probe bar uid=1000",
        "the check runs with the payload's environment and user: {state}"
    );
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the payload's own exit; berth said: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!path.exists(), "the state goes with the container");
}

#[test]
fn a_passing_check_makes_the_container_healthy() {
    if !common::require_root() {
        return;
    }
    passing_check_reports_healthy("bundled");
}

#[test]
fn a_passing_check_makes_the_container_healthy_under_crun() {
    if !common::require_root() || !common::require("crun") {
        return;
    }
    passing_check_reports_healthy("crun");
}

#[test]
fn failing_checks_stop_the_container_and_berth_exits_unhealthy() {
    if !common::require_root() {
        return;
    }
    let (b, dir) = setup("echo not yet; exit 3", 2);
    let id = unique("unhealthy");
    let child = spawn_run(&b, "bundled", &dir, &id);
    let berth = child.id();
    let mut init = 0;
    wait_for("the container's init", LONG, || {
        init = children(berth).first().copied().unwrap_or(0);
        init != 0
    });
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(UNHEALTHY_EXIT), "{stderr}");
    assert!(
        stderr.contains("health check failed 2 times") && stderr.contains("not yet"),
        "{stderr}"
    );
    assert!(!alive(init), "the container is gone");
    assert!(!state_file(&b, &id).exists());
}

/// A payload that takes a second to stop after SIGTERM, and whose check
/// fails while it stops (its init becomes `sleep`): `systemctl stop` of a
/// healthy container ends with the payload's own exit, not berth's
/// unhealthy one. Checks stop when the stop begins.
#[test]
fn checks_stop_when_the_container_is_being_stopped() {
    if !common::require_root() {
        return;
    }
    let (b, dir) = setup_with(
        "trap 'exec sleep 1' TERM; while :; do sleep 0.1; done",
        "test \"$(cat /proc/1/comm)\" = sh",
        1,
    );
    let id = unique("stopping");
    let mut child = spawn_run(&b, "bundled", &dir, &id);
    wait_healthy(&mut child, &state_file(&b, &id));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the payload's own exit: {stderr}"
    );
    assert!(!stderr.contains("health check failed"), "{stderr}");
}

// --- install: where the deployment's health.json comes from ---

use common::deploy::layout_one;
use common::oci::{Compression, Image, Layer};

/// A default-config image (no /exports) with `healthcheck` in its config.
fn checked_image(healthcheck: Value) -> Image {
    let layer = Layer::new()
        .dir("bin", 0o755)
        .file("bin/app", "#!/bin/sh\n", 0o755)
        .build(Compression::Gzip);
    Image::new(vec![layer])
        .cmd(&["/bin/app"])
        .healthcheck(healthcheck)
}

fn deployment_file(b: &Berth, slot: &str, file: &str) -> PathBuf {
    b.root()
        .join("var/lib/berth/containers")
        .join(slot)
        .join(file)
}

fn installed_check(b: &Berth, slot: &str) -> Option<Value> {
    let text = std::fs::read(deployment_file(b, slot, "health.json")).ok()?;
    Some(serde_json::from_slice(&text).unwrap())
}

#[test]
fn install_merges_the_image_check_with_the_flags() {
    if !common::require_root() {
        return;
    }
    let image = checked_image(json!({
        "Test": ["CMD-SHELL", "pgrep app"],
        "Interval": 5_000_000_000i64,
        "Retries": 4
    }));
    let (reference, _keep) = layout_one(&image);
    let b = Berth::new();
    b.run(&["install", "--name", "plain", &reference]).ok();
    let c = installed_check(&b, "plain.0").expect("health.json from the image");
    assert_eq!(
        c,
        json!({
            "command": {"kind": "shell", "argv": "pgrep app"},
            "interval": "5s", "timeout": "30s", "start_period": "0s", "retries": 4
        })
    );
    b.run(&[
        "install",
        "--name",
        "flagged",
        "--health-interval",
        "2s",
        "--health-start-period",
        "1m",
        &reference,
    ])
    .ok();
    let c = installed_check(&b, "flagged.0").unwrap();
    assert_eq!(c["interval"], "2s");
    assert_eq!(c["start_period"], "1m");
    assert_eq!(c["retries"], 4, "the image's value where no flag is given");
    let info: Value = serde_json::from_slice(
        &std::fs::read(deployment_file(&b, "flagged.0", "info.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        info["health"],
        json!({"interval": "2s", "start_period": "1m"}),
        "only the operator's keys are recorded"
    );
}

#[test]
fn none_from_the_flag_or_the_image_writes_no_check() {
    if !common::require_root() {
        return;
    }
    let (checked, _k1) = layout_one(&checked_image(
        json!({"Test": ["CMD", "/bin/app", "--ping"]}),
    ));
    let (disabled, _k2) = layout_one(&checked_image(json!({"Test": ["NONE"]})));
    let b = Berth::new();
    b.run(&["install", "--name", "off", "--health-cmd", "none", &checked])
        .ok();
    assert!(!deployment_file(&b, "off.0", "health.json").exists());
    b.run(&["install", "--name", "nocheck", &disabled]).ok();
    assert!(!deployment_file(&b, "nocheck.0", "health.json").exists());
    b.run(&["install", "--name", "on", "--health-cmd", "true", &disabled])
        .ok();
    assert_eq!(
        installed_check(&b, "on.0").unwrap()["command"],
        json!({"kind": "shell", "argv": "true"})
    );
    b.run(&[
        "install",
        "--name",
        "bad",
        "--health-retries",
        "0",
        &checked,
    ])
    .code(2);
}

#[test]
fn update_merges_the_recorded_flags_with_the_new_image() {
    if !common::require_root() {
        return;
    }
    let (v1, _k1) = layout_one(&checked_image(json!({"Test": ["CMD-SHELL", "check v1"]})));
    let (v2, _k2) = layout_one(&checked_image(
        json!({"Test": ["CMD-SHELL", "check v2"], "Timeout": 3_000_000_000i64}),
    ));
    let b = Berth::new();
    b.run(&["install", "--name", "app", "--health-retries", "7", &v1])
        .ok();
    assert_eq!(installed_check(&b, "app.0").unwrap()["retries"], 7);
    b.run(&["update", "app", "--image", &v2]).ok();
    let c = installed_check(&b, "app.1").unwrap();
    assert_eq!(c["command"]["argv"], "check v2");
    assert_eq!(c["timeout"], "3s");
    assert_eq!(c["retries"], 7, "the operator's key survives the update");
}

// --- status and list of a running, checked container ---

/// A busybox image (mount points for a read-only root) that idles, exits 0
/// on SIGTERM, and is checked every 100 ms.
fn busybox_checked_image() -> Image {
    let mut layer = Layer::from_dir(&common::debs::busybox_rootfs());
    for d in ["proc", "dev", "sys", "run", "host"] {
        layer = layer.dir(d, 0o755);
    }
    Image::new(vec![layer.build(Compression::Gzip)])
        .cmd(&[
            "/bin/sh",
            "-c",
            "trap 'exit 0' TERM; while :; do sleep 1; done",
        ])
        .healthcheck(json!({
            "Test": ["CMD-SHELL", "printf 'probe\\tok\\n'"],
            "Interval": 100_000_000i64
        }))
}

#[test]
fn status_and_list_show_the_running_check() {
    if !common::require_root() {
        return;
    }
    let (reference, _keep) = layout_one(&busybox_checked_image());
    let b = Berth::new();
    b.run(&["install", "--name", "web", &reference]).ok();
    let list = b.run(&["list"]);
    list.ok();
    let header = list.stdout.lines().next().unwrap_or_default().to_string();
    assert!(header.ends_with(" HEALTH"), "{}", list.stdout);
    assert!(
        list.stdout
            .lines()
            .nth(1)
            .unwrap_or_default()
            .ends_with(" -"),
        "no running check: {}",
        list.stdout
    );
    let mut child = b
        .command(&["run", "web"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = Value::Null;
    wait_for("status --json showing a healthy container", LONG, || {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("berth run exited early: {st}");
        }
        status = b.json(&["status", "web"]);
        status["health"]["state"]["status"] == "healthy"
    });
    assert_eq!(status["health"]["check"]["interval"], "100ms", "{status}");
    assert_eq!(status["health"]["state"]["last"]["output"], "probe\tok\n");
    let human = b.run(&["status", "web"]);
    human.ok();
    let line = human
        .stdout
        .lines()
        .find(|l| l.starts_with("health: "))
        .unwrap_or_default();
    assert!(
        line.starts_with("health: healthy; last check ")
            && line.ends_with(", exit 0: probe\\x09ok"),
        "one escaped line: {line}"
    );
    let list = b.run(&["list"]);
    assert!(
        list.stdout
            .lines()
            .nth(1)
            .unwrap_or_default()
            .ends_with(" healthy"),
        "{}",
        list.stdout
    );
    assert_eq!(b.json(&["list"])[0]["health"], "healthy");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

// --- Type=notify: READY=1 waits for the first passing check ---

/// Runs `payload` under a fake systemd with a check that passes from its
/// third run on; returns the messages up to READY=1, the state file as
/// READY=1 arrived, and berth's pid.
fn ready_after_checks(payload: &str) -> (Vec<String>, Value, u32) {
    let check = "n=$(cat /tmp/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/n; \
                 echo run $n; test $n -ge 3";
    let (mut b, dir) = setup_with(payload, check, 5);
    let systemd = FakeSystemd::new();
    let path = systemd.path();
    b.set_env("NOTIFY_SOCKET", path);
    let id = unique("ready");
    let mut child = spawn_run(&b, "bundled", &dir, &id);
    let mut seen = Vec::new();
    let state = loop {
        let m = systemd.recv();
        let ready = m.lines().any(|l| l == "READY=1");
        seen.push(m);
        if ready {
            break read_state(&state_file(&b, &id)).unwrap_or(Value::Null);
        }
    };
    let berth = child.id();
    kill(Pid::from_raw(berth as i32), Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    (seen, state, berth)
}

#[test]
fn ready_from_the_payload_is_held_until_a_check_passes() {
    if !common::require_root() {
        return;
    }
    let (seen, state, berth) = ready_after_checks(
        "berth-test-helper notify READY=1 STATUS=serving; \
         trap 'exit 0' TERM; while :; do sleep 1; done",
    );
    assert_eq!(
        seen,
        [
            format!("STATUS=serving\nMAINPID={berth}"),
            format!("READY=1\nMAINPID={berth}")
        ],
        "READY=1 from the payload is dropped, berth's own comes later"
    );
    assert_eq!(state["status"], "healthy", "{state}");
    assert_eq!(state["checks"], 3, "READY=1 after the first pass: {state}");
}

#[test]
fn a_payload_that_never_notifies_is_made_ready_by_its_check() {
    if !common::require_root() {
        return;
    }
    let (seen, state, berth) = ready_after_checks(IDLE);
    assert_eq!(seen, [format!("READY=1\nMAINPID={berth}")]);
    assert_eq!(state["checks"], 3, "{state}");
    assert_eq!(state["last"]["output"], "run 3\n");
}

#[test]
fn a_check_past_its_timeout_is_killed_and_fails() {
    if !common::require_root() {
        return;
    }
    let (b, dir) = setup("echo slow; exec sleep 600", 1);
    let health = json!({
        "command": {"kind": "shell", "argv": "echo slow; exec sleep 600"},
        "interval": "100ms", "timeout": "300ms", "start_period": "0s", "retries": 1,
    });
    std::fs::write(dir.join("health.json"), health.to_string()).unwrap();
    let id = unique("timeout");
    let out = b
        .command(&run_args("bundled", &dir, &id))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(UNHEALTHY_EXIT), "{stderr}");
    assert!(
        stderr.contains("exit none") && stderr.contains("timed out after 300ms; slow"),
        "{stderr}"
    );
}
