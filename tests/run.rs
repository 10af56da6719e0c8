//! `berth run`, `exec`, `kill` with the real bundled runtime (libcontainer) and,
//! where installed, crun and runc: as root, on a busybox-static bundle.
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
mod run_support;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{berth::BIN, unique, wait_for, Berth};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use run_support::systemd::FakeSystemd;
use run_support::{
    alive, bundle, cgroups, children, config, lines, memory_cgroup, rootfs, wipe_state,
};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(60);

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

/// A fresh berth root plus a bundle running `args`.
fn setup(args: &[String], edit: impl FnOnce(&mut Value)) -> (Berth, PathBuf) {
    let b = Berth::new();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = config(&rootfs(), &a);
    edit(&mut c);
    let dir = bundle(&b.dir().join("bundle"), &c);
    (b, dir)
}

fn run_args<'a>(bundle: &'a Path, id: &'a str) -> Vec<&'a std::ffi::OsStr> {
    vec![
        "run".as_ref(),
        "--bundle".as_ref(),
        bundle.as_os_str(),
        id.as_ref(),
    ]
}

/// A berth running a container that prints `up` and sleeps, once it is up.
struct Sleeper {
    b: Berth,
    dir: PathBuf,
    id: String,
    child: Child,
    rx: mpsc::Receiver<String>,
}

fn sleeper(prefix: &str) -> Sleeper {
    let (b, dir) = setup(&sh("echo up; exec sleep 600"), |_| {});
    let id = unique(prefix);
    let mut child = b
        .command(&run_args(&dir, &id))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    expect_line(&rx, "up");
    Sleeper {
        b,
        dir,
        id,
        child,
        rx,
    }
}

fn expect_line(rx: &mpsc::Receiver<String>, want: &str) {
    let deadline = std::time::Instant::now() + LONG;
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(l) if l.trim() == want => return,
            Ok(l) => seen.push(l),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    panic!("no line {want:?} from the container; saw {seen:?}");
}

fn wait_exit(mut child: Child) -> (i32, String) {
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let st = child.wait().unwrap();
    (st.code().unwrap_or(-1), err)
}

/// The container init: berth's only child, once it is up.
fn container_pid(berth: u32) -> u32 {
    let mut pid = 0;
    wait_for("the container's init", LONG, || {
        pid = children(berth).first().copied().unwrap_or(0);
        pid != 0
    });
    pid
}

#[test]
fn exit_status_mirrors_the_container() {
    if !common::require_root() {
        return;
    }
    for (script, code) in [
        ("exit 0", 0),
        ("exit 7", 7),
        ("echo out; echo err >&2; exit 42", 42),
    ] {
        let (b, dir) = setup(&sh(script), |_| {});
        let id = unique("exit");
        let r = b.run(&run_args(&dir, &id));
        r.code(code);
        if code == 42 {
            assert_eq!(r.stdout, "out\n");
            assert!(r.stderr.contains("err"), "{}", r.stderr);
        }
    }
}

#[test]
fn signal_death_exits_128_plus_n_and_kill_reaches_the_init() {
    if !common::require_root() {
        return;
    }
    let Sleeper {
        b,
        id,
        child,
        rx: _rx,
        ..
    } = sleeper("sig");
    b.run(&["kill", &id, "KILL"]).ok();
    let (code, err) = wait_exit(child);
    assert_eq!(code, 128 + 9, "{err}");
    // Gone: kill now reports it is not running (exit 3).
    b.run(&["kill", &id]).code(3).stderr_has(&["not running"]);
}

#[test]
fn forwards_signals_to_the_container_init() {
    if !common::require_root() {
        return;
    }
    check_forwarding("bundled");
}

