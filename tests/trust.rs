//! The trust boundary between berth's root-owned state and other local users:
//! the store and deployments are out of their reach, `berth mount` does not
//! hand them an image's setuid-root binaries, secrets are 0600, image text
//! cannot drive the terminal and `--set` values stay inside their tmpfiles
//! field. Offline into temporary roots; the other user is `nobody` (65534)
//! via `setpriv`.
//!
//! Every test needs root (and `setpriv` or `systemd-tmpfiles` where it says
//! so); without it it prints one line and returns (or fails under
//! `BERTH_TEST_REQUIRE_ALL=1`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::deploy::layout_one;
use common::oci::{Compression, Image, Layer};
use common::{require, require_root, Berth};

/// `nobody`.
const OTHER: u32 = 65534;

/// An image whose `usr/bin/whoami-suid` is the host's `id`, setuid root.
fn suid_image() -> Image {
    let id = std::fs::read("/usr/bin/id").unwrap();
    let layer = Layer::new()
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/whoami-suid", id, 0o4755)
        .build(Compression::Gzip);
    Image::new(vec![layer]).entrypoint(&["/usr/bin/whoami-suid"])
}

/// Runs `argv` as [`OTHER`] (no groups). Through `sh`: setpriv keeps root's
/// capabilities until its own exec, so it could reach what `OTHER` cannot.
fn as_other(argv: &[&Path]) -> Output {
    Command::new("setpriv")
        .arg(format!("--reuid={OTHER}"))
        .arg(format!("--regid={OTHER}"))
        .arg("--clear-groups")
        .args(["--", "/bin/sh", "-c", "exec \"$@\"", "sh"])
        .args(argv)
        .output()
        .unwrap()
}

/// Opens the temp dirs above the root to everyone, so only the modes berth
/// chose stand between [`OTHER`] and its state (as on a real `/`).
fn open_up(b: &Berth) {
    for d in [b.dir().to_path_buf(), b.root()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The store's setuid-root regular files.
fn suid_objects(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.path().symlink_metadata().unwrap();
        if m.is_dir() {
            suid_objects(&e.path(), out);
        } else if m.is_file() && m.mode() & 0o4000 != 0 && m.uid() == 0 {
            out.push(e.path());
        }
    }
}

#[test]
fn other_users_cannot_reach_the_store_or_deployments() {
    if !require_root() || !require("setpriv") {
        return;
    }
    let (reference, _keep) = layout_one(&suid_image());
    let b = Berth::new();
    let root = b.root();
    b.run(&["install", "--name", "app", &reference]).ok();
    open_up(&b);
    let data = root.join("var/lib/berth");
    assert_eq!(mode(&data), 0o700);
    let dep = data.join("containers/app.0");
    for f in ["config.json", "info.json"] {
        assert_eq!(mode(&dep.join(f)), 0o600, "{f}");
    }
    // The store keeps the image's setuid binary as it is (root's to run)...
    let mut objects = Vec::new();
    suid_objects(&data.join("repo/objects"), &mut objects);
    assert!(!objects.is_empty(), "no setuid object in the store");
    // ...but nobody else can list, read or run anything below the data dir.
    let rootfs_bin = dep.join("rootfs/usr/bin/whoami-suid");
    let ls = Path::new("/bin/ls");
    let cat = Path::new("/bin/cat");
    for argv in [
        vec![ls, &data],
        vec![ls, &data.join("repo")],
        vec![ls, &dep.join("rootfs")],
        vec![cat, &dep.join("config.json")],
        vec![cat, &dep.join("info.json")],
        vec![objects[0].as_path()],
        vec![rootfs_bin.as_path()],
    ] {
        let out = as_other(&argv);
        assert!(!out.status.success(), "{argv:?} ran: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "{argv:?}: {out:?}"
        );
    }
    // Root still reads them: list and status work.
    b.run(&["list"]).ok();
    b.run(&["status", "app"]).ok();
}

#[test]
fn berth_mount_does_not_hand_out_setuid_root() {
    if !require_root() || !require("setpriv") {
        return;
    }
    let (reference, _keep) = layout_one(&suid_image());
    let b = Berth::new();
    b.run(&["install", "--name", "app", &reference]).ok();
    let dir = common::tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    for what in ["app", reference.as_str()] {
        b.run(&["mount", what, mnt.to_str().unwrap()]).ok();
        let bin = mnt.join("usr/bin/whoami-suid");
        // The bit is still there to see; it just does not apply.
        assert_eq!(mode(&bin), 0o4755, "{what}");
        let out = as_other(&[&bin, Path::new("-u")]);
        let euid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        b.run(&["umount", mnt.to_str().unwrap()]).ok();
        assert!(out.status.success(), "{what}: {out:?}");
        assert_eq!(euid, OTHER.to_string(), "{what}: ran with euid {euid}");
    }
}

#[test]
fn an_existing_open_store_is_tightened_by_the_next_install() {
    if !require_root() {
        return;
    }
    let (reference, _keep) = layout_one(&suid_image());
    let b = Berth::new();
    b.run(&["install", "--name", "a", &reference]).ok();
    let data = b.root().join("var/lib/berth");
    // As berth before this change left it.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    b.run(&["list"]).ok();
    b.run(&["install", "--name", "b", &reference]).ok();
    assert_eq!(mode(&data), 0o700);
}

#[test]
fn images_inspect_shows_control_characters_escaped() {
    if !require_root() {
        return;
    }
    let evil = "\u{1b}]0;pwned\u{7}\u{1b}[2Jgone\u{9b}31m";
    let image = suid_image().label("evil", evil);
    let (reference, _keep) = layout_one(&image);
    let b = Berth::new();
    b.pull(&reference, &[]).ok();
    let r = b.run(&["images", "inspect", &reference]);
    r.ok();
    assert!(
        !r.stdout.contains(['\u{1b}', '\u{7}', '\u{9b}']),
        "{:?}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(r"  evil=\x1b]0;pwned\x07\x1b[2Jgone\u{9b}31m"),
        "{}",
        r.stdout
    );
    // --json carries the label exactly.
    let doc = b.json(&["images", "inspect", &reference]);
    assert_eq!(doc["labels"]["evil"], evil);
    let list = b.run(&["images"]);
    assert!(!list.stdout.contains('\u{1b}'), "{:?}", list.stdout);
}

/// A container config whose process runs as [`OTHER`] and may gain
/// privileges, as an image with setuid binaries asks (without no_new_privs,
/// loading the seccomp filter takes CAP_SYS_ADMIN).
const SUID_CONFIG: &str = r#"{
    "ociVersion": "1.0.0",
    "process": {
        "user": {"uid": 65534, "gid": 65534},
        "args": ["/usr/bin/whoami-suid", "-u"],
        "env": ["PATH=/usr/bin"],
        "cwd": "/",
        "capabilities": {
            "bounding": ["CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID"],
            "effective": ["CAP_SYS_ADMIN"],
            "permitted": ["CAP_SYS_ADMIN"]
        },
        "noNewPrivileges": false
    },
    "root": {"path": "rootfs", "readonly": true},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
}
"#;

