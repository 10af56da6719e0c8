//! `berth --user`: a user container installed, listed, run rootless and
//! uninstalled by an unprivileged uid, with no session bus (offline).
//!
//! The test runs as root and drops to uid/gid [`UID`] (no passwd entry
//! needed) with `setpriv`, with `HOME` and `XDG_RUNTIME_DIR` in a temporary
//! directory. Running the container needs unprivileged user namespaces and a
//! cgroup the user may write to: what systemd gives a user unit with
//! `Delegate=yes`. The test checks that berth names that need without one,
//! then delegates one itself (a `berth-user-test-PID` directory in every
//! cgroup hierarchy, owned by the uid) and starts the unit's `ExecStart=`
//! inside it. Without user namespaces the run part is
//! skipped with one line (a failure under `BERTH_TEST_REQUIRE_ALL=1`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::berth::{finish, BIN};
use common::oci::{oci_archive, Compression, Image, Layer, OciLayout};
use common::tree::path_set;
use common::{require_all, require_root, Run};

/// The unprivileged user (no passwd entry).
const UID: u32 = 61234;

/// What the container prints: a line, then its uid inside the container.
const SCRIPT: &str = "echo hello from a user container; id -u";

/// Variables of the caller that must not leak into the user's berth.
const SCRUBBED: &[&str] = &[
    "XDG_DATA_HOME",
    "XDG_CONFIG_HOME",
    "XDG_RUNTIME_DIR",
    "DBUS_SESSION_BUS_ADDRESS",
    "CONTAINERS_REGISTRIES_CONF",
    "REGISTRY_AUTH_FILE",
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
];

/// A temporary home for [`UID`].
struct UserEnv {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl UserEnv {
    fn new() -> UserEnv {
        let tmp = common::tempdir();
        let dir = tmp.path().to_path_buf();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for (d, mode) in [("home", 0o755), ("run", 0o700)] {
            let p = dir.join(d);
            std::fs::create_dir(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            std::os::unix::fs::chown(&p, Some(UID), Some(UID)).unwrap();
        }
        std::fs::write(dir.join("registries.conf"), "").unwrap();
        UserEnv { _tmp: tmp, dir }
    }

    fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// `setpriv … PROGRAM ARGS` as [`UID`], in the user's environment;
    /// `prefix` runs first as root (the cgroup hand-over).
    fn command(&self, prefix: Option<&str>, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "{} exec setpriv --reuid={UID} --regid={UID} --clear-groups -- \"$@\"",
            prefix.unwrap_or(":;")
        ));
        c.arg("sh").arg(program).args(args);
        for k in SCRUBBED {
            c.env_remove(k);
        }
        c.env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.run_dir())
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.dir.join("registries.conf"),
            )
            .env("USER", "berth-test")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// `berth ARGS` as the user.
    fn berth(&self, args: &[&str]) -> Run {
        let child = self.command(None, BIN, args).spawn().unwrap();
        finish(
            child,
            args.iter().map(|s| s.to_string()).collect(),
            std::time::Duration::from_secs(180),
        )
    }
}

/// Whether `uid` may create a user namespace here (`unshare -U -r`).
fn userns_works() -> Result<(), String> {
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={UID}"),
            &format!("--regid={UID}"),
            "--clear-groups",
            "unshare",
            "-U",
            "-r",
            "true",
        ])
        .output()
        .map_err(|e| format!("setpriv: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A cgroup in every hierarchy, owned by the user: what systemd's
/// `Delegate=yes` hands a user unit. Removed on drop.
struct Delegated {
    dirs: Vec<PathBuf>,
}

impl Delegated {
    fn new() -> Delegated {
        let name = format!("berth-user-test-{}", std::process::id());
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut dirs = Vec::new();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fstype = right.split_whitespace().next().unwrap_or("");
            if fstype != "cgroup" && fstype != "cgroup2" {
                continue;
            }
            let mp = PathBuf::from(left.split_whitespace().nth(4).unwrap());
            let dir = mp.join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            // cpuset (v1) takes tasks only once cpus and mems are set.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = std::fs::read_to_string(mp.join(f)) {
                    std::fs::write(dir.join(f), v.trim()).unwrap();
                }
            }
            std::os::unix::fs::chown(&dir, Some(UID), Some(UID)).unwrap();
            for f in [
                "cgroup.procs",
                "tasks",
                "cgroup.threads",
                "cgroup.subtree_control",
            ] {
                let p = dir.join(f);
                if p.exists() {
                    std::os::unix::fs::chown(&p, Some(UID), Some(UID)).unwrap();
                }
            }
            dirs.push(dir);
        }
        Delegated { dirs }
    }

    /// Shell commands moving the shell into every delegated cgroup.
    fn join_script(&self) -> String {
        self.dirs
            .iter()
            .map(|d| format!("echo $$ > {}/cgroup.procs;", d.display()))
            .collect()
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        for d in &self.dirs {
            if let Err(e) = std::fs::remove_dir(d) {
                eprintln!("leaving {}: {e}", d.display());
            }
        }
    }
}