fn check_forwarding(runtime: &str) {
    let script = "for s in INT HUP QUIT USR1 USR2 WINCH; do trap \"echo got $s\" $s; done; \
                  trap 'echo got TERM; exit 3' TERM; echo ready; \
                  while true; do sleep 1 & wait; done";
    let (b, dir) = setup(&sh(script), |_| {});
    let id = unique("fwd");
    let mut args: Vec<&std::ffi::OsStr> = vec!["--runtime".as_ref(), runtime.as_ref()];
    args.extend(run_args(&dir, &id));
    let mut child = b
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    expect_line(&rx, "ready");
    let pid = Pid::from_raw(child.id() as i32);
    for (sig, name) in [
        (Signal::SIGINT, "INT"),
        (Signal::SIGHUP, "HUP"),
        (Signal::SIGQUIT, "QUIT"),
        (Signal::SIGUSR1, "USR1"),
        (Signal::SIGUSR2, "USR2"),
        (Signal::SIGWINCH, "WINCH"),
        (Signal::SIGTERM, "TERM"),
    ] {
        kill(pid, sig).unwrap();
        expect_line(&rx, &format!("got {name}"));
    }
    let (code, err) = wait_exit(child);
    assert_eq!(code, 3, "{err}");
}

fn check_notify(runtime: &str) {
    let script =
        "berth-test-helper notify READY=1 'STATUS=serving\\nMAINPID=77' 'BOGUS=1' 'STOPPING=1'; \
                  echo NOTIFY_SOCKET=$NOTIFY_SOCKET";
    let (mut b, dir) = setup(&sh(script), |_| {});
    let systemd = FakeSystemd::new();
    let path = systemd.path();
    b.set_env("NOTIFY_SOCKET", path);
    let id = unique("notify");
    let mut args: Vec<&std::ffi::OsStr> = vec!["--runtime".as_ref(), runtime.as_ref()];
    args.extend(run_args(&dir, &id));
    let child = b
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let berth = child.id() as i32;
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "NOTIFY_SOCKET=/run/notify/notify.sock"
    );
    let want = [
        "READY=1".to_string(),
        "STATUS=serving".to_string(),
        "STOPPING=1".to_string(),
    ];
    for w in want {
        let (msg, pid) = systemd.recv_with_pid();
        assert_eq!(msg, format!("{w}\nMAINPID={berth}"));
        assert_eq!(pid, berth, "sent from berth's own pid");
    }
}

#[test]
fn relays_sd_notify_from_berths_pid() {
    if !common::require_root() {
        return;
    }
    check_notify("bundled");
}

/// Runs berth with a listening TCP socket as fd 3 and LISTEN_PID = berth's pid, the
/// way systemd would: a shell moves the socket from stdin to fd 3 and execs berth.
fn check_listen_fds(runtime: &str) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (b, dir) = setup(
        &[
            "/bin/berth-test-helper".into(),
            "serve-fd3".into(),
            "hello".into(),
        ],
        |_| {},
    );
    let id = unique("listen");
    let script = "exec 3<&0 0</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec \"$@\"";
    let child = Command::new("sh")
        .args(["-c", script, "sh", BIN, "--runtime", runtime, "--root"])
        .arg(b.root())
        .args(run_args(&dir, &id))
        .stdin(Stdio::from(OwnedFd::from(listener)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(LONG)).unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        reply.trim(),
        "hello LISTEN_FDS=1 LISTEN_PID=1 LISTEN_FDNAMES=web pid=1"
    );
}

#[test]
fn passes_socket_activation_fds_as_fd_3() {
    if !common::require_root() {
        return;
    }
    check_listen_fds("bundled");
}

#[test]
fn only_activation_fds_reach_the_container() {
    if !common::require_root() {
        return;
    }
    // LISTEN_PID names another process: the fds are not berth's and nothing leaks in.
    let (mut b, dir) = setup(
        &sh("ls /proc/self/fd | tr '\\n' ' '; env | grep -c LISTEN_"),
        |_| {},
    );
    b.set_env("LISTEN_PID", "1").set_env("LISTEN_FDS", "2");
    let id = unique("fds");
    let r = b.run(&run_args(&dir, &id));
    r.code(1); // grep -c found nothing
    assert_eq!(
        r.stdout, "0 1 2 3 0\n",
        "only stdio (and ls's own directory fd 3)"
    );
}