#[test]
fn a_setuid_binary_keeps_working_inside_its_container() {
    if !require_root() {
        return;
    }
    // The host's `id`, setuid root, with the libraries it links.
    let mut layer = Layer::new();
    for d in [
        "proc", "dev", "sys", "usr", "usr/bin", "exports", "lib64", "lib",
    ] {
        layer = layer.dir(d, 0o755);
    }
    layer = layer.dir("lib/x86_64-linux-gnu", 0o755);
    let ldd = Command::new("ldd").arg("/usr/bin/id").output().unwrap();
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let inside = lib.trim_start_matches('/').replacen("usr/", "", 1);
        layer = layer.file(&inside, std::fs::read(lib).unwrap(), 0o755);
    }
    let layer = layer
        .file(
            "usr/bin/whoami-suid",
            std::fs::read("/usr/bin/id").unwrap(),
            0o4755,
        )
        .file("exports/config.json.template", SUID_CONFIG, 0o644)
        .build(Compression::Gzip);
    let image = Image::new(vec![layer]).label("atomic.run", "once");
    let (reference, _keep) = layout_one(&image);
    let b = Berth::new();
    let run = b.run(&["run-once", &reference]);
    run.ok();
    assert_eq!(
        run.stdout, "0\n",
        "the container's setuid binary ran with this euid"
    );
}

const TMPFILES: &str = "d /var/lib/$DIR 0700 root root - -\n";
const MANIFEST: &str = r#"{"defaultValues": {"DIR": "app"}}"#;

#[test]
fn a_set_value_with_a_space_stays_one_tmpfiles_path() {
    if !require_root() || !require("systemd-tmpfiles") {
        return;
    }
    let layer = Layer::new()
        .dir("bin", 0o755)
        .file("bin/app", "#!/bin/sh\n", 0o755)
        .dir("exports", 0o755)
        .file("exports/tmpfiles.template", TMPFILES, 0o644)
        .file("exports/manifest.json", MANIFEST, 0o644)
        .build(Compression::Gzip);
    let (reference, _keep) = layout_one(&Image::new(vec![layer]).entrypoint(&["/bin/app"]));
    let b = Berth::new();
    let root = b.root();
    let value = r#"my "data" \dir"#;
    let set = format!("DIR={value}");
    b.run(&["install", "--name", "app", "--set", &set, &reference])
        .ok();
    let conf = root.join("etc/tmpfiles.d/app.conf");
    let out = Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", root.display()))
        .arg("--create")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let made = root.join("var/lib").join(value);
    assert!(made.is_dir(), "{}", std::fs::read_to_string(&conf).unwrap());
    assert_eq!(mode(&made), 0o700);
    let mut names: Vec<String> = std::fs::read_dir(root.join("var/lib"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["berth", value]);
}
