//! Group updates, offline into temporary roots: `berth update A B` stages
//! both, then switches them in dependency order inside one journaled
//! transaction, so an error or a SIGKILL at any step, even between the
//! two switches, leaves both on their old deployments (after the next
//! berth run), and the same command then moves both.
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

use common::deploy::{fail_and_kill_each, layout, snapshot, Case};
use common::oci::{Compression, Image, Layer};
use common::{require_root, Berth};

const SERVICE: &str = "\
[Unit]
Description=group member $NAME
After=$AFTER

[Service]
ExecStart=$EXEC_START
WorkingDirectory=$DESTDIR

[Install]
WantedBy=multi-user.target
";

/// A minimal service image of `version`, ordered after `$AFTER`.
fn member(version: &str) -> Image {
    let layer = Layer::new()
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/run", format!("#!/bin/sh\n# {version}\n"), 0o755)
        .dir("exports", 0o755)
        .file("exports/service.template", SERVICE, 0o644)
        .file(
            "exports/manifest.json",
            r#"{"defaultValues": {"AFTER": "network.target"}}"#,
            0o644,
        )
        .build(Compression::Gzip);
    Image::new(vec![layer]).cmd(&["/usr/bin/run"])
}

fn deployment(b: &Berth, name: &str) -> String {
    std::fs::read_link(b.root().join("var/lib/berth/containers").join(name))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn a_group_update_is_switched_in_order_and_undone_whole() {
    if !require_root() {
        return;
    }
    let (src, _keep) = layout(&[("v1", member("v1")), ("v2", member("v2"))]);
    let mut b = Berth::new();
    let root = b.root();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    let v1 = format!("{src}:v1");
    b.pull(&v1, &[]).ok();
    b.pull(&format!("{src}:v2"), &[]).ok();
    // b is ordered after a; `update b a` names them the other way round.
    let install_a = ["install", "--name", "a", v1.as_str()];
    let install_b = [
        "install",
        "--name",
        "b",
        "--set",
        "AFTER=a.service",
        v1.as_str(),
    ];
    let update = ["update", "b", "a", "--set", "V=2"];
    let uninstall_a = ["uninstall", "a"];
    let uninstall_b = ["uninstall", "b"];
    b.run(&install_a).ok();
    b.run(&install_b).ok();
    b.run(&uninstall_b).ok();
    b.run(&uninstall_a).ok();
    let empty = snapshot(&root);
    let setup = || -> Vec<&[&str]> { vec![&install_a, &install_b] };
    // (failpoint, command, the state it starts from is made by these)
    let cases: Vec<Case> = vec![
        ("update-stage", &update, setup()),
        ("update-files", &update, setup()),
        ("switch-a", &update, setup()),
        // a is switched already: b's switch undoes a's too.
        ("switch-b", &update, setup()),
    ];
    fail_and_kill_each(&mut b, &cases, &empty, |b, _| {
        // The update went through: both on their other slot, in one run.
        assert_eq!(deployment(b, "a"), "a.1");
        assert_eq!(deployment(b, "b"), "b.1");
        b.run(&uninstall_b).ok();
        b.run(&uninstall_a).ok();
    });
}

#[test]
fn update_all_reports_connected_containers_as_one_group() {
    if !require_root() {
        return;
    }
    let (src, _keep) = layout(&[("v1", member("v1"))]);
    let b = Berth::new();
    std::fs::create_dir_all(b.root().join("usr/bin")).unwrap();
    let v1 = format!("{src}:v1");
    b.run(&["install", "--name", "etcd", &v1]).ok();
    b.run(&[
        "install",
        "--name",
        "flannel",
        "--set",
        "AFTER=etcd.service",
        &v1,
    ])
    .ok();
    b.run(&[
        "install",
        "--name",
        "engine",
        "--set",
        "AFTER=flannel.service",
        &v1,
    ])
    .ok();
    b.run(&["install", "--name", "httpd", &v1]).ok();
    let r = b.json(&["update", "--all"]);
    let groups: Vec<serde_json::Value> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].clone())
        .collect();
    assert_eq!(
        groups,
        [
            serde_json::json!(["etcd", "flannel", "engine"]),
            serde_json::json!(["httpd"])
        ]
    );
}

