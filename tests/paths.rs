//! What an image may name on its host: every path it supplies is a plain
//! absolute path inside the root (VOLUMEs, renameFiles,
//! installedFilesTemplate, tmpfiles lines), its units take no name another
//! unit has, its hostfs modes are not group/other-writable unless the
//! operator asks, `--display` cannot drive the terminal, and secrets left
//! 0644 by earlier berths are tightened. Offline into temporary roots.
//!
//! Every test needs root; without it it prints one line and returns (or
//! fails under `BERTH_TEST_REQUIRE_ALL=1`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use common::deploy::{layout_one, snapshot};
use common::oci::{Compression, Image, Layer};
use common::{require_root, Berth};

/// An image's layer, with the parents of each entry added as directories.
#[derive(Default)]
struct Tree {
    layer: Layer,
    dirs: BTreeSet<String>,
}

impl Tree {
    fn new() -> Tree {
        Tree::default().file("bin/app", "#!/bin/sh\nexec sleep 1000\n", 0o755)
    }

    fn parents(mut self, path: &str) -> Tree {
        let mut cur = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for p in &parts[..parts.len() - 1] {
            cur = if cur.is_empty() {
                p.to_string()
            } else {
                format!("{cur}/{p}")
            };
            if self.dirs.insert(cur.clone()) {
                self.layer = self.layer.dir(&cur, 0o755);
            }
        }
        self
    }

    fn file(self, path: &str, content: &str, mode: u32) -> Tree {
        let mut t = self.parents(path);
        t.layer = t.layer.file(path, content, mode);
        t
    }