#[test]
fn read_only_root_is_enforced() {
    if !common::require_root() {
        return;
    }
    let (b, dir) = setup(
        &sh("touch /x 2>&1; echo rc=$?; touch /tmp/ok && echo tmp=ok"),
        |_| {},
    );
    let r = b.run(&run_args(&dir, &unique("ro")));
    r.ok();
    assert!(r.stdout.contains("Read-only file system"), "{}", r.stdout);
    assert!(
        r.stdout.contains("rc=1") && r.stdout.contains("tmp=ok"),
        "{}",
        r.stdout
    );
}

/// What berth and libcontainer could change in the host's /dev: the
/// entries a runtime sets up in a container's /dev, as (name, type).
fn host_dev_setup_entries() -> Vec<(String, String)> {
    ["ptmx", "kcore", "fd", "stdin", "stdout", "stderr", "null"]
        .iter()
        .map(|n| {
            let p = Path::new("/dev").join(n);
            let t = match std::fs::symlink_metadata(&p) {
                Err(_) => "absent".to_string(),
                Ok(m) if m.file_type().is_symlink() => {
                    format!("-> {}", std::fs::read_link(&p).unwrap().display())
                }
                Ok(m) => format!(
                    "{:?} {:o}",
                    m.file_type(),
                    std::os::unix::fs::PermissionsExt::mode(&m.permissions())
                ),
            };
            (n.to_string(), t)
        })
        .collect()
}

#[test]
fn the_hosts_dev_bound_into_a_container_is_left_as_it_is() {
    if !common::require_root() {
        return;
    }
    // As atomic's flannel and docker images ask: the host's /dev, rbind rw,
    // with a devpts of the container's own on top.
    let (b, dir) = setup(
        &sh("test -c /dev/kmsg && test -c /dev/null && echo host-dev"),
        |c| {
            let mounts = c["mounts"].as_array_mut().unwrap();
            mounts.retain(|m| m["destination"] != "/dev");
            mounts.insert(
                1,
                serde_json::json!({"destination": "/dev", "type": "bind", "source": "/dev",
                                   "options": ["rbind", "rw", "mode=755"]}),
            );
        },
    );
    let before = host_dev_setup_entries();
    let r = b.run(&run_args(&dir, &unique("hostdev")));
    r.ok();
    assert_eq!(r.stdout, "host-dev\n");
    assert_eq!(host_dev_setup_entries(), before);
}