#[test]
fn prune_keeps_the_image_of_either_slot_after_its_tag_moved() {
    if !require_root() {
        return;
    }
    let dir = common::tempdir();
    let src = dir.path().join("layout");
    common::oci::OciLayout::create(&src).add_image("t", &member("v1"));
    let b = Berth::new();
    let root = b.root();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    let reference = format!("oci:{}:t", src.display());
    b.run(&["install", "--name", "app", &reference]).ok();
    let info = |slot: &str| -> serde_json::Value {
        let p = root
            .join("var/lib/berth/containers")
            .join(slot)
            .join("info.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let old = info("app.0")["image"]["commit"]
        .as_str()
        .unwrap()
        .to_string();
    // The tag moves; the update leaves v1 as the rollback target.
    common::oci::OciLayout::create(&src).add_image("t", &member("v2"));
    b.run(&["update", "app"]).ok();
    assert_eq!(deployment(&b, "app"), "app.1");
    b.run(&["images", "prune"]).ok();
    let repo = root.join("var/lib/berth/repo");
    let show = |commit: &str| {
        std::process::Command::new("ostree")
            .arg(format!("--repo={}", repo.display()))
            .args(["ls", commit, "/usr/bin/run"])
            .output()
            .unwrap()
    };
    let kept = show(&old);
    assert!(
        kept.status.success(),
        "the previous slot's commit was pruned: {}",
        String::from_utf8_lossy(&kept.stderr)
    );
    b.fsck();
    // Once no slot uses it, the next prune drops it.
    b.run(&["update", "app", "--set", "X=1"]).ok();
    b.run(&["images", "prune"]).ok();
    assert!(!show(&old).status.success(), "v1 is used by no slot now");
}

#[test]
fn update_all_groups_by_the_manifests_after_without_after_lines() {
    if !require_root() {
        return;
    }
    let (src, _keep) = layout(&[("v1", member("v1"))]);
    let b = Berth::new();
    std::fs::create_dir_all(b.root().join("usr/bin")).unwrap();
    // No unit names another (every AFTER is network.target): only the
    // manifest says db comes before api.
    let dir = common::tempdir();
    let manifest = dir.path().join("m.toml");
    let entry = |name: &str, extra: &str| {
        format!("[[container]]\nname = \"{name}\"\nimage = \"{src}:v1\"\n{extra}\n")
    };
    std::fs::write(
        &manifest,
        entry("api", "after = [\"db\"]") + &entry("db", "") + &entry("web", ""),
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    b.run(&["apply", m]).ok();
    let info: serde_json::Value = serde_json::from_slice(
        &std::fs::read(b.root().join("var/lib/berth/containers/api/info.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(info["after"], serde_json::json!(["db"]));
    let unit = std::fs::read_to_string(b.root().join("etc/systemd/system/api.service")).unwrap();
    assert!(!unit.contains("db.service"), "{unit}");
    let groups = |b: &Berth| -> Vec<serde_json::Value> {
        let r = b.json(&["update", "--all"]);
        r.as_array()
            .unwrap()
            .iter()
            .map(|g| g["group"].clone())
            .collect()
    };
    assert_eq!(
        groups(&b),
        [serde_json::json!(["db", "api"]), serde_json::json!(["web"])]
    );
    // The manifest drops the ordering: apply reconfigures api, and the
    // groups follow.
    std::fs::write(
        &manifest,
        entry("api", "") + &entry("db", "") + &entry("web", ""),
    )
    .unwrap();
    b.run(&["apply", m]).ok();
    assert_eq!(
        groups(&b),
        [
            serde_json::json!(["api"]),
            serde_json::json!(["db"]),
            serde_json::json!(["web"])
        ]
    );
}