    fn image(self) -> Image {
        Image::new(vec![self.layer.build(Compression::Gzip)]).entrypoint(&["/bin/app"])
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A directory next to the root with a marker in it, and its snapshot.
fn marker(b: &Berth) -> std::path::PathBuf {
    let outside = b.dir().join("outside");
    std::fs::create_dir_all(outside.join("etc")).unwrap();
    std::fs::write(outside.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    outside
}

/// Installs `image` into a fresh root after pulling it; asserts exit 2,
/// an error naming the image, `key` and `path`, and that neither the root
/// nor the marker tree next to it changed.
#[track_caller]
fn refused(image: &Image, key: &str, path: &str) {
    let (reference, _keep) = layout_one(image);
    let b = Berth::new();
    let outside = marker(&b);
    b.pull(&reference, &[]).ok();
    let before = (snapshot(&b.root()), snapshot(&outside));
    let r = b.run(&["install", "--name", "app", &reference]);
    r.code(2)
        .stderr_has(&[&reference, key, path, "refusing the image"]);
    assert_eq!((snapshot(&b.root()), snapshot(&outside)), before, "{key}");
}

#[test]
fn a_volume_that_leaves_its_state_directory_is_refused() {
    if !require_root() {
        return;
    }
    for volume in ["/data/../../../../outside/etc", "data", "/a//b"] {
        let image = Tree::new().image().volume(volume);
        refused(&image, "config.Volumes", volume);
    }
}

#[test]
fn manifest_json_paths_must_be_plain() {
    if !require_root() {
        return;
    }
    let hostfs = |manifest: &str| {
        Tree::new()
            .file("exports/hostfs/etc/app/app.conf", "x\n", 0o644)
            .file("exports/manifest.json", manifest, 0o644)
            .image()
    };
    refused(
        &hostfs(r#"{"renameFiles": {"/etc/app/../../x": "/etc/y"}}"#),
        "manifest.json renameFiles",
        "/etc/app/../../x",
    );
    refused(
        &hostfs(r#"{"renameFiles": {"/etc/app": "/etc/../../outside/etc"}}"#),
        "manifest.json renameFiles",
        "/etc/../../outside/etc",
    );
    refused(
        &hostfs(r#"{"installedFilesTemplate": ["/etc//app/app.conf"]}"#),
        "manifest.json installedFilesTemplate",
        "/etc//app/app.conf",
    );
}

#[test]
fn a_tmpfiles_line_outside_the_root_is_refused_naming_its_line() {
    if !require_root() {
        return;
    }
    let tmpfiles = "# state\n\
                    d ${STATE_DIRECTORY}/app 0700 - - -\n\
                    d ${STATE_DIRECTORY}/../../../outside/etc 0755 - - -\n";
    let image = Tree::new()
        .file("exports/tmpfiles.template", tmpfiles, 0o644)
        .image();
    refused(
        &image,
        "tmpfiles.template line 3",
        "/var/lib/../../../outside/etc",
    );
}

/// An image whose service carries `install` as its `[Install]` section.
fn unit_image(install: &str) -> Image {
    let service = format!(
        "[Unit]\nDescription=app\n\n[Service]\nExecStart=$EXEC_START\n\n[Install]\n{install}"
    );
    Tree::new()
        .file("exports/service.template", &service, 0o644)
        .image()
}

#[test]
fn a_container_name_of_a_vendor_unit_is_refused() {
    if !require_root() {
        return;
    }
    let (reference, _keep) = layout_one(&Tree::new().image());
    let b = Berth::new();
    let root = b.root();
    let vendor = root.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&vendor).unwrap();
    std::fs::write(
        vendor.join("ssh.service"),
        "[Service]\nExecStart=/usr/sbin/sshd\n",
    )
    .unwrap();
    b.pull(&reference, &[]).ok();
    let before = snapshot(&root);
    b.run(&["install", "--name", "ssh", &reference])
        .code(4)
        .stderr_has(&["/usr/lib/systemd/system/ssh.service", "--name"]);
    assert_eq!(snapshot(&root), before);
    // A masked unit (a link to /dev/null) is a unit too.
    std::fs::remove_file(vendor.join("ssh.service")).unwrap();
    std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    std::os::unix::fs::symlink("/dev/null", root.join("etc/systemd/system/ssh.service")).unwrap();
    b.run(&["install", "--name", "ssh", &reference])
        .code(4)
        .stderr_has(&["/etc/systemd/system/ssh.service"]);
    // Another name installs.
    b.run(&["install", "--name", "app", &reference]).ok();
    assert!(root.join("etc/systemd/system/app.service").is_file());
}

#[test]
fn an_alias_of_a_vendor_unit_is_refused() {
    if !require_root() {
        return;
    }
    let (reference, _keep) = layout_one(&unit_image(
        "WantedBy=multi-user.target\nAlias=dbus.service\n",
    ));
    let b = Berth::new();
    let root = b.root();
    let vendor = root.join("lib/systemd/system");
    std::fs::create_dir_all(&vendor).unwrap();
    std::fs::write(
        vendor.join("dbus.service"),
        "[Service]\nExecStart=/bin/dbus\n",
    )
    .unwrap();
    b.pull(&reference, &[]).ok();
    let before = snapshot(&root);
    b.run(&["install", "--name", "app", &reference])
        .code(4)
        .stderr_has(&[
            "Alias= of app.service",
            "/lib/systemd/system/dbus.service",
            &reference,
        ]);
    assert_eq!(snapshot(&root), before);
    // Without the vendor unit the alias is the container's, and stays so
    // through an update.
    std::fs::remove_file(vendor.join("dbus.service")).unwrap();
    b.run(&["install", "--name", "app", &reference]).ok();
    let alias = root.join("etc/systemd/system/dbus.service");
    assert_eq!(
        std::fs::read_link(&alias).unwrap(),
        Path::new("/etc/systemd/system/app.service")
    );
    b.run(&["update", "--set", "EXTRA=1", "app"]).ok();
    assert!(alias.symlink_metadata().is_ok());
}

#[test]
fn also_of_a_vendor_unit_is_refused_but_of_its_own_unit_not() {
    if !require_root() {
        return;
    }
    let (reference, _keep) = layout_one(&unit_image(
        "WantedBy=multi-user.target\nAlso=app.service ssh.service\n",
    ));
    let b = Berth::new();
    let root = b.root();
    std::fs::create_dir_all(root.join("usr/lib/systemd/system")).unwrap();
    std::fs::write(root.join("usr/lib/systemd/system/ssh.service"), "").unwrap();
    b.run(&["install", "--name", "app", &reference])
        .code(4)
        .stderr_has(&[
            "Also= of app.service",
            "/usr/lib/systemd/system/ssh.service",
        ]);
    std::fs::remove_file(root.join("usr/lib/systemd/system/ssh.service")).unwrap();
    b.run(&["install", "--name", "app", &reference]).ok();
}

/// An image shipping a 0777 helper and a 0666 sudoers drop-in.
fn modes_image() -> Image {
    Tree::new()
        .file("exports/hostfs/usr/local/bin/helper", "#!/bin/sh\n", 0o777)
        .file(
            "exports/hostfs/etc/sudoers.d/zz",
            "app ALL=(ALL) ALL\n",
            0o666,
        )
        .image()
}

#[test]
fn hostfs_files_lose_group_and_other_write() {
    if !require_root() {
        return;
    }
    let (reference, _keep) = layout_one(&modes_image());
    let b = Berth::new();
    let root = b.root();
    let r = b.run(&["install", "--name", "app", &reference]);
    r.ok().stderr_has(&[
        "hostfs /usr/local/bin/helper: mode 0777 \u{2192} 0755",
        "hostfs /etc/sudoers.d/zz: mode 0666 \u{2192} 0644",
    ]);
    assert_eq!(mode(&root.join("usr/local/bin/helper")), 0o755);
    assert_eq!(mode(&root.join("etc/sudoers.d/zz")), 0o644);
    b.run(&["uninstall", "app"]).ok();
    let doc = b.json(&["install", "--name", "app", &reference]);
    let changes = doc["hostfs_mode_changes"].as_array().unwrap();
    let got: Vec<(String, u64, u64)> = changes
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["image_mode"].as_u64().unwrap(),
                c["mode"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/etc/sudoers.d/zz".to_string(), 0o666, 0o644),
            ("/usr/local/bin/helper".to_string(), 0o777, 0o755),
        ]
    );
    assert_eq!(doc["hostfs_modes"], "safe");
}

#[test]
fn hostfs_modes_as_image_keeps_them_through_updates() {
    if !require_root() {
        return;
    }
    let (reference, _keep) = layout_one(&modes_image());
    let b = Berth::new();
    let root = b.root();
    let r = b.run(&[
        "install",
        "--name",
        "app",
        "--hostfs-modes=as-image",
        &reference,
    ]);
    r.ok();
    assert!(!r.stderr.contains("mode 0777"), "{}", r.stderr);
    assert_eq!(mode(&root.join("usr/local/bin/helper")), 0o777);
    assert_eq!(mode(&root.join("etc/sudoers.d/zz")), 0o666);
    b.run(&["update", "--set", "EXTRA=1", "app"]).ok();
    assert_eq!(mode(&root.join("usr/local/bin/helper")), 0o777);
    // Asked for again: safe.
    b.run(&[
        "update",
        "--hostfs-modes",
        "safe",
        "--set",
        "EXTRA=2",
        "app",
    ])
    .ok()
    .stderr_has(&["hostfs /usr/local/bin/helper: mode 0777 \u{2192} 0755"]);
    assert_eq!(mode(&root.join("usr/local/bin/helper")), 0o755);
}

#[test]
fn display_escapes_what_the_image_wrote() {
    if !require_root() {
        return;
    }
    let evil = "\u{1b}]0;pwned\u{7}\u{1b}[2J";
    let service = format!(
        "[Unit]\nDescription=app {evil}\n\n[Service]\nExecStart=$EXEC_START\n\n\
         [Install]\nWantedBy=multi-user.target\n"
    );
    let image = Tree::new()
        .file("exports/service.template", &service, 0o644)
        .file(
            "exports/hostfs/etc/app.conf",
            &format!("a\tb {evil}\n"),
            0o644,
        )
        .image();
    let (reference, _keep) = layout_one(&image);
    let b = Berth::new();
    b.pull(&reference, &[]).ok();
    let r = b.run(&["install", "--display", "--name", "app", &reference]);
    r.ok();
    assert!(!r.stdout.contains(['\u{1b}', '\u{7}']), "{:?}", r.stdout);
    assert!(
        r.stdout
            .contains("Description=app \\x1b]0;pwned\\x07\\x1b[2J\n"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("a\tb \\x1b]0;pwned"), "{}", r.stdout);
}

#[test]
fn secrets_left_world_readable_are_tightened_by_the_next_lock() {
    if !require_root() {
        return;
    }
    let (reference, _keep) = layout_one(&Tree::new().image());
    let b = Berth::new();
    b.run(&["install", "--name", "app", &reference]).ok();
    let dep = b.root().join("var/lib/berth/containers/app.0");
    // As berth before 0600 left them.
    for f in ["config.json", "info.json"] {
        std::fs::set_permissions(dep.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    b.run(&["install", "--name", "other", &reference]).ok();
    for f in ["config.json", "info.json"] {
        assert_eq!(mode(&dep.join(f)), 0o600, "{f}");
    }
}

#[test]
fn a_manifest_entry_chooses_the_hostfs_modes() {
    if !require_root() {
        return;
    }
    let (reference, _keep) = layout_one(&modes_image());
    let b = Berth::new();
    let root = b.root();
    let manifest = b.dir().join("manifest.toml");
    let entry = |extra: &str| {
        let toml = format!("[[container]]\nname = \"app\"\nimage = \"{reference}\"\n{extra}");
        std::fs::write(&manifest, toml).unwrap();
    };
    let mp = manifest.to_str().unwrap();
    entry("hostfs_modes = \"as-image\"\n");
    b.run(&["apply", mp]).ok();
    assert_eq!(mode(&root.join("usr/local/bin/helper")), 0o777);
    // Dropping the key is a change: back to safe.
    entry("");
    let plan = b.json(&["apply", "--plan", mp]);
    assert!(
        plan.to_string().contains("hostfs_modes as-image -> safe"),
        "{plan}"
    );
    b.run(&["apply", mp])
        .ok()
        .stderr_has(&["hostfs /usr/local/bin/helper: mode 0777 \u{2192} 0755"]);
    assert_eq!(mode(&root.join("usr/local/bin/helper")), 0o755);
    assert_eq!(mode(&root.join("etc/sudoers.d/zz")), 0o644);
}
