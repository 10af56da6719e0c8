//! `berth run-once IMAGE [-- CMD…]`: a busybox image run once in the foreground
//! with the bundled runtime, offline into temporary roots; and `berth install`
//! refusing an image labelled `atomic.run=once`.
//!
//! Every test needs root; without it it prints one line and returns (or fails
//! under `BERTH_TEST_REQUIRE_ALL=1`). No timing assertions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::oci::{Compression, Image, Layer, OciLayout};
use common::tree::tree_listing;
use common::{require_root, Berth};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A config template in the shape of Project Atomic's run-once tool images:
/// its own args (not the image's CMD), `$NAME` in the environment, broad
/// capabilities without no_new_privs, a read-only root, host binds for /tmp, `${RUN_DIRECTORY}` and the host's `/`.
const TOOL_CONFIG: &str = r#"{
    "ociVersion": "1.0.0",
    "process": {
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["/bin/echo", "tool", "version"],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TOOL_NAME=$NAME"],
        "cwd": "/",
        "capabilities": {
            "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL",
                         "CAP_SETGID", "CAP_SETUID", "CAP_SYS_ADMIN", "CAP_SYS_CHROOT"],
            "effective": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL",
                          "CAP_SETGID", "CAP_SETUID", "CAP_SYS_ADMIN", "CAP_SYS_CHROOT"],
            "permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL",
                          "CAP_SETGID", "CAP_SETUID", "CAP_SYS_ADMIN", "CAP_SYS_CHROOT"]
        },
        "noNewPrivileges": false
    },
    "root": {"path": "rootfs", "readonly": true},
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/tmp", "type": "bind", "source": "/tmp",
         "options": ["private", "bind", "rw"]},
        {"destination": "/run", "type": "bind", "source": "${RUN_DIRECTORY}",
         "options": ["rbind", "rw"]},
        {"destination": "/host", "type": "bind", "source": "/",
         "options": ["rbind", "slave", "ro"]}
    ],
    "linux": {
        "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
    }
}
"#;

const TOOL_TMPFILES: &str = "d    ${RUN_DIRECTORY}/tool-state    0755 root root - -\n";

/// The busybox tree with the mount points a read-only root needs.
fn busybox_layer() -> Layer {
    let mut layer = Layer::from_dir(&common::debs::busybox_rootfs());
    for d in ["proc", "dev", "sys", "run", "host"] {
        layer = layer.dir(d, 0o755);
    }
    layer
}

/// A plain busybox image whose default command prints a line and exits 0.
fn plain_image() -> Image {
    Image::new(vec![busybox_layer().build(Compression::Gzip)]).cmd(&[
        "/bin/sh",
        "-c",
        "echo default-cmd-ran",
    ])
}

/// A run-once tool image: `atomic.run=once`, its own config.json.template
/// and tmpfiles.template under /exports, ENTRYPOINT + CMD `--help`.
fn tool_image() -> Image {
    let exports = Layer::new()
        .dir("exports", 0o755)
        .file("exports/config.json.template", TOOL_CONFIG, 0o644)
        .file("exports/tmpfiles.template", TOOL_TMPFILES, 0o644)
        .build(Compression::Gzip);
    Image::new(vec![busybox_layer().build(Compression::Gzip), exports])
        .label("atomic.run", "once")
        .label("atomic.type", "system")
        .entrypoint(&["/bin/echo"])
        .cmd(&["--help"])
}

/// `image` in an OCI layout of the berth's temp dir; returns `oci:DIR:t`.
fn reference(b: &Berth, image: &Image) -> String {
    let dir = b.dir().join(format!("layout-{}", common::unique("l")));
    OciLayout::create(&dir).add_image("t", image);
    format!("oci:{}:t", dir.display())
}

/// The root's tree without the store: what a run must leave as it found.
fn outside_store(b: &Berth) -> Vec<String> {
    tree_listing(&b.root())
        .into_iter()
        .filter(|l| !l.starts_with("\"var/lib/berth/repo"))
        .collect()
}

/// Asserts the runtime keeps no state of any container below the root.
fn no_runtime_state(b: &Berth) {
    let runtime = b.root().join("run/berth/runtime");
    for sub in ["state", "ctr", "locks"] {
        let d = runtime.join(sub);
        let left: Vec<_> = std::fs::read_dir(&d)
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{} holds {left:?}", d.display());
    }
}

/// A berth with `image` pulled; returns it, the reference and the tree before.
fn pulled(image: &Image) -> (Berth, String, Vec<String>) {
    let b = Berth::new();
    let r = reference(&b, image);
    b.pull(&r, &[]).ok();
    let before = outside_store(&b);
    (b, r, before)
}