#[test]
fn a_config_without_dev_gets_one_and_leaves_the_rootfs_alone() {
    if !common::require_root() {
        return;
    }
    let (b, dir) = setup(
        &sh("test -c /dev/null && test -L /dev/fd && echo dev-ok"),
        |c| {
            let mounts = c["mounts"].as_array_mut().unwrap();
            mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
        },
    );
    let rootfs_dev = || {
        let mut names: Vec<String> = std::fs::read_dir(rootfs().join("dev"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = rootfs_dev();
    // Twice: the second start finds nothing of the first in the rootfs.
    for _ in 0..2 {
        let r = b.run(&run_args(&dir, &unique("nodev")));
        r.ok();
        assert_eq!(r.stdout, "dev-ok\n");
        assert_eq!(rootfs_dev(), before);
    }
}

/// `CapBnd` of this process, as a bit set.
fn own_bounding_set() -> u64 {
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = own
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    u64::from_str_radix(&bnd, 16).unwrap()
}

fn status_line<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout.lines().find(|l| l.starts_with(key)).unwrap_or("")
}

const STATUS_SCRIPT: &str = "grep -E '^(NoNewPrivs|Seccomp|CapBnd)' /proc/self/status";

#[test]
fn a_config_runs_as_written_with_capabilities_clamped() {
    if !common::require_root() {
        return;
    }
    let (b, dir) = setup(&sh(STATUS_SCRIPT), |c| {
        c["process"]
            .as_object_mut()
            .unwrap()
            .remove("noNewPrivileges");
        let all = ["CAP_KILL", "CAP_CHOWN", "CAP_SYS_RESOURCE"];
        c["process"]["capabilities"] = json!({"bounding": all, "effective": all, "permitted": all});
    });
    let sys_resource_bit = 1u64 << 24;
    let r = b.run(&run_args(&dir, &unique("caps")));
    r.ok();
    // Nothing the config leaves out is added: no seccomp filter, no NNP.
    assert_eq!(
        status_line(&r.stdout, "Seccomp:"),
        "Seccomp:\t0",
        "{}",
        r.stdout
    );
    assert_eq!(
        status_line(&r.stdout, "NoNewPrivs:"),
        "NoNewPrivs:\t0",
        "{}",
        r.stdout
    );
    let cap_bnd = status_line(&r.stdout, "CapBnd:");
    let got = u64::from_str_radix(cap_bnd.split_whitespace().nth(1).unwrap(), 16).unwrap();
    let host = own_bounding_set();
    assert_eq!(got & !host, 0, "never more than berth's bounding set");
    if host & sys_resource_bit == 0 {
        r.stderr_has(&["CAP_SYS_RESOURCE"]);
    }
    assert_eq!(got & (1 << 5), 1 << 5, "CAP_KILL kept");
    assert_eq!(got & sys_resource_bit, host & sys_resource_bit);
}

#[test]
fn berths_default_config_is_hardened() {
    if !common::require_root() {
        return;
    }
    use common::oci::{Compression, Image, Layer, OciLayout};
    let b = Berth::new();
    let image = Image::new(vec![Layer::from_dir(&rootfs()).build(Compression::Gzip)]).cmd(&[
        "/bin/sh",
        "-c",
        STATUS_SCRIPT,
    ]);
    let layout = b.dir().join("layout");
    OciLayout::create(&layout).add_image("t", &image);
    let name = unique("dflt");
    b.run(&[
        "install",
        "--name",
        &name,
        &format!("oci:{}:t", layout.display()),
    ])
    .ok();
    let r = b.run(&["run", &name]);
    r.ok();
    assert_eq!(
        status_line(&r.stdout, "Seccomp:"),
        "Seccomp:\t2",
        "{}",
        r.stdout
    );
    assert_eq!(
        status_line(&r.stdout, "NoNewPrivs:"),
        "NoNewPrivs:\t1",
        "{}",
        r.stdout
    );
}

#[test]
fn a_pre_1_0_bundle_runs_in_its_1_0_shape() {
    if !common::require_root() {
        return;
    }
    let (b, dir) = setup(&sh("grep CapEff /proc/self/status; echo ran"), |c| {
        c["ociVersion"] = json!("0.3.0");
        c["platform"] = json!({"os": "linux", "arch": "amd64"});
        c["hooks"] = json!({});
        c["linux"]["capabilities"] = json!(["CAP_KILL", "CAP_AUDIT_WRITE"]);
        c["linux"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]);
        c["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
        let m = c["mounts"].as_array_mut().unwrap();
        // Shapes of atomic's templates: `mode=` on a bind, a cgroup mount.
        m.push(
            json!({"destination": "/mnt", "type": "bind", "source": "/tmp",
                      "options": ["rbind", "rw", "mode=755"]}),
        );
        m.push(
            json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                      "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
        );
    });
    let r = b.run(&run_args(&dir, &unique("old")));
    r.ok();
    assert!(r.stdout.ends_with("ran\n"), "{}", r.stdout);
    // CAP_KILL (5) and CAP_AUDIT_WRITE (29) only.
    assert_eq!(
        status_line(&r.stdout, "CapEff:"),
        "CapEff:\t0000000020000020",
        "{}",
        r.stdout
    );
    r.stderr_has(&["0.3.0", "linux.capabilities"]);
}

#[test]
fn container_runs_in_a_child_of_berths_cgroup() {
    if !common::require_root() {
        return;
    }
    let Sleeper {
        b,
        id,
        child,
        rx: _rx,
        ..
    } = sleeper("cg");
    let init = container_pid(child.id());
    let mine = cgroups(child.id());
    let theirs = cgroups(init);
    let mut below = 0;
    for (h, path) in &theirs {
        let own = mine
            .iter()
            .find(|(x, _)| x == h)
            .map(|(_, p)| p.clone())
            .unwrap();
        assert!(
            Path::new(path).starts_with(&own),
            "{h}: {path} is not inside berth's {own}"
        );
        if path.ends_with(&format!("/berth-{id}")) {
            below += 1;
        }
    }
    assert!(
        below > 0,
        "the container has its own child cgroup: {theirs:?}"
    );
    b.run(&["kill", &id, "KILL"]).ok();
    let (code, _) = wait_exit(child);
    assert_eq!(code, 137);
    for (h, path) in &theirs {
        if path.ends_with(&format!("/berth-{id}")) {
            let dir = if h.is_empty() {
                "unified".to_string()
            } else {
                h.split(',').next().unwrap().replace("name=", "")
            };
            let p = Path::new("/sys/fs/cgroup")
                .join(dir)
                .join(path.trim_start_matches('/'));
            assert!(!p.exists(), "{} removed after the run", p.display());
        }
    }
}

#[test]
fn sigkill_of_berth_kills_the_container_and_the_next_run_is_clean() {
    if !common::require_root() {
        return;
    }
    let Sleeper {
        b,
        id,
        mut child,
        rx: _rx,
        ..
    } = sleeper("orphan");
    let init = container_pid(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("the container to die with berth", LONG, || !alive(init));
    // State is left behind; the next run of the same ID cleans it and starts.
    assert!(b.root().join("run/berth/runtime/state").join(&id).exists());
    let again = bundle(
        &b.dir().join("bundle2"),
        &config(&rootfs(), &["/bin/sh", "-c", "echo again"]),
    );
    let r = b.run(&run_args(&again, &id));
    r.ok();
    assert_eq!(r.stdout, "again\n");
    assert!(!b.root().join("run/berth/runtime/state").join(&id).exists());
}

#[test]
fn a_running_id_is_a_conflict() {
    if !common::require_root() {
        return;
    }
    let Sleeper {
        b,
        dir,
        id,
        child,
        rx: _rx,
    } = sleeper("busy");
    b.run(&run_args(&dir, &id))
        .code(4)
        .stderr_has(&["already running"]);
    b.run(&["kill", &id, "9"]).ok();
    assert_eq!(wait_exit(child).0, 137);
}

#[test]
fn exec_sees_the_containers_filesystem_and_pid_namespace() {
    if !common::require_root() {
        return;
    }
    let (b, dir) = setup(
        &sh("echo inside > /tmp/marker; echo up; exec sleep 600"),
        |_| {},
    );
    let id = unique("exec");
    let mut child = b
        .command(&run_args(&dir, &id))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    expect_line(&rx, "up");
    let r = b.run(&["exec", &id, "--", "/bin/cat", "/tmp/marker", "/proc/1/comm"]);
    r.ok();
    assert_eq!(r.stdout, "inside\nsleep\n");
    b.run(&["exec", &id, "/bin/sh", "-c", "exit 5"]).code(5);
    b.run(&["kill", &id, "TERM"]).ok(); // pid 1 without a handler ignores it
    b.run(&["kill", &id, "KILL"]).ok();
    assert_eq!(wait_exit(child).0, 137);
    b.run(&["exec", &id, "/bin/true"]).code(3);
}

#[test]
fn run_name_uses_the_installed_bundle() {
    if !common::require_root() {
        return;
    }
    let b = Berth::new();
    let name = unique("inst");
    b.run(&["run", &name])
        .code(3)
        .stderr_has(&["var/lib/berth/containers"]);
    let dir = b.root().join("var/lib/berth/containers").join(&name);
    bundle(
        &dir,
        &config(&rootfs(), &["/bin/sh", "-c", "echo installed"]),
    );
    let r = b.run(&["run", &name]);
    r.ok();
    assert_eq!(r.stdout, "installed\n");
}

#[test]
fn bad_bundles_fail_before_running_with_exit_2() {
    let b = Berth::new();
    let root = b.dir().join("fake-rootfs");
    std::fs::create_dir_all(&root).unwrap();
    let good = config(&root, &["/bin/true"]);
    let write = |name: &str, body: Option<&[u8]>| {
        let d = b.dir().join(name);
        std::fs::create_dir_all(&d).unwrap();
        if let Some(body) = body {
            std::fs::write(d.join("config.json"), body).unwrap();
        }
        d
    };
    let edited = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        serde_json::to_vec(&c).unwrap()
    };
    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (
            b.dir().join("no-such-dir"),
            vec!["no-such-dir", "does not exist"],
        ),
        (
            write("no-config", None),
            vec!["config.json", "does not exist"],
        ),
        (
            write("bad-json", Some(b"{\"ociVersion\": ")),
            vec!["config.json", "line 1"],
        ),
        (
            write(
                "bad-type",
                Some(&edited(&|c| c["process"]["args"] = json!("x"))),
            ),
            vec!["config.json", "sequence"],
        ),
        (
            write(
                "terminal",
                Some(&edited(&|c| c["process"]["terminal"] = json!(true))),
            ),
            vec!["process.terminal"],
        ),
        (
            write(
                "no-args",
                Some(&edited(&|c| c["process"]["args"] = json!([]))),
            ),
            vec!["process.args"],
        ),
        (
            write(
                "version",
                Some(&edited(&|c| c["ociVersion"] = json!("2.0.0"))),
            ),
            vec!["ociVersion"],
        ),
        (
            write(
                "no-linux",
                Some(&edited(&|c| {
                    c.as_object_mut().unwrap().remove("linux");
                })),
            ),
            vec!["linux"],
        ),
        (
            write(
                "no-rootfs",
                Some(&edited(&|c| {
                    c["root"]["path"] = json!("/nonexistent/rootfs")
                })),
            ),
            vec!["rootfs", "/nonexistent/rootfs"],
        ),
        (
            write(
                "rel-mount",
                Some(&edited(&|c| {
                    c["mounts"] = json!([{"destination": "tmp", "type": "tmpfs"}])
                })),
            ),
            vec!["mounts[0].destination"],
        ),
    ];
    // The host or the rootfs lacks what the config names (checked in
    // that order: bind sources, cwd, executable).
    let more: Vec<(PathBuf, Vec<&str>)> = vec![
        (
            write(
                "no-bind-source",
                Some(&edited(&|c| {
                    c["mounts"].as_array_mut().unwrap().push(json!({
                        "destination": "/etc/flanneld", "type": "bind",
                        "source": "/nonexistent/etc/flanneld", "options": ["rbind", "ro"]}))
                })),
            ),
            vec!["mount /nonexistent/etc/flanneld \u{2192} /etc/flanneld: source does not exist"],
        ),
        (
            write(
                "no-cwd",
                Some(&edited(&|c| c["process"]["cwd"] = json!("/no/such/dir"))),
            ),
            vec!["process.cwd /no/such/dir: no such directory in the rootfs"],
        ),
        (
            write(
                "no-exe",
                Some(&edited(&|c| c["process"]["args"] = json!(["no-such-tool"]))),
            ),
            vec!["process.args[0] no-such-tool: not found in the rootfs"],
        ),
        (
            write(
                "not-exe",
                Some(&edited(&|c| c["process"]["args"] = json!(["/"]))),
            ),
            vec!["process.args[0] /"],
        ),
    ];
    for (dir, needles) in cases.into_iter().chain(more) {
        b.run(&run_args(&dir, "bad")).code(2).stderr_has(&needles);
    }
    assert!(
        !b.root().join("run/berth/runtime/ctr/bad").exists(),
        "nothing was prepared"
    );
    b.run(&["run", "--bundle", "/", "bad/id"])
        .code(2)
        .stderr_has(&["invalid container id"]);
}

fn external(runtime: &str) -> bool {
    common::require_root() && common::require(runtime)
}

/// crun 1.8 refuses hybrid cgroup hosts whose cgroup2 still has controllers.
fn crun_hybrid_quirk(stderr: &str) -> bool {
    stderr.contains("hybrid mode not supported")
}

fn check_external_basics(runtime: &str) {
    let (b, dir) = setup(&sh("echo hi; exit 7"), |_| {});
    let id = unique(runtime);
    let mut args: Vec<&std::ffi::OsStr> = vec!["--runtime".as_ref(), runtime.as_ref()];
    args.extend(run_args(&dir, &id));
    let r = b.run(&args);
    if runtime == "crun" && crun_hybrid_quirk(&r.stderr) {
        common::skip(
            "crun on this hybrid cgroup host (mount the hugetlb v1 hierarchy, see docs/runtime.md)",
        );
        return;
    }
    r.code(7);
    assert_eq!(r.stdout, "hi\n");
    check_notify(runtime);
    check_listen_fds(runtime);
    check_forwarding(runtime);
}

#[test]
fn runc_runs_with_the_same_behaviour() {
    if !external("runc") {
        return;
    }
    check_external_basics("runc");
}

#[test]
fn crun_runs_with_the_same_behaviour() {
    if !external("crun") {
        return;
    }
    check_external_basics("crun");
}

#[test]
fn unknown_runtime_is_named() {
    let (b, dir) = setup(&sh("true"), |_| {});
    b.run(&[
        "--runtime",
        "/nonexistent/rt",
        "run",
        "--bundle",
        dir.to_str().unwrap(),
        "x",
    ])
    .code(1)
    .stderr_has(&["/nonexistent/rt", "not found"]);
}

#[test]
fn berth_run_binary_runs_bundles_without_libostree() {
    if !common::require_root() {
        return;
    }
    let lean = env!("CARGO_BIN_EXE_berth-run");
    let (b, dir) = setup(&sh("echo lean; exit 9"), |_| {});
    let id = unique("lean");
    let out = std::process::Command::new(lean)
        .arg("--root")
        .arg(b.root())
        .arg("--bundle")
        .arg(&dir)
        .arg(&id)
        .output()
        .expect("run berth-run");
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "lean\n");
    // The point of the second binary: the unit's main process does not load
    // libostree and its ~60 libraries.
    let ldd = std::process::Command::new("ldd")
        .arg(lean)
        .output()
        .expect("ldd");
    let libs = String::from_utf8_lossy(&ldd.stdout);
    assert!(
        !libs.contains("libostree"),
        "berth-run links libostree:\n{libs}"
    );
    // Bad input is still exit 2 with the path named.
    let out = std::process::Command::new(lean)
        .arg("--root")
        .arg(b.root())
        .arg("--bundle")
        .arg("/nonexistent-bundle")
        .arg("x")
        .output()
        .expect("run berth-run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-bundle"));
}

