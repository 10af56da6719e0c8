//! Deployments over time, offline into temporary roots: hostfs files with
//! renameFiles and installedFilesTemplate, socket templates, update to a new
//! image and values, rollback, uninstall, every failpoint of each, and a
//! berth SIGKILLed mid-way (the journal is undone by the next run).
//!
//! Needs root; without it each test prints one line and returns (or fails
//! under `BERTH_TEST_REQUIRE_ALL=1`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use common::deploy::{fail_and_kill_each, layout, read, snapshot, Case};
use common::oci::{Compression, Image, Layer};
use common::{require_all, require_root, run_ok, Berth};

const SERVICE: &str = "\
[Unit]
Description=etcd $NAME

[Service]
Type=notify
ExecStart=$EXEC_START
WorkingDirectory=$DESTDIR
Environment=ETCD_PORT=$ETCD_PORT

[Install]
WantedBy=multi-user.target
";

const CONFIG: &str = r#"{
  "ociVersion": "1.0.2",
  "process": {"user": {"uid": 0, "gid": 0}, "args": ["/usr/bin/etcd", "$ETCD_PORT"], "cwd": "/"},
  "root": {"path": "rootfs", "readonly": true},
  "mounts": [{"destination": "/var/lib/etcd", "type": "bind", "source": "${STATE_DIRECTORY}/${NAME}", "options": ["rbind", "rw"]}]
}
"#;

const MANIFEST: &str = r#"{
  "version": "1.0",
  "defaultValues": {"ETCD_PORT": "2379"},
  "renameFiles": {"/usr/bin/etcdctl": "/usr/bin/${NAME}ctl"},
  "installedFilesTemplate": ["/etc/etcd/etcd.conf"]
}"#;

/// An etcd-like image of `version`: hostfs `etcdctl` renamed to
/// `${NAME}ctl`, a templated host config, a tmpfiles state dir.
fn etcd(version: &str) -> Image {
    let layer = Layer::new()
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/etcd", format!("#!/bin/sh\n# {version}\n"), 0o755)
        .dir("exports", 0o755)
        .file("exports/service.template", SERVICE, 0o644)
        .file("exports/config.json.template", CONFIG, 0o644)
        .file(
            "exports/tmpfiles.template",
            "d ${STATE_DIRECTORY}/${NAME} 0700 root root - -\n",
            0o644,
        )
        .file("exports/manifest.json", MANIFEST, 0o644)
        .dir("exports/hostfs", 0o755)
        .dir("exports/hostfs/usr", 0o755)
        .dir("exports/hostfs/usr/bin", 0o755)
        .file(
            "exports/hostfs/usr/bin/etcdctl",
            format!("#!/bin/sh\necho ctl {version}\n"),
            0o755,
        )
        .dir("exports/hostfs/etc", 0o755)
        .dir("exports/hostfs/etc/etcd", 0o755)
        .file(
            "exports/hostfs/etc/etcd/etcd.conf",
            format!("name=$NAME\nport=$ETCD_PORT\nversion={version}\n"),
            0o640,
        )
        .build(Compression::Gzip);
    Image::new(vec![layer]).cmd(&["/usr/bin/etcd"])
}

/// An httpd-like image with a socket template.
fn httpd() -> Image {
    let layer = Layer::new()
        .dir("bin", 0o755)
        .file("bin/httpd", "#!/bin/sh\n", 0o755)
        .dir("exports", 0o755)
        .file(
            "exports/socket.template",
            "[Socket]\nListenStream=127.0.0.1:$PORT\n\n[Install]\nWantedBy=sockets.target\n",
            0o644,
        )
        .file(
            "exports/manifest.json",
            r#"{"defaultValues": {"PORT": "8080"}}"#,
            0o644,
        )
        .build(Compression::Gzip);
    Image::new(vec![layer]).cmd(&["/bin/httpd"])
}