#[test]
fn the_payloads_status_and_stdout_are_berths() {
    if !require_root() {
        return;
    }
    let (b, r, before) = pulled(&plain_image());
    let run = b.run(&["run-once", &r, "--", "/bin/sh", "-c", "echo out; exit 7"]);
    run.code(7);
    assert_eq!(run.stdout, "out\n");
    assert_eq!(outside_store(&b), before, "run-once left files behind");
    no_runtime_state(&b);

    let run = b.run(&["run-once", &r]);
    run.ok();
    assert_eq!(run.stdout, "default-cmd-ran\n");
    assert_eq!(outside_store(&b), before, "run-once left files behind");

    // --json: the result object is the last line of stdout.
    let run = b.run(&["--json", "run-once", "--name", "j1", &r, "--", "/bin/true"]);
    run.ok();
    let last = run.stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["exit"], 0);
    assert_eq!(v["name"], "j1");
    assert_eq!(outside_store(&b), before);
    no_runtime_state(&b);
}

#[test]
fn an_image_not_stored_is_pulled_and_stays() {
    if !require_root() {
        return;
    }
    let b = Berth::new();
    let r = reference(&b, &plain_image());
    let run = b.run(&["run-once", &r, "--", "/bin/echo", "hi"]);
    run.ok();
    assert_eq!(run.stdout, "hi\n");
    assert_eq!(b.images().len(), 1, "the image stays in the store");
    assert!(!b.root().join("var/lib/berth/run-once").exists());
    assert!(!b.root().join("run").exists(), "runtime dirs left behind");
}

#[test]
fn a_run_once_tool_image_runs_with_its_own_config() {
    if !require_root() {
        return;
    }
    let (b, r, before) = pulled(&tool_image());
    // Without `--`: the template's args, not the image's CMD.
    let run = b.run(&["run-once", &r]);
    run.ok();
    assert_eq!(run.stdout, "tool version\n");
    // With `-- ARGS`: the args replaced; the rest of the template rendered.
    let run = b.run(&[
        "run-once",
        "--name",
        "tool1",
        &r,
        "--",
        "/bin/sh",
        "-c",
        "echo name=$TOOL_NAME; test -d /host/etc && echo host-seen; \
         touch /x 2>/dev/null || echo read-only",
    ]);
    run.ok();
    assert_eq!(run.stdout, "name=tool1\nhost-seen\nread-only\n");
    assert_eq!(outside_store(&b), before, "run-once left files behind");
    assert!(
        !b.root().join("etc/tmpfiles.d").exists(),
        "tmpfiles written"
    );
    no_runtime_state(&b);
}

#[test]
fn nothing_is_left_after_a_signal() {
    if !require_root() {
        return;
    }
    let (b, r, before) = pulled(&plain_image());
    let mut child = b
        .command(&[
            "run-once",
            "--name",
            "busy1",
            &r,
            "--",
            "/bin/sh",
            "-c",
            "echo up; exec sleep 600",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "up\n");
    // A second run of the same name is refused and leaves the first alone.
    let second = b.run(&["run-once", "--name", "busy1", &r, "--", "/bin/true"]);
    second.code(4).stderr_has(&["busy1 is in use"]);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let run = common::berth::finish(child, vec!["run-once".into()], Duration::from_secs(120));
    // sleep, PID 1 of its namespace, has no SIGTERM handler: berth run kills it.
    assert!(
        [128 + 15, 128 + 9].contains(&run.code),
        "exit {} (want 143 or 137)\n{}",
        run.code,
        run.stderr
    );
    assert_eq!(outside_store(&b), before, "run-once left files behind");
    no_runtime_state(&b);

    // A payload whose own child a signal killed: its status passes through.
    let run = b.run(&[
        "run-once",
        &r,
        "--",
        "/bin/sh",
        "-c",
        "sleep 600 & kill -9 $!; wait $!",
    ]);
    run.code(128 + 9);
    assert_eq!(outside_store(&b), before);
}

#[test]
fn install_refuses_a_run_once_image() {
    if !require_root() {
        return;
    }
    let (b, r, before) = pulled(&tool_image());
    let run = b.run(&["install", &r]);
    run.code(2);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].contains(&format!("{r} is a run-once image (label atomic.run=once)"))
            && errors[0].contains(&format!("berth run-once {r}")),
        "{}",
        errors[0]
    );
    assert_eq!(
        outside_store(&b),
        before,
        "install of a run-once image wrote files"
    );
    assert!(!b.root().join("etc/systemd").exists());
    let list = b.run(&["--json", "list"]);
    list.ok();
    assert_eq!(list.json(), serde_json::json!([]));
}