/// The runtime's state removed under a running container (a wiped `/run`):
/// once the container ends, berth still removes its cgroup from the host.
#[test]
fn the_cgroup_goes_even_when_the_runtime_state_went_first() {
    if !common::require_root() {
        return;
    }
    let Sleeper {
        b,
        id,
        child,
        rx: _rx,
        ..
    } = sleeper("nostate");
    let init = container_pid(child.id());
    let cg = memory_cgroup(init);
    assert!(
        cg.ends_with(format!("berth-{id}")) && cg.is_dir(),
        "{}",
        cg.display()
    );
    wipe_state(&b.root(), &id);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let (_, err) = wait_exit(child);
    assert!(
        !cg.exists(),
        "{} is left on the host; berth said: {err}",
        cg.display()
    );
}

#[test]
fn sigterm_to_berth_stops_an_init_without_a_handler() {
    if !common::require_root() {
        return;
    }
    // `sleep` as the container's PID 1 has no SIGTERM handler, so the kernel
    // would drop a forwarded SIGTERM and `systemctl stop` would wait out
    // TimeoutStopSec; berth delivers SIGKILL instead.
    // `_b` keeps the root (and the container's state in it) until the end:
    // dropped early, the state would go before berth deletes the container,
    // and its cgroups would stay behind on the host.
    let Sleeper {
        b: _b,
        child,
        rx: _rx,
        ..
    } = sleeper("term");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // Bound the wait: if berth hung, this kills it and the exit code shows it.
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    });
    let (code, err) = wait_exit(child);
    assert_eq!(code, 128 + 9, "{err}");
}