#[test]
fn hostfs_files_are_renamed_rendered_and_removed_with_their_dirs() {
    if !require_root() {
        return;
    }
    let (src, _keep) = layout(&[("v1", etcd("v1"))]);
    let b = Berth::new();
    let root = b.root();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    let before = snapshot(&root);
    let r = b.run(&["install", "--name", "etcd", &format!("{src}:v1")]);
    r.ok();
    assert!(!r.stderr.contains("CRITICAL"), "{}", r.stderr);
    // renameFiles: etcdctl → ${NAME}ctl, mode kept.
    assert_eq!(read(&root, "usr/bin/etcdctl"), "#!/bin/sh\necho ctl v1\n");
    let mode = std::fs::metadata(root.join("usr/bin/etcdctl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    // installedFilesTemplate: rendered with the values.
    assert_eq!(
        read(&root, "etc/etcd/etcd.conf"),
        "name=etcd\nport=2379\nversion=v1\n"
    );
    // A second container shipping the same host file shares it: the first
    // one's version stays, and the second's uninstall leaves it.
    let installed = snapshot(&root);
    b.run(&["install", "--name", "etcd2", &format!("{src}:v1")])
        .ok()
        .stderr_has(&[
            "kept /etc/etcd/etcd.conf is etcd's, shared with etcd2; etcd2's version differs",
        ]);
    assert_eq!(
        read(&root, "etc/etcd/etcd.conf"),
        "name=etcd\nport=2379\nversion=v1\n"
    );
    b.run(&["uninstall", "etcd2"]).ok();
    assert_eq!(snapshot(&root), installed);
    // A host file the user edited stays, and uninstall says so.
    std::fs::write(root.join("usr/bin/etcdctl"), "mine\n").unwrap();
    b.run(&["uninstall", "etcd"])
        .ok()
        .stderr_has(&["kept /usr/bin/etcdctl: modified"]);
    assert_eq!(read(&root, "usr/bin/etcdctl"), "mine\n");
    std::fs::remove_file(root.join("usr/bin/etcdctl")).unwrap();
    // Everything else went, /etc/etcd (made by the install) included; only
    // berth's own state directories stay.
    assert!(!root.join("etc/etcd").exists());
    let mut after = snapshot(&root);
    after.retain(|k, _| !k.starts_with("var"));
    assert_eq!(after, before);
}

#[test]
fn socket_template_becomes_an_enabled_socket_unit() {
    if !require_all(&["systemctl"]) {
        return;
    }
    let (src, _keep) = layout(&[("t", httpd())]);
    let b = Berth::new();
    let root = b.root();
    b.run(&[
        "install",
        "--name",
        "web",
        "--set",
        "PORT=8081",
        &format!("{src}:t"),
    ])
    .ok();
    let socket = read(&root, "etc/systemd/system/web.socket");
    assert!(
        socket.starts_with("# Generated by berth for web from "),
        "{socket}"
    );
    assert!(
        socket.contains("\nListenStream=127.0.0.1:8081\n"),
        "{socket}"
    );
    assert_eq!(
        std::fs::read_link(root.join("etc/systemd/system/sockets.target.wants/web.socket"))
            .unwrap(),
        Path::new("/etc/systemd/system/web.socket")
    );
    // The same links as systemctl --root enable makes for both units.
    let other = common::tempdir();
    let units = other.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    for u in ["web.service", "web.socket"] {
        std::fs::copy(root.join("etc/systemd/system").join(u), units.join(u)).unwrap();
    }
    run_ok(
        Command::new("systemctl")
            .arg(format!("--root={}", other.path().display()))
            .args(["enable", "web.service", "web.socket"]),
    );
    let links = |dir: &Path| {
        snapshot(dir)
            .into_iter()
            .filter(|(_, w)| w.starts_with("->"))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(links(&root.join("etc/systemd/system")), links(&units));
    let status = b.json(&["status", "web"]);
    let units: Vec<&str> = status["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["unit"].as_str().unwrap())
        .collect();
    assert_eq!(units, ["web.service", "web.socket"]);
    b.run(&["uninstall", "web"]).ok();
    assert!(!root.join("etc/systemd/system/web.socket").exists());
}

#[test]
fn update_rollback_and_update_again_switch_everything_together() {
    if !require_root() {
        return;
    }
    let (src, _keep) = layout(&[("v1", etcd("v1")), ("v2", etcd("v2"))]);
    let b = Berth::new();
    let root = b.root();
    let v1 = format!("{src}:v1");
    let v2 = format!("{src}:v2");
    b.run(&["install", "--name", "etcd", "--set", "ETCD_PORT=2390", &v1])
        .ok();
    let installed = snapshot(&root);
    let uuid = b.json(&["status", "etcd"])["values"]["UUID"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    // Same image, no --set: nothing to do.
    let r = b.json(&["update", "etcd", "--image", &v1]);
    assert_eq!(r["changed"], true, "--image always redeploys");
    b.run(&["rollback", "etcd"]).ok();
    assert_eq!(snapshot(&root), {
        // Back on etcd.0, with etcd.1 kept for the next rollback.
        let mut want = installed.clone();
        for (k, v) in snapshot(&root) {
            if k.starts_with("var/lib/berth/containers/etcd.1") {
                want.insert(k, v);
            }
        }
        want
    });

    let r = b.json(&[
        "update",
        "etcd",
        "--image",
        &v2,
        "--set",
        "RUN_DIRECTORY=/run/x",
    ]);
    assert_eq!(r["from"], "etcd.0");
    assert_eq!(r["to"], "etcd.1");
    assert_eq!(
        std::fs::read_link(root.join("var/lib/berth/containers/etcd")).unwrap(),
        Path::new("etcd.1")
    );
    let unit = read(&root, "etc/systemd/system/etcd.service");
    assert!(
        unit.contains("\nWorkingDirectory=/var/lib/berth/containers/etcd.1\n"),
        "{unit}"
    );
    // --set from the install survives, the new one is added, UUID is kept.
    assert!(unit.contains("\nEnvironment=ETCD_PORT=2390\n"), "{unit}");
    let st = b.json(&["status", "etcd"]);
    assert_eq!(st["values"]["RUN_DIRECTORY"]["value"], "/run/x");
    assert_eq!(st["values"]["UUID"]["value"], uuid.as_str());
    assert_eq!(st["previous"]["deployment"], "etcd.0");
    assert_eq!(read(&root, "usr/bin/etcdctl"), "#!/bin/sh\necho ctl v2\n");
    assert_eq!(
        read(&root, "etc/etcd/etcd.conf"),
        "name=etcd\nport=2390\nversion=v2\n"
    );
    assert!(read(&root, "var/lib/berth/containers/etcd.1/rootfs/usr/bin/etcd").contains("v2"));
    let updated = snapshot(&root);

    // Rollback: unit, host files and values of v1 again.
    let r = b.json(&["rollback", "etcd"]);
    assert_eq!(r["to"], "etcd.0");
    let rolled = snapshot(&root);
    for (k, v) in &installed {
        if !k.starts_with("var/lib/berth/containers/etcd.1") {
            assert_eq!(rolled.get(k), Some(v), "{k}");
        }
    }
    assert_eq!(read(&root, "usr/bin/etcdctl"), "#!/bin/sh\necho ctl v1\n");
    // And forward again to exactly the updated state.
    b.run(&["rollback", "etcd"]).ok();
    assert_eq!(snapshot(&root), updated);

    // A host file edited by the user survives an update, reported.
    std::fs::write(root.join("etc/etcd/etcd.conf"), "local\n").unwrap();
    b.run(&["update", "etcd", "--image", &v1])
        .ok()
        .stderr_has(&["kept /etc/etcd/etcd.conf: modified"]);
    assert_eq!(read(&root, "etc/etcd/etcd.conf"), "local\n");
    b.run(&["uninstall", "etcd"]).ok();
    assert_eq!(read(&root, "etc/etcd/etcd.conf"), "local\n");
    assert!(!root.join("var/lib/berth/containers/etcd.0").exists());
    assert!(!root.join("var/lib/berth/containers/etcd.1").exists());
}

#[test]
fn rollback_without_a_previous_deployment_and_update_of_nothing_fail_clearly() {
    if !require_root() {
        return;
    }
    let (src, _keep) = layout(&[("v1", etcd("v1"))]);
    let b = Berth::new();
    b.run(&["install", "--name", "etcd", &format!("{src}:v1")])
        .ok();
    let before = snapshot(&b.root());
    b.run(&["rollback", "etcd"])
        .code(3)
        .stderr_has(&["no previous deployment"]);
    b.run(&["update", "nosuch"]).code(3).stderr_has(&["nosuch"]);
    b.run(&["update", "etcd", "--set", "NAME=x"])
        .code(2)
        .stderr_has(&["NAME"]);
    b.run(&[
        "update",
        "etcd",
        "--set",
        "ETCD_PORT=1\nExecStartPre=/bin/evil",
    ])
    .code(2);
    b.run(&["install", "--name", "etcd.1", &format!("{src}:v1")])
        .code(2)
        .stderr_has(&["invalid container name"]);
    assert_eq!(snapshot(&b.root()), before);
}

#[test]
fn failure_or_kill_at_any_step_leaves_the_previous_state() {
    if !require_root() {
        return;
    }
    let (src, _keep) = layout(&[("v1", etcd("v1")), ("v2", etcd("v2"))]);
    let mut b = Berth::new();
    let root = b.root();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    let v1 = format!("{src}:v1");
    let v2 = format!("{src}:v2");
    b.pull(&v1, &[]).ok();
    b.pull(&v2, &[]).ok();
    let install = ["install", "--name", "etcd", v1.as_str()];
    let update = ["update", "etcd", "--image", v2.as_str()];
    let update_back = ["update", "etcd", "--image", v1.as_str()];
    let rollback = ["rollback", "etcd"];
    let uninstall = ["uninstall", "etcd"];
    // The directories an install makes for berth's state stay; the rest goes.
    b.run(&install).ok();
    b.run(&uninstall).ok();
    let empty = snapshot(&root);
    // (failpoint, command, the state it starts from is made by these)
    let cases: Vec<Case> = vec![
        ("checkout", &install, vec![]),
        ("stage", &install, vec![]),
        ("files", &install, vec![]),
        ("commit", &install, vec![]),
        ("reload", &install, vec![]),
        ("checkout", &update, vec![&install]),
        ("update-stage", &update, vec![&install]),
        ("update-files", &update, vec![&install]),
        ("switch", &update, vec![&install]),
        // Back to v1: the replaced slot holds v1, its checkout is moved over.
        ("update-files", &update_back, vec![&install, &update]),
        ("switch", &update_back, vec![&install, &update]),
        ("rollback-files", &rollback, vec![&install, &update]),
        ("switch", &rollback, vec![&install, &update]),
        ("uninstall-files", &uninstall, vec![&install, &update]),
        ("uninstall-staged", &uninstall, vec![&install, &update]),
        ("uninstall-commit", &uninstall, vec![&install, &update]),
    ];
    fail_and_kill_each(&mut b, &cases, &empty, |b, cmd| {
        if cmd[0] != "uninstall" {
            b.run(&uninstall).ok();
        }
    });
}

#[test]
fn mount_shows_a_container_or_an_image_read_only() {
    if !require_root() {
        return;
    }
    let (src, _keep) = layout(&[("v1", etcd("v1")), ("v2", etcd("v2"))]);
    let b = Berth::new();
    let root = b.root();
    let v2 = format!("{src}:v2");
    b.run(&["install", "--name", "etcd", &format!("{src}:v1")])
        .ok();
    b.pull(&v2, &[]).ok();
    let dir = common::tempdir();
    let mnt = dir.path();
    for (what, version) in [("etcd", "v1"), (v2.as_str(), "v2")] {
        b.run(&["mount", what, mnt.to_str().unwrap()]).ok();
        assert!(read(mnt, "usr/bin/etcd").contains(version), "{what}");
        let e = std::fs::write(mnt.join("usr/bin/etcd"), "x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}");
        b.run(&["umount", mnt.to_str().unwrap()]).ok();
        assert!(!mnt.join("usr").exists(), "{what}");
    }
    // The image checkout made for the mount is gone again.
    let mounts = root.join("var/lib/berth/mounts");
    assert_eq!(std::fs::read_dir(&mounts).unwrap().count(), 0);
    b.run(&["mount", "nosuch", mnt.to_str().unwrap()]).code(3);
    b.fsck();
}

#[test]
fn update_all_checks_every_container() {
    if !require_root() {
        return;
    }
    let (src, _keep) = layout(&[("v1", etcd("v1"))]);
    let b = Berth::new();
    let v1 = format!("{src}:v1");
    std::fs::create_dir_all(b.root().join("usr/bin")).unwrap();
    b.run(&["install", "--name", "a", &v1]).ok();
    // Nothing moved: every container is up to date. One group per
    // unrelated container.
    let r = b.json(&["update", "--all"]);
    let groups = r.as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["group"], serde_json::json!(["a"]));
    assert_eq!(groups[0]["results"][0]["changed"], false);
    b.run(&["update", "--all", "--set", "X=1"]).code(2);
    b.run(&["update"]).code(2);
}