/// An `oci-archive:` of a busybox image whose command prints [`SCRIPT`]'s output.
fn archive(env: &UserEnv) -> String {
    let rootfs = common::debs::busybox_rootfs();
    let mut layer = Layer::from_dir(&rootfs);
    for d in ["proc", "dev", "sys", "run"] {
        layer = layer.dir(d, 0o755);
    }
    let image = Image::new(vec![layer.build(Compression::Gzip)]).cmd(&["/bin/sh", "-c", SCRIPT]);
    let layout = env.dir.join("layout");
    OciLayout::create(&layout).add_image("t", &image);
    let out = env.dir.join("hello.tar");
    oci_archive(&layout, &out);
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    format!("oci-archive:{}:t", out.display())
}

/// The `[Install]` links below a user unit directory, as (link relative to
/// it, target relative to it).
fn user_links(unit_dir: &Path) -> BTreeSet<(String, String)> {
    path_set(unit_dir)
        .into_iter()
        .filter_map(|p| {
            let t = std::fs::read_link(unit_dir.join(&p)).ok()?;
            let t = t.strip_prefix(unit_dir).ok()?.display().to_string();
            Some((p, t))
        })
        .collect()
}

/// The links `systemctl --user enable hello.service` makes for `unit` (with
/// `SYSTEMD_OFFLINE=1`: no user manager needed), in a home of their own.
fn systemctl_user_links(env: &UserEnv, unit: &str) -> Option<BTreeSet<(String, String)>> {
    common::which("systemctl")?;
    let home = env.dir.join("systemctl-home");
    let unit_dir = home.join(".config/systemd/user");
    std::fs::create_dir_all(&unit_dir).unwrap();
    std::fs::write(unit_dir.join("hello.service"), unit).unwrap();
    Command::new("chown")
        .args(["-R", &format!("{UID}:{UID}"), home.to_str().unwrap()])
        .status()
        .unwrap();
    let mut c = env.command(None, "systemctl", &["--user", "enable", "hello.service"]);
    c.env("HOME", &home).env("SYSTEMD_OFFLINE", "1");
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "systemctl --user enable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(user_links(&unit_dir))
}

/// Every path below `dir` not owned by `uid`.
fn not_owned_by(dir: &Path, uid: u32) -> Vec<String> {
    path_set(dir)
        .into_iter()
        .filter(|p| std::fs::symlink_metadata(dir.join(p)).is_ok_and(|m| m.uid() != uid))
        .collect()
}

/// Paths owned by the user in the world-writable places, outside the test's own
/// directory `own` (its HOME and runtime dir are there, and that may be under /tmp).
fn strays(own: &Path) -> Vec<String> {
    let out = Command::new("find")
        .args([
            "/tmp",
            "/var/tmp",
            "/dev/shm",
            "-xdev",
            "-uid",
            &UID.to_string(),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !Path::new(l).starts_with(own))
        .map(str::to_string)
        .collect()
}

#[test]
fn user_install_runs_rootless_and_uninstalls() {
    if !require_root() || !require_all(&["setpriv", "find"]) {
        return;
    }
    let env = UserEnv::new();
    let image = archive(&env);
    let home = env.home();
    let config = home.join(".config");
    let share = home.join(".local/share/berth");
    let before_strays = strays(&env.dir);

    let run = env.berth(&["--user", "install", "--name", "hello", &image]);
    run.ok();
    assert!(run.stdout.contains("Installed hello"), "{}", run.stdout);

    // The unit, its enablement link and the deployment, all in HOME.
    let unit_dir = config.join("systemd/user");
    let unit = std::fs::read_to_string(unit_dir.join("hello.service")).unwrap();
    assert!(unit.contains("\nWantedBy=default.target\n"), "{unit}");
    assert!(!unit.contains("multi-user.target"), "{unit}");
    let exec_start = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap()
        .to_string();
    assert!(exec_start.contains(" --user "), "{exec_start}");
    assert!(exec_start.ends_with(" hello"), "{exec_start}");
    let dest = share.join("containers/hello.0");
    assert!(
        unit.contains(&format!("WorkingDirectory={}\n", dest.display())),
        "{unit}"
    );
    assert_eq!(
        std::fs::read_link(unit_dir.join("default.target.wants/hello.service")).unwrap(),
        unit_dir.join("hello.service")
    );
    match systemctl_user_links(&env, &unit) {
        Some(want) => assert_eq!(user_links(&unit_dir), want),
        None => {
            common::skip("systemctl");
        }
    }
    assert_eq!(
        std::fs::read_link(share.join("containers/hello")).unwrap(),
        PathBuf::from("hello.0")
    );
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dest.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        spec["linux"]["uidMappings"],
        serde_json::json!([{"containerID": 0, "hostID": UID, "size": 1}])
    );
    assert_eq!(spec["root"]["readonly"], true);
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dest.join("info.json")).unwrap()).unwrap();
    let value = |k: &str| info["values"][k]["value"].as_str().unwrap().to_string();
    assert_eq!(value("RUN_DIRECTORY"), env.run_dir().display().to_string());
    assert_eq!(
        value("STATE_DIRECTORY"),
        home.join(".local/share").display().to_string()
    );
    assert_eq!(value("CONF_DIRECTORY"), config.display().to_string());
    assert_eq!(value("HOST_UID"), UID.to_string());
    assert_eq!(not_owned_by(&home, UID), Vec::<String>::new());
    assert_eq!(
        strays(&env.dir),
        before_strays,
        "files owned by the user outside HOME"
    );

    // list --json sees it (offline: state unknown).
    let run = env.berth(&["--user", "--json", "list"]);
    run.ok();
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(rows[0]["name"], "hello");
    assert_eq!(rows[0]["deployment"], "hello.0");
    assert_eq!(rows[0]["state"], "unknown");
    // The system scope does not see it.
    let root_list = Command::new(BIN)
        .args([
            "--root",
            env.dir.join("root").to_str().unwrap(),
            "--json",
            "list",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&root_list.stdout).trim(), "[]");

    run_container(&env, &exec_start);

    // mount needs root: refused, pointing at the files in place.
    let mnt = env.home().to_str().unwrap().to_string();
    env.berth(&["--user", "mount", "hello", &mnt])
        .code(2)
        .stderr_has(&["mounting needs root", "containers/hello/rootfs"]);

    let run = env.berth(&["--user", "uninstall", "hello"]);
    run.ok();
    assert_eq!(
        path_set(&config),
        Default::default(),
        "~/.config after uninstall"
    );
    assert_eq!(path_set(&share.join("containers")), Default::default());
    assert_eq!(not_owned_by(&home, UID), Vec::<String>::new());
}

/// Runs the unit's `ExecStart=` as the user, in a delegated cgroup, and
/// checks what the container printed (uid 0 inside).
fn run_container(env: &UserEnv, exec_start: &str) {
    if let Err(why) = userns_works() {
        common::skip(&format!("unprivileged user namespaces ({why})"));
        return;
    }
    let argv: Vec<&str> = exec_start.split_whitespace().collect();
    // Outside a cgroup of its own the container cannot start; berth says why.
    let child = env.command(None, argv[0], &argv[1..]).spawn().unwrap();
    let run = finish(
        child,
        argv.iter().map(|s| s.to_string()).collect(),
        std::time::Duration::from_secs(120),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("Delegate=yes"), "{}", run.stderr);
    let delegated = Delegated::new();
    let child = env
        .command(Some(&delegated.join_script()), argv[0], &argv[1..])
        .spawn()
        .unwrap();
    let run = finish(
        child,
        argv.iter().map(|s| s.to_string()).collect(),
        std::time::Duration::from_secs(120),
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "hello from a user container\n0\n"),
        "stderr: {}",
        run.stderr
    );
    drop(delegated);
}

#[test]
fn user_flag_is_refused_for_root_and_with_another_root() {
    if !require_root() {
        return;
    }
    let out = Command::new(BIN)
        .args(["--user", "list"])
        .env("HOME", "/root")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--user is for unprivileged users"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args(["--user", "--root", "/tmp", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args(["--user", "--system", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
